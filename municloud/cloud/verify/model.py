"""The model of ``cloud verify``: what is read of a cloud (:class:`CloudState`), the verdicts
(:class:`Finding`), and who owns which attachment and address range."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
    versioning: Mapping[str, Any] | None = None  # get_bucket_versioning (Status, MFADelete)
    # configuration ("object_lock", "encryption", "public_access_block", "versioning") -> why it
    # could not be read (AccessDenied from a bucket policy, say): that check is UNCHECKED here
    unreadable: Mapping[str, str] = field(default_factory=dict)


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
    (``ec2``, ``network-firewall``, ``s3``, ``cloudtrail``, ``guardduty``, ``rds``, ``backup``)
    that could not be read to the reason; the checks that need it report UNCHECKED instead of
    passing.
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
    # describe_transit_gateway_vpc_attachments: the VPC attachments with their Options
    # (ApplianceModeSupport), which describe_transit_gateway_attachments does not return
    tgw_vpc_attachments: list[Resource] = field(default_factory=list)
    vpn_connections: list[Resource] = field(default_factory=list)  # without secrets
    customer_gateways: list[Resource] = field(default_factory=list)  # of the cloud's VPNs
    vpcs: list[Resource] = field(default_factory=list)
    subnets: list[Resource] = field(default_factory=list)
    security_groups: list[Resource] = field(default_factory=list)
    instances: list[Resource] = field(default_factory=list)
    network_interfaces: list[Resource] = field(default_factory=list)
    internet_gateways: list[Resource] = field(default_factory=list)
    route_tables: list[Resource] = field(default_factory=list)  # the VPCs' own (not TGW's)
    nat_gateways: list[Resource] = field(default_factory=list)
    firewalls: list[Resource] = field(default_factory=list)  # network-firewall describe_firewall
    flow_logs: list[Resource] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    # buckets whose tags could not be read (name -> why): nobody can tell whether they are the
    # cloud's, so the bucket checks report them UNCHECKED
    unreadable_buckets: dict[str, str] = field(default_factory=dict)
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


def id_list(ids: Sequence[str], limit: int = 4) -> str:
    if not ids:
        return "-"
    shown = ",".join(ids[:limit])
    return shown if len(ids) <= limit else f"{shown},… ({len(ids)} in all)"


def prefecture_of(code: str) -> str:
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
    pref = prefecture_of(prefecture) if prefecture else None
    if municipality and not pref:
        pref = prefecture_of(municipality)
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


def vpc_cidrs(vpc: Mapping[str, Any]) -> list[str]:
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
        for cidr in vpc_cidrs(vpcs[att["ResourceId"]]):
            owners.append((ipaddress.IPv4Network(cidr, strict=False), owner,
                           f"VPC {att['ResourceId']}"))
    for r in known:
        owners.append((ipaddress.IPv4Network(r.cidr, strict=False),
                       Owner(r.municipality, prefecture_of(r.prefecture)),
                       f"inventory {r.inventory}"))
    return owners


# --- what every check shares: its signature, its PASS line, its "found nothing" FAIL ------

Check = Callable[[CloudState], list[Finding]]


def pass_finding(check: str, ids: Sequence[str], message: str) -> Finding:
    return Finding(check, Status.PASS, id_list(list(ids)), message, examined=len(ids))


def nothing_found(check: str, what: str, state: CloudState, fix: str) -> Finding:
    return Finding(check, Status.FAIL, "-",
                   f"no {what} tagged {tags.CLOUD}={state.cloud} in {state.region}", fix)


class VerifyError(Exception):
    """Verify could not run at all (no credentials, endpoint unreachable, bad inventory)."""
