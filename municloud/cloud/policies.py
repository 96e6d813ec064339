"""The rules every cloud stack keeps: one home for the policy pack, the graph tests and the plan.

Each rule is a pure function. Resource rules look at one resource,
``check_xxx(resource_type, props) -> list[str]``; stack rules look at all resources,
``check_xxx(resources) -> list[(message, urn)]``. ``props`` are camelCase, as the engine hands
them to CrossGuard and as the mocks record them. The CrossGuard pack (``pulumi/policy``) wraps
these functions in ``ResourceValidationPolicy`` / ``StackValidationPolicy`` with
``EnforcementLevel.MANDATORY`` (:func:`policy_pack_policies`); the unit tests and
``municloud cloud plan`` run that same pack, started as its own program and spoken to over gRPC
as the engine does (:mod:`municloud.cloud.engine`), over a mocked graph.

Under the engine, lists and maps are pulumi_policy's proxies (``Sequence``/``Mapping``, not
``list``/``dict``: :func:`is_list`), and in a preview every id and ARN of a resource still to be
created is unknown; the proxy raises on reading one, which turns the whole policy into an
advisory "can't run during preview". So resource rules read references with :func:`is_set`, and
stack rules get plain :class:`Item` s (unknowns as :data:`UNKNOWN`) whose references are followed
by :class:`Identities`: by the known id, or else by the engine's property dependencies.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import proxy

from municloud.cloud import tags
from municloud.cloud.engine import PolicyResult
from municloud.inventory import code_problem

# --- the resources the stack rules see ---------------------------------------------------------


# Pulumi's wire values for "not known until up", one per kind of value.
UNKNOWN_VALUES = frozenset({
    proxy.UNKNOWN_BOOLEAN_VALUE, proxy.UNKNOWN_NUMBER_VALUE, proxy.UNKNOWN_STRING_VALUE,
    proxy.UNKNOWN_ARRAY_VALUE, proxy.UNKNOWN_ASSET_VALUE, proxy.UNKNOWN_ARCHIVE_VALUE,
    proxy.UNKNOWN_OBJECT_VALUE,
})
UNKNOWN = proxy.UNKNOWN_STRING_VALUE  # how Item.props carry any of them


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_VALUES


@dataclass(frozen=True)
class Item:
    """A resource as a stack rule sees it, whichever runner (engine or mocks) supplied it.

    ``props`` are plain data; a value a preview does not know yet is :data:`UNKNOWN`. ``deps``
    are the engine's property dependencies (property -> URNs of the resources its value comes
    from): in a preview they are how one resource's reference to another (a route to a table,
    a flow log to a VPC) is followed while the ids are unknown.
    """

    type: str
    urn: str
    name: str
    props: Mapping[str, Any]
    deps: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        return tag_map(self.props.get("tags"))

    def known(self, key: str) -> Any:
        """The value of ``key``, or None when absent or not known yet."""
        value = self.props.get(key)
        return None if is_unknown(value) else value


class Identities:
    """Which resource a reference points at, by known id (or ARN, or attachment id) or, while
    those are unknown, by the URN the engine says the value depends on."""

    def __init__(self, items: Sequence[Item],
                 outputs: Sequence[str] = ("id", "arn", "transitGatewayAttachmentId")) -> None:
        self.owner: dict[str, str] = {}
        self.by_urn = {i.urn: i for i in items}
        for item in items:
            self.owner[item.urn] = item.urn
            for key in outputs:
                value = item.known(key)
                if isinstance(value, str) and value:
                    self.owner.setdefault(value, item.urn)

    def of(self, item: Item, key: str, value: Any = None) -> set[str]:
        """What ``item``'s ``key`` (or the given nested ``value`` of it) refers to: owners'
        URNs where known, else the raw value (a resource outside the stack)."""
        raw = item.known(key) if value is None else (None if is_unknown(value) else value)
        found = {self.owner.get(str(raw), str(raw))} if raw else set()
        if not found:
            found = {self.owner.get(u, u) for u in item.deps.get(key, ())}
        return found

    def label(self, key: str) -> str:
        item = self.by_urn.get(key)
        return item.name if item else key


def plain(value: Any) -> Any:
    """The engine's proxies as plain data, a value not known yet as :data:`UNKNOWN` (reading
    one through the proxy raises, which would stop the whole rule during a preview).

    pulumi_policy's proxies hand out their underlying container under the key ``"__target"``;
    reading that is the fast path (no exception per unknown, no ABC checks). Measured under
    cProfile on benchmarks/cloud_plan.py's synthetic cloud (2,589 resources, ten stack rules):
    2.5 s in this function before, 1.0 s after."""
    kind = type(value)
    if kind in _PROXIES:
        return plain(value["__target"])
    if kind is dict:
        return {str(k): plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [plain(v) for v in value]
    if kind is str:
        return UNKNOWN if value in UNKNOWN_VALUES else value
    if isinstance(value, Mapping):
        return {str(k): plain(value[k]) for k in value}
    if is_list(value):
        return [plain(value[i]) for i in range(len(value))]
    return value


# pulumi_policy's proxy classes (private names; plain() falls back to the ABCs without them).
_PROXIES = tuple(t for t in (getattr(proxy, "_DictProxy", None),
                             getattr(proxy, "_ListProxy", None)) if isinstance(t, type))


def items_of(resources: Iterable[Any]) -> list[Item]:
    """Stack rules' items from recorded resources (mockrun) or the engine's PolicyResources."""
    out = []
    for r in resources:
        if hasattr(r, "resource_type"):  # pulumi_policy's PolicyResource
            deps = {k: tuple(d.urn for d in v) for k, v in (r.property_dependencies or {}).items()}
            out.append(Item(r.resource_type, r.urn, r.name, plain(r.props), deps))
        else:
            out.append(Item(r.type, r.urn, r.name, plain(r.props),
                            {k: tuple(v) for k, v in
                             (getattr(r, "property_dependencies", None) or {}).items()}))
    return out


def is_list(value: Any) -> bool:
    """A list as the rules may receive it: under the engine, pulumi_policy hands over its own
    proxy (a ``Sequence``, not a ``list``), so ``isinstance(value, list)`` would be False."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def is_set(props: Mapping[str, Any], key: str) -> bool:
    """Whether ``key`` is given: a value, or (in a preview) a reference known only at up, such
    as the ARN of a key made in the same run. The engine's proxy raises on reading the latter."""
    try:
        return bool(props.get(key))
    except proxy.UnknownValueError:
        return True


def tag_map(value: Any) -> dict[str, str]:
    """Tags as a mapping; an auto scaling group's list of {key, value} is read too."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if is_list(value):
        return {str(t.get("key")): str(t.get("value")) for t in value if isinstance(t, Mapping)}
    return {}


ResourceCheck = Callable[[str, Mapping[str, Any]], list[str]]
StackCheck = Callable[[Sequence[Item]], list[tuple[str, str | None]]]

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
TGW = "aws:ec2transitgateway/transitGateway:TransitGateway"
TGW_VPC_ATTACHMENT = "aws:ec2transitgateway/vpcAttachment:VpcAttachment"
TGW_ROUTE = "aws:ec2transitgateway/route:Route"
TGW_ASSOCIATION = "aws:ec2transitgateway/routeTableAssociation:RouteTableAssociation"
TGW_PROPAGATION = "aws:ec2transitgateway/routeTablePropagation:RouteTablePropagation"
VPN = "aws:ec2/vpnConnection:VpnConnection"
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
BUCKET = "aws:s3/bucket:Bucket"
RDS = "aws:rds/instance:Instance"
BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_VAULT = "aws:backup/vault:Vault"
BACKUP_SELECTION = "aws:backup/selection:Selection"

# Resources that connect a VPC to the internet; none may exist in a joint cloud (自治体クラウド).
INTERNET_TYPES = frozenset({
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/eipAssociation:EipAssociation",
})
OPEN = ("0.0.0.0/0", "::/0")


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


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
                     if isinstance(t, Mapping) and not _true(t.get("propagateAtLaunch"))]
    return problems


def check_no_open_ingress(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No security group admits the whole internet (0.0.0.0/0 or ::/0)."""
    rules: list[Mapping[str, Any]] = []
    if resource_type == SG:
        rules = [r for r in props.get("ingress") or [] if isinstance(r, Mapping)]
    elif resource_type == SG_RULE and props.get("type") == "ingress":
        rules = [props]
    elif resource_type == SG_INGRESS:
        rules = [{"cidrBlocks": [props.get("cidrIpv4")],
                  "ipv6CidrBlocks": [props.get("cidrIpv6")]}]
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
        if not _true(props.get("storageEncrypted")):
            out.append("database storage is not encrypted (storage_encrypted)")
        if not is_set(props, "kmsKeyId"):
            out.append("database has no customer KMS key (kms_key_id)")
    elif resource_type == "aws:kms/key:Key":
        if not _true(props.get("enableKeyRotation")):
            out.append("KMS key rotation is off")
    elif resource_type == "aws:cloudtrail/trail:Trail":
        if not is_set(props, "kmsKeyId"):
            out.append("trail is not encrypted with a KMS key")
        if not _true(props.get("enableLogFileValidation")):
            out.append("trail has no log file validation")
        if not _true(props.get("isMultiRegionTrail")):
            out.append("trail does not cover all regions")
    elif resource_type == BACKUP_VAULT:
        if not is_set(props, "kmsKeyArn"):
            out.append("backup vault has no customer KMS key")
    elif resource_type == BUCKET:
        if not _true(props.get("objectLockEnabled")):
            out.append("bucket has no object lock (object_lock_enabled)")
    elif resource_type == "aws:ebs/volume:Volume":
        if not _true(props.get("encrypted")):
            out.append("volume is not encrypted")
    elif resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        for bdm in props.get("blockDeviceMappings") or []:
            if not _true((bdm.get("ebs") or {}).get("encrypted")):
                out.append(f"volume {bdm.get('deviceName')} is not encrypted")
    elif resource_type == "aws:s3/bucketServerSideEncryptionConfiguration:" \
            "BucketServerSideEncryptionConfiguration":
        for rule in props.get("rules") or []:
            default = rule.get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
                out.append("bucket encryption is not KMS")
    return out


FIREWALL_POLICY = "aws:networkfirewall/firewallPolicy:FirewallPolicy"
FIREWALL_RULES = "aws:networkfirewall/ruleGroup:RuleGroup"


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


def check_no_public_address(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No instance, subnet or database gets a public address (only NAT gateways have one)."""
    out = []
    if resource_type == "aws:ec2/subnet:Subnet" and _true(props.get("mapPublicIpOnLaunch")):
        out.append("subnet gives public addresses on launch")
    if resource_type == "aws:ec2/instance:Instance" and _true(
            props.get("associatePublicIpAddress")):
        out.append("instance has a public address")
    if resource_type == "aws:ec2/launchTemplate:LaunchTemplate":
        for nic in props.get("networkInterfaces") or []:
            if _true(nic.get("associatePublicIpAddress")):
                out.append("launch template gives a public address")
    if resource_type in (RDS, "aws:rds/cluster:Cluster") and _true(
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


# --- stack rules -------------------------------------------------------------------------------


@dataclass
class _Attachment:
    urn: str
    label: str
    tags: dict[str, str]

    @property
    def municipality(self) -> str | None:
        return self.tags.get(tags.MUNICIPALITY)

    @property
    def prefecture(self) -> str | None:
        return self.tags.get(tags.PREFECTURE)


@dataclass
class _Table:
    label: str = ""
    associated: list[str] = field(default_factory=list)
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # (attachment, what, urn)


def transit_tables(resources: Sequence[Item]) -> tuple[dict[str, _Attachment], dict[str, _Table]]:
    """Attachments and route tables (associations, routes, propagations), each keyed by its
    resource's URN (or, for one outside the stack, the id it is referred to by)."""
    ids = Identities(resources)
    attachments = {r.urn: _Attachment(r.urn, f"{'VPN' if r.type == VPN else 'VPC attachment'} "
                                              f"{r.name}", r.tags)
                   for r in resources if r.type in (VPN, TGW_VPC_ATTACHMENT)}
    tables: dict[str, _Table] = defaultdict(_Table)
    for r in resources:
        if r.type not in (TGW_ASSOCIATION, TGW_ROUTE, TGW_PROPAGATION):
            continue
        if r.type == TGW_ROUTE and _true(r.known("blackhole")):
            continue
        for table in ids.of(r, "transitGatewayRouteTableId"):
            tables[table].label = ids.label(table)
            for attachment in ids.of(r, "transitGatewayAttachmentId"):
                if r.type == TGW_ASSOCIATION:
                    tables[table].associated.append(attachment)
                elif r.type == TGW_ROUTE:
                    tables[table].targets.append(
                        (attachment, f"route to {r.props.get('destinationCidrBlock')}", r.urn))
                else:
                    tables[table].targets.append((attachment, "propagation", r.urn))
    return attachments, dict(tables)


def _networks(cidrs: Iterable[Any]) -> list[ipaddress.IPv4Network]:
    out = []
    for cidr in cidrs:
        if cidr and not is_unknown(cidr):
            with contextlib.suppress(ValueError):  # not IPv4: no-open-ingress judges it
                out.append(ipaddress.IPv4Network(str(cidr), strict=False))
    return out


Ranges = dict[str, list[ipaddress.IPv4Network]]


def tenant_ranges(resources: Sequence[Item]) -> tuple[Ranges, Ranges]:
    """Each municipality's and each prefecture's address ranges, as the stack itself states
    them: a municipality's VPNs' customer-side selectors (``localIpv4NetworkCidr``, the segment
    its town hall sends) and the VPCs tagged with it; a prefecture's are those of all its
    municipalities plus the VPCs tagged with it alone."""
    by_municipality: Ranges = {}
    by_prefecture: Ranges = {}
    for r in resources:
        cidrs: list[Any] = []
        if r.type == VPN:
            cidrs = [r.props.get("localIpv4NetworkCidr")]
        elif r.type == VPC:
            cidrs = [r.props.get("cidrBlock")]
        nets = _networks(cidrs)
        if not nets:
            continue
        t = r.tags
        if t.get(tags.MUNICIPALITY):
            by_municipality.setdefault(t[tags.MUNICIPALITY], []).extend(nets)
        if t.get(tags.PREFECTURE):
            by_prefecture.setdefault(t[tags.PREFECTURE], []).extend(nets)
    return by_municipality, by_prefecture


def check_tenant_isolation(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """No transit gateway route table lets one municipality (or prefecture) reach another.

    Traffic that enters from an attachment follows the table that attachment is associated with;
    a municipality's attachment may therefore only share a table with, and route to, attachments
    of the same municipality or shared hubs (attachments that serve no single municipality).
    """
    attachments, tables = transit_tables(resources)
    out: list[tuple[str, str | None]] = []
    for table in tables.values():
        sources = [attachments[a] for a in table.associated if a in attachments]
        tenants = {s.municipality for s in sources if s.municipality}
        if len(tenants) > 1:
            out.append((f"route table {table.label} is shared by municipalities "
                        f"{', '.join(sorted(tenants))}: give each its own table", None))
        for source in sources:
            if not source.municipality:
                continue  # a hub: it may route back to every member it serves
            for target_id, what, urn in table.targets:
                target = attachments.get(target_id)
                if target is None or not target.municipality:
                    continue
                if target.municipality == source.municipality:
                    continue
                scope = ("prefecture-to-prefecture" if target.prefecture != source.prefecture
                         else "municipality-to-municipality")
                out.append((f"{scope}: {what} in the table of {source.label} "
                            f"({source.municipality}) leads to {target.label} "
                            f"({target.municipality})", urn))
    return out + _routes_into_others(resources)


def _foreign(dest: ipaddress.IPv4Network, own: list[ipaddress.IPv4Network],
             others: Ranges) -> list[tuple[str, ipaddress.IPv4Network]]:
    """The ranges of ``others`` that ``dest`` overlaps, leaving out ranges the owner shares
    (the joint cloud's tenant VPCs all use one range; their routes are judged by target)."""
    return [(whom, net) for whom, nets in sorted(others.items()) for net in nets
            if dest.overlaps(net) and not any(net.overlaps(o) for o in own)]


def _routes_into_others(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Routes judged by destination, whatever their target: a municipality's transit gateway
    table may not route into another municipality's range (a supernet to the shared hub would
    send a town's traffic toward its neighbours), and a prefecture's subnets may not route into
    another prefecture's municipalities."""
    by_municipality, by_prefecture = tenant_ranges(resources)
    _, tables = transit_tables(resources)
    attachments = {r.urn: r for r in resources if r.type in (VPN, TGW_VPC_ATTACHMENT)}
    ids = Identities(resources)
    owner_of_table: dict[str, tuple[str, Ranges]] = {}
    for urn, tgw_table in tables.items():
        codes = {attachments[a].tags.get(tags.MUNICIPALITY) for a in tgw_table.associated
                 if a in attachments} - {None}
        if len(codes) == 1:
            (code,) = codes
            owner_of_table[urn] = (f"municipality {code}", {
                f"municipality {k}": v for k, v in by_municipality.items() if k != code})
    subnets = {r.urn: r.tags.get(tags.PREFECTURE) for r in resources if r.type == SUBNET
               and r.tags.get(tags.PREFECTURE) and not r.tags.get(tags.MUNICIPALITY)}
    vpc_tables: dict[str, set[str]] = defaultdict(set)  # VPC route table -> prefectures
    for assoc in (r for r in resources if r.type == ROUTE_TABLE_ASSOCIATION):
        for subnet in ids.of(assoc, "subnetId"):
            if subnets.get(subnet):
                for table_urn in ids.of(assoc, "routeTableId"):
                    vpc_tables[table_urn].add(str(subnets[subnet]))
    prefecture_of = {m: p for p, nets in by_prefecture.items() for m, mnets in
                     by_municipality.items() if mnets and all(n in nets for n in mnets)}
    out: list[tuple[str, str | None]] = []
    for r in resources:
        (dest,) = _networks([r.props.get("destinationCidrBlock")]) or (None,)
        if dest is None or dest.prefixlen == 0:
            continue  # the way out is the egress rule's to judge
        if r.type == TGW_ROUTE and not _true(r.known("blackhole")):
            for table in ids.of(r, "transitGatewayRouteTableId"):
                if table not in owner_of_table:
                    continue
                whom, others = owner_of_table[table]
                own = by_municipality.get(whom.split()[1], [])
                for other, net in _foreign(dest, own, others):
                    out.append((f"the table of {whom} routes {dest}, which overlaps {net} of "
                                f"{other}: route only to your own ranges and the cloud's",
                                r.urn))
        elif r.type == ROUTE:
            for table in ids.of(r, "routeTableId"):
                for pref in sorted(vpc_tables.get(table, ())):
                    others = {f"municipality {m} of prefecture {p}": by_municipality[m]
                              for m, p in prefecture_of.items() if p != pref}
                    for other, net in _foreign(dest, by_prefecture.get(pref, []), others):
                        out.append((f"{r.name}, in a subnet of prefecture {pref}, routes "
                                    f"{dest} into {net} of {other}", r.urn))
    return out


def _is_joint_cloud(resources: Sequence[Item]) -> bool:
    return any(r.tags.get(tags.CLOUD_KIND) == tags.KIND_JOINT_CLOUD for r in resources)


def check_joint_cloud_closed(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A joint cloud has no internet gateway, NAT or public address: closed lines only. Its
    databases start no connection: their security groups let nothing out."""
    ids = Identities(resources)
    out: list[tuple[str, str | None]] = []
    for db in (r for r in resources if r.type == RDS):
        for ref in db.props.get("vpcSecurityGroupIds") or []:
            for sg in (ids.by_urn[u] for u in ids.of(db, "vpcSecurityGroupIds", ref)
                       if u in ids.by_urn):
                if sg.type == SG and sg.props.get("egress"):
                    out.append((f"database {db.name}'s security group {sg.name} lets "
                                "connections out: a database only answers", sg.urn))
    if not _is_joint_cloud(resources):
        return out
    return out + [(f"{r.type.rsplit(':', 1)[-1]} {r.name} in a joint cloud (自治体クラウド), "
                   "which must reach members over closed lines only", r.urn)
                  for r in resources if r.type in INTERNET_TYPES]


def check_log_archive(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every bucket is versioned, object-locked with a retention, KMS-encrypted and private."""
    ids = Identities(resources, outputs=("id", "bucket", "arn"))
    by_bucket: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        for bucket in ids.of(r, "bucket") if r.type != BUCKET else ():
            _bucket_settings(r, by_bucket[bucket])
    needed = {"versioning", "object lock retention in COMPLIANCE mode", "KMS encryption",
              "public access block", "lifecycle"}
    out: list[tuple[str, str | None]] = []
    for r in resources:
        if r.type == BUCKET:
            missing = needed - by_bucket[r.urn]
            if missing:
                out.append((f"bucket {r.name} lacks {', '.join(sorted(missing))}", r.urn))
    return out


def _bucket_settings(r: Item, found: set[str]) -> None:
    """What one of a bucket's configuration resources gives it."""
    if r.type.endswith("bucketVersioning:BucketVersioning") and (
            r.props.get("versioningConfiguration") or {}).get("status") == "Enabled":
        found.add("versioning")
    elif r.type.endswith("bucketObjectLockConfiguration:BucketObjectLockConfiguration"):
        retention = (r.props.get("rule") or {}).get("defaultRetention") or {}
        # GOVERNANCE lets anyone with s3:BypassGovernanceRetention delete the logs
        if (retention.get("days") or retention.get("years")) and retention.get(
                "mode") == "COMPLIANCE":
            found.add("object lock retention in COMPLIANCE mode")
    elif r.type.endswith("BucketServerSideEncryptionConfiguration") and not check_encryption(
            r.type, r.props):
        found.add("KMS encryption")
    elif r.type.endswith("bucketPublicAccessBlock:BucketPublicAccessBlock") and all(
            _true(r.props.get(k)) for k in ("blockPublicAcls", "blockPublicPolicy",
                                            "ignorePublicAcls", "restrictPublicBuckets")):
        found.add("public access block")
    elif r.type.endswith("bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        found.add("lifecycle")


def check_flow_logs(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every VPC's traffic is logged."""
    ids = Identities(resources)
    logged = {vpc for r in resources if r.type == FLOW_LOG for vpc in ids.of(r, "vpcId")}
    return [(f"VPC {r.name} has no flow log", r.urn) for r in resources
            if r.type == VPC and r.urn not in logged]


def _region(arn: Any) -> str | None:
    parts = str(arn).split(":") if arn else []
    return parts[3] if len(parts) > 5 and parts[3] else None


def check_backup_copies(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every backup rule copies to a vault in another region; every database is backed up.
    (In a preview the ARNs, and so the regions, are unknown: the region is judged at up.)"""
    out: list[tuple[str, str | None]] = []
    for plan in (r for r in resources if r.type == BACKUP_PLAN):
        plan_region = _region(plan.known("arn"))
        for rule in plan.props.get("rules") or []:
            copies = rule.get("copyActions") or []
            if not copies:
                out.append((f"backup plan {plan.name} rule {rule.get('ruleName')} makes no copy "
                            "in a second region", plan.urn))
            for copy in copies:
                arn = copy.get("destinationVaultArn")
                region = None if is_unknown(arn) else _region(arn)
                if plan_region and region and region == plan_region:
                    out.append((f"backup plan {plan.name} copies within {region}: copy to a "
                                "vault in another region", plan.urn))
    if _is_joint_cloud(resources):
        ids = Identities(resources)
        selected: set[str] = set()
        for r in resources:
            if r.type != BACKUP_SELECTION:
                continue
            arns = r.props.get("resources") or []
            known = [a for a in arns if not is_unknown(a)]
            for arn in known:
                selected |= ids.of(r, "resources", arn)
            if len(known) < len(arns):  # a preview: the databases it depends on
                selected |= {ids.owner.get(u, u) for u in r.deps.get("resources", ())}
        out += [(f"database {r.name} is in no backup selection", r.urn) for r in resources
                if r.type == RDS and r.urn not in selected]
    return out


# --- the way out of a VPC ------------------------------------------------------------------------

SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
ROUTE = "aws:ec2/route:Route"
NAT_GATEWAY = "aws:ec2/natGateway:NatGateway"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
FIREWALL = "aws:networkfirewall/firewall:Firewall"
_TARGETS = ("gatewayId", "natGatewayId", "vpcEndpointId", "transitGatewayId",
            "networkInterfaceId", "vpcPeeringConnectionId")


def check_egress_path(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Routes, not names, decide the way out: a NAT gateway sits in a subnet whose default route
    is the internet gateway; in a VPC with a network firewall, only the firewall's subnets go to
    a NAT gateway and only the NAT gateways' subnets to the internet gateway, so nothing else
    reaches the internet around the firewall."""
    ids = Identities(resources)
    by_urn = ids.by_urn

    def one(item: Item, key: str) -> set[str]:
        return {u for u in ids.of(item, key) if u in by_urn}

    table_of: dict[str, set[str]] = defaultdict(set)  # subnet -> route tables
    for a in (r for r in resources if r.type == ROUTE_TABLE_ASSOCIATION):
        for subnet in one(a, "subnetId"):
            table_of[subnet] |= one(a, "routeTableId")
    default: dict[str, list[tuple[str, set[str], Item]]] = defaultdict(list)  # table -> targets
    for route in (r for r in resources if r.type == ROUTE):
        if route.props.get("destinationCidrBlock") != "0.0.0.0/0":
            continue
        for table in one(route, "routeTableId"):
            for key in _TARGETS:
                if route.props.get(key) is not None:
                    default[table].append((key, one(route, key), route))

    def way_out(subnet: str) -> list[tuple[str, set[str], Item]]:
        return [t for table in table_of.get(subnet, ()) for t in default.get(table, [])]

    def kinds(targets: set[str]) -> set[str]:
        return {by_urn[u].type for u in targets}

    out: list[tuple[str, str | None]] = []
    nat_subnets: set[str] = set()
    for nat in (r for r in resources if r.type == NAT_GATEWAY):
        subnets = one(nat, "subnetId")
        nat_subnets |= subnets
        for subnet in subnets:
            exits = way_out(subnet)
            if not any(INTERNET_GATEWAY in kinds(t) for _, t, _ in exits):
                out.append((f"NAT gateway {nat.name} is in subnet {by_urn[subnet].name}, whose "
                            "default route is not the internet gateway: it cannot reach the "
                            "internet", nat.urn))
    for firewall in (r for r in resources if r.type == FIREWALL):
        vpcs = ids.of(firewall, "vpcId")
        fw_subnets = {u for m in firewall.props.get("subnetMappings") or []
                      if isinstance(m, Mapping)
                      for u in ids.of(firewall, "subnetMappings", m.get("subnetId"))}
        for sub in (r for r in resources if r.type == SUBNET and ids.of(r, "vpcId") & vpcs):
            for key, targets, route in way_out(sub.urn):
                found = kinds(targets)
                to_nat = NAT_GATEWAY in found or key == "natGatewayId"
                to_igw = INTERNET_GATEWAY in found
                if (to_nat and sub.urn not in fw_subnets) or (
                        to_igw and sub.urn not in nat_subnets):
                    out.append((f"subnet {sub.name} reaches the internet by route "
                                f"{route.name} ({key}) around firewall {firewall.name}",
                                route.urn))
    return out


# --- VPNs come from outside ------------------------------------------------------------------

CUSTOMER_GATEWAY = "aws:ec2/customerGateway:CustomerGateway"
VPC_CIDR = "aws:ec2/vpcIpv4CidrBlockAssociation:VpcIpv4CidrBlockAssociation"


def check_vpn_outside_address(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A customer gateway is a router's outside address: one inside a VPC of the stack (the
    ranges its tunnel would carry) can never bring the tunnel up."""
    ranges = []
    for r in resources:
        cidr = r.known("cidrBlock") if r.type in (VPC, VPC_CIDR) else None
        with contextlib.suppress(ValueError):  # AWS refuses a malformed range itself
            if isinstance(cidr, str) and cidr:
                ranges.append((r.name, ipaddress.ip_network(cidr, strict=False)))
    out: list[tuple[str, str | None]] = []
    for cgw in (r for r in resources if r.type == CUSTOMER_GATEWAY):
        value = cgw.known("ipAddress")
        if not isinstance(value, str) or not value:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            out.append((f"customer gateway {cgw.name}: {value!r} is not an address", cgw.urn))
            continue
        for name, net in ranges:
            if address in net:
                out.append((f"customer gateway {cgw.name} is {address}, inside {name} "
                            f"({net}): a router's outside address is never inside the cloud; "
                            "write it as municloud_outside_address", cgw.urn))
    return out


# --- load balancers reach their targets ---------------------------------------------------------

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"


def _allows_tcp(rules: Iterable[Any], port: int) -> bool:
    for rule in rules:
        if not isinstance(rule, Mapping):
            continue
        protocol = str(rule.get("protocol", "")).lower()
        low, high = rule.get("fromPort"), rule.get("toPort")
        if protocol in ("-1", "all"):
            return True
        if protocol in ("tcp", "6") and isinstance(low, int | float) and isinstance(
                high, int | float) and low <= port <= high:
            return True
    return False


def check_balancer_reaches_targets(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A load balancer with security groups can send to its targets' port and health-check
    port: its groups' egress must allow them, or every target stays unhealthy."""
    ids = Identities(resources)
    by_urn = ids.by_urn
    out: list[tuple[str, str | None]] = []
    for listener in (r for r in resources if r.type == LISTENER):
        balancers = [by_urn[u] for u in ids.of(listener, "loadBalancerArn") if u in by_urn]
        groups = [by_urn[u] for action in listener.props.get("defaultActions") or []
                  if isinstance(action, Mapping)
                  for u in ids.of(listener, "defaultActions", action.get("targetGroupArn"))
                  if u in by_urn and by_urn[u].type == TARGET_GROUP]
        for lb in balancers:
            refs = lb.props.get("securityGroups") or []
            if not refs:
                continue  # a balancer without groups filters nothing
            sgs = [by_urn[u] for ref in refs for u in ids.of(lb, "securityGroups", ref)
                   if u in by_urn and by_urn[u].type == SG]
            if len(sgs) < len(refs):
                continue  # a group outside the stack: judged by cloud verify
            egress = [rule for sg in sgs for rule in sg.props.get("egress") or []]
            for tg in groups:
                ports = {tg.props.get("port")}
                check = tg.props.get("healthCheck") or {}
                if str(check.get("port", "traffic-port")).isdigit():
                    ports.add(int(check["port"]))
                for port in sorted(int(p) for p in ports if isinstance(p, int | float)):
                    if not _allows_tcp(egress, port):
                        out.append((f"load balancer {lb.name} cannot reach target group "
                                    f"{tg.name} on port {port}: its security groups "
                                    f"({', '.join(sg.name for sg in sgs)}) do not let it out",
                                    lb.urn))
    return out


# --- ingress only from the tenants a group serves ----------------------------------------------


def _ingress_cidrs(item: Item, ids: Identities) -> tuple[set[str], list[str]]:
    """The groups (URNs, or ids outside the stack) ``item`` opens and the IPv4 ranges it admits."""
    if item.type == SG:
        rules = [r for r in item.props.get("ingress") or [] if isinstance(r, Mapping)]
        return {item.urn}, [str(c) for r in rules for c in r.get("cidrBlocks") or []]
    if item.type == SG_RULE and item.props.get("type") == "ingress":
        return (ids.of(item, "securityGroupId"),
                [str(c) for c in item.props.get("cidrBlocks") or []])
    if item.type == SG_INGRESS and item.known("cidrIpv4"):
        return ids.of(item, "securityGroupId"), [str(item.props["cidrIpv4"])]
    return set(), []


def check_ingress_from_tenants(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A security group admits only the ranges of those it serves, judged by CIDR arithmetic.

    Whom a group serves comes from its tags: a group of municipality M (a joint-cloud database)
    admits only M's ranges; a group of prefecture P only (a proxy or its balancer) admits only
    the ranges of P's municipalities. A municipality's ranges are the customer-side selectors of
    its VPNs (``localIpv4NetworkCidr``, the segment its town hall sends) and the VPCs tagged
    with it; a prefecture's are those of all its municipalities plus its own VPCs. A range
    wider than these (the whole lab range, two towns' supernet) or another tenant's fails."""
    ids = Identities(resources)
    by_municipality, by_prefecture = tenant_ranges(resources)
    out: list[tuple[str, str | None]] = []
    for item in resources:
        groups, cidrs = _ingress_cidrs(item, ids)
        for urn in groups:
            group = ids.by_urn.get(urn)
            if group is None:
                continue  # a group outside the stack: cloud verify judges it
            t = group.tags
            if t.get(tags.MUNICIPALITY):
                whom = f"municipality {t[tags.MUNICIPALITY]}"
                allowed = by_municipality.get(t[tags.MUNICIPALITY], [])
            elif t.get(tags.PREFECTURE):
                whom = f"prefecture {t[tags.PREFECTURE]}"
                allowed = by_prefecture.get(t[tags.PREFECTURE], [])
            else:
                continue  # municloud-tags reports a group that serves nobody
            for net in _networks(cidrs):
                if not any(net.subnet_of(a) for a in allowed):
                    out.append((f"{item.name} lets {net} into {group.name}, which serves {whom}:"
                                f" {net} is not inside any range of {whom} (its VPNs' segments "
                                "and VPCs); admit each tenant's own segment only", item.urn))
    return out


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


DETECTOR = "aws:guardduty/detector:Detector"


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


# --- keys the services that use them may use -------------------------------------------------

ASG = "aws:autoscaling/group:Group"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
KMS_KEY = "aws:kms/key:Key"
AUTOSCALING_ROLE = "AWSServiceRoleForAutoScaling"


def _grants(policy: Any, principal_part: str) -> bool:
    """Whether a key policy (JSON) lets a principal whose ARN contains ``principal_part`` use the
    key for volumes: decrypt, generate data keys and create grants (or kms:*)."""
    import json

    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return False
    statements = (document or {}).get("Statement") or []
    actions: set[str] = set()
    for st in statements if is_list(statements) else [statements]:
        if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal") or {}
        arns = principal.get("AWS") if isinstance(principal, Mapping) else principal
        arns = [arns] if isinstance(arns, str) else list(arns or [])
        if any(principal_part in str(a) for a in arns):
            found = st.get("Action") or []
            actions |= {found} if isinstance(found, str) else set(found)
    needed = {"kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
    return "kms:*" in actions or all(
        a in actions or (a.startswith("kms:GenerateDataKey") and "kms:GenerateDataKey*" in actions)
        for a in needed)


def check_kms_key_users(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A customer key that encrypts an auto scaling group's volumes lets the group's
    service-linked role use it; otherwise AWS launches no instance (the group stays empty)."""
    ids = Identities(resources)
    by_urn = ids.by_urn
    out: list[tuple[str, str | None]] = []
    for group in (r for r in resources if r.type == ASG):
        spec = group.props.get("launchTemplate") or {}
        template_refs = ids.of(group, "launchTemplate", spec.get("id") if spec else None)
        for template in (by_urn[u] for u in template_refs if u in by_urn):
            if template.type != LAUNCH_TEMPLATE:
                continue
            for bdm in template.props.get("blockDeviceMappings") or []:
                key_id = (bdm.get("ebs") or {}).get("kmsKeyId")
                if not key_id:
                    continue  # the AWS-managed EBS key: no grant needed
                for key in (by_urn[u] for u in ids.of(template, "blockDeviceMappings", key_id)
                            if u in by_urn):
                    policy = key.props.get("policy")
                    if key.type != KMS_KEY or is_unknown(policy):
                        continue  # known at up
                    if not _grants(policy, AUTOSCALING_ROLE):
                        out.append((f"key {key.name} encrypts the volumes of auto scaling group "
                                    f"{group.name} but its policy does not let "
                                    f"{AUTOSCALING_ROLE} use it: no instance would launch",
                                    key.urn))
    return out


# --- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None


RULES: tuple[Rule, ...] = (
    Rule("municloud-tags", "every taggable resource names its cloud and the prefecture or "
         "municipality it serves", resource_check=check_tags),
    Rule("municloud-no-open-ingress", "no security group admits 0.0.0.0/0 or ::/0",
         resource_check=check_no_open_ingress),
    Rule("municloud-encryption", "databases, keys, trails, vaults, volumes and buckets are "
         "encrypted or locked", resource_check=check_encryption),
    Rule("municloud-no-public-address", "no instance, subnet or database has a public address",
         resource_check=check_no_public_address),
    Rule("municloud-transit-gateway-defaults", "transit gateways have no default route table "
         "or propagation, the inspection attachment has appliance mode, VPNs carry only their "
         "segment", resource_check=check_transit_gateway_defaults),
    Rule("municloud-firewall-default-deny", "a network firewall drops what its rules do not "
         "let through", resource_check=check_firewall_default_deny),
    Rule("municloud-tenant-isolation", "no route between two municipalities' or prefectures' "
         "attachments", stack_check=check_tenant_isolation),
    Rule("municloud-joint-cloud-closed", "a joint cloud has no internet gateway, NAT or "
         "elastic IP, and databases let no connection out", stack_check=check_joint_cloud_closed),
    Rule("municloud-log-archive", "log buckets are versioned, object-locked, KMS-encrypted, "
         "private and expire at the retention", stack_check=check_log_archive),
    Rule("municloud-flow-logs", "every VPC has a flow log", stack_check=check_flow_logs),
    Rule("municloud-backup-copies", "backups are copied to a second region and cover every "
         "database", stack_check=check_backup_copies),
    Rule("municloud-vpn-outside-address", "customer gateways are routers' outside addresses, "
         "never inside a VPC of the cloud", stack_check=check_vpn_outside_address),
    Rule("municloud-egress-path", "NAT gateways sit behind the internet gateway, and where a "
         "network firewall is, nothing reaches the internet around it",
         stack_check=check_egress_path),
    Rule("municloud-balancer-reaches-targets", "a load balancer's security groups let it reach "
         "its targets' port and health-check port", stack_check=check_balancer_reaches_targets),
    Rule("municloud-ingress-from-tenants", "a security group admits only the segments of the "
         "municipalities (or the prefecture) it serves", stack_check=check_ingress_from_tenants),
    Rule("municloud-kms-key-users", "a customer key that encrypts an auto scaling group's "
         "volumes lets the group's service-linked role use it", stack_check=check_kms_key_users),
    Rule("municloud-aws-names", "every name is one AWS accepts (length, characters) and "
         "unique where AWS wants it unique", stack_check=check_aws_names),
)


def check_items(items: Sequence[Item]) -> dict[str, list[tuple[str, str | None]]]:
    """Every rule over ``items`` directly (without pulumi_policy): rule name -> violations."""
    results: dict[str, list[tuple[str, str | None]]] = {}
    for rule in RULES:
        found: list[tuple[str, str | None]] = []
        if rule.resource_check:
            for item in items:
                found += [(f"{item.name}: {msg}", item.urn)
                          for msg in rule.resource_check(item.type, item.props)]
        if rule.stack_check:
            found += rule.stack_check(items)
        results[rule.name] = found
    return results


# --- the CrossGuard pack -----------------------------------------------------------------------


def policy_pack_policies() -> list[Any]:
    """The rules as pulumi_policy policies, all MANDATORY."""
    from pulumi_policy import (
        EnforcementLevel,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    def resource_validator(check: ResourceCheck) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            for message in check(args.resource_type, args.props):
                report_violation(message, None)
        return validate

    def stack_validator(check: StackCheck) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            for message, urn in check(items_of(args.resources)):
                report_violation(message, urn)
        return validate

    policies: list[Any] = []
    for rule in RULES:
        if rule.resource_check:
            policies.append(ResourceValidationPolicy(
                name=rule.name, description=rule.description,
                validate=resource_validator(rule.resource_check),
                enforcement_level=EnforcementLevel.MANDATORY))
        if rule.stack_check:
            policies.append(StackValidationPolicy(
                name=rule.name, description=rule.description,
                validate=stack_validator(rule.stack_check),
                enforcement_level=EnforcementLevel.MANDATORY))
    return policies


def run_policy_pack(resources: Iterable[Any]) -> list[PolicyResult]:
    """Every policy's verdict over recorded resources, from the pack's own program
    (``pulumi/policy``) spoken to over gRPC as the engine does (:mod:`municloud.cloud.engine`):
    the rules see the analyzer's proxies and unknowns, not the recorder's plain lists."""
    from municloud.cloud.engine import shared_analyzer

    return shared_analyzer().analyze(resources)


def cidr_within(cidr: str, networks: Iterable[ipaddress.IPv4Network]) -> bool:
    """Whether ``cidr`` lies inside one of ``networks`` (for inventory-aware graph checks)."""
    net = ipaddress.IPv4Network(cidr)
    return any(net.subnet_of(n) for n in networks)
