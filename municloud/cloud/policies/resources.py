"""Resource rules: one resource at a time, ``check_xxx(resource_type, props) -> list[str]``.

They receive the engine's own props (pulumi_policy's proxies, unknowns that raise when read), so
they read lists with :func:`~municloud.cloud.policies.model.is_list` and references with
:func:`~municloud.cloud.policies.model.is_set`."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from municloud.cloud import tags
from municloud.cloud.policies.model import (
    BACKUP_VAULT,
    BUCKET,
    DETECTOR,
    FIREWALL_POLICY,
    FIREWALL_RULES,
    RDS,
    TGW,
    TGW_PROPAGATION,
    TGW_VPC_ATTACHMENT,
    VPN,
    ingress_rules,
    is_list,
    is_set,
    is_true,
    is_unknown,
    tag_map,
)
from municloud.inventory import code_problem

# --- resource rules ----------------------------------------------------------------------------


def check_tags(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every taggable AWS resource names its cloud and whom it serves (prefecture/municipality)."""
    if not resource_type.startswith("aws:") or resource_type in tags.UNTAGGABLE_TYPES:
        return []
    found = tag_map(props.get("tags"))
    problems = [f"missing tag {key}" for key in (tags.CLOUD, tags.CLOUD_KIND, tags.MANAGED_BY)
                if not found.get(key)]
    if found.get(tags.MANAGED_BY, "municloud") != "municloud":
        problems.append(f"tag {tags.MANAGED_BY} is {found[tags.MANAGED_BY]!r}, not 'municloud'")
    served = [key for key in tags.SERVES if found.get(key)]
    if not served:
        problems.append(f"serves nobody: tag it with {tags.PREFECTURE} or {tags.MUNICIPALITY}")
    for key in served:
        problem = code_problem(found[key])
        if problem:
            problems.append(f"tag {key}: {problem}")
    pref, mun = found.get(tags.PREFECTURE), found.get(tags.MUNICIPALITY)
    if pref and mun and pref[:2] != mun[:2]:
        problems.append(f"municipality {mun} is not in prefecture {pref}")
    if is_list(props.get("tags")):  # auto scaling group: tags must reach the instances
        problems += [f"tag {t.get('key')} does not propagate at launch"
                     for t in props["tags"]
                     if isinstance(t, Mapping) and not is_true(t.get("propagateAtLaunch"))]
    return problems


def check_no_open_ingress(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No security group admits the whole internet (0.0.0.0/0 or ::/0)."""
    rules = ingress_rules(resource_type, props)
    out = []
    admitted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for rule in rules:
        for cidr in [*(rule.get("cidrBlocks") or []), *(rule.get("ipv6CidrBlocks") or [])]:
            if not cidr or is_unknown(cidr):
                continue
            try:
                net = ipaddress.ip_network(str(cidr), strict=False)
            except ValueError:
                out.append(f"ingress from {cidr!r}, which is not an address range")
                continue
            admitted.append(net)
            # by arithmetic, not by spelling: 0.0.0.0/1 is half of the internet
            if net.prefixlen <= 1:
                out.append(f"ingress from {cidr} (port {rule.get('fromPort', '?')}): "
                           "admit named ranges from the inventory only")
    v4 = list(ipaddress.collapse_addresses(
        n for n in admitted if isinstance(n, ipaddress.IPv4Network)))
    v6 = list(ipaddress.collapse_addresses(
        n for n in admitted if isinstance(n, ipaddress.IPv6Network)))
    for union in (v4, v6):
        if any(n.prefixlen == 0 for n in union) and not out:
            out.append(f"ingress rules together admit every address ({union[0]})")
    return out


def check_encryption(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Data at rest is encrypted with a customer key; logs are locked and validated."""
    out: list[str] = []
    if resource_type in (RDS, "aws:rds/cluster:Cluster"):
        if not is_true(props.get("storageEncrypted")):
            out.append("database storage is not encrypted (storage_encrypted)")
        if not is_set(props, "kmsKeyId"):
            out.append("database has no customer KMS key (kms_key_id)")
    elif resource_type == "aws:kms/key:Key":
        if not is_true(props.get("enableKeyRotation")):
            out.append("KMS key rotation is off")
    elif resource_type == "aws:cloudtrail/trail:Trail":
        if not is_set(props, "kmsKeyId"):
            out.append("trail is not encrypted with a KMS key")
        if not is_true(props.get("enableLogFileValidation")):
            out.append("trail has no log file validation")
        if not is_true(props.get("isMultiRegionTrail")):
            out.append("trail does not cover all regions")
    elif resource_type == BACKUP_VAULT:
        if not is_set(props, "kmsKeyArn"):
            out.append("backup vault has no customer KMS key")
    elif resource_type == BUCKET:
        if not is_true(props.get("objectLockEnabled")):
            out.append("bucket has no object lock (object_lock_enabled)")
    elif resource_type == "aws:ebs/volume:Volume":
        if not is_true(props.get("encrypted")):
            out.append("volume is not encrypted")
    elif resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        for bdm in props.get("blockDeviceMappings") or []:
            if not is_true((bdm.get("ebs") or {}).get("encrypted")):
                out.append(f"volume {bdm.get('deviceName')} is not encrypted")
    elif resource_type == "aws:s3/bucketServerSideEncryptionConfiguration:" \
            "BucketServerSideEncryptionConfiguration":
        for rule in props.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
                out.append("bucket encryption is not KMS")
    return out




def check_firewall_default_deny(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A Network Firewall drops what its rules do not let through: strict rule order with a drop
    default action; a stateful rule group ends with a drop and says what its $HOME_NET is."""
    out: list[str] = []
    if resource_type == FIREWALL_POLICY:
        policy = props.get("firewallPolicy") or {}
        order = (policy.get("statefulEngineOptions") or {}).get("ruleOrder")
        defaults = list(policy.get("statefulDefaultActions") or [])
        if order != "STRICT_ORDER":
            out.append(f"stateful rule order is {order or 'DEFAULT_ACTION_ORDER'}, not "
                       "STRICT_ORDER: rules are not judged in the order written")
        if not any(str(a).startswith("aws:drop_") for a in defaults):
            out.append("no stateful default action drops: traffic no rule matches passes "
                       "(add aws:drop_established)")
    elif resource_type == FIREWALL_RULES and props.get("type") == "STATEFUL":
        group = props.get("ruleGroup") or {}
        text = str((group.get("rulesSource") or {}).get("rulesString") or "")
        rules = [line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith("#")]
        if rules and not rules[-1].startswith(("drop ", "reject ")):
            out.append(f"the last rule is not a drop: {rules[-1][:60]!r}")
        sets = (group.get("ruleVariables") or {}).get("ipSets") or []
        if "$HOME_NET" in text and not any(
                isinstance(v, Mapping) and v.get("key") == "HOME_NET" for v in sets):
            out.append("rules use $HOME_NET but the group does not define it (the default is "
                       "only the VPC's primary range)")
    return out


def check_threat_detection(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A GuardDuty detector the stack creates is on (one per account and region: whether two
    stacks both create one is ``municloud cloud plan --same-account``'s to judge)."""
    if resource_type == DETECTOR and props.get("enable") is False:
        return ["the GuardDuty detector is created disabled: set enable=True, or leave the "
                "detector to the stack that owns it (municloud:guardDuty: false)"]
    return []


def check_no_public_address(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No instance, subnet or database gets a public address (only NAT gateways have one)."""
    out = []
    if resource_type == "aws:ec2/subnet:Subnet" and is_true(props.get("mapPublicIpOnLaunch")):
        out.append("subnet gives public addresses on launch")
    if resource_type == "aws:ec2/instance:Instance" and is_true(
            props.get("associatePublicIpAddress")):
        out.append("instance has a public address")
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        for nic in props.get("networkInterfaces") or []:
            if is_true(nic.get("associatePublicIpAddress")):
                out.append("launch template gives a public address")
    if resource_type in (RDS, "aws:rds/cluster:Cluster") and is_true(
            props.get("publiclyAccessible")):
        out.append("database is publicly accessible")
    return out


def check_transit_gateway_defaults(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No default route table: every attachment is placed by hand in its own table."""
    out = []
    if resource_type == TGW:
        for key in ("defaultRouteTableAssociation", "defaultRouteTablePropagation"):
            if props.get(key) != "disable":
                out.append(f"{key} is {props.get(key)!r}: set it to 'disable', or every "
                           "attachment lands in one shared table")
    elif resource_type == TGW_VPC_ATTACHMENT:
        for key in ("transitGatewayDefaultRouteTableAssociation",
                    "transitGatewayDefaultRouteTablePropagation"):
            if props.get(key) is not False:
                out.append(f"{key} is not false")
        if tag_map(props.get("tags")).get(tags.ROLE) == "inspection" and props.get(
                "applianceModeSupport") != "enable":
            out.append("the inspection VPC's attachment has appliance mode off: the two "
                       "directions of a flow may cross different zones and the stateful "
                       "firewall drops one of them")
    elif resource_type == TGW_PROPAGATION:
        out.append("a route propagation: every route is static and names one municipality; "
                   "a propagation adds whatever the attachment advertises")
    elif resource_type == VPN:
        for key in ("localIpv4NetworkCidr", "remoteIpv4NetworkCidr"):
            value = props.get(key)
            if is_unknown(value):
                continue
            try:
                open_ = not value or ipaddress.ip_network(str(value), strict=False).prefixlen == 0
            except ValueError:
                out.append(f"{key} {value!r} is not an address range")
                continue
            if open_:
                out.append(f"{key} is {value or 'unset (AWS takes 0.0.0.0/0)'}: the tunnel "
                           "would carry any address; name the segment and the cloud's range")
    return out
