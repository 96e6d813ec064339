"""Checks of the network: transit gateways and tenant isolation, security groups, internet
gateways, public addresses."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from municloud.cloud import tags
from municloud.cloud.verify.model import (
    INSPECTION,
    WORLD,
    CloudState,
    Finding,
    KnownRange,
    Owner,
    Status,
    attachment_tags,
    id_list,
    nothing_found,
    owner_of,
    pass_finding,
    prefecture_of,
    range_owners,
    shared_hub,
    tag_map,
)


def check_tgw_default_route_table(state: CloudState) -> list[Finding]:
    """Each transit gateway of the cloud has default association and propagation disabled."""
    name = "tgw-default-route-table"
    if not state.transit_gateways:
        return [nothing_found(name, "transit gateway", state,
                              "deploy the security cloud (pulumi up), or check --cloud and "
                              "--region")]
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
    return [pass_finding(name, ids, "default route table association and propagation disabled")]


Ranges = Sequence[tuple[ipaddress.IPv4Network, Owner, str]]


def _same_tenant(a: Owner, b: Owner) -> bool:
    return (a.municipality, a.prefecture) == (b.municipality, b.prefecture)


def _judge_hub(name: str, table_id: str, routes: Sequence[Mapping[str, Any]],
               propagations: Sequence[Mapping[str, Any]], owners: Mapping[str, Owner],
               ranges: Ranges, served: set[str]) -> list[Finding]:
    """The hub (inspection) table may reach every tenant of the prefectures the cloud serves,
    each tenant's range to that tenant only:

    * a route or propagation to an attachment of a prefecture the cloud does not serve, or of
      nobody, fails;
    * a route into a range of a prefecture the cloud does not serve fails, whatever its target;
    * a route to a tenant's attachment whose destination takes in (or lies in) another
      tenant's range fails (0.0.0.0/0 to one municipality, say); a route whose target is not
      returned (moto) fails when its destination spans the ranges of two tenants or more.

    Routes to the shared inspection attachment itself are not judged.
    """
    fix = ("remove the route: the hub routes each served municipality's own range to that "
           "municipality's attachment, and nothing else")
    serves = ", ".join(sorted(served)) or "nobody known"
    out: list[Finding] = []

    def fail(message: str) -> None:
        out.append(Finding(name, Status.FAIL, table_id, f"the hub table {message}", fix,
                           examined=1))

    def unserved(owner: Owner) -> bool:
        return owner.prefecture is None or owner.prefecture not in served

    for route in routes:
        dest = route.get("DestinationCidrBlock")
        net = ipaddress.ip_network(dest, strict=False) if dest else None
        v4 = net if isinstance(net, ipaddress.IPv4Network) else None
        inside = [(cidr, owner, source) for cidr, owner, source in ranges
                  if v4 is not None and v4.overlaps(cidr)]
        foreign = [(c, o, s) for c, o, s in inside if unserved(o)]
        if foreign:
            cidr, owner, source = foreign[0]
            fail(f"routes {dest}, inside {cidr} of {owner.describe()} ({source}), of prefecture "
                 f"{owner.prefecture}, which this cloud does not serve (it serves {serves})")
            continue
        targets = [t.get("TransitGatewayAttachmentId", "")
                   for t in route.get("TransitGatewayAttachments", [])]
        for att_id in targets:
            owner = owners.get(att_id, Owner(None, None))
            if owner.inspection:
                continue
            if not (owner.municipality or owner.prefecture):
                fail(f"routes {dest} to {att_id}, which no tag of this cloud says whom it serves")
            elif unserved(owner):
                fail(f"routes {dest} to {att_id} of {owner.describe()}, of prefecture "
                     f"{owner.prefecture}, which this cloud does not serve (it serves {serves})")
            else:
                others = [(c, o, s) for c, o, s in inside if not _same_tenant(o, owner)]
                if others and v4 is not None:
                    cidr, other, source = others[0]
                    how = "takes in" if cidr.subnet_of(v4) else "lies inside"
                    fail(f"routes {dest} to {att_id} of {owner.describe()}, but {dest} {how} "
                         f"{cidr} of {other.describe()} ({source})")
        if not targets:
            tenants: list[tuple[ipaddress.IPv4Network, Owner, str]] = []
            for cidr, owner, source in inside:
                if not any(_same_tenant(owner, o) for _, o, _ in tenants):
                    tenants.append((cidr, owner, source))
            if len(tenants) > 1:
                fail(f"routes {dest} over ranges of more than one tenant: " + ", ".join(
                    f"{c} of {o.describe()} ({s})" for c, o, s in tenants))
    for prop in propagations:
        att_id = prop.get("TransitGatewayAttachmentId", "")
        owner = owners.get(att_id, Owner(None, None))
        if not owner.inspection and unserved(owner):
            fail(f"learns routes by propagation from {att_id} of {owner.describe()}, which this "
                 f"cloud does not serve (it serves {serves})")
    return out


def check_tgw_isolation(state: CloudState, known: Sequence[KnownRange] = ()) -> list[Finding]:
    """No tenant's route table leads to another tenant (see the package doc string,
    :mod:`municloud.cloud.verify`)."""
    name = "tgw-isolation"
    eff = attachment_tags(state)
    hub_tables, shared = shared_hub(state)
    owners = {att_id: Owner(None, None, True) if att_id in shared else owner_of(t)
              for att_id, t in eff.items()}
    ranges = range_owners(state, known)
    # The prefectures the cloud serves: those of its route tables (each municipality has its
    # own), and with --inventory those of the inventories (all of them this cloud's).
    served = {o.prefecture for o in (owner_of(tag_map(t)) for t in state.tgw_route_tables)
              if o.prefecture} | {prefecture_of(r.prefecture) for r in known}
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
            if table_id in state.tgw_routes_truncated:
                out.append(Finding(name, Status.UNCHECKED, table_id,
                                   "more than 1000 routes; only the first 1000 were read",
                                   "check the rest by hand (aws ec2 "
                                   "search-transit-gateway-routes)"))
            out.extend(_judge_hub(name, table_id, routes, propagations, owners, ranges, served))
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
        return [Finding(name, Status.FAIL, id_list([t["TransitGatewayId"]
                                                 for t in state.transit_gateways]),
                        f"no transit gateway route table to examine ({ignored} empty untagged "
                        "ignored)",
                        "give each municipality its own route table tagged with its code and "
                        "the inspection VPC a table tagged with the inspection role")]
    if out:
        return out
    note = f", {ignored} empty untagged ignored" if ignored else ""
    return [pass_finding(name, examined, f"{len(examined)} route table(s) examined{note}, "
                         "none leads to another tenant")]



def check_no_world_ingress(state: CloudState) -> list[Finding]:
    name = "sg-no-world-ingress"
    if not state.vpcs:
        return [nothing_found(name, "VPC", state,
                              "deploy the cloud, or check --cloud and --region")]
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
    return out or [pass_finding(name, [s["GroupId"] for s in state.security_groups],
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
        return [nothing_found(name, "VPC", state,
                              "deploy the cloud, or check --cloud and --region")]
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
    return out or [pass_finding(name, sorted(vpc_ids),
                                f"{len(vpc_ids)} VPC(s) examined, no internet gateway attached")]


def check_no_public_ip(state: CloudState) -> list[Finding]:
    name = "no-public-ip"
    if not state.vpcs:
        return [nothing_found(name, "VPC", state,
                              "deploy the cloud, or check --cloud and --region")]
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
    return out or [pass_finding(name, ids, f"{len(state.instances)} instance(s), "
                                f"{len(state.network_interfaces)} network interface(s), "
                                f"{len(state.db_instances)} database(s), none with a public IP")]


def check_subnets_no_public_ip_on_launch(state: CloudState) -> list[Finding]:
    name = "subnet-no-public-ip"
    if not state.subnets:
        return [nothing_found(name, "subnet (in the cloud's VPCs)", state,
                              "deploy the cloud, or check --cloud and --region")]
    out = [Finding(name, Status.FAIL, s["SubnetId"], "maps a public IP on launch",
                   "set map_public_ip_on_launch to false", examined=1)
           for s in state.subnets if s.get("MapPublicIpOnLaunch")]
    return out or [pass_finding(name, [s["SubnetId"] for s in state.subnets],
                                "no subnet maps a public IP on launch")]


def check_sg_ingress_tenants(state: CloudState, known: Sequence[KnownRange]) -> list[Finding]:
    """Every ingress range of a security group lies within the ranges of those it serves.

    Whom a group serves comes from its tags: ``municloud:municipality=CODE`` (a joint-cloud
    database's group) admits only that municipality's segments; ``municloud:prefecture=CODE``
    alone (a proxy or its balancer) only the segments of that prefecture's municipalities and
    the prefecture's shared networks. The ranges come from the inventories (``--inventory``), so
    the check runs only with them; a group serving someone no inventory describes is UNCHECKED.
    An untagged group is left to ``serves-tags``. Rules naming other groups (no CIDR) pass.
    """
    name = "sg-ingress-tenants"
    by_municipality: dict[str, list[ipaddress.IPv4Network]] = {}
    by_prefecture: dict[str, list[ipaddress.IPv4Network]] = {}
    sources: dict[str, str] = {}
    for r in known:
        net = ipaddress.IPv4Network(r.cidr, strict=False)
        pref = r.prefecture[:2]
        if r.municipality:
            by_municipality.setdefault(r.municipality, []).append(net)
            sources[r.municipality] = r.inventory
        by_prefecture.setdefault(pref, []).append(net)
        sources[pref] = r.inventory
    out: list[Finding] = []
    examined: list[str] = []
    for sg in state.security_groups:
        group_tags = tag_map(sg)
        municipality = group_tags.get(tags.MUNICIPALITY)
        prefecture = group_tags.get(tags.PREFECTURE)
        if municipality:
            whom, allowed = f"municipality {municipality}", by_municipality.get(municipality)
            what, source = "its segments", sources.get(municipality)
        elif prefecture:
            whom, allowed = f"prefecture {prefecture}", by_prefecture.get(prefecture[:2])
            what = "its municipalities' segments and its shared networks"
            source = sources.get(prefecture[:2])
        else:
            continue
        examined.append(sg["GroupId"])
        label = f"{sg['GroupId']} ({sg.get('GroupName', '')})"
        for perm in sg.get("IpPermissions", []):
            cidrs = [str(r.get("CidrIp")) for r in perm.get("IpRanges", []) if r.get("CidrIp")] + \
                [str(r.get("CidrIpv6")) for r in perm.get("Ipv6Ranges", []) if r.get("CidrIpv6")]
            if cidrs and not allowed:
                out.append(Finding(
                    name, Status.UNCHECKED, sg["GroupId"],
                    f"group {label} serves {whom}, whose ranges no inventory given describes",
                    f"pass the inventory of {whom} with --inventory", examined=1))
                break
            for cidr in cidrs:
                admitted = ipaddress.ip_network(cidr, strict=False)
                if isinstance(admitted, ipaddress.IPv4Network) and allowed and any(
                        admitted.subnet_of(a) for a in allowed):
                    continue
                out.append(Finding(
                    name, Status.FAIL, sg["GroupId"],
                    f"group {label} serves {whom} but admits {cidr} on {_ports(perm)}: not "
                    f"inside {what} (inventory {source})",
                    f"admit only the segments of {whom} (one rule per segment), never a range "
                    "that takes in other tenants", examined=1))
    if any(f.status is Status.FAIL for f in out):
        return [f for f in out if f.status is Status.FAIL]
    if not examined:
        return [Finding(name, Status.FAIL, "-",
                        f"no security group in the cloud's VPCs says whom it serves "
                        f"({tags.MUNICIPALITY} or {tags.PREFECTURE})",
                        "deploy the cloud, or check --cloud and --region")]
    unchecked = {f.resource for f in out}
    judged = [g for g in examined if g not in unchecked]
    passed = [pass_finding(name, judged, f"{len(judged)} security group(s), each admitting only "
                           "those it serves")] if judged else []
    return passed + out


def _rule_text(perm: Mapping[str, Any]) -> str:
    peers = [str(r.get("CidrIp")) for r in perm.get("IpRanges", [])] + \
        [str(r.get("CidrIpv6")) for r in perm.get("Ipv6Ranges", [])] + \
        [str(p.get("GroupId")) for p in perm.get("UserIdGroupPairs", [])] + \
        [str(p.get("PrefixListId")) for p in perm.get("PrefixListIds", [])]
    return f"{_ports(perm)} to {', '.join(peers) or 'nothing named'}"


def check_db_no_egress(state: CloudState) -> list[Finding]:
    """The security groups of each database (describe_db_instances' VpcSecurityGroups) have no
    egress rule at all: a database only answers. AWS gives every new group an allow-all egress
    rule; the joint cloud program removes it (``egress=[]``)."""
    name = "db-no-egress"
    if not state.db_instances:
        return [Finding(name, Status.FAIL, "-",
                        f"no RDS instance tagged {tags.CLOUD}={state.cloud} or in its VPCs in "
                        f"{state.region}: the core systems' data was not found",
                        "check --cloud and --region, and tag the databases")]
    groups = {g["GroupId"]: g for g in state.security_groups}
    out: list[Finding] = []
    examined: list[str] = []
    for db in state.db_instances:
        db_id = db["DBInstanceIdentifier"]
        whom = owner_of(tag_map(db)).describe()
        for ref in db.get("VpcSecurityGroups", []):
            group_id = ref.get("VpcSecurityGroupId", "")
            group = groups.get(group_id)
            if group is None:
                out.append(Finding(
                    name, Status.UNCHECKED, group_id,
                    f"security group of database {db_id} ({whom}) is in no VPC of the cloud: "
                    "verify did not read it",
                    f"tag the database's VPC {tags.CLOUD}={state.cloud}", examined=1))
                continue
            examined.append(group_id)
            egress = group.get("IpPermissionsEgress", [])
            if egress:
                out.append(Finding(
                    name, Status.FAIL, group_id,
                    f"security group {group.get('GroupName', '')} of database {db_id} ({whom}) "
                    f"lets connections out ({'; '.join(_rule_text(p) for p in egress)}): a "
                    "database only answers, and one that can connect out can send the core "
                    "systems' data wherever its routes lead",
                    "revoke every egress rule of the group (aws ec2 "
                    "revoke-security-group-egress; egress=[] in the program)", examined=1))
    if any(f.status is Status.FAIL for f in out):
        return [f for f in out if f.status is Status.FAIL]
    passed = [pass_finding(name, sorted(set(examined)), f"{len(state.db_instances)} database(s), "
                           "their security groups let nothing out")] if examined else []
    return passed + out
