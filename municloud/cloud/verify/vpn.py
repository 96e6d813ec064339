"""Checks of the cloud's site-to-site VPNs: what each tunnel carries, and where it comes from."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from municloud.cloud.verify.model import (
    CloudState,
    Finding,
    KnownRange,
    Status,
    nothing_found,
    owner_of,
    pass_finding,
    tag_map,
    vpc_cidrs,
)

# (key in Options, which side, what the program puts there)
_SELECTORS = (
    ("LocalIpv4NetworkCidr", "customer side", "the municipality's own segment"),
    ("RemoteIpv4NetworkCidr", "AWS side", "the cloud's range"),
)


def _cloud_ranges(state: CloudState) -> list[tuple[ipaddress.IPv4Network, str]]:
    return [(ipaddress.IPv4Network(cidr, strict=False), v["VpcId"])
            for v in state.vpcs for cidr in vpc_cidrs(v)]


def check_vpn_selectors(state: CloudState, known: Sequence[KnownRange] = ()) -> list[Finding]:
    """Each VPN connection carries only its municipality's segment and the cloud's range.

    Read from describe_vpn_connections' Options: LocalIpv4NetworkCidr (the customer side) is
    not 0.0.0.0/0 and, with ``--inventory``, lies inside a segment of the municipality the VPN
    is tagged with; RemoteIpv4NetworkCidr (the AWS side) is not 0.0.0.0/0 and lies inside a VPC
    of the cloud. AWS takes 0.0.0.0/0 for a selector that is not set.

    moto 5.2.5 (the test double) drops the Options of a VPN connection: against it, each VPN is
    reported UNCHECKED ("no traffic selectors returned"); the failing paths are tested on
    hand-built states only.
    """
    name = "vpn-selectors"
    vpns = [v for v in state.vpn_connections if v.get("State") not in ("deleted", "deleting")]
    if not vpns:
        return [nothing_found(name, "VPN connection (or one on the cloud's transit gateways)",
                              state, "connect the municipalities over site-to-site VPN (pulumi "
                              "up), or check --cloud and --region")]
    cloud_ranges = _cloud_ranges(state)
    segments: dict[str, list[tuple[ipaddress.IPv4Network, str]]] = {}
    for r in known:
        if r.municipality:
            segments.setdefault(r.municipality, []).append(
                (ipaddress.IPv4Network(r.cidr, strict=False), r.inventory))
    out: list[Finding] = []
    for vpn in vpns:
        vpn_id = vpn["VpnConnectionId"]
        owner = owner_of(tag_map(vpn))
        whom = owner.describe()
        options = vpn.get("Options") or {}
        if not any(key in options for key, _, _ in _SELECTORS):
            out.append(Finding(
                name, Status.UNCHECKED, vpn_id,
                f"the endpoint returned no traffic selectors (Options.LocalIpv4NetworkCidr, "
                f"RemoteIpv4NetworkCidr) for the VPN of {whom}; AWS returns them for every VPN",
                "read them by hand (aws ec2 describe-vpn-connections) or run against AWS",
                examined=1))
            continue
        for key, side, meant in _SELECTORS:
            value = options.get(key)
            shown = value or "not set (AWS takes 0.0.0.0/0)"
            try:
                net = ipaddress.ip_network(str(value or "0.0.0.0/0"), strict=False)
            except ValueError:
                out.append(Finding(name, Status.FAIL, vpn_id,
                                   f"{key} of the VPN of {whom} is {value!r}, not an address "
                                   "range", f"set it to {meant}", examined=1))
                continue
            fix = (f"replace the VPN with {key} set to {meant} (the selectors cannot be "
                   "changed on a live connection: create the new one, move the traffic)")
            if net.prefixlen == 0:
                out.append(Finding(
                    name, Status.FAIL, vpn_id,
                    f"{key} ({side}) of the VPN of {whom} is {shown}: the tunnel carries any "
                    "address, not only the segment it serves", fix, examined=1))
                continue
            if not isinstance(net, ipaddress.IPv4Network):
                continue  # IPv6 selectors take other keys; not used by the programs
            if key == "RemoteIpv4NetworkCidr" and not any(
                    net.subnet_of(c) for c, _ in cloud_ranges):
                out.append(Finding(
                    name, Status.FAIL, vpn_id,
                    f"{key} ({side}) of the VPN of {whom} is {net}, inside no VPC of the cloud "
                    f"({', '.join(str(c) for c, _ in cloud_ranges) or 'none found'})",
                    fix, examined=1))
            own = segments.get(owner.municipality or "", [])
            if key == "LocalIpv4NetworkCidr" and own and not any(
                    net.subnet_of(c) for c, _ in own):
                out.append(Finding(
                    name, Status.FAIL, vpn_id,
                    f"{key} ({side}) of the VPN of {whom} is {net}, inside none of its segments "
                    f"({', '.join(str(c) for c, _ in own)}, inventory {own[0][1]})",
                    fix, examined=1))
    if any(f.status is Status.FAIL for f in out):
        return out
    unchecked = {f.resource for f in out}
    judged = [v["VpnConnectionId"] for v in vpns if v["VpnConnectionId"] not in unchecked]
    passed = [pass_finding(name, judged, f"{len(judged)} VPN connection(s), each carrying its "
                           "segment and the cloud's range only")] if judged else []
    return passed + out


def check_vpn_outside_address(state: CloudState) -> list[Finding]:
    """Each customer gateway of the cloud (those of its VPNs, or tagged with it) is a router's
    outside address: one inside a VPC of the cloud, the ranges its tunnel carries, can never
    bring the tunnel up. Read from describe_customer_gateways (IpAddress)."""
    name = "vpn-outside-address"
    gateways = [g for g in state.customer_gateways if g.get("State") not in ("deleted",
                                                                            "deleting")]
    if not gateways:
        return [nothing_found(name, "customer gateway (of the cloud's VPNs)", state,
                              "connect the municipalities over site-to-site VPN (pulumi up), or "
                              "check --cloud and --region")]
    serves: dict[str, str] = {}
    for vpn in state.vpn_connections:
        owner = owner_of(tag_map(vpn))
        if owner.municipality or owner.prefecture:
            serves[vpn.get("CustomerGatewayId", "")] = owner.describe()
    ranges = _cloud_ranges(state)
    out: list[Finding] = []
    for gateway in gateways:
        cgw = gateway["CustomerGatewayId"]
        own = owner_of(tag_map(gateway))
        whom = own.describe() if own.municipality or own.prefecture else serves.get(
            cgw, "nobody (untagged)")
        value = str(gateway.get("IpAddress") or "")
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            out.append(Finding(name, Status.FAIL, cgw,
                               f"customer gateway of {whom}: {value!r} is not an address",
                               "recreate it with the router's outside address", examined=1))
            continue
        for net, vpc_id in ranges:
            if address in net:
                out.append(Finding(
                    name, Status.FAIL, cgw,
                    f"customer gateway of {whom} is {address}, inside {net} of VPC {vpc_id}: a "
                    "router's outside address is never inside the cloud, and the tunnel never "
                    "comes up",
                    "recreate the customer gateway (and its VPN) with the router's outside "
                    "address, municloud_outside_address in the inventory", examined=1))
                break
    return out or [pass_finding(name, [g["CustomerGatewayId"] for g in gateways],
                                f"{len(gateways)} customer gateway(s), each outside the "
                                "cloud's VPCs")]

