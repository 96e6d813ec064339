"""nftables rulesets rendered from the segment policy: a gateway's, and any other host's.

The roles write what these functions return (plugins/filter/municloud.py hands it to a template
that adds the managed-file header) and ``nft -c -f`` checks it before it is loaded, so nothing
about the rules is written in Jinja. Why not Aerleon (the maintained Capirca): its nftables
generator has input and output hooks only (no forward chain, which is a gateway's whole job), a
fixed table name, no rate-limited logging and no log prefixes of our own; see the firewall role's
README.

Both rulesets live in one table, ``inet municloud``, which the file first declares, then deletes
and writes again, all in one ``nft -f`` transaction: the change is atomic, and tables of others
(Docker's, a site's own) are left alone. A packet must be accepted by every base chain on its
hook, so this table's drop stands whatever other tables say.

* **Gateway**: ``forward`` (policy drop) allows each concrete flow that crosses the gateway, with a
  counter and a comment naming the flow, then logs drops per zone pair at a limited rate with the
  prefix ``municloud drop <municipality code> <from>><to>``, twice: to the kernel log and to
  the NFLOG group ``DROP_LOG_GROUP``, which ulogd2 on the gateway writes to its syslog for the
  central log (roles/log_forwarding); ``input`` and ``output`` (policy drop) let the gateway
  itself be reached by management only, and send only its own flows (its drop log).
* **Any other host**: ``input`` (policy drop) accepts what the policy lets reach the host:
  management (SSH and health checks of its services) and the flows whose destination it is. Its
  output is not filtered here: the gateway filters what leaves a segment.

Connections in either direction need only their first packet allowed (``ct state established``);
ICMP echo follows the flows (a host may ping where it may connect), and is otherwise dropped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from municloud.flows import FLOWS, MANAGEMENT_PROBE, Zone, zone_of
from municloud.inventory import Host, Municipality, Prefecture
from municloud.policy import (
    Allow,
    address_networks,
    allowed,
    collapse,
    home_zones,
    host_networks,
    services_on,
)
from municloud.segments import Segment, SharedNetwork

TABLE = "inet municloud"
LOG_PREFIX = "municloud drop"
DEFAULT_LOG_LIMIT = "5/second burst 10 packets"
# The NFLOG group of a gateway's drop log: each drop rule logs twice, to the kernel log and to
# this group, where ulogd2 (roles/log_forwarding) reads it and writes it to the gateway's syslog,
# which forwards it to the central log. roles/log_forwarding/vars/main.yml names the same group.
DROP_LOG_GROUP = 10

IPv4Network = ipaddress.IPv4Network


class RulesetError(ValueError):
    """The ruleset cannot be made (e.g. no management addresses); the message says what to do."""


def _set(items: Iterable[object], braces: bool = False) -> str:
    """An anonymous set, or its one element bare; ``braces`` for a named set's elements."""
    values = {str(i) for i in items}
    if len(values) == 1 and not braces:
        return next(iter(values))
    return "{ " + ", ".join(sorted(values, key=_sort_key)) + " }"


@lru_cache(maxsize=1 << 16)  # the same addresses and ports come back in many rules
def _sort_key(value: str) -> tuple[tuple[int, ...], str]:
    """Addresses, ranges, ports and address . port pairs in numeric order, then by text."""
    return tuple(int(n) for n in re.findall(r"\d+", value)), value


def _networks(nets: Iterable[IPv4Network]) -> list[IPv4Network]:
    """Collapsed, so that no two elements of an interval set overlap (nft refuses that)."""
    return collapse(nets)


def _ports(allow: Allow) -> str:
    return _set(allow.service.ports)


def _flow_rules(allow: Allow, daddr: Iterable[IPv4Network] | None) -> list[str]:
    """The accept rules of one concrete flow: its connections, and ping along them."""
    match = f"ip saddr {_set(_networks(allow.sources))}"
    if daddr is not None:
        match += f" ip daddr {_set(daddr)}"
    name = allow.flow.name
    return [
        f"# {name}: {allow.flow.reason}",
        f'{match} {allow.service.protocol} dport {_ports(allow)} counter accept comment "{name}"',
        f'{match} icmp type echo-request counter accept comment "{name} (ping)"',
    ]


def _management_set(prefecture: Prefecture, where: str) -> list[str]:
    if not prefecture.management:
        raise RulesetError(
            f"no management addresses for {where}: every host would refuse SSH from everyone. "
            "Set municloud_management (a list of addresses or ranges automation and "
            "administrators come from) in the inventory's group_vars/all; the lab writes its own "
            "into group_vars/all/lab.yml at `municloud lab up`"
        )
    found: list[str] | None = prefecture.cache.get("management_set")
    if found is None:
        found = prefecture.cache["management_set"] = _named_set("management", prefecture.management)
    return found


def _named_set(name: str, nets: Iterable[IPv4Network]) -> list[str]:
    """A named set of addresses and ranges, for rules to match with ``@name``."""
    elements = _set(_networks(nets), braces=True)
    return [
        f"set {name} {{",
        "\ttype ipv4_addr",
        "\tflags interval",
        f"\telements = {elements}",
        "}",
    ]


def _zone_sets(zones: dict[str, list[IPv4Network]]) -> list[str]:
    return [line for name, nets in zones.items() for line in _named_set(f"zone_{name}", nets)]


def _chain(name: str, hook: str, body: list[str]) -> list[str]:
    return [
        f"chain {name} {{",
        f"\ttype filter hook {hook} priority filter; policy drop;",
        *(f"\t{line}" if line else "" for line in body),
        "}",
    ]


def _stateful(iface: str | None) -> list[str]:
    lines = [f'{iface} "lo" accept'] if iface else []
    return [*lines, "ct state established,related accept", "ct state invalid counter drop"]


def _drop_log(match: str, code: str, pair: str, limit: str, group: int | None = None) -> str:
    """Count, log (kernel log; with ``group``, also to that NFLOG group) and drop."""
    prefix = f'prefix "{LOG_PREFIX} {code} {pair} "'
    nflog = f" log group {group} {prefix}" if group is not None else ""
    return f"{match} counter limit rate {limit} log {prefix}{nflog} drop"


# The text depends on the policy only, never on the order of keys in the inventory (AWX, or a
# YAML dump with sorted keys, hands the same inventory over in another order): segments, shared
# networks, municipalities and flows are always written in one canonical order.


def _segments(municipality: Municipality) -> list[tuple[Segment, Any]]:
    return [(s, municipality.segments[s]) for s in Segment if s in municipality.segments]


def _shared(prefecture: Prefecture) -> list[tuple[SharedNetwork, Any]]:
    return [
        (k, prefecture.shared_networks[k]) for k in SharedNetwork if k in prefecture.shared_networks
    ]


def _canonical(allows: list[Allow], prefecture: Prefecture) -> list[Allow]:
    order = {f.name: i for i, f in enumerate((*FLOWS, *prefecture.flows))}
    codes = {m.group: m.code for m in prefecture.municipalities}
    return sorted(
        allows,
        key=lambda a: (
            order.get(a.flow.name, len(order)),
            a.flow.name,
            codes.get(a.municipality or "", ""),
        ),
    )


def _routed_addresses(municipality: Municipality, hosts: Iterable[Host]) -> list[IPv4Network]:
    """The addresses of ``hosts`` on networks the municipality's gateway has a leg in."""
    legs = municipality.gateway.addresses
    return _networks(n for h in hosts for net, n in address_networks(h).items() if net in legs)


def _zones_of(prefecture: Prefecture, municipality: Municipality) -> dict[str, list[IPv4Network]]:
    """The named address sets of the zones a municipality's gateway sees."""
    zones: dict[str, list[IPv4Network]] = {
        seg.value: [net.cidr] for seg, net in _segments(municipality)
    }
    for kind, net in _shared(prefecture):
        if kind.value in municipality.uplinks:
            zones[zone_of(kind.value).value] = [net.cidr]
    return zones


def _allowed_in(prefecture: Prefecture) -> dict[str | None, list[Allow]]:
    """The concrete flows by municipality (None: the shared ones), in the order of allowed()."""
    found: dict[str | None, list[Allow]] | None = prefecture.cache.get("allowed_in")
    if found is None:
        found = prefecture.cache["allowed_in"] = {}
        for a in allowed(prefecture):
            found.setdefault(a.municipality, []).append(a)
    return found


def gateway_ruleset(prefecture: Prefecture, group: str, log_limit: str = DEFAULT_LOG_LIMIT) -> str:
    """The ruleset of the gateway of the municipality ``group``."""
    m = prefecture.municipality(group)
    gw = m.gateway
    allows = _allowed_in(prefecture).get(group, [])
    zones = _zones_of(prefecture, m)
    management = _management_set(prefecture, gw.name)

    def drop(match: str, pair: str) -> str:
        # A gateway's drops go to the kernel log and to its NFLOG group (the central log).
        return _drop_log(match, m.code, pair, log_limit, DROP_LOG_GROUP)

    forward: list[str] = _stateful(None)
    for a in allows:
        if a.flow.source is Zone.MANAGEMENT or not a.crosses_gateway:
            continue
        forward += _flow_rules(a, _routed_addresses(m, a.destinations))
    behind = [h for h in m.hosts if h is not gw]
    probes = [
        f"{addr} . {port}"
        for h in behind
        for addr in h.addresses.values()
        for s in services_on(prefecture, h)
        for port in s.ports
    ]
    forward += [
        f"# {MANAGEMENT_PROBE}: administration and health checks of every host behind the gateway",
        f"ip saddr @management ip daddr . tcp dport {_set(probes)} counter accept "
        f'comment "{MANAGEMENT_PROBE}"',
        f"ip saddr @management ip daddr {_set(host_networks(behind))} icmp type echo-request "
        f'counter accept comment "{MANAGEMENT_PROBE} (ping)"',
        "# Everything else is dropped; drops are logged per zone pair, at a limited rate.",
    ]
    for src in zones:
        for dst in zones:
            if src != dst:
                forward.append(drop(f"ip saddr @zone_{src} ip daddr @zone_{dst}", f"{src}>{dst}"))
    forward.append(drop("meta nfproto ipv4", "other>other"))

    inbound: list[str] = [*_stateful("iif")]
    inbound += [
        "# management-ssh: the gateway itself is reached by the management addresses only",
        'ip saddr @management tcp dport 22 counter accept comment "management-ssh"',
        "ip saddr @management icmp type echo-request counter accept "
        'comment "management-ssh (ping)"',
    ]
    inbound += [drop(f"ip saddr @zone_{z}", f"{z}>gateway") for z in zones]
    inbound.append(drop("meta nfproto ipv4", "other>gateway"))

    outbound: list[str] = [*_stateful("oif")]
    for a in allows:
        if a.flow.source is Zone.GATEWAY:
            outbound += _flow_rules(a, _routed_addresses(m, a.destinations))
    outbound += [drop(f"ip daddr @zone_{z}", f"gateway>{z}") for z in zones]
    outbound.append(drop("meta nfproto ipv4", "gateway>other"))

    body = [
        *management,
        *_zone_sets(zones),
        *_chain("input", "input", inbound),
        *_chain("forward", "forward", forward),
        *_chain("output", "output", outbound),
    ]
    title = (
        f"the gateway {gw.name} of {m.name_ja} ({m.name_romaji}, {m.code}), "
        f"guideline model {m.model.value}"
    )
    return _table(title, body)


def host_ruleset(prefecture: Prefecture, name: str, log_limit: str = DEFAULT_LOG_LIMIT) -> str:
    """The ruleset of a host that is not a gateway: what may reach it."""
    host = prefecture.host(name)
    if host is None:
        raise RulesetError(f"{name} is not a host of the inventory")
    management = _management_set(prefecture, name)
    services = services_on(prefecture, host)
    ports = sorted({p for s in services for p in s.ports})
    inbound: list[str] = [*_stateful("iif")]
    inbound += [
        "# management-ssh, management-probe: administration and health checks",
        f'ip saddr @management tcp dport {_set(ports)} counter accept comment "management"',
        'ip saddr @management icmp type echo-request counter accept comment "management (ping)"',
    ]
    for a in _inbound(prefecture).get(host.name, ()):
        inbound += _flow_rules(a, None)
    # Drops are logged per source zone, with the code of the municipality the source is in.
    own_zone = min(home_zones(host)).value
    sources = _log_sources(prefecture, host)
    zones = {name: nets for name, nets, _, _ in sources}
    inbound += [
        _drop_log(f"ip saddr @zone_{name}", code, f"{label}>{own_zone}", log_limit)
        for name, _, code, label in sources
    ]
    own_code = (
        prefecture.municipality(host.municipality).code if host.municipality else prefecture.code
    )
    inbound.append(_drop_log("meta nfproto ipv4", own_code, f"other>{own_zone}", log_limit))
    where = (
        f"{host.name} ({host.role.value} in the {own_zone} segment of "
        f"{prefecture.municipality(host.municipality).name_ja})"
        if host.municipality
        else f"{host.name} ({host.role.value}, shared host of {prefecture.name_ja})"
    )
    body = [*management, *_zone_sets(zones), *_chain("input", "input", inbound)]
    return _table(where, body)


def _inbound(prefecture: Prefecture) -> dict[str, list[Allow]]:
    """The flows that reach each host (by name), management's left out, in canonical order."""
    found: dict[str, list[Allow]] | None = prefecture.cache.get("inbound")
    if found is None:
        found = prefecture.cache["inbound"] = {}
        for a in _canonical(allowed(prefecture), prefecture):
            if a.flow.source is not Zone.MANAGEMENT:
                for name in dict.fromkeys(h.name for h in a.destinations):
                    found.setdefault(name, []).append(a)
    return found


def _by_code(prefecture: Prefecture) -> list[Municipality]:
    found: list[Municipality] | None = prefecture.cache.get("by_code")
    if found is None:
        found = prefecture.cache["by_code"] = sorted(prefecture.municipalities,
                                                     key=lambda m: m.code)
    return found


def _log_sources(
    prefecture: Prefecture, host: Host
) -> list[tuple[str, list[IPv4Network], str, str]]:
    """(set name, ranges, municipality code, zone label) of each zone drops are logged for.

    A host of a municipality sees its own segments and the shared networks; a shared host sees
    every municipality's segments (each logged with that municipality's code).
    """
    found = []
    towns = (
        _by_code(prefecture)
        if host.municipality is None
        else [prefecture.municipality(host.municipality)]
    )
    for m in towns:
        prefix = "" if host.municipality else f"{m.group}_"
        found += [
            (f"{prefix}{seg.value}", [net.cidr], m.code, seg.value) for seg, net in _segments(m)
        ]
    code = prefecture.municipality(host.municipality).code if host.municipality else prefecture.code
    for kind, net in _shared(prefecture):
        zone = zone_of(kind.value).value
        found.append((zone, [net.cidr], code, zone))
    return found


def ruleset(prefecture: Prefecture, name: str, log_limit: str = DEFAULT_LOG_LIMIT) -> str:
    """The ruleset of the host ``name``: a gateway's or another host's."""
    host = prefecture.host(name)
    if host is not None and host.municipality is not None and host.role.value == "gateway":
        return gateway_ruleset(prefecture, host.municipality, log_limit)
    return host_ruleset(prefecture, name, log_limit)


def _table(title: str, body: list[str]) -> str:
    lines = [
        f"# nftables ruleset of {title}.",
        "# Rendered by municloud from the segment policy (municloud/flows.py); do not edit here:",
        "# change the policy or the inventory and run the playbook again.",
        f"table {TABLE} {{}}",
        f"delete table {TABLE}",
        f"table {TABLE} {{",
        *(f"\t{line}" if line else "" for line in body),
        "}",
    ]
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_LOG_LIMIT",
    "DROP_LOG_GROUP",
    "RulesetError",
    "gateway_ruleset",
    "host_ruleset",
    "ruleset",
]
