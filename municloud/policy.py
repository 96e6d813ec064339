"""The segment policy applied to one inventory: who may connect to what, checked and made concrete.

municloud/flows.py says, per guideline model, which zone may reach which service. This module
applies that to a prefecture's real hosts and addresses:

* :func:`problems`: where hosts may sit, and the invariants, checked on the graph of every allowed
  flow of the prefecture (catalogue and site flows, every municipality, the shared services), so a
  chain of flows that leads around an invariant is refused, naming the site flow that opens it.
* :func:`allowed`: every flow made concrete (:class:`Allow`: source addresses, destination hosts,
  ports). The firewall rulesets (municloud/nftables.py) are rendered from these.
* :func:`matrix`: the expected outcome of every (source host, destination service) pair of each
  municipality and of the shared services, for the acceptance tests to probe with real packets.

Standard library only (see flows.py).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from municloud.flows import (
    FLOWS,
    INTERNET_EXITS,
    INVARIANTS,
    MUNICIPALITY_ZONES,
    ROLE_ZONES,
    SHARED_ZONES,
    Flow,
    Service,
    Zone,
    roles_in,
    zone_of,
    zone_of_segment,
)
from municloud.inventory import Host, Municipality, Prefecture
from municloud.problems import Problem
from municloud.segments import HostRole, Segment, SharedNetwork

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


# --- zones of hosts ------------------------------------------------------------------------------


# The zones and networks of a host are asked for again and again (for every flow, every
# municipality, every ruleset); each is computed once and kept in the host's cache.


def host_zones(host: Host) -> frozenset[Zone]:
    """The zones ``host`` has a leg in (a gateway is the zone GATEWAY of its municipality)."""
    found: frozenset[Zone] | None = host.cache.get("zones")
    if found is None:
        if host.municipality is not None:
            if host.role is HostRole.GATEWAY:
                found = frozenset({Zone.GATEWAY})
            else:
                assert host.segment is not None
                found = frozenset({zone_of_segment(host.segment)})
        else:
            found = frozenset(zone_of(n) for n in host.addresses)
        host.cache["zones"] = found
    return found


def home_zones(host: Host) -> frozenset[Zone]:
    """The zones where ``host`` offers its services and starts its flows."""
    found: frozenset[Zone] | None = host.cache.get("home_zones")
    if found is None:
        found = host.cache["home_zones"] = (
            host_zones(host) & ROLE_ZONES[host.role] or host_zones(host)
        )
    return found


def networks_of(host: Host) -> frozenset[str]:
    found: frozenset[str] | None = host.cache.get("networks")
    if found is None:
        found = host.cache["networks"] = frozenset(host.addresses)
    return found


def flows_of(prefecture: Prefecture, municipality: Municipality) -> list[Flow]:
    """The flows that apply to ``municipality``: its model's, then the site's."""
    model = municipality.model
    found = [f for f in (*FLOWS, *prefecture.flows) if model in f.models]
    return found + [f for f in municipality.flows if model in f.models]


# --- concrete flows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allow:
    """One flow made concrete for one municipality (or for the shared services, ``None``)."""

    flow: Flow
    service: Service
    municipality: str | None
    source_zone: Zone
    sources: tuple[IPv4Network, ...]  # the addresses connections may come from
    source_hosts: tuple[Host, ...] | None  # those hosts, or None: any address of the zone
    destination_zone: Zone
    destinations: tuple[Host, ...]

    def admits(self, host: Host) -> bool:
        """Whether connections from ``host`` are allowed by this flow."""
        if self.source_hosts is not None:
            return host in self.source_hosts
        if self.source_zone in MUNICIPALITY_ZONES:
            return host.municipality == self.municipality and self.source_zone in host_zones(host)
        return host.municipality is None and self.source_zone in home_zones(host)

    @property
    def crosses_gateway(self) -> bool:
        """Whether the gateway of the municipality forwards these connections."""
        if self.municipality is None or self.source_zone is Zone.GATEWAY:
            return False
        zones = {h_zone for h in self.destinations for h_zone in home_zones(h)}
        return zones != {self.source_zone} and Zone.GATEWAY not in zones


def address_networks(host: Host) -> dict[str, IPv4Network]:
    """Each address of ``host`` as a one-address range, by network id."""
    found: dict[str, IPv4Network] | None = host.cache.get("address_networks")
    if found is None:
        # From the address's integer: IPv4Network(address) would parse its text again.
        found = host.cache["address_networks"] = {
            n: IPv4Network((int(a), 32)) for n, a in host.addresses.items()
        }
    return found


def host_networks(hosts: Iterable[Host]) -> tuple[IPv4Network, ...]:
    """Every address of ``hosts``, collapsed into as few ranges as cover them exactly."""
    return tuple(collapse(n for h in hosts for n in address_networks(h).values()))


def collapse(networks: Iterable[IPv4Network]) -> list[IPv4Network]:
    """What ``ipaddress.collapse_addresses`` returns (the fewest ranges that cover exactly the
    addresses of ``networks``, in order), several times faster: the union as runs of addresses,
    each run split into ranges once (a run that is one of the given ranges is that range). The
    split of a set of addresses into the fewest aligned ranges is unique, so the two agree
    (tests/unit/test_generate.py compares them)."""
    given: dict[tuple[int, int], IPv4Network] = {}
    networks = list(networks)
    if len(networks) == 1:
        return networks  # one range is its own collapse (and the common case)
    for n in networks:
        first = int(n.network_address)
        given.setdefault((first, first | ((1 << (32 - n.prefixlen)) - 1)), n)
    runs: list[list[int]] = []
    for first, last in sorted(given):
        if runs and first <= runs[-1][1] + 1:
            if last > runs[-1][1]:
                runs[-1][1] = last
        else:
            runs.append([first, last])
    found: list[IPv4Network] = []
    for first, last in runs:
        same = given.get((first, last))
        if same is not None:
            found.append(same)
        else:
            found.extend(
                ipaddress.summarize_address_range(IPv4Address(first), IPv4Address(last))
            )
    return found


def _routed(
    prefecture: Prefecture,
    municipality: Municipality | None,
    dest: Host,
    source: Zone,
    source_hosts: Iterable[Host] | None,
) -> bool:
    """Whether a network path exists from the flow's sources to ``dest``."""
    if dest.municipality is not None:
        # Into a municipality: only its own instance reaches it; from its own zones (and from
        # management) through its gateway, from a shared zone through the gateway's leg there.
        if municipality is None or dest.municipality != municipality.group:
            return False
        if source in MUNICIPALITY_ZONES or source is Zone.MANAGEMENT:
            return True
        return _network_of(source) in municipality.uplinks
    if source is Zone.MANAGEMENT:
        return True
    if municipality is not None and source in MUNICIPALITY_ZONES:
        return bool(networks_of(dest) & municipality.uplinks)  # through the gateway's uplinks
    hosts = list(source_hosts or [h for h in prefecture.shared_hosts if source in home_zones(h)])
    return any(networks_of(h) & networks_of(dest) for h in hosts)


def _network_of(zone: Zone) -> str:
    """The inventory's name of a shared zone's network."""
    return SharedNetwork.INTERNET.value if zone is Zone.PUBLIC_INTERNET else zone.value


def _instance(
    prefecture: Prefecture, municipality: Municipality | None, flow: Flow
) -> Allow | None:
    service = prefecture.services[flow.service]
    source_hosts: tuple[Host, ...] | None = None
    if flow.source is Zone.MANAGEMENT:
        sources = prefecture.management
    elif flow.source in MUNICIPALITY_ZONES:
        assert municipality is not None
        candidates = [
            h
            for h in municipality.hosts
            if flow.source in host_zones(h)
            and (flow.source_roles is None or h.role in flow.source_roles)
        ]
        if flow.source is Zone.GATEWAY or flow.source_roles is not None:
            source_hosts = tuple(candidates)
            sources = host_networks(candidates)
        else:
            sources = (municipality.segments[Segment(flow.source.value)].cidr,)
    else:
        candidates = [
            h
            for h in prefecture.shared_hosts
            if flow.source in home_zones(h)
            and (flow.source_roles is None or h.role in flow.source_roles)
        ]
        if flow.source_roles is not None:
            source_hosts = tuple(candidates)
            sources = host_networks(candidates)
        else:
            network = next(
                (n for s, n in prefecture.shared_networks.items() if zone_of(s) is flow.source),
                None,
            )
            sources = (network.cidr,) if network else ()
    if not sources:
        return None

    zones = {flow.destination} if flow.destination else set(service.zones)
    # A municipality's instance reaches its own hosts, and shared hosts only from its own zones;
    # the shared instance (municipality None) reaches shared hosts from shared zones.
    pool: list[Host] = []
    if municipality is not None:
        pool += municipality.hosts
        if flow.source in MUNICIPALITY_ZONES:
            pool += prefecture.shared_hosts
    else:
        pool += prefecture.shared_hosts
    destinations = tuple(
        h
        for h in pool
        if h.role in service.roles
        and home_zones(h) & zones
        and (source_hosts is None or h not in source_hosts)
        and _routed(prefecture, municipality, h, flow.source, source_hosts)
    )
    if not destinations:
        return None
    dest_zone = next(iter(sorted(home_zones(destinations[0]) & zones)))
    return Allow(
        flow,
        service,
        municipality.group if municipality else None,
        flow.source,
        sources,
        source_hosts,
        dest_zone,
        destinations,
    )


def allowed(prefecture: Prefecture) -> list[Allow]:
    """Every flow of the prefecture made concrete: per municipality, then the shared services.

    Needs ``prefecture.management`` for the management flows (they are left out without it).
    Computed once per prefecture (every ruleset of the prefecture needs them) and kept in its
    cache; each call returns a new list.
    """
    found: tuple[Allow, ...] | None = prefecture.cache.get("allowed")
    if found is None:
        found = prefecture.cache["allowed"] = tuple(_allowed(prefecture))
    return list(found)


def _allowed(prefecture: Prefecture) -> list[Allow]:
    found: list[Allow] = []
    for m in prefecture.municipalities:
        for flow in flows_of(prefecture, m):
            if flow.source in SHARED_ZONES and flow.destination not in MUNICIPALITY_ZONES:
                continue  # shared to shared: once, below
            allow = _instance(prefecture, m, flow)
            if allow:
                found.append(allow)
    for flow in (*FLOWS, *prefecture.flows):
        if flow.source in SHARED_ZONES | {Zone.MANAGEMENT} and (
            flow.destination is None or flow.destination in SHARED_ZONES
        ):
            allow = _instance(prefecture, None, flow)
            if allow:
                found.append(allow)
    return found


# --- the invariants, through every chain of flows ------------------------------------------------

# A node of the flow graph: (municipality group or None for the shared zones, zone, role). Any
# host of that role in that zone stands for all of them: if one is reached, what it may reach is
# reached too. Roles, not addresses: a flow to a service with no host yet is still checked.
Node = tuple[str | None, Zone, HostRole]
Edge = tuple[Node, Node, Flow]


def _nodes(group: str | None, zone: Zone, roles: Iterable[HostRole]) -> list[Node]:
    return [(group if zone in MUNICIPALITY_ZONES else None, zone, r) for r in sorted(roles)]


def graph(prefecture: Prefecture) -> list[Edge]:
    """The edges of every flow of the prefecture (management excluded: it is no path)."""
    edges: list[Edge] = []
    scopes: list[tuple[str | None, list[Flow]]] = [
        (m.group, flows_of(prefecture, m)) for m in prefecture.municipalities
    ]
    scopes.append((None, [f for f in (*FLOWS, *prefecture.flows) if f.source in SHARED_ZONES]))
    for group, flows in scopes:
        for flow in flows:
            if flow.source is Zone.MANAGEMENT:
                continue
            if group is None and flow.destination in MUNICIPALITY_ZONES:
                continue  # shared to a segment: instantiated per municipality above
            service = prefecture.services[flow.service]
            src_roles = flow.source_roles or roles_in(flow.source)
            zones = [flow.destination] if flow.destination else sorted(service.zones)
            for src in _nodes(group, flow.source, src_roles):
                for zone in zones:
                    for dst in _nodes(group, zone, service.roles & roles_in(zone)):
                        if dst != src:
                            edges.append((src, dst, flow))
    return edges


@dataclass(frozen=True)
class Violation:
    invariant: str
    path: tuple[Edge, ...]  # the chain of flows that breaks it (one edge for a direct break)

    def describe(self) -> str:
        steps = [_node_text(self.path[0][0])]
        steps += [f"--[{flow.name}]--> {_node_text(dst)}" for _, dst, flow in self.path]
        return " ".join(steps)

    @property
    def site_flows(self) -> list[Flow]:
        return list(dict.fromkeys(f for _, _, f in self.path if f.is_site))


def _node_text(node: Node) -> str:
    group, zone, role = node
    where = f"{group}." if group else ""
    return f"{where}{zone.value} ({role.value})"


def _paths(
    edges_from: dict[Node, list[tuple[Node, Flow]]],
    starts: Iterable[Node],
    is_goal: Callable[[Node], bool],
    may_pass: Callable[[Node], bool] | None = None,
) -> Iterator[tuple[Edge, ...]]:
    """Breadth-first: the shortest chain of flows from any start to each goal node reached."""
    parent: dict[Node, tuple[Node, Flow] | None] = {}
    queue: deque[Node] = deque()
    for s in starts:
        if s not in parent:
            parent[s] = None
            queue.append(s)
    while queue:
        node = queue.popleft()
        if parent[node] is not None and is_goal(node):
            path: list[Edge] = []
            cur = node
            while (step := parent[cur]) is not None:
                prev, flow = step
                path.append((prev, cur, flow))
                cur = prev
            yield tuple(reversed(path))
            continue
        if parent[node] is not None and may_pass is not None and not may_pass(node):
            continue
        for nxt, flow in edges_from.get(node, ()):
            if nxt not in parent:
                parent[nxt] = (node, flow)
                queue.append(nxt)


def _elsewhere(group: str) -> Callable[[Node], bool]:
    """Whether a node belongs to a municipality other than ``group``."""
    return lambda node: node[0] is not None and node[0] != group


def violations(prefecture: Prefecture) -> list[Violation]:
    """Every way the prefecture's flows break an invariant (empty: none)."""
    edges = graph(prefecture)
    edges_from: dict[Node, list[tuple[Node, Flow]]] = {}
    for src, dst, flow in edges:
        edges_from.setdefault(src, []).append((dst, flow))
    groups = [m.group for m in prefecture.municipalities]
    found: list[Violation] = []

    def add(invariant: str, paths: Iterable[tuple[Edge, ...]]) -> None:
        found.extend(Violation(invariant, p) for p in paths)

    internet_zones = {Zone.INTERNET, Zone.PUBLIC_INTERNET}
    for g in groups:
        individual = _nodes(g, Zone.INDIVIDUAL_NUMBER, roles_in(Zone.INDIVIDUAL_NUMBER))
        add(
            "individual-number-no-internet",
            _paths(edges_from, individual, lambda n: n[1] in internet_zones),
        )
        internet = _nodes(g, Zone.INTERNET, roles_in(Zone.INTERNET))
        add(
            "internet-segment-via-security-cloud",
            _paths(
                edges_from,
                internet,
                lambda n: n[1] is Zone.PUBLIC_INTERNET,
                may_pass=lambda n: n[2] not in INTERNET_EXITS,
            ),
        )
        own = [n for z in MUNICIPALITY_ZONES for n in _nodes(g, z, roles_in(z))]
        add("municipalities-isolated", _paths(edges_from, own, _elsewhere(g)))
    outside = [
        n for g in groups for n in _nodes(g, Zone.INTERNET, roles_in(Zone.INTERNET))
    ] + _nodes(None, Zone.PUBLIC_INTERNET, roles_in(Zone.PUBLIC_INTERNET))
    add(
        "internet-never-reaches-individual-number",
        _paths(edges_from, outside, lambda n: n[1] is Zone.INDIVIDUAL_NUMBER),
    )
    for src, dst, flow in edges:
        service = prefecture.services[flow.service]
        if src[1] is Zone.INDIVIDUAL_NUMBER and not (
            service.closed_line or dst[1] is Zone.INDIVIDUAL_NUMBER
        ):
            found.append(Violation("individual-number-closed-lines-only", ((src, dst, flow),)))
        if service.name == "ssh" or dst[2] is HostRole.GATEWAY:
            found.append(Violation("ssh-from-management-only", ((src, dst, flow),)))
    return found


def problems(prefecture: Prefecture, file: str) -> list[Problem]:
    """Hosts where their role may not sit, and invariant violations, as problems of ``file``."""
    found = _placement(prefecture, file)
    seen: set[tuple[str, str]] = set()
    for v in violations(prefecture):
        invariant = INVARIANTS[v.invariant]
        blamed = v.site_flows
        if not blamed:
            # Only the catalogue's own flows: a defect of the model, not of this inventory.
            key = ("catalogue", v.invariant)
            if key not in seen:
                seen.add(key)
                found.append(
                    Problem(
                        "municloud/flows.py",
                        v.invariant,
                        f"the catalogue breaks its own invariant: {invariant.text}: {v.describe()}",
                        "report this as a defect of municloud",
                    )
                )
            continue
        for flow in blamed:
            key = (flow.name, v.invariant)
            if key in seen:
                continue
            seen.add(key)
            where, _, flow_key = flow.origin.partition(": ")
            found.append(
                Problem(
                    where or file,
                    flow_key or flow.name,
                    f"the flow {flow.name!r} ({flow.describe()}) breaks the invariant "
                    f"{v.invariant}: {invariant.text}; the path: {v.describe()}",
                    "remove the flow or narrow it: no inventory may override an invariant",
                )
            )
    return found


def _placement(prefecture: Prefecture, file: str) -> list[Problem]:
    found = []
    key = "all.children.municipalities.children"
    for m in prefecture.municipalities:
        reached = {
            (zone, flow.service)
            for flow in flows_of(prefecture, m)
            for zone in ([flow.destination] if flow.destination else Zone)
        }
        for h in m.hosts:
            hkey = f"{key}.{m.group}.hosts.{h.name}"
            zone = next(iter(host_zones(h)))
            if zone not in ROLE_ZONES[h.role]:
                found.append(
                    Problem(
                        file,
                        f"{hkey}.municloud_addresses",
                        f"a {h.role.value} does not sit in the {zone.value} segment",
                        f"put it in {' or '.join(sorted(z.value for z in ROLE_ZONES[h.role]))}",
                    )
                )
                continue
            offered = [
                s for s in prefecture.services.values() if h.role in s.roles and s.name != "ssh"
            ]
            if offered and not any((zone, s.name) in reached for s in offered):
                wanted = sorted({z.value for z, s in reached if s in {o.name for o in offered}})
                found.append(
                    Problem(
                        file,
                        f"{hkey}.municloud_addresses",
                        f"no flow of model {m.model.value} reaches a {h.role.value} in the "
                        f"{zone.value} segment",
                        f"in model {m.model.value} it belongs in: "
                        f"{', '.join(wanted) or 'no segment'}",
                    )
                )
        if m.joint_cloud and "joint_cloud" not in m.uplinks:
            found.append(
                Problem(
                    file,
                    f"{key}.{m.group}.hosts.{m.gateway.name}.municloud_addresses",
                    f"{m.group} belongs to the joint cloud {m.joint_cloud}, but its gateway has no "
                    "leg in the joint_cloud network, so its core systems are out of reach",
                    "give the gateway an address in joint_cloud, or leave joint_cloud out",
                )
            )
    for h in prefecture.shared_hosts:
        if not host_zones(h) & ROLE_ZONES[h.role]:
            found.append(
                Problem(
                    file,
                    f"all.children.shared.hosts.{h.name}.municloud_addresses",
                    f"a {h.role.value} offers its services in "
                    f"{' or '.join(sorted(z.value for z in ROLE_ZONES[h.role]))}, "
                    "where this host has no address",
                    "give it an address there",
                )
            )
    return found


# --- the reachability matrix ---------------------------------------------------------------------

SHARED_GROUP = "shared"  # the matrix group of the shared services among themselves
PING = "ping"


@dataclass(frozen=True)
class Probe:
    """One (source host, destination service) pair and what the policy says must happen."""

    group: str  # the municipality group, or SHARED_GROUP
    source: Host
    destination: Host
    address: IPv4Address  # the destination address the source uses
    service: str  # a service name, or PING
    port: int | None
    expected: bool
    flow: str | None  # the flow that allows it
    clause: str

    @property
    def id(self) -> str:
        port = f"/{self.port}" if self.port else ""
        verdict = "allow" if self.expected else "deny"
        return f"{self.source.name}->{self.destination.name}:{self.service}{port}={verdict}"


def destination_address(prefecture: Prefecture, source: Host, dest: Host) -> IPv4Address:
    """The address of ``dest`` that ``source`` would use: on a network they share, else on one
    the source's gateway has a leg in, else the destination's first."""
    common = [n for n in dest.addresses if n in source.addresses]
    if common:
        return dest.addresses[common[0]]
    if source.municipality is not None:
        uplinks = prefecture.municipality(source.municipality).uplinks
        for net, address in dest.addresses.items():
            if net in uplinks:
                return address
    if dest.municipality is not None and source.municipality is None:
        gateway = prefecture.municipality(dest.municipality).gateway
        for net, address in dest.addresses.items():
            if any(n in source.addresses for n in gateway.addresses) and net in gateway.addresses:
                return address
    return dest.primary_address


def services_on(prefecture: Prefecture, host: Host) -> list[Service]:
    """The services ``host`` offers: SSH, and those of its role."""
    return [s for s in prefecture.services.values() if host.role in s.roles]


def matrix(prefecture: Prefecture) -> list[Probe]:
    """Every probe of the prefecture: per municipality, its hosts and the shared hosts to its
    hosts' services and to the shared services; then the shared hosts among themselves."""
    allows = allowed(prefecture)
    pairs: list[tuple[str, Host, Host]] = []
    for m in prefecture.municipalities:
        for src in (*m.hosts, *prefecture.shared_hosts):
            for dst in (*m.hosts, *prefecture.shared_hosts):
                if src is not dst and not (src.municipality is None and dst.municipality is None):
                    pairs.append((m.group, src, dst))
    for src in prefecture.shared_hosts:
        for dst in prefecture.shared_hosts:
            if src is not dst:
                pairs.append((SHARED_GROUP, src, dst))
    probes: list[Probe] = []
    for group, src, dst in pairs:
        address = destination_address(prefecture, src, dst)
        pair = (prefecture, group, src, dst, address)
        any_allowed: str | None = None
        for service in services_on(prefecture, dst):
            for port in service.ports:
                flow = next(
                    (
                        a.flow.name
                        for a in allows
                        if a.flow.source is not Zone.MANAGEMENT
                        and a.service is service
                        and dst in a.destinations
                        and a.admits(src)
                    ),
                    None,
                )
                any_allowed = any_allowed or flow
                probes.append(_probe(*pair, service.name, port, flow))
        probes.append(_probe(*pair, PING, None, any_allowed))
    return probes


def _probe(
    prefecture: Prefecture,
    group: str,
    src: Host,
    dst: Host,
    address: IPv4Address,
    service: str,
    port: int | None,
    flow: str | None,
) -> Probe:
    clause = _clause(prefecture, src, dst, service, flow)
    return Probe(group, src, dst, address, service, port, flow is not None, flow, clause)


def _clause(prefecture: Prefecture, src: Host, dst: Host, service: str, flow: str | None) -> str:
    """The guideline clause a probe gives evidence for."""
    if flow is not None:
        by_name = {
            f.name: f
            for f in (
                *FLOWS,
                *prefecture.flows,
                *(f for m in prefecture.municipalities for f in m.flows),
            )
        }
        return by_name[flow].clause
    s_zone, d_zone = min(home_zones(src)), min(home_zones(dst))
    if service == "ssh" or d_zone is Zone.GATEWAY:
        return "segments.ssh.management-only"
    if Zone.INDIVIDUAL_NUMBER in (s_zone, d_zone):
        return "segments.individual-number.isolated"
    outside = {Zone.INTERNET, Zone.PUBLIC_INTERNET}
    if (s_zone in outside and d_zone is Zone.LGWAN) or (s_zone is Zone.LGWAN and d_zone in outside):
        return "segments.lgwan.no-internet"
    if s_zone is Zone.INTERNET and d_zone is Zone.PUBLIC_INTERNET:
        return "segments.internet.via-security-cloud"
    return "segments.default-deny"
