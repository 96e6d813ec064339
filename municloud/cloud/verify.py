"""``municloud cloud verify``: check a deployed cloud against the project's invariants with boto3.

Two kinds of cloud are checked, each selected by the ``municloud:cloud`` tag (``tags.CLOUD``):

* ``security-cloud`` (自治体情報セキュリティクラウド): transit gateways without default route table
  association or propagation, no transit gateway route table that lets one tenant reach another,
  flow logs on every VPC, a log archive bucket with object lock, KMS encryption and all public
  access blocked, a multi-region CloudTrail trail that is logging, GuardDuty on, and no security
  group open to 0.0.0.0/0.
* ``joint-cloud`` (自治体クラウド): the same transit gateway and flow log checks (one tenant per
  member, as ``joint_cloud.py`` builds it), no internet gateway, no public IP on instances,
  network interfaces, databases or subnets, no security group open to 0.0.0.0/0, RDS storage
  encrypted, an AWS Backup plan that copies to a vault in another region (backups survive the
  loss of one site).

In both, every resource found must say whom it serves (``municloud:prefecture`` or
``municloud:municipality``), and with ``--inventory`` every municipality the inventory says the
cloud serves must have its transit gateway attachment or VPN. A check that finds nothing to
examine fails; a check whose API cannot be read here is reported UNCHECKED, which is not a pass.

How transit gateway route tables are read (tenant isolation, テナント分離):

* the shared hub (inspection) table may reach everyone, and the shared attachment (the inspection
  VPC's) may be reached from every table. The hub is a table tagged ``municloud:role=inspection``,
  or, as ``security_cloud.py`` builds it, a table with a prefecture tag and no municipality tag
  that is associated with an attachment of a prefecture and of no municipality;
* a table tagged ``municloud:municipality=CODE`` belongs to that municipality: no active route
  and no propagation may lead to an attachment of another municipality, and no route may lead
  to a destination inside another municipality's address range (blackhole routes are fine; a
  range the table's own tenant shares, as the joint cloud's tenant VPCs do, is judged by the
  route's target alone);
* a table tagged only ``municloud:prefecture=CODE`` belongs to that prefecture: nothing in it
  may lead to another prefecture's attachments or ranges;
* an untagged table that carries routes or propagations is a failure (nobody can tell whom it
  serves); an empty untagged table is ignored.

Address ranges are known from the VPCs behind tenant attachments and, with ``--inventory``, from
the inventory: municipalities' segments and prefectures' shared networks (so a municipality
routed to another prefecture's proxies in a 超広域 cloud is caught).

The module is split in three: the checks are pure functions over a :class:`CloudState` (the
``describe_*`` results, unit-tested without AWS), :func:`collect` fills a state with boto3, and
:func:`main` prints. boto3 is imported only inside :func:`collect` and :func:`main`, so the CLI
stays fast for the other commands.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from municloud.cloud import tags

SECURITY_CLOUD = "security-cloud"  # 自治体情報セキュリティクラウド
JOINT_CLOUD = "joint-cloud"  # 自治体クラウド
KINDS = (SECURITY_CLOUD, JOINT_CLOUD)

# The value of ``tags.ROLE`` on the shared inspection route table and the inspection VPC's
# attachment: the one place where every tenant's traffic meets, to be inspected.
INSPECTION = "inspection"

WORLD = ("0.0.0.0/0", "::/0")
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
PUBLIC_ACCESS_BLOCK_KEYS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)

Resource = dict[str, Any]


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    UNCHECKED = "UNCHECKED"  # the API could not be read here (not supported, access denied)


@dataclass(frozen=True)
class Finding:
    """One line of the report: a check's verdict on one resource (or on all it examined)."""

    check: str
    status: Status
    resource: str  # the resource id, a list of ids, or "-" when nothing was found
    message: str  # what was found, or what is wrong
    fix: str = ""  # what to do, for FAIL and UNCHECKED
    examined: int = 0  # how many resources the check looked at

    def line(self) -> str:
        text = f"{self.status.value:<9} {self.check:<26} {self.resource}: {self.message}"
        return f"{text} -> {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Bucket:
    """What verify reads of one S3 bucket; None where the bucket has no such configuration."""

    name: str
    tags: Mapping[str, str]
    object_lock: Mapping[str, Any] | None = None
    encryption: Mapping[str, Any] | None = None
    public_access_block: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Expected:
    """A municipality that, by the inventory, the cloud must serve."""

    code: str
    name_ja: str
    inventory: str


@dataclass(frozen=True)
class KnownRange:
    """An address range whose owner the inventory names: a municipality's segment, or a
    prefecture's shared network (its proxies' range in the security cloud, for instance)."""

    cidr: str
    municipality: str | None  # code, None for a prefecture's shared network
    prefecture: str  # 6-digit code of the prefecture
    inventory: str


@dataclass(frozen=True)
class Inventories:
    """What ``--inventory`` adds: whom the cloud must serve, and whose ranges are whose."""

    expected: tuple[Expected, ...]
    ranges: tuple[KnownRange, ...]


@dataclass
class CloudState:
    """The describe_* results of one cloud, as boto3 returns them (tags as AWS lists them).

    Everything is already narrowed to the cloud: resources tagged ``municloud:cloud=<cloud>``,
    and what sits in the cloud's VPCs or on its transit gateways. ``unavailable`` maps a service
    (``ec2``, ``s3``, ``cloudtrail``, ``guardduty``, ``rds``, ``backup``) that could not be read to
    the reason; the checks that need it report UNCHECKED instead of passing.
    """

    cloud: str
    kind: str
    region: str
    transit_gateways: list[Resource] = field(default_factory=list)
    tgw_route_tables: list[Resource] = field(default_factory=list)
    tgw_routes: dict[str, list[Resource]] = field(default_factory=dict)  # table id -> routes
    tgw_routes_truncated: set[str] = field(default_factory=set)  # tables with >1000 routes
    tgw_propagations: dict[str, list[Resource]] = field(default_factory=dict)
    tgw_associations: dict[str, list[Resource]] = field(default_factory=dict)
    tgw_attachments: list[Resource] = field(default_factory=list)
    vpn_connections: list[Resource] = field(default_factory=list)  # without secrets
    vpcs: list[Resource] = field(default_factory=list)
    subnets: list[Resource] = field(default_factory=list)
    security_groups: list[Resource] = field(default_factory=list)
    instances: list[Resource] = field(default_factory=list)
    network_interfaces: list[Resource] = field(default_factory=list)
    internet_gateways: list[Resource] = field(default_factory=list)
    flow_logs: list[Resource] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    trails: list[Resource] = field(default_factory=list)  # describe_trails + IsLogging + Tags
    untagged_trails: list[str] = field(default_factory=list)  # names of the account's others
    detectors: list[Resource] = field(default_factory=list)  # get_detector + DetectorId
    db_instances: list[Resource] = field(default_factory=list)
    backup_plans: list[Resource] = field(default_factory=list)  # get_backup_plan + Arn + Tags
    unavailable: dict[str, str] = field(default_factory=dict)


# --- small helpers over boto3 shapes ----------------------------------------------------------


def tag_map(resource: Mapping[str, Any]) -> dict[str, str]:
    """The tags of a resource as a dict, whichever shape the service returns them in."""
    for key in ("Tags", "TagList", "TagSet", "TagsList"):
        value = resource.get(key)
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        if isinstance(value, list):
            return {str(t["Key"]): str(t.get("Value", "")) for t in value if "Key" in t}
    return {}


def has_cloud_tag(resource: Mapping[str, Any], cloud: str) -> bool:
    return tag_map(resource).get(tags.CLOUD) == cloud


def _ids(ids: Sequence[str], limit: int = 4) -> str:
    if not ids:
        return "-"
    shown = ",".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown},… ({len(ids)} in all)"


def _prefecture_of(code: str) -> str:
    """The 2-digit prefecture number of a local government code (全国地方公共団体コード)."""
    return code[:2]


@dataclass(frozen=True)
class Owner:
    """Whom an attachment or address range belongs to."""

    municipality: str | None  # code, or None for a prefecture's shared resource
    prefecture: str | None  # 2-digit prefecture number, or None if unknown
    inspection: bool = False

    def describe(self) -> str:
        if self.inspection:
            return "the shared inspection attachment"
        if self.municipality:
            return f"municipality {self.municipality}"
        return f"prefecture {self.prefecture}" if self.prefecture else "nobody (untagged)"


def owner_of(resource_tags: Mapping[str, str]) -> Owner:
    municipality = resource_tags.get(tags.MUNICIPALITY) or None
    prefecture = resource_tags.get(tags.PREFECTURE) or None
    pref = _prefecture_of(prefecture) if prefecture else None
    if municipality and not pref:
        pref = _prefecture_of(municipality)
    return Owner(municipality, pref, resource_tags.get(tags.ROLE) == INSPECTION)


def attachment_tags(state: CloudState) -> dict[str, dict[str, str]]:
    """The effective tags of each transit gateway attachment.

    A VPN attachment takes the tags of its VPN connection, overlaid by its own: the VPN is the
    resource an operator tags, the attachment is created by AWS alongside it.
    """
    vpn_tags = {v["VpnConnectionId"]: tag_map(v) for v in state.vpn_connections}
    result: dict[str, dict[str, str]] = {}
    for att in state.tgw_attachments:
        effective = dict(vpn_tags.get(att.get("ResourceId", ""), {}))
        effective.update(tag_map(att))
        result[att["TransitGatewayAttachmentId"]] = effective
    return result


def _vpc_cidrs(vpc: Mapping[str, Any]) -> list[str]:
    cidrs = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
             if a.get("CidrBlockState", {}).get("State", "associated") == "associated"]
    if vpc.get("CidrBlock") and vpc["CidrBlock"] not in cidrs:
        cidrs.insert(0, vpc["CidrBlock"])
    return cidrs


def shared_hub(state: CloudState) -> tuple[set[str], set[str]]:
    """The shared inspection tables and attachments: (table ids, attachment ids).

    Either tagged ``municloud:role=inspection``, or found by association: a table with a
    prefecture tag and no municipality tag that is associated with an attachment of a prefecture
    and of no municipality (the inspection VPC's) is the hub table, and such attachments are
    shared. This is how security_cloud.py builds it: its hub table carries only the lead
    prefecture's tag.
    """
    eff = attachment_tags(state)
    tables: set[str] = set()
    attachments = {a for a, t in eff.items() if t.get(tags.ROLE) == INSPECTION}
    for table in state.tgw_route_tables:
        table_id = table["TransitGatewayRouteTableId"]
        table_tags = tag_map(table)
        if table_tags.get(tags.ROLE) == INSPECTION:
            tables.add(table_id)
        if table_tags.get(tags.MUNICIPALITY) or not table_tags.get(tags.PREFECTURE):
            continue
        for assoc in state.tgw_associations.get(table_id, []):
            att_tags = eff.get(assoc.get("TransitGatewayAttachmentId", ""), {})
            if att_tags.get(tags.PREFECTURE) and not att_tags.get(tags.MUNICIPALITY):
                tables.add(table_id)
                attachments.add(assoc["TransitGatewayAttachmentId"])
    return tables, attachments


def range_owners(state: CloudState, known: Sequence[KnownRange] = ()
                 ) -> list[tuple[ipaddress.IPv4Network, Owner, str]]:
    """Address ranges whose owner is known: (range, owner, where it was learnt).

    From the VPCs behind tenant attachments (not the shared inspection VPC: its range is
    everyone's way out), and from the inventory.
    """
    vpcs = {v["VpcId"]: v for v in state.vpcs}
    eff = attachment_tags(state)
    _, shared = shared_hub(state)
    owners: list[tuple[ipaddress.IPv4Network, Owner, str]] = []
    for att in state.tgw_attachments:
        att_id = att["TransitGatewayAttachmentId"]
        if att.get("ResourceType") != "vpc" or att.get("ResourceId") not in vpcs \
                or att_id in shared:
            continue
        owner = owner_of(eff[att_id])
        if owner.inspection or not (owner.municipality or owner.prefecture):
            continue
        for cidr in _vpc_cidrs(vpcs[att["ResourceId"]]):
            owners.append((ipaddress.IPv4Network(cidr, strict=False), owner,
                           f"VPC {att['ResourceId']}"))
    for r in known:
        owners.append((ipaddress.IPv4Network(r.cidr, strict=False),
                       Owner(r.municipality, _prefecture_of(r.prefecture)),
                       f"inventory {r.inventory}"))
    return owners


# --- checks: pure functions over a CloudState --------------------------------------------------

Check = Callable[[CloudState], list[Finding]]


def _pass(check: str, ids: Sequence[str], message: str) -> Finding:
    return Finding(check, Status.PASS, _ids(list(ids)), message, examined=len(ids))


def _nothing(check: str, what: str, state: CloudState, fix: str) -> Finding:
    return Finding(check, Status.FAIL, "-",
                   f"no {what} tagged {tags.CLOUD}={state.cloud} in {state.region}", fix)


def check_tgw_default_route_table(state: CloudState) -> list[Finding]:
    """Each transit gateway of the cloud has default association and propagation disabled."""
    name = "tgw-default-route-table"
    if not state.transit_gateways:
        return [_nothing(name, "transit gateway", state,
                         "deploy the security cloud (pulumi up), or check --cloud and --region")]
    out: list[Finding] = []
    for tgw in state.transit_gateways:
        options = tgw.get("Options", {})
        wrong = [key for key in ("DefaultRouteTableAssociation", "DefaultRouteTablePropagation")
                 if options.get(key) != "disable"]
        if wrong:
            out.append(Finding(
                name, Status.FAIL, tgw["TransitGatewayId"],
                f"{' and '.join(wrong)} enabled: every new attachment joins the default route "
                "table and reaches every other tenant",
                "set default_route_table_association and default_route_table_propagation to "
                "'disable' on the transit gateway and associate each attachment with its own table",
                examined=1))
    if out:
        return out
    ids = [t["TransitGatewayId"] for t in state.transit_gateways]
    return [_pass(name, ids, "default route table association and propagation disabled")]


def check_tgw_isolation(state: CloudState, known: Sequence[KnownRange] = ()) -> list[Finding]:
    """No tenant's route table leads to another tenant (see the module doc string)."""
    name = "tgw-isolation"
    eff = attachment_tags(state)
    hub_tables, shared = shared_hub(state)
    owners = {att_id: Owner(None, None, True) if att_id in shared else owner_of(t)
              for att_id, t in eff.items()}
    ranges = range_owners(state, known)
    out: list[Finding] = []
    examined: list[str] = []
    ignored = 0
    for table in state.tgw_route_tables:
        table_id = table["TransitGatewayRouteTableId"]
        table_owner = owner_of(tag_map(table))
        routes = [r for r in state.tgw_routes.get(table_id, []) if r.get("State") == "active"]
        propagations = [p for p in state.tgw_propagations.get(table_id, [])
                        if p.get("State") == "enabled"]
        if table_owner.inspection or table_id in hub_tables:
            examined.append(table_id)
            continue
        if not (table_owner.municipality or table_owner.prefecture):
            if routes or propagations:
                out.append(Finding(
                    name, Status.FAIL, table_id,
                    f"the table carries {len(routes)} route(s) and {len(propagations)} "
                    "propagation(s) but no tag says whom it serves",
                    f"tag it {tags.MUNICIPALITY}=CODE or {tags.PREFECTURE}=CODE, or "
                    f"{tags.ROLE}={INSPECTION} if it is the shared inspection table", examined=1))
                examined.append(table_id)
            else:
                ignored += 1
            continue
        examined.append(table_id)
        if table_id in state.tgw_routes_truncated:
            out.append(Finding(name, Status.UNCHECKED, table_id,
                               "more than 1000 routes; only the first 1000 were read",
                               "check the rest by hand (aws ec2 search-transit-gateway-routes)"))

        def foreign(owner: Owner, _table_owner: Owner = table_owner) -> bool:
            if owner.inspection:
                return False
            if _table_owner.municipality:
                if owner.municipality:
                    return owner.municipality != _table_owner.municipality
                return owner.prefecture is not None and owner.prefecture != _table_owner.prefecture
            return owner.prefecture is not None and owner.prefecture != _table_owner.prefecture

        whose = table_owner.describe()
        fix = (f"remove the route or propagation: {whose}'s table may lead only to its own "
               f"attachments and to the inspection attachment ({tags.ROLE}={INSPECTION})")
        for route in routes:
            dest = route.get("DestinationCidrBlock")
            for target in route.get("TransitGatewayAttachments", []):
                att_id = target.get("TransitGatewayAttachmentId", "")
                owner = owners.get(att_id, Owner(None, None))
                if foreign(owner):
                    out.append(Finding(
                        name, Status.FAIL, table_id,
                        f"{whose}'s table routes {dest} to {att_id} of {owner.describe()}",
                        fix, examined=1))
                elif not (owner.inspection or owner.municipality or owner.prefecture):
                    # nobody's attachment (untagged, or not of this cloud): it could lead
                    # anywhere, so a tenant's table may not lead to it
                    out.append(Finding(
                        name, Status.FAIL, table_id,
                        f"{whose}'s table routes {dest} to {att_id}, which no tag of this cloud "
                        "says whom it serves", fix + "; or tag the attachment", examined=1))
            if not dest:
                continue
            net = ipaddress.ip_network(dest, strict=False)
            inside = [(cidr, owner, source) for cidr, owner, source in ranges
                      if isinstance(net, ipaddress.IPv4Network) and net.subnet_of(cidr)]
            # Tenants may share a range (the joint cloud's tenant VPCs all use the same one):
            # a destination that is also the table's own is judged by its target alone.
            if any(not foreign(owner) for _, owner, _ in inside):
                continue
            for cidr, owner, source in inside[:1]:
                out.append(Finding(
                    name, Status.FAIL, table_id,
                    f"{whose}'s table routes {dest}, inside {cidr} of {owner.describe()} "
                    f"({source})", fix, examined=1))
        for prop in propagations:
            att_id = prop.get("TransitGatewayAttachmentId", "")
            if att_id in owners and foreign(owners[att_id]):
                out.append(Finding(
                    name, Status.FAIL, table_id,
                    f"{whose}'s table learns routes by propagation from {att_id} of "
                    f"{owners[att_id].describe()}", fix, examined=1))
    if not examined:
        return [Finding(name, Status.FAIL, _ids([t["TransitGatewayId"]
                                                 for t in state.transit_gateways]),
                        f"no transit gateway route table to examine ({ignored} empty untagged "
                        "ignored)",
                        "give each municipality its own route table tagged with its code and "
                        "the inspection VPC a table tagged with the inspection role")]
    if out:
        return out
    note = f", {ignored} empty untagged ignored" if ignored else ""
    return [_pass(name, examined, f"{len(examined)} route table(s) examined{note}, none leads "
                  "to another tenant")]


def check_flow_logs(state: CloudState) -> list[Finding]:
    name = "vpc-flow-logs"
    if not state.vpcs:
        return [_nothing(name, "VPC", state, "deploy the cloud, or check --cloud and --region")]
    active = {f["ResourceId"] for f in state.flow_logs if f.get("FlowLogStatus") == "ACTIVE"}
    out = [Finding(name, Status.FAIL, v["VpcId"], "no active flow log on the VPC",
                   "create a flow log (traffic type ALL) to the log archive", examined=1)
           for v in state.vpcs if v["VpcId"] not in active]
    return out or [_pass(name, [v["VpcId"] for v in state.vpcs],
                         f"{len(state.vpcs)} VPC(s) examined, each with an active flow log")]


def _buckets_or_fail(name: str, state: CloudState) -> list[Finding]:
    return [] if state.buckets else [_nothing(
        name, "log archive bucket", state,
        f"create the log archive bucket and tag it {tags.CLOUD}={state.cloud}")]


def check_bucket_object_lock(state: CloudState) -> list[Finding]:
    name = "log-archive-object-lock"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        lock = b.object_lock or {}
        retention = lock.get("Rule", {}).get("DefaultRetention", {})
        if lock.get("ObjectLockEnabled") != "Enabled":
            out.append(Finding(name, Status.FAIL, b.name, "object lock is not enabled",
                               "object lock can only be turned on for a new bucket: create the "
                               "archive with object lock and move the logs", examined=1))
        elif not (retention.get("Days") or retention.get("Years")):
            out.append(Finding(name, Status.FAIL, b.name,
                               "object lock is enabled but has no default retention",
                               "set a default retention (e.g. COMPLIANCE, the retention period "
                               "of the log policy)", examined=1))
        elif retention.get("Mode") != "COMPLIANCE":
            out.append(Finding(name, Status.FAIL, b.name,
                               f"default retention is {retention.get('Mode')}, not COMPLIANCE: "
                               "anyone allowed s3:BypassGovernanceRetention can delete the logs",
                               "set the default retention mode to COMPLIANCE (new objects; "
                               "objects already locked keep their mode)", examined=1))
    return out or [_pass(name, [b.name for b in state.buckets],
                         "object lock enabled with a COMPLIANCE default retention")]


def check_bucket_encryption(state: CloudState) -> list[Finding]:
    name = "log-archive-encryption"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        algorithms = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                      for r in (b.encryption or {}).get("Rules", [])]
        if not any(a in KMS_ALGORITHMS for a in algorithms):
            found = ", ".join(str(a) for a in algorithms) or "none"
            out.append(Finding(name, Status.FAIL, b.name,
                               f"default encryption is {found}, not aws:kms",
                               "set default encryption to aws:kms with the cloud's KMS key",
                               examined=1))
    return out or [_pass(name, [b.name for b in state.buckets], "default encryption aws:kms")]


def check_bucket_public_access(state: CloudState) -> list[Finding]:
    name = "log-archive-public-access"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        block = b.public_access_block or {}
        off = [k for k in PUBLIC_ACCESS_BLOCK_KEYS if block.get(k) is not True]
        if off:
            out.append(Finding(name, Status.FAIL, b.name,
                               f"public access block not set: {', '.join(off)}",
                               "turn on all four public access block settings", examined=1))
    return out or [_pass(name, [b.name for b in state.buckets], "all public access blocked")]


def check_cloudtrail(state: CloudState) -> list[Finding]:
    name = "cloudtrail"
    if not state.trails:
        others = f" (the account has untagged trail(s): {', '.join(state.untagged_trails)})" \
            if state.untagged_trails else ""
        finding = _nothing(name, "CloudTrail trail", state,
                           f"create a multi-region trail to the log archive and tag it "
                           f"{tags.CLOUD}={state.cloud}")
        return [Finding(name, finding.status, "-", finding.message + others, finding.fix)]
    out: list[Finding] = []
    for trail in state.trails:
        problems = []
        if not trail.get("IsMultiRegionTrail"):
            problems.append("not multi-region")
        if not trail.get("IsLogging"):
            problems.append("not logging")
        if not trail.get("LogFileValidationEnabled"):
            problems.append("no log file validation")
        if not trail.get("KmsKeyId"):
            problems.append("not encrypted with a KMS key")
        if problems:
            out.append(Finding(name, Status.FAIL, trail["Name"], ", ".join(problems),
                               "make the trail multi-region, with log file validation and the "
                               "log archive's KMS key, and start logging "
                               "(aws cloudtrail update-trail / start-logging)", examined=1))
    return out or [_pass(name, [t["Name"] for t in state.trails],
                         "multi-region, logging, validated and KMS-encrypted")]


def check_guardduty(state: CloudState) -> list[Finding]:
    """GuardDuty has one detector per account and region: prefer one tagged with the cloud."""
    name = "guardduty"
    tagged = [d for d in state.detectors if has_cloud_tag(d, state.cloud)]
    detectors = tagged or state.detectors
    if not detectors:
        return [Finding(name, Status.FAIL, "-", f"no GuardDuty detector in {state.region}",
                        "enable GuardDuty in the region")]
    enabled = [d["DetectorId"] for d in detectors if d.get("Status") == "ENABLED"]
    if not enabled:
        return [Finding(name, Status.FAIL, d["DetectorId"], f"detector is {d.get('Status')}",
                        "enable the detector", examined=1) for d in detectors]
    note = "" if tagged else " (account-wide detector, not tagged with the cloud)"
    return [_pass(name, enabled, f"detector enabled{note}")]


def check_no_world_ingress(state: CloudState) -> list[Finding]:
    name = "sg-no-world-ingress"
    if not state.vpcs:
        return [_nothing(name, "VPC", state, "deploy the cloud, or check --cloud and --region")]
    out: list[Finding] = []
    for sg in state.security_groups:
        for perm in sg.get("IpPermissions", []):
            world = [r.get("CidrIp") for r in perm.get("IpRanges", [])] + \
                [r.get("CidrIpv6") for r in perm.get("Ipv6Ranges", [])]
            for cidr in (c for c in world if c in WORLD):
                ports = _ports(perm)
                out.append(Finding(name, Status.FAIL, sg["GroupId"],
                                   f"ingress from {cidr} on {ports} ({sg.get('GroupName', '')})",
                                   "allow only the municipalities' and the cloud's own ranges",
                                   examined=1))
    return out or [_pass(name, [s["GroupId"] for s in state.security_groups],
                         f"{len(state.security_groups)} security group(s), none open to the "
                         "world")]


def _ports(perm: Mapping[str, Any]) -> str:
    proto = perm.get("IpProtocol")
    if proto in ("-1", -1, None):
        return "all traffic"
    low, high = perm.get("FromPort"), perm.get("ToPort")
    return f"{proto}/{low}" if low == high else f"{proto}/{low}-{high}"


def check_no_internet_gateway(state: CloudState) -> list[Finding]:
    name = "no-internet-gateway"
    if not state.vpcs:
        return [_nothing(name, "VPC", state, "deploy the cloud, or check --cloud and --region")]
    vpc_ids = {v["VpcId"] for v in state.vpcs}
    out: list[Finding] = []
    for igw in state.internet_gateways:
        for att in igw.get("Attachments", []):
            if att.get("VpcId") in vpc_ids:
                out.append(Finding(
                    name, Status.FAIL, igw["InternetGatewayId"],
                    f"internet gateway attached to {att['VpcId']}: the joint cloud holds "
                    "individual-number data (個人番号利用事務系) and must never reach the internet",
                    "detach and delete the internet gateway; reach the cloud over closed lines",
                    examined=1))
    return out or [_pass(name, sorted(vpc_ids),
                         f"{len(vpc_ids)} VPC(s) examined, no internet gateway attached")]


def check_no_public_ip(state: CloudState) -> list[Finding]:
    name = "no-public-ip"
    if not state.vpcs:
        return [_nothing(name, "VPC", state, "deploy the cloud, or check --cloud and --region")]
    out: list[Finding] = []
    fix = "remove the public address (release the Elastic IP, relaunch without one)"
    for inst in state.instances:
        if inst.get("PublicIpAddress"):
            out.append(Finding(name, Status.FAIL, inst["InstanceId"],
                               f"instance has public IP {inst['PublicIpAddress']}", fix,
                               examined=1))
    for eni in state.network_interfaces:
        public = eni.get("Association", {}).get("PublicIp")
        if public:
            out.append(Finding(name, Status.FAIL, eni["NetworkInterfaceId"],
                               f"network interface has public IP {public}", fix, examined=1))
    for db in state.db_instances:
        if db.get("PubliclyAccessible"):
            out.append(Finding(name, Status.FAIL, db["DBInstanceIdentifier"],
                               "database is publicly accessible",
                               "set publicly_accessible to false", examined=1))
    ids = [i["InstanceId"] for i in state.instances] + \
        [e["NetworkInterfaceId"] for e in state.network_interfaces] + \
        [d["DBInstanceIdentifier"] for d in state.db_instances]
    return out or [_pass(name, ids, f"{len(state.instances)} instance(s), "
                         f"{len(state.network_interfaces)} network interface(s), "
                         f"{len(state.db_instances)} database(s), none with a public IP")]


def check_subnets_no_public_ip_on_launch(state: CloudState) -> list[Finding]:
    name = "subnet-no-public-ip"
    if not state.subnets:
        return [_nothing(name, "subnet (in the cloud's VPCs)", state,
                         "deploy the cloud, or check --cloud and --region")]
    out = [Finding(name, Status.FAIL, s["SubnetId"], "maps a public IP on launch",
                   "set map_public_ip_on_launch to false", examined=1)
           for s in state.subnets if s.get("MapPublicIpOnLaunch")]
    return out or [_pass(name, [s["SubnetId"] for s in state.subnets],
                         "no subnet maps a public IP on launch")]


def check_rds_encrypted(state: CloudState) -> list[Finding]:
    name = "rds-encrypted"
    if not state.db_instances:
        return [Finding(name, Status.FAIL, "-",
                        f"no RDS instance tagged {tags.CLOUD}={state.cloud} or in its VPCs in "
                        f"{state.region}: the core systems' data was not found",
                        "check --cloud and --region, and tag the databases")]
    out = [Finding(name, Status.FAIL, db["DBInstanceIdentifier"], "storage is not encrypted",
                   "storage encryption can only be set at creation: restore an encrypted copy "
                   "of a snapshot and switch over", examined=1)
           for db in state.db_instances if not db.get("StorageEncrypted")]
    return out or [_pass(name, [d["DBInstanceIdentifier"] for d in state.db_instances],
                         "storage encrypted")]


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _plan_name(plan: Mapping[str, Any]) -> str:
    return str(plan.get("BackupPlanName") or plan.get("BackupPlanArn") or "?")


def check_backup_cross_region(state: CloudState) -> list[Finding]:
    """Backups survive the loss of one site: a plan copies to a vault in another region."""
    name = "backup-cross-region"
    if not state.backup_plans:
        return [_nothing(name, "AWS Backup plan", state,
                         "create a backup plan with a copy action to a vault in another region")]
    # Every rule of every plan copies out: one plan that does says nothing of the others.
    copies: list[str] = []
    out: list[Finding] = []
    for plan in state.backup_plans:
        for rule in plan.get("Rules", []) or [{}]:
            arns = [a.get("DestinationBackupVaultArn", "") for a in rule.get("CopyActions", [])]
            away = [a for a in arns if _arn_region(a) not in ("", state.region)]
            copies += away
            if not away:
                detail = f"copy actions stay in {state.region}" if arns else "no copy action"
                where = _plan_name(plan) + (f" rule {rule['RuleName']}"
                                            if rule.get("RuleName") else "")
                out.append(Finding(name, Status.FAIL, where, f"{detail}: a regional disaster "
                                   "loses its backups", "add a copy action to a vault in another "
                                   "region (e.g. ap-northeast-3)", examined=1))
    ids = [_plan_name(p) for p in state.backup_plans]
    return out or [_pass(name, ids, f"copies to {', '.join(sorted(set(copies)))}")]


def tagged_resources(state: CloudState) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(kind, id, tags) of every resource verify found that must say whom it serves.

    Excluded: what AWS creates by itself (the default security group, network interfaces of
    managed services, a transit gateway's untagged default route table), and untagged tables
    that carry nothing.
    """
    eff = attachment_tags(state)
    for t in state.transit_gateways:
        yield "transit gateway", t["TransitGatewayId"], tag_map(t)
    for t in state.tgw_route_tables:
        if has_cloud_tag(t, state.cloud):
            yield "TGW route table", t["TransitGatewayRouteTableId"], tag_map(t)
    for a in state.tgw_attachments:
        att_id = a["TransitGatewayAttachmentId"]
        yield "TGW attachment", att_id, eff[att_id]
    for v in state.vpn_connections:
        yield "VPN connection", v["VpnConnectionId"], tag_map(v)
    for v in state.vpcs:
        yield "VPC", v["VpcId"], tag_map(v)
    for s in state.subnets:
        yield "subnet", s["SubnetId"], tag_map(s)
    for g in state.security_groups:
        if g.get("GroupName") != "default":
            yield "security group", g["GroupId"], tag_map(g)
    for i in state.instances:
        yield "instance", i["InstanceId"], tag_map(i)
    for b in state.buckets:
        yield "S3 bucket", b.name, dict(b.tags)
    for t in state.trails:
        yield "trail", t["Name"], tag_map(t)
    for d in state.detectors:
        if has_cloud_tag(d, state.cloud):
            yield "GuardDuty detector", d["DetectorId"], tag_map(d)
    for d in state.db_instances:
        yield "RDS instance", d["DBInstanceIdentifier"], tag_map(d)
    for p in state.backup_plans:
        yield "backup plan", _plan_name(p), tag_map(p)


def check_serves_tags(state: CloudState) -> list[Finding]:
    """Every resource says whom it serves, with a valid 全国地方公共団体コード."""
    from municloud.inventory import code_problem

    name = "serves-tags"
    found = list(tagged_resources(state))
    if not found:
        return [_nothing(name, "resource", state,
                         "check --cloud (the value of the municloud:cloud tag) and --region")]
    out: list[Finding] = []
    for kind, rid, rtags in found:
        serves = {k: rtags[k] for k in tags.SERVES if rtags.get(k)}
        if not serves:
            out.append(Finding(name, Status.FAIL, rid,
                               f"{kind} carries neither {tags.PREFECTURE} nor {tags.MUNICIPALITY}",
                               "tag it with the code of the prefecture or municipality it serves "
                               "(tags.base in municloud/cloud/tags.py)", examined=1))
            continue
        for key, value in serves.items():
            problem = code_problem(value)
            if problem:
                out.append(Finding(name, Status.FAIL, rid, f"{kind} tag {key}: {problem}",
                                   "write the 6-digit 全国地方公共団体コード", examined=1))
    return out or [_pass(name, [rid for _, rid, _ in found],
                         f"{len(found)} resource(s), each tagged with whom it serves")]


def check_expected_served(state: CloudState, expected: Sequence[Expected]) -> list[Finding]:
    """Each municipality the inventory says the cloud serves has its attachment or VPN."""
    name = "municipalities-attached"
    connected: dict[str, list[str]] = {}
    eff = attachment_tags(state)
    for att in state.tgw_attachments:
        if att.get("State") in ("deleted", "deleting", "failed", "rejected"):
            continue
        code = eff[att["TransitGatewayAttachmentId"]].get(tags.MUNICIPALITY)
        if code:
            connected.setdefault(code, []).append(att["TransitGatewayAttachmentId"])
    for vpn in state.vpn_connections:
        code = tag_map(vpn).get(tags.MUNICIPALITY)
        if code and vpn.get("State") not in ("deleted", "deleting"):
            connected.setdefault(code, []).append(vpn["VpnConnectionId"])
    out: list[Finding] = []
    ids: list[str] = []
    for exp in expected:
        if exp.code in connected:
            ids.extend(connected[exp.code])
            continue
        out.append(Finding(name, Status.FAIL, exp.code,
                           f"{exp.name_ja} ({exp.code}, inventory {exp.inventory}) has no transit "
                           f"gateway attachment or VPN tagged {tags.MUNICIPALITY}={exp.code}",
                           "attach the municipality (pulumi up) or tag its attachment", examined=1))
    if out:
        return out
    return [Finding(name, Status.PASS, _ids(ids), f"all {len(expected)} municipalities of the "
                    "inventory have their attachment or VPN", examined=len(expected))]


# (name, check, services it needs), in report order
Registered = tuple[str, Check, tuple[str, ...]]

SECURITY_CLOUD_CHECKS: tuple[Registered, ...] = (
    ("tgw-default-route-table", check_tgw_default_route_table, ("ec2",)),
    ("tgw-isolation", check_tgw_isolation, ("ec2",)),
    ("vpc-flow-logs", check_flow_logs, ("ec2",)),
    ("log-archive-object-lock", check_bucket_object_lock, ("s3",)),
    ("log-archive-encryption", check_bucket_encryption, ("s3",)),
    ("log-archive-public-access", check_bucket_public_access, ("s3",)),
    ("cloudtrail", check_cloudtrail, ("cloudtrail",)),
    ("guardduty", check_guardduty, ("guardduty",)),
    ("sg-no-world-ingress", check_no_world_ingress, ("ec2",)),
)

JOINT_CLOUD_CHECKS: tuple[Registered, ...] = (
    # Tenants (one per member) are isolated by transit gateway route tables, as in the security
    # cloud; their VPCs log their flows like every VPC of the project.
    ("tgw-default-route-table", check_tgw_default_route_table, ("ec2",)),
    ("tgw-isolation", check_tgw_isolation, ("ec2",)),
    ("vpc-flow-logs", check_flow_logs, ("ec2",)),
    ("no-internet-gateway", check_no_internet_gateway, ("ec2",)),
    ("no-public-ip", check_no_public_ip, ("ec2", "rds")),
    ("sg-no-world-ingress", check_no_world_ingress, ("ec2",)),
    ("subnet-no-public-ip", check_subnets_no_public_ip_on_launch, ("ec2",)),
    ("rds-encrypted", check_rds_encrypted, ("rds",)),
    ("backup-cross-region", check_backup_cross_region, ("backup",)),
)

SERVICES = ("ec2", "s3", "cloudtrail", "guardduty", "rds", "backup")


def registered_checks(kind: str, inventories: Inventories | None = None
                      ) -> list[Registered]:
    """The checks of ``kind``; ``inventories`` (from ``--inventory``) adds the attachment check
    and the inventory's ranges to the isolation check, None leaves both out."""
    checks = list(SECURITY_CLOUD_CHECKS if kind == SECURITY_CLOUD else JOINT_CLOUD_CHECKS)
    if inventories is not None:
        inv = inventories
        checks = [(name, (lambda s: check_tgw_isolation(s, inv.ranges))
                   if fn is check_tgw_isolation else fn, needs) for name, fn, needs in checks]
        checks.append(("municipalities-attached",
                       lambda s: check_expected_served(s, inv.expected), ("ec2",)))
    # Resources come from every service read, so the tag check needs them all.
    needs_all = tuple(sorted({svc for _, _, needs in checks for svc in needs}))
    checks.append(("serves-tags", check_serves_tags, needs_all))
    return checks


def run_checks(state: CloudState, inventories: Inventories | None = None) -> list[Finding]:
    """Every check of the state's kind, in order; UNCHECKED where a needed service is unreadable."""
    findings: list[Finding] = []
    for name, fn, needs in registered_checks(state.kind, inventories):
        missing = [f"{svc}: {state.unavailable[svc]}" for svc in needs if svc in state.unavailable]
        if missing:
            findings.append(Finding(name, Status.UNCHECKED, "-",
                                    f"not checkable here ({'; '.join(missing)})",
                                    "run against an endpoint that supports the API, with read "
                                    "permission for it"))
            continue
        findings.extend(fn(state))
    return findings


# --- output ------------------------------------------------------------------------------------


def verdicts(findings: Iterable[Finding]) -> dict[str, Status]:
    """Each check's verdict: FAIL if any finding fails, else UNCHECKED if any, else PASS."""
    result: dict[str, Status] = {}
    rank = {Status.PASS: 0, Status.UNCHECKED: 1, Status.FAIL: 2}
    for f in findings:
        if f.check not in result or rank[f.status] > rank[result[f.check]]:
            result[f.check] = f.status
    return result


def summary(state: CloudState, findings: Sequence[Finding]) -> str:
    counts = {s: 0 for s in Status}
    for status in verdicts(findings).values():
        counts[status] += 1
    total = sum(counts.values())
    return (f"{state.kind} {state.cloud} in {state.region}: {total} checks, "
            f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
            f"{counts[Status.UNCHECKED]} not checkable here")


def exit_code(findings: Sequence[Finding]) -> int:
    """0 only when every check passed; a check that could not run is not a pass."""
    return 0 if all(s is Status.PASS for s in verdicts(findings).values()) else 1


# --- collection with boto3 ---------------------------------------------------------------------


class VerifyError(Exception):
    """Verify could not run at all (no credentials, endpoint unreachable, bad inventory)."""


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Resource]:
    if client.can_paginate(operation):
        items: list[Resource] = []
        for page in client.get_paginator(operation).paginate(**kwargs):
            items.extend(page.get(key, []))
        return items
    return list(getattr(client, operation)(**kwargs).get(key, []))


def _cloud_filter(cloud: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{tags.CLOUD}", "Values": [cloud]}]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


# Error codes that mean the caller's credentials are not accepted at all: verify cannot run.
_AUTH_ERRORS = {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException",
                "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
                "InvalidAccessKeyId", "InvalidToken"}


def collect(cloud: str, kind: str, region: str, endpoint_url: str | None = None,
            session: Any = None) -> CloudState:
    """Read the cloud's state with boto3. Raises botocore errors for connection problems."""
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]
    from botocore.parsers import ResponseParserError  # type: ignore[import-untyped,unused-ignore]

    session = session or boto3.session.Session(region_name=region)
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                    read_timeout=30)

    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, client_region: str = region) -> Any:
        # One client per service and region: creating one costs more than most calls.
        key = (service, client_region)
        if key not in clients:
            clients[key] = session.client(service, region_name=client_region,
                                          endpoint_url=endpoint_url, config=config)
        return clients[key]

    state = CloudState(cloud=cloud, kind=kind, region=region)
    parts: list[tuple[str, Callable[[CloudState, Callable[..., Any]], None]]] = [
        ("ec2", _collect_ec2), ("s3", _collect_s3), ("cloudtrail", _collect_cloudtrail),
        ("guardduty", _collect_guardduty), ("rds", _collect_rds), ("backup", _collect_backup),
    ]
    needed = {svc for _, _, svcs in registered_checks(kind, Inventories((), ())) for svc in svcs}
    for service, part in parts:
        if service not in needed:
            continue
        try:
            part(state, client)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _AUTH_ERRORS:
                raise
            operation = getattr(exc, "operation_name", "?")
            state.unavailable[service] = f"{operation} failed with {code or 'an error'}"
        except ResponseParserError:
            # Not an AWS answer: an S3-only endpoint asked about EC2, or an API it lacks.
            state.unavailable[service] = "the endpoint's answer is not an AWS response"
    return state


def _collect_ec2(state: CloudState, client: Callable[..., Any]) -> None:
    ec2 = client("ec2")
    cloud = state.cloud
    tgws = [t for t in _pages(ec2, "describe_transit_gateways", "TransitGateways",
                              Filters=_cloud_filter(cloud))
            if has_cloud_tag(t, cloud) and t.get("State") not in ("deleted", "deleting")]
    state.transit_gateways = tgws
    tgw_ids = [t["TransitGatewayId"] for t in tgws]
    if tgw_ids:
        flt = [{"Name": "transit-gateway-id", "Values": tgw_ids}]
        state.tgw_route_tables = [
            t for t in _pages(ec2, "describe_transit_gateway_route_tables",
                              "TransitGatewayRouteTables", Filters=flt)
            if t.get("TransitGatewayId") in tgw_ids and t.get("State") != "deleted"]
        state.tgw_attachments = [
            a for a in _pages(ec2, "describe_transit_gateway_attachments",
                              "TransitGatewayAttachments", Filters=flt)
            if a.get("TransitGatewayId") in tgw_ids and a.get("State") != "deleted"]
        for table in state.tgw_route_tables:
            table_id = table["TransitGatewayRouteTableId"]
            # No MaxResults: AWS returns up to 1000 by default, and moto fails on it.
            response = ec2.search_transit_gateway_routes(
                TransitGatewayRouteTableId=table_id,
                Filters=[{"Name": "state", "Values": ["active", "blackhole"]}])
            state.tgw_routes[table_id] = list(response.get("Routes", []))
            if response.get("AdditionalRoutesAvailable"):
                state.tgw_routes_truncated.add(table_id)
            state.tgw_associations[table_id] = _pages(
                ec2, "get_transit_gateway_route_table_associations", "Associations",
                TransitGatewayRouteTableId=table_id)
            state.tgw_propagations[table_id] = _pages(
                ec2, "get_transit_gateway_route_table_propagations",
                "TransitGatewayRouteTablePropagations", TransitGatewayRouteTableId=table_id)
    vpns = _pages(ec2, "describe_vpn_connections", "VpnConnections")
    # CustomerGatewayConfiguration holds the tunnels' pre-shared keys: drop it at once.
    state.vpn_connections = [
        {k: v for k, v in vpn.items() if k != "CustomerGatewayConfiguration"} for vpn in vpns
        if vpn.get("State") != "deleted"
        and (has_cloud_tag(vpn, cloud) or vpn.get("TransitGatewayId") in tgw_ids)]
    state.vpcs = [v for v in _pages(ec2, "describe_vpcs", "Vpcs", Filters=_cloud_filter(cloud))
                  if has_cloud_tag(v, cloud)]
    vpc_ids = [v["VpcId"] for v in state.vpcs]
    if not vpc_ids:
        return
    in_vpcs = [{"Name": "vpc-id", "Values": vpc_ids}]
    state.subnets = _pages(ec2, "describe_subnets", "Subnets", Filters=in_vpcs)
    state.security_groups = _pages(ec2, "describe_security_groups", "SecurityGroups",
                                   Filters=in_vpcs)
    state.instances = [
        i for r in _pages(ec2, "describe_instances", "Reservations", Filters=in_vpcs)
        for i in r.get("Instances", [])
        if i.get("State", {}).get("Name") not in ("terminated", "shutting-down")]
    state.network_interfaces = _pages(ec2, "describe_network_interfaces", "NetworkInterfaces",
                                      Filters=in_vpcs)
    state.internet_gateways = _pages(ec2, "describe_internet_gateways", "InternetGateways",
                                     Filters=[{"Name": "attachment.vpc-id", "Values": vpc_ids}])
    state.flow_logs = [f for f in _pages(ec2, "describe_flow_logs", "FlowLogs",
                                         Filters=[{"Name": "resource-id", "Values": vpc_ids}])
                       if f.get("ResourceId") in vpc_ids]


def _collect_s3(state: CloudState, client: Callable[..., Any]) -> None:
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

    s3 = client("s3")

    def optional(call: Callable[..., Any], key: str, name: str) -> Mapping[str, Any] | None:
        try:
            value = call(Bucket=name).get(key)
            return value if isinstance(value, Mapping) else None
        except ClientError as exc:
            if _error_code(exc) in ("AccessDenied", "AllAccessDisabled"):
                raise
            return None  # the *NotFound* codes: the bucket has no such configuration

    for entry in s3.list_buckets().get("Buckets", []):
        name = entry["Name"]
        try:
            tag_set = s3.get_bucket_tagging(Bucket=name).get("TagSet", [])
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchTagSet", "NoSuchBucket"):
                continue
            raise
        bucket_tags = tag_map({"TagSet": tag_set})
        if bucket_tags.get(tags.CLOUD) != state.cloud:
            continue
        state.buckets.append(Bucket(
            name=name,
            tags=bucket_tags,
            object_lock=optional(s3.get_object_lock_configuration, "ObjectLockConfiguration",
                                 name),
            encryption=optional(s3.get_bucket_encryption, "ServerSideEncryptionConfiguration",
                                name),
            public_access_block=optional(s3.get_public_access_block,
                                         "PublicAccessBlockConfiguration", name),
        ))


def _collect_cloudtrail(state: CloudState, client: Callable[..., Any]) -> None:
    trails = client("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", [])
    for trail in trails:
        home = client("cloudtrail", trail.get("HomeRegion") or state.region)
        listed = home.list_tags(ResourceIdList=[trail["TrailARN"]]).get("ResourceTagList", [])
        trail_tags = listed[0].get("TagsList", []) if listed else []
        if tag_map({"TagsList": trail_tags}).get(tags.CLOUD) != state.cloud:
            state.untagged_trails.append(trail["Name"])
            continue
        status = home.get_trail_status(Name=trail["TrailARN"])
        state.trails.append({**trail, "Tags": trail_tags, "IsLogging": status.get("IsLogging")})


def _collect_guardduty(state: CloudState, client: Callable[..., Any]) -> None:
    gd = client("guardduty")
    for detector_id in _pages(gd, "list_detectors", "DetectorIds"):
        detector = gd.get_detector(DetectorId=detector_id)
        state.detectors.append({"DetectorId": detector_id, "Status": detector.get("Status"),
                                "Tags": detector.get("Tags", {})})


def _collect_rds(state: CloudState, client: Callable[..., Any]) -> None:
    vpc_ids = {v["VpcId"] for v in state.vpcs}
    state.db_instances = [
        db for db in _pages(client("rds"), "describe_db_instances", "DBInstances")
        if has_cloud_tag(db, state.cloud) or db.get("DBSubnetGroup", {}).get("VpcId") in vpc_ids]


def _collect_backup(state: CloudState, client: Callable[..., Any]) -> None:
    backup = client("backup")
    for entry in _pages(backup, "list_backup_plans", "BackupPlansList"):
        plan_tags = backup.list_tags(ResourceArn=entry["BackupPlanArn"]).get("Tags", {})
        if plan_tags.get(tags.CLOUD) != state.cloud:
            continue
        plan = backup.get_backup_plan(BackupPlanId=entry["BackupPlanId"]).get("BackupPlan", {})
        state.backup_plans.append({**plan, "BackupPlanArn": entry["BackupPlanArn"],
                                   "Tags": plan_tags})


# --- inventory ---------------------------------------------------------------------------------


def load_inventories(paths: Sequence[str], cloud: str, kind: str) -> Inventories:
    """What the inventories say about ``cloud``; VerifyError if they do not describe it."""
    from municloud.inventory import InventoryError, load

    expected: list[Expected] = []
    ranges: list[KnownRange] = []
    for path in paths:
        try:
            pref = load(path)
        except InventoryError as exc:
            raise VerifyError(f"inventory {path} is not valid:\n{exc}") from None
        if kind == SECURITY_CLOUD:
            if pref.security_cloud != cloud:
                raise VerifyError(
                    f"inventory {path} ({pref.name_ja}) belongs to security cloud "
                    f"{pref.security_cloud!r}, not {cloud!r}: pass --cloud {pref.security_cloud} "
                    "or the inventory of a prefecture this cloud serves")
            members = list(pref.municipalities)
        else:
            members = [m for m in pref.municipalities if m.joint_cloud == cloud]
            if not members:
                clouds = sorted({m.joint_cloud for m in pref.municipalities if m.joint_cloud})
                raise VerifyError(
                    f"no municipality of inventory {path} ({pref.name_ja}) belongs to joint "
                    f"cloud {cloud!r} (its joint clouds: {', '.join(clouds) or 'none'})")
        expected.extend(Expected(m.code, m.name_ja, pref.name) for m in members)
        ranges.extend(KnownRange(str(n.cidr), None, pref.code, pref.name)
                      for n in pref.shared_networks.values())
        ranges.extend(KnownRange(str(n.cidr), m.code, pref.code, pref.name)
                      for m in pref.municipalities for n in m.segments.values())
    return Inventories(tuple(expected), tuple(ranges))


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Check a deployed security cloud (自治体情報セキュリティクラウド) or joint cloud "
        "(自治体クラウド) against the project's invariants. Credentials come from the usual "
        "boto3 chain (environment, profile, instance role). Exit 0: every check passed; "
        "1: a check failed or could not be checked; 2: verify could not run.")
    parser.add_argument("--kind", required=True, choices=KINDS, help="which kind of cloud")
    parser.add_argument("--cloud", required=True, metavar="NAME",
                        help=f"the value of the {tags.CLOUD} tag that selects the resources")
    parser.add_argument("--region", help="AWS region (default: the boto3 configuration's)")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="an AWS-compatible endpoint, e.g. a local moto server")
    parser.add_argument("--inventory", action="append", default=[], metavar="DIR",
                        help="an inventory whose municipalities this cloud serves; checks each "
                             "has its attachment or VPN (repeat for a multi-prefecture cloud)")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead")


def main(args: argparse.Namespace) -> int:
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
        BotoCoreError,
        ClientError,
        ConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    def fail(message: str) -> int:
        print(f"municloud cloud verify: {message}", file=sys.stderr)
        return 2

    try:
        inventories = (load_inventories(args.inventory, args.cloud, args.kind)
                       if args.inventory else None)
        session = boto3.session.Session(region_name=args.region)
        region = args.region or session.region_name
        if not region:
            return fail("no region: pass --region or set AWS_REGION / a profile region")
        state = collect(args.cloud, args.kind, region, args.endpoint_url, session)
    except VerifyError as exc:
        return fail(str(exc))
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
        return fail(f"no usable AWS credentials ({exc}); set AWS_PROFILE or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on a host with a role")
    except NoRegionError:
        return fail("no region: pass --region or set AWS_REGION / a profile region")
    except ConnectionError as exc:
        where = args.endpoint_url or f"AWS in {args.region or 'the configured region'}"
        return fail(f"cannot reach {where} ({exc}); check --endpoint-url, the network and "
                    "any proxy settings")
    except ClientError as exc:
        return fail(f"AWS refused the credentials ({_error_code(exc)} on "
                    f"{getattr(exc, 'operation_name', '?')}); check which account and key "
                    "are in use")
    except BotoCoreError as exc:
        return fail(f"AWS client error: {exc}")

    findings = run_checks(state, inventories)
    if args.json:
        report = {
            "kind": state.kind,
            "cloud": state.cloud,
            "region": state.region,
            "ok": exit_code(findings) == 0,
            "summary": summary(state, findings),
            "checks": {k: v.value for k, v in verdicts(findings).items()},
            "findings": [{**asdict(f), "status": f.status.value} for f in findings],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for finding in findings:
            print(finding.line())
        print(summary(state, findings))
    return exit_code(findings)
