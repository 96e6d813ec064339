"""Stack rules over paths: who may reach whom, judged from transit gateway tables (routes,
associations, propagations), VPC route tables, security groups and the VPNs' selectors, with
CIDR arithmetic rather than tags; the way out of the inspection VPC; VPNs from outside addresses;
load balancers that can reach their targets."""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from municloud.cloud import tags
from municloud.cloud.policies.model import (
    CUSTOMER_GATEWAY,
    FIREWALL,
    INTERNET_GATEWAY,
    LISTENER,
    NAT_GATEWAY,
    ROUTE,
    ROUTE_TABLE_ASSOCIATION,
    SG,
    SUBNET,
    TARGET_GROUP,
    TGW_ASSOCIATION,
    TGW_PROPAGATION,
    TGW_ROUTE,
    TGW_VPC_ATTACHMENT,
    VPC,
    VPC_CIDR,
    VPN,
    Identities,
    Item,
    Ranges,
    ingress_rules,
    ipv4_networks,
    is_true,
)

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
        if r.type == TGW_ROUTE and is_true(r.known("blackhole")):
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
        nets = ipv4_networks(cidrs)
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
    return out + _routes_into_others(resources, attachments, tables)


def _foreign(dest: ipaddress.IPv4Network, own: list[ipaddress.IPv4Network],
             others: Ranges) -> list[tuple[str, ipaddress.IPv4Network]]:
    """The ranges of ``others`` that ``dest`` overlaps, leaving out ranges the owner shares
    (the joint cloud's tenant VPCs all use one range; their routes are judged by target)."""
    return [(whom, net) for whom, nets in sorted(others.items()) for net in nets
            if dest.overlaps(net) and not any(net.overlaps(o) for o in own)]


def _routes_into_others(resources: Sequence[Item], attachments: Mapping[str, _Attachment],
                        tables: Mapping[str, _Table]) -> list[tuple[str, str | None]]:
    """Routes judged by destination, whatever their target: a municipality's transit gateway
    table may not route into another municipality's range (a supernet to the shared hub would
    send a town's traffic toward its neighbours), and a prefecture's subnets may not route into
    another prefecture's municipalities. ``attachments`` and ``tables`` are
    :func:`transit_tables`' view of ``resources``."""
    by_municipality, by_prefecture = tenant_ranges(resources)
    ids = Identities(resources)
    # TGW table -> (the one municipality it serves, every other municipality's ranges)
    owner_of_table: dict[str, tuple[str, Ranges]] = {}
    for urn, tgw_table in tables.items():
        codes = {attachments[a].municipality for a in tgw_table.associated
                 if a in attachments} - {None}
        if len(codes) == 1:
            (code,) = codes
            owner_of_table[urn] = (str(code), {
                f"municipality {k}": v for k, v in by_municipality.items() if k != code})
    subnets = {r.urn: r.tags.get(tags.PREFECTURE) for r in resources if r.type == SUBNET
               and r.tags.get(tags.PREFECTURE) and not r.tags.get(tags.MUNICIPALITY)}
    vpc_tables: dict[str, set[str]] = defaultdict(set)  # VPC route table -> prefectures
    for assoc in (r for r in resources if r.type == ROUTE_TABLE_ASSOCIATION):
        for subnet in ids.of(assoc, "subnetId"):
            if subnets.get(subnet):
                for table_urn in ids.of(assoc, "routeTableId"):
                    vpc_tables[table_urn].add(str(subnets[subnet]))
    # municipality -> its prefecture, from the resources tenant_ranges read the ranges from
    prefecture_of = {r.tags[tags.MUNICIPALITY]: r.tags[tags.PREFECTURE] for r in resources
                     if r.type in (VPN, VPC) and r.tags.get(tags.MUNICIPALITY)
                     and r.tags.get(tags.PREFECTURE) and r.tags[tags.MUNICIPALITY] in
                     by_municipality}
    out: list[tuple[str, str | None]] = []
    for r in resources:
        (dest,) = ipv4_networks([r.props.get("destinationCidrBlock")]) or (None,)
        if dest is None or dest.prefixlen == 0:
            continue  # the way out is the egress rule's to judge
        if r.type == TGW_ROUTE and not is_true(r.known("blackhole")):
            for table in ids.of(r, "transitGatewayRouteTableId"):
                if table not in owner_of_table:
                    continue
                code, others = owner_of_table[table]
                own = by_municipality.get(code, [])
                for other, net in _foreign(dest, own, others):
                    out.append((f"the table of municipality {code} routes {dest}, which "
                                f"overlaps {net} of "
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


# --- the way out of a VPC ------------------------------------------------------------------------

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
    """The groups (URNs, or ids outside the stack) ``item`` opens and the ranges it admits."""
    rules = ingress_rules(item.type, item.props)
    if not rules:
        return set(), []
    groups = {item.urn} if item.type == SG else ids.of(item, "securityGroupId")
    return groups, [str(c) for r in rules for c in r.get("cidrBlocks") or [] if c]


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
            for net in ipv4_networks(cidrs):
                if not any(net.subnet_of(a) for a in allowed):
                    out.append((f"{item.name} lets {net} into {group.name}, which serves {whom}:"
                                f" {net} is not inside any range of {whom} (its VPNs' segments "
                                "and VPCs); admit each tenant's own segment only", item.urn))
    return out
