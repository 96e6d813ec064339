"""AWS's own naming rules, judged before anyone runs ``pulumi up``: lengths and characters after
Pulumi's auto-name suffix, names one account and region holds once, and what stacks sharing an
account would collide on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from municloud.cloud.policies.model import (
    BACKUP_PLAN,
    BACKUP_SELECTION,
    BACKUP_VAULT,
    BUCKET,
    DETECTOR,
    RDS,
    Item,
    is_unknown,
)

# --- AWS's own naming rules, before anyone runs pulumi up ---------------------------------------


@dataclass(frozen=True)
class NameRule:
    """How AWS names one kind of resource: the property, its length and characters."""

    key: str
    max_length: int
    pattern: str  # the whole name must match
    words: str  # AWS's rule, for the message


_ALNUM_HYPHEN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
NAME_RULES: dict[str, NameRule] = {
    "aws:lb/loadBalancer:LoadBalancer": NameRule(
        "name", 32, r"(?!internal-)" + _ALNUM_HYPHEN,
        "letters, digits and hyphens, not starting or ending with a hyphen or with 'internal-'"),
    "aws:lb/targetGroup:TargetGroup": NameRule(
        "name", 32, _ALNUM_HYPHEN,
        "letters, digits and hyphens, not starting or ending with a hyphen"),
    "aws:iam/role:Role": NameRule("name", 64, r"[\w+=,.@-]+", "letters, digits and +=,.@_-"),
    "aws:iam/instanceProfile:InstanceProfile": NameRule(
        "name", 128, r"[\w+=,.@-]+", "letters, digits and +=,.@_-"),
    RDS: NameRule("identifier", 63, r"[a-z](?:-?[a-z0-9])*",
                  "lower-case letters, digits and single hyphens, starting with a letter"),
    "aws:rds/subnetGroup:SubnetGroup": NameRule(
        "name", 255, r"[a-z0-9 ._-]+", "lower-case letters, digits, spaces and ._-"),
    BACKUP_VAULT: NameRule("name", 50, r"[A-Za-z0-9_-]{2,}", "letters, digits, - and _"),
    BACKUP_PLAN: NameRule("name", 50, r"[A-Za-z0-9_.-]+", "letters, digits and _.-"),
    BACKUP_SELECTION: NameRule("name", 50, r"[A-Za-z0-9_.-]+", "letters, digits and _.-"),
    BUCKET: NameRule("bucket", 63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]",
                     "lower-case letters, digits, dots and hyphens"),
    "aws:networkfirewall/firewall:Firewall": NameRule(
        "name", 128, r"[A-Za-z0-9-]+", "letters, digits and hyphens"),
    "aws:networkfirewall/firewallPolicy:FirewallPolicy": NameRule(
        "name", 128, r"[A-Za-z0-9-]+", "letters, digits and hyphens"),
    "aws:networkfirewall/ruleGroup:RuleGroup": NameRule(
        "name", 128, r"[A-Za-z0-9-]+", "letters, digits and hyphens"),
    "aws:cloudtrail/trail:Trail": NameRule(
        "name", 128, r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?",
        "letters, digits and ._-, starting and ending with a letter or digit"),
    "aws:kms/alias:Alias": NameRule("name", 256, r"alias/(?!aws/)[A-Za-z0-9/_-]+",
                                    "'alias/' and letters, digits and /_-, not 'alias/aws/'"),
    "aws:ec2/launchTemplate:LaunchTemplate": NameRule(
        "name", 128, r"[A-Za-z0-9().\/_-]{3,}", "letters, digits and ()./_-"),
}
# Names of other properties AWS checks the same way.
EXTRA_NAME_RULES: dict[str, tuple[NameRule, ...]] = {
    RDS: (NameRule("finalSnapshotIdentifier", 255, r"[A-Za-z](?:-?[A-Za-z0-9])*",
                   "letters, digits and single hyphens, starting with a letter"),),
}
# Pulumi's auto-naming appends "-" and 7 random characters to the logical name, unless the
# program names the resource itself; a first preview already holds that name, mocks do not.
AUTONAME_SUFFIX = "-abcdefg"


def aws_name_problems(item: Item) -> list[str]:
    """What AWS would refuse in ``item``'s names (the physical name Pulumi would give it)."""
    import re

    out = []
    rules = [*((NAME_RULES[item.type],) if item.type in NAME_RULES else ()),
             *EXTRA_NAME_RULES.get(item.type, ())]
    for rule in rules:
        value = item.props.get(rule.key)
        if is_unknown(value):
            continue  # computed; known at up
        if value is None:
            if rule is not NAME_RULES.get(item.type):
                continue  # an optional extra name, not given
            value = (item.name + AUTONAME_SUFFIX)
            if item.type in (RDS, BUCKET, "aws:rds/subnetGroup:SubnetGroup"):
                value = value.lower()  # Pulumi lower-cases these auto-names
            given = f"{item.name!r} plus Pulumi's 8-character suffix"
        else:
            given = repr(value)
        if len(str(value)) > rule.max_length:
            out.append(f"{rule.key} {given} is {len(str(value))} characters; AWS allows "
                       f"{rule.max_length}")
        if not re.fullmatch(rule.pattern, str(value)):
            out.append(f"{rule.key} {given}: AWS allows only {rule.words}")
    return out


def check_aws_names(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every name AWS would see is within its length and characters, and names that must be
    unique in an account and region (aliases, explicit names) are unique in the stack."""
    out: list[tuple[str, str | None]] = [
        (f"{r.name}: {problem}", r.urn) for r in resources for problem in aws_name_problems(r)]
    seen: dict[tuple[str, str], str] = {}
    for r in resources:
        rule = NAME_RULES.get(r.type)
        if rule is None:
            continue
        value = r.known(rule.key)
        if isinstance(value, str) and value:
            other = seen.setdefault((r.type, value), r.name)
            if other != r.name:
                out.append((f"{r.name}: {rule.key} {value!r} is also {other}'s; AWS allows one "
                            "per account and region", r.urn))
    return out




def account_collisions(stacks: Mapping[str, Sequence[Item]]) -> list[str]:
    """What stacks that one AWS account and region will hold together would collide on; the
    pack sees one stack at a time, so ``municloud cloud plan --same-account`` asks this.

    AWS allows one GuardDuty detector per account and region (a second ``CreateDetector``
    fails), and one of each explicit name in :data:`NAME_RULES` (KMS aliases, ...). Give it the
    graphs a first preview sends: their names are the ones the programs chose (Pulumi's
    auto-names carry a random suffix and do not collide; the mocks' up graph writes plain
    logical names in their place)."""
    out: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    detectors: list[str] = []
    for ref, items in stacks.items():
        for r in items:
            if r.type == DETECTOR:
                detectors.append(f"{ref} ({r.name})")
            rule = NAME_RULES.get(r.type)
            value = r.known(rule.key) if rule else None
            if rule and isinstance(value, str) and value:
                other = seen.setdefault((r.type, value), ref)
                if other != ref:
                    out.append(f"{ref}: {r.name}'s {rule.key} {value!r} is also in {other}; AWS "
                               "allows one per account and region")
    if len(detectors) > 1:
        out.append(f"GuardDuty: {', '.join(detectors)} each create a detector; AWS allows one "
                   "per account and region: set `municloud:guardDuty: false` in every stack of "
                   "the account but one (that one's detector covers them)")
    return out
