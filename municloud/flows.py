"""The segment policy (三層の対策) as data: zones, services, the flows each guideline model allows.

This module is the one home of the rules. ``municloud validate``, the firewall rulesets the roles
load (through ``plugins/filter/municloud.py``), the reachability matrix of the acceptance tests, the
diagrams and ``docs/flows.md`` all read it; nothing else spells a flow again.

* A **zone** is where traffic starts or ends: the three segments of a municipality, its gateway
  itself, the prefecture's shared networks, and the management addresses automation and
  administrators come from.
* A **service** is something a host offers on a port: the proxy, the screen-transfer server, the
  update relay, ... Hosts of certain roles offer it, in certain zones.
* A **flow** allows one zone (or some roles in it) to open connections to one service in one zone,
  in the guideline models it lists, for a reason stated in one line. Everything not allowed by a
  flow is denied.
* The **invariants** hold in every model; no inventory can override them. They are checked on the
  graph of allowed flows, through every chain of flows (``municloud.policy.check``), so a site
  flow that opens a path around them is refused naming the flow and the path.

Everything here is the standard library only: the roles' filter plugin imports it on the Ansible
controller, and an execution environment needs nothing more than the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from municloud.problems import Collector, kind
from municloud.segments import GuidelineModel, HostRole, Segment, SharedNetwork


class Zone(StrEnum):
    """Where traffic starts or ends. The first four belong to one municipality."""

    INDIVIDUAL_NUMBER = "individual_number"  # 個人番号利用事務系
    LGWAN = "lgwan"  # LGWAN接続系
    INTERNET = "internet"  # インターネット接続系 (the segment; the internet itself is below)
    GATEWAY = "gateway"  # the municipality's gateway itself: its own sockets
    PUBLIC_INTERNET = "public_internet"  # the internet (the inventory's shared `internet` network)
    SECURITY_CLOUD = "security_cloud"  # 自治体情報セキュリティクラウド
    LGWAN_BACKBONE = "lgwan_backbone"  # LGWAN and LGWAN-ASP
    JOINT_CLOUD = "joint_cloud"  # 自治体クラウド
    MANAGEMENT = "management"  # the addresses automation and administrators come from


SEGMENT_ZONES = frozenset({Zone.INDIVIDUAL_NUMBER, Zone.LGWAN, Zone.INTERNET})
MUNICIPALITY_ZONES = SEGMENT_ZONES | {Zone.GATEWAY}
SHARED_ZONES = frozenset(
    {Zone.PUBLIC_INTERNET, Zone.SECURITY_CLOUD, Zone.LGWAN_BACKBONE, Zone.JOINT_CLOUD}
)
ALL_MODELS = frozenset(GuidelineModel)


def zone_of(network: str) -> Zone:
    """The zone of an inventory network name (a Segment or SharedNetwork value)."""
    if network == SharedNetwork.INTERNET:
        # A municipality's `internet` segment and the shared `internet` network share a name in
        # the inventory; callers pass segments through zone_of_segment instead.
        return Zone.PUBLIC_INTERNET
    return Zone(network)


def zone_of_segment(segment: Segment) -> Zone:
    return Zone(segment.value)


# Where hosts of each role may sit. A shared host may have further legs (the proxy and the update
# platform each have one on the internet), but it offers its services in these zones.
ROLE_ZONES: dict[HostRole, frozenset[Zone]] = {
    HostRole.GATEWAY: frozenset({Zone.GATEWAY}),
    HostRole.TERMINAL: SEGMENT_ZONES,
    HostRole.UPDATE_RELAY: frozenset({Zone.LGWAN}),
    HostRole.SCREEN_TRANSFER: frozenset({Zone.INTERNET, Zone.LGWAN}),
    HostRole.SANITISER: frozenset({Zone.INTERNET}),
    HostRole.FILE_SERVER: frozenset({Zone.LGWAN}),
    HostRole.PROXY: frozenset({Zone.SECURITY_CLOUD}),
    HostRole.LOG_COLLECTOR: frozenset({Zone.SECURITY_CLOUD}),
    HostRole.VENDOR_UPDATE_SOURCE: frozenset({Zone.PUBLIC_INTERNET}),
    HostRole.UPDATE_PLATFORM: frozenset({Zone.LGWAN_BACKBONE}),
    HostRole.INTERMEDIATE_SERVER: frozenset({Zone.LGWAN_BACKBONE}),
    HostRole.LGWAN_ASP: frozenset({Zone.LGWAN_BACKBONE}),
    HostRole.CORE_SYSTEM: frozenset({Zone.JOINT_CLOUD}),
}


def roles_in(zone: Zone) -> frozenset[HostRole]:
    """Every role a host in ``zone`` may have."""
    return _ROLES_IN[zone]


# roles_in is asked for every node of every municipality's flow graph: computed once here.
_ROLES_IN = {z: frozenset(r for r, zones in ROLE_ZONES.items() if z in zones) for z in Zone}


# The hosts through which the internet may be reached at all: every path from a municipality's
# internet segment to the internet passes one of them. The proxy is the security cloud's web exit,
# watched centrally; the update platform fetches vendor updates and lets nothing through that it
# has not verified (its inbound content is checked, and it starts no connection for anyone else).
INTERNET_EXITS = frozenset({HostRole.PROXY, HostRole.UPDATE_PLATFORM})


@dataclass(frozen=True)
class Service:
    """Something hosts of ``roles`` offer on ``ports``, in ``zones``."""

    name: str
    title: str
    ports: tuple[int, ...]
    roles: frozenset[HostRole]
    zones: frozenset[Zone]
    closed_line: bool = False  # 特定通信: the only kind the individual-number segment may use
    protocol: str = "tcp"


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service(
            "ssh",
            "administration over SSH (管理用SSH)",
            (22,),
            frozenset(HostRole),
            frozenset(Zone) - {Zone.MANAGEMENT},
        ),
        Service(
            "proxy",
            "the security cloud's web proxy (Webプロキシ)",
            (3128,),
            frozenset({HostRole.PROXY}),
            frozenset({Zone.SECURITY_CLOUD}),
        ),
        Service(
            "syslog",
            "central log collection over TLS (ログの集中管理)",
            (6514,),
            frozenset({HostRole.LOG_COLLECTOR}),
            frozenset({Zone.SECURITY_CLOUD}),
        ),
        Service(
            "web",
            "web servers on the internet (vendors' update sites, ...)",
            (80, 443),
            frozenset({HostRole.VENDOR_UPDATE_SOURCE}),
            frozenset({Zone.PUBLIC_INTERNET}),
        ),
        Service(
            "screen_transfer",
            "screen transfer, RDP (画面転送)",
            (3389,),
            frozenset({HostRole.SCREEN_TRANSFER}),
            frozenset({Zone.INTERNET, Zone.LGWAN}),
        ),
        Service(
            "sanitiser_inbox",
            "the sanitiser's inbox, SFTP (無害化の受付)",
            (2022,),
            frozenset({HostRole.SANITISER}),
            frozenset({Zone.INTERNET}),
        ),
        Service(
            "file_drop",
            "the LGWAN file drop for sanitised files, SFTP (無害化済みファイルの受取)",
            (2022,),
            frozenset({HostRole.FILE_SERVER}),
            frozenset({Zone.LGWAN}),
        ),
        Service(
            "update_relay",
            "the town-hall delivery server, HTTP (庁舎内配信サーバ)",
            (80,),
            frozenset({HostRole.UPDATE_RELAY}),
            frozenset({Zone.LGWAN}),
        ),
        Service(
            "update_platform",
            "the update platform's object store, HTTPS "
            "(自治体情報セキュリティ向上プラットフォーム)",
            (443,),
            frozenset({HostRole.UPDATE_PLATFORM}),
            frozenset({Zone.LGWAN_BACKBONE}),
        ),
        Service(
            "lgwan_asp",
            "LGWAN-ASP services, HTTPS (LGWAN-ASP)",
            (443,),
            frozenset({HostRole.LGWAN_ASP}),
            frozenset({Zone.LGWAN_BACKBONE}),
        ),
        Service(
            "intermediate_server",
            "the intermediate server for information linkage, HTTPS (中間サーバー)",
            (443,),
            frozenset({HostRole.INTERMEDIATE_SERVER}),
            frozenset({Zone.LGWAN_BACKBONE}),
            closed_line=True,
        ),
        Service(
            "core_system",
            "the joint core-business systems, HTTPS (住基・税・社会保障 in 自治体クラウド)",
            (443,),
            frozenset({HostRole.CORE_SYSTEM}),
            frozenset({Zone.JOINT_CLOUD}),
            closed_line=True,
        ),
    )
}


def services_of(role: HostRole) -> list[Service]:
    """The services a host of ``role`` offers (SSH first)."""
    return [s for s in SERVICES.values() if role in s.roles]


@dataclass(frozen=True)
class Flow:
    """``source`` (only ``source_roles`` in it, if given) may connect to ``service`` in
    ``destination`` (anywhere the service's hosts sit, if None), in ``models``.

    A flow from a segment stays within its municipality: it reaches that municipality's own
    segments, or the shared networks of the prefecture. ``origin`` says where a flow was written:
    "catalogue" for the ones below, or the inventory file and key of a site flow.
    """

    name: str
    source: Zone
    service: str
    destination: Zone | None
    reason: str
    clause: str
    models: frozenset[GuidelineModel] = ALL_MODELS
    source_roles: frozenset[HostRole] | None = None
    origin: str = "catalogue"

    @property
    def is_site(self) -> bool:
        return self.origin != "catalogue"

    def describe(self) -> str:
        who = self.source.value
        if self.source_roles:
            who += f" ({', '.join(sorted(self.source_roles))})"
        where = f" in {self.destination.value}" if self.destination else ""
        return f"{who} -> {self.service}{where}"


_ALPHAS = frozenset({GuidelineModel.ALPHA, GuidelineModel.ALPHA_PRIME})
_BETAS = frozenset({GuidelineModel.BETA, GuidelineModel.BETA_PRIME})
_TERMINALS = frozenset({HostRole.TERMINAL})

# The flows of the guideline models. The order is the order of the rules in a ruleset and of the
# rows in docs/flows.md. Clauses are ids of municloud/clauses.py.
FLOWS: tuple[Flow, ...] = (
    # 個人番号利用事務系: closed lines to named systems only (特定通信), in every model.
    Flow(
        "individual-number-to-core-systems",
        Zone.INDIVIDUAL_NUMBER,
        "core_system",
        Zone.JOINT_CLOUD,
        "住基・税・社会保障 run in the joint cloud (自治体クラウド), reached over closed lines "
        "(特定通信)",
        "segments.individual-number.closed-lines",
    ),
    Flow(
        "individual-number-to-intermediate-server",
        Zone.INDIVIDUAL_NUMBER,
        "intermediate_server",
        Zone.LGWAN_BACKBONE,
        "information linkage of My Number data goes through the 中間サーバー over LGWAN (特定通信)",
        "segments.individual-number.closed-lines",
    ),
    # LGWAN接続系: LGWAN and its services; updates only from the town hall's relay.
    Flow(
        "lgwan-to-lgwan-asp",
        Zone.LGWAN,
        "lgwan_asp",
        Zone.LGWAN_BACKBONE,
        "everyday office work uses LGWAN-ASP services over LGWAN",
        "segments.lgwan.services",
    ),
    Flow(
        "lgwan-to-update-relay",
        Zone.LGWAN,
        "update_relay",
        Zone.LGWAN,
        "LGWAN hosts take OS and antivirus updates from the town hall's delivery server, not the "
        "internet and not USB sticks",
        "segments.lgwan.updates",
    ),
    Flow(
        "update-relay-to-update-platform",
        Zone.LGWAN,
        "update_platform",
        Zone.LGWAN_BACKBONE,
        "the delivery server pulls verified updates from the platform on LGWAN-ASP",
        "segments.lgwan.updates",
        source_roles=frozenset({HostRole.UPDATE_RELAY}),
    ),
    Flow(
        "lgwan-terminals-to-file-drop",
        Zone.LGWAN,
        "file_drop",
        Zone.LGWAN,
        "staff collect files from the internet only after the sanitiser rebuilt them (無害化)",
        "segments.lgwan.sanitised-files",
        source_roles=_TERMINALS,
    ),
    Flow(
        "lgwan-terminals-to-screen-transfer",
        Zone.LGWAN,
        "screen_transfer",
        Zone.INTERNET,
        "α/α': LGWAN terminals browse the internet as pixels on a screen-transfer server in the "
        "internet segment (画面転送); no file crosses",
        "segments.lgwan.screen-transfer",
        models=_ALPHAS,
        source_roles=_TERMINALS,
    ),
    Flow(
        "lgwan-terminals-to-approved-cloud",
        Zone.LGWAN,
        "proxy",
        Zone.SECURITY_CLOUD,
        "α': LGWAN terminals reach approved cloud services directly (local breakout), only "
        "through the security cloud's proxy, which allows only the named destinations",
        "segments.lgwan.approved-cloud",
        models=frozenset({GuidelineModel.ALPHA_PRIME}),
        source_roles=_TERMINALS,
    ),
    # インターネット接続系: out through the security cloud; into LGWAN only as pixels or
    # sanitised files.
    Flow(
        "internet-to-proxy",
        Zone.INTERNET,
        "proxy",
        Zone.SECURITY_CLOUD,
        "the internet segment goes out only through the prefecture's security cloud, where it is "
        "filtered and watched centrally",
        "segments.internet.via-security-cloud",
    ),
    Flow(
        "internet-to-sanitiser",
        Zone.INTERNET,
        "sanitiser_inbox",
        Zone.INTERNET,
        "files bound for the LGWAN segment are put into the sanitiser's inbox first (無害化)",
        "segments.lgwan.sanitised-files",
    ),
    Flow(
        "sanitiser-to-file-drop",
        Zone.INTERNET,
        "file_drop",
        Zone.LGWAN,
        "only the sanitiser, with files it rebuilt, writes into the LGWAN segment (無害化通信)",
        "segments.lgwan.sanitised-files",
        source_roles=frozenset({HostRole.SANITISER}),
    ),
    Flow(
        "internet-terminals-to-lgwan-screen-transfer",
        Zone.INTERNET,
        "screen_transfer",
        Zone.LGWAN,
        "β/β': office work moved to the internet segment; LGWAN systems are used as pixels on a "
        "screen-transfer server in the LGWAN segment (画面転送)",
        "segments.lgwan.screen-transfer",
        models=_BETAS,
        source_roles=_TERMINALS,
    ),
    # Central logs (集中監視): every segment but the individual-number one, and each gateway.
    Flow(
        "gateway-to-log-collector",
        Zone.GATEWAY,
        "syslog",
        Zone.SECURITY_CLOUD,
        "each gateway sends its drop log to the security cloud's central log (集中監視)",
        "segments.logs.central",
    ),
    Flow(
        "lgwan-to-log-collector",
        Zone.LGWAN,
        "syslog",
        Zone.SECURITY_CLOUD,
        "LGWAN hosts send their logs (failed logins, ...) to the central log (集中監視)",
        "segments.logs.central",
    ),
    Flow(
        "internet-to-log-collector",
        Zone.INTERNET,
        "syslog",
        Zone.SECURITY_CLOUD,
        "internet-segment hosts send their logs (failed logins, ...) to the central log (集中監視)",
        "segments.logs.central",
    ),
    # The prefecture's shared services among themselves.
    Flow(
        "proxy-to-internet",
        Zone.SECURITY_CLOUD,
        "web",
        Zone.PUBLIC_INTERNET,
        "the security cloud's proxy is the prefecture's one web exit to the internet",
        "segments.internet.via-security-cloud",
        source_roles=frozenset({HostRole.PROXY}),
    ),
    Flow(
        "proxy-to-log-collector",
        Zone.SECURITY_CLOUD,
        "syslog",
        Zone.SECURITY_CLOUD,
        "the proxy's access log, which names each municipality, goes to the central log",
        "segments.logs.central",
        source_roles=frozenset({HostRole.PROXY}),
    ),
    Flow(
        "update-platform-ingest",
        Zone.LGWAN_BACKBONE,
        "web",
        Zone.PUBLIC_INTERNET,
        "the platform fetches vendor updates on the internet side and verifies them before it "
        "offers them inside LGWAN",
        "segments.lgwan.updates",
        source_roles=frozenset({HostRole.UPDATE_PLATFORM}),
    ),
    # Administration: SSH, and health checks of every service, from the management addresses.
    Flow(
        "management-ssh",
        Zone.MANAGEMENT,
        "ssh",
        None,
        "hosts are administered over SSH from the management addresses only",
        "segments.ssh.management-only",
    ),
)

# Management may also probe every service (health checks; the acceptance tests' proof that a
# destination listens before a denial counts). It is part of the ruleset, not a flow row: it
# names no service of its own.
MANAGEMENT_PROBE = "management-probe"

FLOWS_BY_NAME = {f.name: f for f in FLOWS}


def flows_for(model: GuidelineModel) -> list[Flow]:
    return [f for f in FLOWS if model in f.models]


@dataclass(frozen=True)
class Invariant:
    """A rule no model and no inventory may break. ``id`` names it in every message."""

    id: str
    text: str
    clause: str
    transitive: bool = field(default=True)


INVARIANTS: dict[str, Invariant] = {
    i.id: i
    for i in (
        Invariant(
            "individual-number-no-internet",
            "the individual-number segment has no path to the internet or to any internet "
            "segment, directly or through any chain of allowed flows",
            "segments.individual-number.isolated",
        ),
        Invariant(
            "individual-number-closed-lines-only",
            "the individual-number segment opens connections only within itself and to "
            "closed-line services (特定通信: the joint cloud's core systems, the 中間サーバー)",
            "segments.individual-number.closed-lines",
            transitive=False,
        ),
        Invariant(
            "internet-never-reaches-individual-number",
            "nothing in an internet segment or on the internet reaches the individual-number "
            "segment, directly or through any chain of allowed flows",
            "segments.individual-number.isolated",
        ),
        Invariant(
            "internet-segment-via-security-cloud",
            "the internet segment reaches the internet only through the security cloud's proxy "
            "(or the update platform, which verifies everything it fetches): no path around them",
            "segments.internet.via-security-cloud",
        ),
        Invariant(
            "municipalities-isolated",
            "no chain of allowed flows leads from one municipality's segments into another's",
            "segments.municipalities.isolated",
        ),
        Invariant(
            "ssh-from-management-only",
            "SSH, and anything on a gateway, is reached from the management addresses only",
            "segments.ssh.management-only",
            transitive=False,
        ),
    )
}


# --- site services and flows, from an inventory ----------------------------------------------

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")


def parse_services(out: Collector, key: str, raw: object) -> dict[str, Service]:
    """The catalogue plus the site's own services (``municloud_prefecture.services``)."""
    services = dict(SERVICES)
    if raw is None:
        return services
    given = out.mapping(raw, key, "service name: {title, ports, roles}") or {}
    for name, body in given.items():
        skey = f"{key}.{name}"
        if not isinstance(name, str) or not _NAME_RE.match(name.replace("_", "-")):
            out.add(skey, f"{name!r} is not a service name", "use lower-case letters, digits, _")
            continue
        if name in SERVICES:
            out.add(skey, f"{name!r} is a service of the catalogue", "give yours another name")
            continue
        body = out.mapping(body, skey, "title, ports and roles") or {}
        ports = body.get("ports")
        if not (
            isinstance(ports, list)
            and ports
            and all(isinstance(p, int) and 0 < p < 65536 for p in ports)
        ):
            out.add(f"{skey}.ports", f"expected TCP ports, found {kind(ports)}", "e.g. [8443]")
            continue
        roles = _roles(out, f"{skey}.roles", body.get("roles"))
        if roles is None:
            continue
        if not roles:
            out.add(f"{skey}.roles", "no role offers it", "name the roles of its hosts")
            continue
        if HostRole.GATEWAY in roles:
            out.add(
                f"{skey}.roles",
                "a gateway offers nothing but SSH to the management addresses "
                "(invariant ssh-from-management-only)",
                "put the service on a host of its own",
            )
            continue
        closed = body.get("closed_line", False)
        if not isinstance(closed, bool):
            out.add(f"{skey}.closed_line", f"expected true or false, found {kind(closed)}", "")
            continue
        title = body.get("title")
        services[name] = Service(
            name,
            str(title) if title else name,
            tuple(ports),
            roles,
            frozenset().union(*(ROLE_ZONES[r] for r in roles)),
            closed_line=closed,
        )
    return services


def parse_flows(
    out: Collector,
    key: str,
    raw: object,
    services: dict[str, Service],
    taken: set[str],
) -> list[Flow]:
    """Site flows (``municloud_prefecture.flows``, ``municloud_municipality.flows``).

    ``taken`` holds the flow names already in use (the catalogue's and earlier site flows'); the
    names of the flows read here are added to it. Invariants are checked later, on the whole
    prefecture (municloud.policy), because a path may run through flows of several places.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        out.add(key, f"expected a list of flows, found {kind(raw)}", "write `- name: ...` items")
        return []
    flows: list[Flow] = []
    for i, item in enumerate(raw):
        fkey = f"{key}[{i}]"
        body = out.mapping(item, fkey, "name, from, to and reason")
        if body is None:
            continue
        name = body.get("name")
        if isinstance(name, str):
            fkey = f"{key}[{i}] ({name})"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            out.add(
                f"{fkey}.name",
                f"{name!r} is not a flow name",
                "use lower-case letters, digits and dashes (it becomes a firewall rule comment)",
            )
            continue
        if name in taken:
            out.add(
                f"{fkey}.name", f"the flow name {name!r} is taken", "give the flow its own name"
            )
            continue
        source = _zone(out, f"{fkey}.from", body.get("from"))
        dest_value = body.get("in")
        destination = _zone(out, f"{fkey}.in", dest_value) if dest_value is not None else None
        service = services.get(str(body.get("to")))
        if service is None:
            out.add(
                f"{fkey}.to",
                f"unknown service {body.get('to')!r}",
                f"use one of {', '.join(services)}, or declare it in "
                "municloud_prefecture.services",
            )
        roles = _roles(out, f"{fkey}.roles", body.get("roles")) if "roles" in body else None
        models = _models(out, f"{fkey}.models", body.get("models")) if "models" in body else None
        reason = body.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            out.add(
                f"{fkey}.reason",
                "a flow needs a reason",
                "say in one line why the site needs it (it is printed beside the rule)",
            )
            continue
        if source is None or service is None or (dest_value is not None and destination is None):
            continue
        if source is Zone.MANAGEMENT:
            out.add(f"{fkey}.from", "management already reaches every service", "remove the flow")
            continue
        if roles is not None and not roles <= roles_in(source):
            out.add(
                f"{fkey}.roles",
                f"no host of {', '.join(sorted(roles - roles_in(source)))} sits in {source}",
                f"use roles that sit there: {', '.join(sorted(roles_in(source)))}",
            )
            continue
        if destination is None and len(service.zones) > 1:
            out.add(
                f"{fkey}.in",
                f"{service.name} may sit in {', '.join(sorted(service.zones))}",
                "say which with `in:`",
            )
            continue
        destination = destination or next(iter(service.zones))
        if destination not in service.zones:
            out.add(
                f"{fkey}.in",
                f"no {service.name} sits in {destination}",
                f"use one of {', '.join(sorted(service.zones))}",
            )
            continue
        taken.add(name)
        flows.append(
            Flow(
                name,
                source,
                service.name,
                destination,
                reason.strip(),
                clause="segments.site-flows",
                models=models or ALL_MODELS,
                source_roles=roles,
                origin=f"{out.file}: {fkey}",
            )
        )
    return flows


def _zone(out: Collector, key: str, value: object) -> Zone | None:
    try:
        return Zone(str(value))
    except ValueError:
        out.add(key, f"unknown zone {value!r}", f"use one of {', '.join(Zone)}")
        return None


def _roles(out: Collector, key: str, value: object) -> frozenset[HostRole] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        out.add(key, f"expected a list of roles, found {kind(value)}", "e.g. [terminal]")
        return None
    unknown = [v for v in value if v not in set(HostRole)]
    if unknown:
        out.add(key, f"unknown role(s) {', '.join(unknown)}", f"use {', '.join(HostRole)}")
        return None
    return frozenset(HostRole(v) for v in value)


def _models(out: Collector, key: str, value: object) -> frozenset[GuidelineModel] | None:
    if not isinstance(value, list) or not value or not all(v in set(GuidelineModel) for v in value):
        out.add(key, f"expected a list of models, found {kind(value)}", "e.g. [alpha, beta]")
        return None
    return frozenset(GuidelineModel(v) for v in value)
