"""What the lab builds for an inventory: Docker networks, containers, addresses and routes.

A pure function of the inventory model (no Docker here), so it is unit-tested without a lab and
``municloud lab up`` only has to make the engine match it. See docs/architecture.md, "The lab".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from municloud.inventory import Host, Prefecture, Problem
from municloud.segments import ROUTING_ROLES

# RFC 2544's benchmarking range: the only addresses a lab may use.
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
LABEL = "municloud.lab"  # every container and network the lab makes carries this label
PREFIX = "mc"  # names are mc-<lab>-..., short enough for Docker and readable in `docker ps`


@dataclass(frozen=True)
class LabNetwork:
    docker_name: str
    network_id: str  # the model's network id, e.g. tottori_shi.lgwan
    subnet: ipaddress.IPv4Network
    host_address: ipaddress.IPv4Address  # this machine's own address on the network's bridge


@dataclass(frozen=True)
class Route:
    destination: str  # "default" or a CIDR
    via: ipaddress.IPv4Address


@dataclass(frozen=True)
class LabContainer:
    docker_name: str
    host: Host
    networks: tuple[tuple[str, ipaddress.IPv4Address], ...]  # (docker network name, address)
    routes: tuple[Route, ...]
    capabilities: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Topology:
    lab: str
    networks: tuple[LabNetwork, ...]
    containers: tuple[LabContainer, ...] = field(default=())


def host_bridge_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The address this machine takes on a lab network: the last usable one (e.g. .254)."""
    return subnet.broadcast_address - 1


def management_addresses(topo: Topology) -> list[str]:
    """The lab machine's own addresses: the management addresses of a lab's hosts."""
    return [str(n.host_address) for n in topo.networks]


def docker_safe(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()


def problems(prefecture: Prefecture) -> list[Problem]:
    """Why the inventory cannot become a lab (it may still be valid for real hosts)."""
    file = str(prefecture.path / "hosts.yml")
    found: list[Problem] = []
    for net in prefecture.networks:
        if not net.cidr.subnet_of(LAB_RANGE):
            found.append(
                Problem(
                    file,
                    net.id,
                    f"{net.cidr} is outside the lab range {LAB_RANGE}",
                    f"a lab inventory uses addresses inside {LAB_RANGE} only (set aside for labs); "
                    "copy the inventory and renumber it for the lab",
                )
            )
            continue
        bridge = host_bridge_address(net.cidr)
        for host in prefecture.hosts:
            if bridge in host.addresses.values():
                found.append(
                    Problem(
                        file,
                        f"{host.name}.municloud_addresses",
                        f"{bridge} is the lab machine's own bridge address on {net.id}",
                        "choose another address: the lab keeps the last usable address of a range",
                    )
                )
    return found


def build(prefecture: Prefecture, lab: str | None = None) -> Topology:
    """The lab for ``prefecture``; call :func:`problems` first."""
    lab = docker_safe(lab or prefecture.name)
    networks = {
        net.id: LabNetwork(
            docker_name=f"{PREFIX}-{lab}-{docker_safe(net.id)}",
            network_id=net.id,
            subnet=net.cidr,
            host_address=host_bridge_address(net.cidr),
        )
        for net in prefecture.networks
    }
    containers = []
    for host in prefecture.hosts:
        routes: list[Route] = []
        if host.segment is not None:
            # A segment host sends everything through its municipality's gateway, so the
            # gateway's policy decides every packet that leaves the segment.
            municipality = next(
                m for m in prefecture.municipalities if m.group == host.municipality
            )
            net_id = next(iter(host.addresses))
            routes.append(Route("default", municipality.gateway.addresses[net_id]))
        elif host.municipality is None:
            # A shared host reaches each municipality's segments through that municipality's
            # gateway leg on the shared network they have in common.
            for m in prefecture.municipalities:
                for net_id in host.addresses:
                    if net_id in m.gateway.addresses:
                        routes.extend(
                            Route(str(seg.cidr), m.gateway.addresses[net_id])
                            for seg in m.segments.values()
                        )
                        break
        # NET_ADMIN: every host loads its own nftables ruleset (roles/firewall).
        caps = ["SYS_ADMIN", "NET_ADMIN"]
        sysctls: list[tuple[str, str]] = []
        if host.role in ROUTING_ROLES:
            # /proc/sys is read-only in a container: forwarding is set when it is made.
            sysctls.append(("net.ipv4.ip_forward", "1"))
        containers.append(
            LabContainer(
                docker_name=f"{PREFIX}-{lab}-{docker_safe(host.name)}",
                host=host,
                networks=tuple((networks[n].docker_name, a) for n, a in host.addresses.items()),
                routes=tuple(routes),
                capabilities=tuple(caps),
                sysctls=tuple(sysctls),
            )
        )
    return Topology(lab, tuple(networks.values()), tuple(containers))
