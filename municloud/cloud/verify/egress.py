"""Checks of the security cloud's way out to the internet: the inspection VPC's attachment and
the VPC route tables around its NAT gateways, internet gateway and network firewall.

The intended topology is the one ``security_cloud.py`` builds: the proxies' subnets send
0.0.0.0/0 to the network firewall's endpoint (or, without a firewall, to a NAT gateway); the
firewall's subnets send it to a NAT gateway; the NAT gateways sit in public subnets whose route
table sends it to the internet gateway. Nothing else leads to the internet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from municloud.cloud import tags
from municloud.cloud.verify.model import (
    INSPECTION,
    CloudState,
    Finding,
    Resource,
    Status,
    nothing_found,
    owner_of,
    pass_finding,
    shared_hub,
    tag_map,
)

# boto3's route target keys, in the order a message names them
_ROUTE_TARGETS = ("GatewayId", "NatGatewayId", "VpcEndpointId", "TransitGatewayId",
                  "NetworkInterfaceId", "InstanceId", "VpcPeeringConnectionId",
                  "EgressOnlyInternetGatewayId", "CarrierGatewayId", "LocalGatewayId",
                  "CoreNetworkArn")
_GONE = ("deleted", "deleting", "failed")


def check_tgw_appliance_mode(state: CloudState) -> list[Finding]:
    """The inspection VPC's attachment has appliance mode on (Options.ApplianceModeSupport).

    Without it the transit gateway may send the two directions of one flow to firewall
    endpoints in different availability zones; a stateful firewall sees half a flow and drops
    it. The inspection attachment is found as :func:`shared_hub` finds it (tagged
    ``municloud:role=inspection``, or associated with the hub table)."""
    name = "tgw-appliance-mode"
    _, shared = shared_hub(state)
    inspection = [a for a in state.tgw_attachments
                  if a["TransitGatewayAttachmentId"] in shared and a.get("ResourceType") == "vpc"]
    if not inspection:
        return [Finding(
            name, Status.FAIL, "-",
            f"no inspection VPC attachment on the cloud's transit gateways in {state.region} "
            f"(none tagged {tags.ROLE}={INSPECTION}, none associated with a hub route table)",
            f"attach the inspection VPC and tag its attachment {tags.ROLE}={INSPECTION}")]
    vpc_attachments = {a["TransitGatewayAttachmentId"]: a for a in state.tgw_vpc_attachments}
    out: list[Finding] = []
    for att in inspection:
        att_id = att["TransitGatewayAttachmentId"]
        prefecture = tag_map(att).get(tags.PREFECTURE)
        serves = f"prefecture {prefecture}" if prefecture else "the cloud"
        options = vpc_attachments.get(att_id, {}).get("Options")
        if not isinstance(options, Mapping):
            out.append(Finding(
                name, Status.UNCHECKED, att_id,
                "the endpoint returned no Options for the inspection VPC's attachment "
                "(describe_transit_gateway_vpc_attachments)",
                "read ApplianceModeSupport by hand (aws ec2 "
                "describe-transit-gateway-vpc-attachments)", examined=1))
            continue
        mode = options.get("ApplianceModeSupport")
        if mode != "enable":
            out.append(Finding(
                name, Status.FAIL, att_id,
                f"appliance mode is {mode or 'not set'} on the attachment of inspection VPC "
                f"{att.get('ResourceId', '?')} (the way out of {serves}'s municipalities): the "
                "two directions of a flow may cross different zones' firewall endpoints, and "
                "the stateful firewall drops one of them",
                "turn it on: aws ec2 modify-transit-gateway-vpc-attachment --options "
                "ApplianceModeSupport=enable (appliance_mode_support='enable' in the program)",
                examined=1))
    if out:
        return out
    return [pass_finding(name, [a["TransitGatewayAttachmentId"] for a in inspection],
                         "appliance mode enabled on the inspection VPC's attachment")]


def _active(route: Mapping[str, Any]) -> bool:
    return bool(route.get("State", "active") == "active")


def _is_default(route: Mapping[str, Any]) -> bool:
    return route.get("DestinationCidrBlock") == "0.0.0.0/0" or route.get(
        "DestinationIpv6CidrBlock") == "::/0"


def _target(route: Mapping[str, Any]) -> str:
    for key in _ROUTE_TARGETS:
        if route.get(key):
            return str(route[key])
    return "nowhere"


def _endpoint(route: Mapping[str, Any]) -> str | None:
    """The VPC endpoint a route leads to (a Network Firewall or Gateway Load Balancer endpoint);
    AWS names it in GatewayId, boto3's shape also has VpcEndpointId."""
    for key in ("VpcEndpointId", "GatewayId"):
        value = str(route.get(key) or "")
        if value.startswith("vpce-"):
            return value
    return None


def _route_tables_of(state: CloudState) -> tuple[dict[str, Resource], dict[str, Resource]]:
    """(subnet id -> its explicitly associated table, VPC id -> its main table)."""
    explicit: dict[str, Resource] = {}
    main: dict[str, Resource] = {}
    for table in state.route_tables:
        for assoc in table.get("Associations", []):
            if assoc.get("AssociationState", {}).get("State", "associated") != "associated":
                continue
            if assoc.get("SubnetId"):
                explicit[assoc["SubnetId"]] = table
            elif assoc.get("Main"):
                main[table.get("VpcId", "")] = table
    return explicit, main


def check_egress_path(state: CloudState) -> list[Finding]:
    """Routes, not names, decide the way out of the cloud's VPCs (read from describe_route_tables,
    describe_nat_gateways, describe_internet_gateways and Network Firewall's describe_firewall):

    * a NAT gateway sits in a subnet whose route table sends 0.0.0.0/0 to an internet gateway;
    * no subnet other than those public (NAT) subnets routes 0.0.0.0/0 (or ::/0) straight to an
      internet gateway;
    * in a VPC with a network firewall (a firewall Network Firewall reports in the VPC, or a
      route to a ``vpce-`` endpoint), no subnet other than the firewall's own routes 0.0.0.0/0
      to a NAT gateway: the proxies go out through the firewall.

    A subnet without an associated table follows its VPC's main table, as in AWS.
    """
    name = "egress-path"
    if not state.vpcs:
        return [nothing_found(name, "VPC", state,
                              "deploy the cloud, or check --cloud and --region")]
    nats = [n for n in state.nat_gateways if n.get("State") not in _GONE]
    if not nats:
        return [Finding(
            name, Status.FAIL, "-",
            f"no NAT gateway in the VPCs tagged {tags.CLOUD}={state.cloud} in {state.region}: "
            "the proxies have no way to the internet",
            "deploy the inspection VPC's public subnets with their NAT gateways (pulumi up)")]
    explicit, main = _route_tables_of(state)
    subnets = {s["SubnetId"]: s for s in state.subnets}

    def table_of(subnet_id: str, vpc_id: str) -> Resource | None:
        return explicit.get(subnet_id) or main.get(vpc_id)

    def defaults(table: Resource | None) -> list[Resource]:
        return [r for r in (table or {}).get("Routes", []) if _active(r) and _is_default(r)]

    def whom(subnet_id: str) -> str:
        return owner_of(tag_map(subnets.get(subnet_id, {}))).describe()

    out: list[Finding] = []
    nat_subnets = {n.get("SubnetId", "") for n in nats}
    for nat in nats:
        subnet_id = nat.get("SubnetId", "")
        table = table_of(subnet_id, nat.get("VpcId", ""))
        exits = [_target(r) for r in defaults(table)]
        if not any(t.startswith("igw-") for t in exits):
            where = f"route table {table['RouteTableId']}" if table else "no route table"
            out.append(Finding(
                name, Status.FAIL, nat["NatGatewayId"],
                f"NAT gateway in subnet {subnet_id} (of {whom(subnet_id)}), whose {where} sends "
                f"0.0.0.0/0 to {', '.join(exits) or 'nowhere'}, not to an internet gateway: the "
                "proxies' traffic it takes cannot reach the internet",
                "route 0.0.0.0/0 of the NAT gateway's public subnet to the VPC's internet "
                "gateway", examined=1))
    examined = 0
    for vpc in state.vpcs:
        vpc_id = vpc["VpcId"]
        vpc_tables = [t for t in state.route_tables if t.get("VpcId") == vpc_id]
        endpoints = sorted({e for t in vpc_tables for r in t.get("Routes", [])
                            if _active(r) and (e := _endpoint(r))})
        firewalls = [f for f in state.firewalls if f.get("VpcId") == vpc_id]
        fw_subnets = {m.get("SubnetId", "") for f in firewalls
                      for m in f.get("SubnetMappings", [])}
        fw_subnets |= {s.get("Attachment", {}).get("SubnetId", "") for f in firewalls
                       for s in f.get("FirewallStatus", {}).get("SyncStates", {}).values()}
        fw_subnets.discard("")
        guarded = bool(firewalls or endpoints)
        fw_names = ", ".join(f.get("FirewallName", "?") for f in firewalls) or \
            f"endpoint {', '.join(endpoints)}"
        for subnet in (s for s in state.subnets if s.get("VpcId") == vpc_id):
            examined += 1
            subnet_id = subnet["SubnetId"]
            table = table_of(subnet_id, vpc_id)
            rtb = table["RouteTableId"] if table else "-"
            for route in defaults(table):
                target = _target(route)
                dest = route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")
                if target.startswith("igw-") and subnet_id not in nat_subnets:
                    out.append(Finding(
                        name, Status.FAIL, subnet_id,
                        f"subnet of {whom(subnet_id)} routes {dest} straight to internet "
                        f"gateway {target} (route table {rtb}) though no NAT gateway sits in "
                        "it: what runs there reaches the internet around the NAT gateways"
                        + (" and the firewall" if guarded else ""),
                        "send it to the firewall endpoint or a NAT gateway; only the NAT "
                        "gateways' public subnets route 0.0.0.0/0 to the internet gateway",
                        examined=1))
                elif target.startswith("nat-") and guarded and subnet_id not in fw_subnets:
                    if not fw_subnets:
                        out.append(Finding(
                            name, Status.UNCHECKED, subnet_id,
                            f"subnet of {whom(subnet_id)} routes {dest} to NAT gateway {target} "
                            f"(route table {rtb}) in VPC {vpc_id}, which routes to {fw_names}, "
                            "but no Network Firewall read here names its subnets: cannot "
                            "tell whether this is the firewall's subnet",
                            "grant network-firewall:ListFirewalls and DescribeFirewall, or "
                            "check the firewall's subnet mappings by hand", examined=1))
                        continue
                    out.append(Finding(
                        name, Status.FAIL, subnet_id,
                        f"subnet of {whom(subnet_id)} routes {dest} to NAT gateway {target} "
                        f"(route table {rtb}) around the network firewall ({fw_names}; its "
                        f"subnets: {', '.join(sorted(fw_subnets))})",
                        "route 0.0.0.0/0 of this subnet to the firewall endpoint of its zone; "
                        "only the firewall's subnets route to the NAT gateways", examined=1))
    if out:
        return out
    return [pass_finding(name, [n["NatGatewayId"] for n in nats],
                         f"{len(nats)} NAT gateway(s) behind the internet gateway; {examined} "
                         "subnet(s) examined, none reaches the internet another way")]
