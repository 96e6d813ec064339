"""What the security cloud's web proxies run: Debian's squid, configured from the inventories.

Each prefecture's proxy fleet (``ProxyFleet`` in :mod:`municloud.cloud.security_cloud`) boots a
Debian 12 image whose launch template carries :func:`user_data` (gzip-compressed,
:func:`user_data_base64`): a shell script that cloud-init runs once, as root, at the first boot.
It installs Debian's ``squid`` package, writes the configuration :func:`render` made to
``/etc/squid/squid.conf``, checks it with ``squid -k parse`` and restarts squid. The
configuration is small on purpose:

- ``http_port`` is the proxy port (``ProxySettings.port``, 3128), the port of the load
  balancer and of the security groups;
- only the internet segments (インターネット接続系) of the prefecture's own municipalities may use
  it: the same ranges, from the same function, as the proxies' security group
  (``security_cloud.proxy_clients``);
- no destination inside any municipality's segment or any shared network of the inventories the
  stack serves, nor the inspection VPC, the proxy host itself (loopback) or link-local addresses
  (the instance metadata service, 169.254.169.254): the proxy never relays one municipality to
  another, nor to the cloud's own services;
- only ports 80 and 443, and CONNECT (a TLS tunnel) only to 443; everything else is denied;
- no cache (``cache deny all``); the client's internal address is not sent on
  (``forwarded_for delete``);
- an access log whose every line carries the client address and its municipality's code: one
  ``acl from_<code>`` per municipality and ``note municipality <code> from_<code>``, logged with
  ``%{municipality}note``; each line ends in ``municipality=<code> client=<address>``
  (``municipality=-`` for a client of no municipality, e.g. one refused).

The project's ``proxy`` Ansible role (roles/proxy, through plugins/filter/proxy.py) renders its
configuration here too, for the lab's proxy (:func:`host_policy`) and for the cloud's instances
found by the ``amazon.aws.aws_ec2`` inventory (:func:`fleet_policy`), and adds what only the
Ansible inventory says (:func:`with_sites`): the α' municipalities' LGWAN terminals and their
approved cloud destinations, and the prefecture's deny list and allow list.

Everything here is known when the program runs (the inventories), so the user data is a plain
string at preview too, not an Output.

:func:`fleet_policy` reads the inventory model; :func:`render` takes plain ranges, so the unit
tests render the same configuration for loopback ranges and run it (tests/unit/test_cloud_squid.py).
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from municloud.inventory import Prefecture

Net = ipaddress.IPv4Network

WEB_PORTS = (80, 443)  # what the proxies may reach; the security group and firewall agree
TLS_PORT = 443  # the only port CONNECT may open a tunnel to
LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")  # holds the metadata service 169.254.169.254
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
CONF = "/etc/squid/squid.conf"
HEREDOC = "MUNICLOUD_SQUID_CONF"  # ends the configuration inside the user data script
USER_DATA_LIMIT = 16 * 1024  # EC2 refuses user data over 16 KB (before base64)


@dataclass(frozen=True)
class Range:
    """One address range of an ACL, with what it is (written as a comment above it)."""

    net: Net
    label: str
    municipality: str = ""  # the 6-digit code of the municipality whose range it is, if any


@dataclass(frozen=True)
class Approved:
    """α' (alpha_prime): a municipality's LGWAN terminals and the cloud services approved for
    them (flow ``lgwan-terminals-to-approved-cloud``); they may use the proxy for these only."""

    municipality: str  # 6-digit code
    label: str
    terminals: tuple[Range, ...]
    sites: tuple[str, ...]  # see :func:`site_kind`


@dataclass(frozen=True)
class Denied:
    """Destinations no client may reach: one squid ``dst`` ACL."""

    acl: str
    why: str
    ranges: tuple[Range, ...]


@dataclass(frozen=True)
class Policy:
    """What one prefecture's proxies allow: who may connect, where nobody may go."""

    title: str  # the first comment line: whose proxies these are
    hostname: str  # visible_hostname: shown on squid's error pages
    port: int
    clients: tuple[Range, ...]
    denied: tuple[Denied, ...]
    approved: tuple[Approved, ...] = ()
    # The prefecture's lists (see :func:`with_sites`): denied to everyone; and, when not empty,
    # the only sites the internet segments may reach.
    deny_sites: tuple[str, ...] = ()
    allow_sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Files:
    """Where squid keeps its pid file and logs."""

    pid_file: str
    access_log: str
    cache_log: str
    coredump_dir: str
    # squid's own hosts file (static names for sites without DNS, e.g. the lab); None: /etc/hosts
    hosts_file: str | None = None


# The paths of Debian 12's squid package (its own defaults, written out).
DEBIAN = Files(pid_file="/run/squid.pid", access_log="/var/log/squid/access.log",
               cache_log="/var/log/squid/cache.log", coredump_dir="/var/spool/squid")


def fleet_policy(prefecture: Prefecture, served: Sequence[Prefecture], port: int) -> Policy:
    """The policy of ``prefecture``'s proxies in a security cloud serving ``served``.

    Raises ``ConfigError`` when no municipality of the prefecture has an internet segment: such
    proxies would admit nobody, and a fleet that serves no one is a mistake in the stack.
    """
    # Imported here: security_cloud imports this module to build the launch template.
    from municloud.cloud.config import ConfigError
    from municloud.cloud.security_cloud import inspection_vpc_ranges, proxy_clients
    from municloud.segments import SharedNetwork

    p = prefecture
    clients = tuple(Range(net, f"{m.name_romaji} ({m.code}) internet segment", m.code)
                    for m, net in proxy_clients(p))
    if not clients:
        raise ConfigError(
            f"{p.path}: no municipality of {p.name_romaji} ({p.code}) has an internet segment: "
            "its proxies would admit nobody; add its municipalities to the inventory, or "
            "remove the inventory from municloud:inventories")
    municipalities = tuple(
        Range(net.cidr, f"{m.name_romaji} ({m.code}) {segment.value} segment")
        for q in served for m in q.municipalities for segment, net in m.segments.items())
    shared = tuple(Range(net.cidr, f"{q.name_romaji} ({q.code}) shared network {kind.value}")
                   for q in served for kind, net in q.shared_networks.items())
    # The inspection VPC is built from the lead's internet network; a prefecture without one
    # (a lab such as tests/lab's tiny one) has no such VPC, and its shared networks are denied
    # below anyway.
    vpc = tuple(Range(net, "inspection VPC, " + ("primary range" if i == 0 else "secondary range"))
                for i, net in enumerate(inspection_vpc_ranges(served))
                ) if SharedNetwork.INTERNET in served[0].shared_networks else ()
    return Policy(
        title=f"web proxies of {p.name_ja} ({p.name_romaji}, {p.code}) in security cloud "
              f"{p.security_cloud}",
        hostname=f"{p.security_cloud}-proxy-{p.code}",
        port=port,
        clients=clients,
        denied=(
            Denied("to_municipalities", "any segment of any municipality the cloud serves: "
                   "no municipality is relayed to another", municipalities),
            Denied("to_shared_networks", "the shared networks of the prefectures the cloud "
                   "serves", shared),
            Denied("to_inspection_vpc", "the cloud's own VPC: its load balancers, proxies, "
                   "firewall and NAT", vpc),
            Denied("to_proxy_host", "the proxy host itself", (Range(LOOPBACK, "loopback"),)),
        ),
    )


def host_policy(prefecture: Prefecture, host: str, port: int,
                extra_denied: Sequence[Net] = ()) -> Policy:
    """The policy of the proxy ``host`` of the inventory (a host with ``municloud_role: proxy``,
    such as the lab's): the same clients as :func:`fleet_policy`; denied destinations are every
    municipality's segments, the shared networks but ``internet`` (that one stands for the
    internet itself, where the proxy's outside leg is), the host's own addresses and
    ``extra_denied`` (e.g. another prefecture's networks in a wide-area security cloud)."""
    from municloud.cloud.config import ConfigError
    from municloud.segments import SharedNetwork

    p = prefecture
    found = [h for h in p.hosts if h.name == host]
    if not found:
        raise ConfigError(f"{host}: not a host of the inventory of {p.name_romaji} ({p.code})")
    me = found[0]
    base = fleet_policy(p, [p], port)
    municipalities = next(d for d in base.denied if d.acl == "to_municipalities")
    shared = tuple(Range(net.cidr, f"{p.name_romaji} ({p.code}) shared network {kind.value}")
                   for kind, net in p.shared_networks.items() if kind is not SharedNetwork.INTERNET)
    own = tuple(Range(Net(f"{a}/32"), f"{me.name} on {net}") for net, a in me.addresses.items()
                if not any(a in r.net for r in (*municipalities.ranges, *shared)))
    denied = [municipalities,
              Denied("to_shared_networks", "the prefecture's shared networks but the internet",
                     shared),
              Denied("to_proxy_host", "the proxy host itself",
                     (Range(LOOPBACK, "loopback"), *own))]
    if extra_denied:
        denied.append(Denied("to_extra", "further ranges the inventory denies "
                             "(proxy_denied_networks)",
                             tuple(Range(n, "proxy_denied_networks") for n in extra_denied)))
    return replace(base, title=f"web proxy {me.name} of {p.name_ja} ({p.name_romaji}, {p.code})",
                   hostname=me.name, denied=tuple(denied))


_DOMAIN = re.compile(r"^\.?(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$")


def site_kind(site: str) -> str:
    """``dstdomain`` for a host name (``example.jp``: that host only) or a domain with a leading
    dot (``.example.jp``: it and every name under it); ``dst`` for an IPv4 address or range.
    ValueError for anything else."""
    try:
        ipaddress.IPv4Network(site, strict=True)
    except ValueError:
        if _DOMAIN.match(site) and len(site) <= 253:
            return "dstdomain"
        raise ValueError(f"{site!r} is neither a host name (lower case, e.g. "
                         "updates.example.jp), a domain (.example.jp) nor an IPv4 address or "
                         "range (203.0.113.0/24)") from None
    return "dst"


def _check_sites(what: str, sites: Sequence[str]) -> tuple[str, ...]:
    problems = []
    for site in sites:
        try:
            site_kind(site)
        except ValueError as exc:
            problems.append(str(exc))
    domains = [s for s in sites if not problems and site_kind(s) == "dstdomain"]
    for a in domains:
        for b in domains:
            # squid keeps one of two overlapping names and warns: refuse it here instead
            if a != b and a.startswith(".") and (b == a[1:] or b.endswith(a)):
                problems.append(f"{b!r} is already covered by {a!r}")
    if len(set(sites)) != len(sites):
        problems.append("a site is listed twice")
    if problems:
        raise ValueError(f"{what}: " + "; ".join(problems))
    return tuple(sites)


def with_sites(policy: Policy, prefecture: Prefecture,
               approved: Mapping[str, Sequence[str]] | None = None,
               deny_sites: Sequence[str] = (), allow_sites: Sequence[str] = ()) -> Policy:
    """``policy`` with what only the Ansible inventory says:

    - ``approved``: municipality code -> the cloud destinations approved for its LGWAN
      terminals; only α' (alpha_prime) municipalities may have any (ValueError otherwise);
    - ``deny_sites``: refused to every client, whatever else allows them;
    - ``allow_sites``: when empty, the internet segments may reach every site but the deny list;
      when not, only these (still minus the deny list). α' LGWAN terminals reach only their
      approved destinations, whatever this list says.

    Sites are host names, domains (leading dot) or IPv4 ranges (:func:`site_kind`)."""
    from municloud.segments import GuidelineModel, HostRole, Segment

    by_code = {m.code: m for m in prefecture.municipalities}
    entries = []
    for code, sites in sorted((approved or {}).items()):
        if not sites:
            continue
        m = by_code.get(code)
        if m is None:
            raise ValueError(f"approved destinations for {code}: no municipality of "
                             f"{prefecture.name_romaji} has that code")
        if m.model is not GuidelineModel.ALPHA_PRIME:
            raise ValueError(
                f"{m.name_romaji} ({code}, group {m.group}) is of model {m.model.value}: only α' "
                "(alpha_prime) municipalities' LGWAN terminals may use the proxy; remove "
                f"proxy_approved_destinations from its group_vars")
        terminals = tuple(Range(Net(f"{a}/32"), f"{h.name}", code) for h in m.hosts
                          if h.role is HostRole.TERMINAL and h.segment is Segment.LGWAN
                          for a in h.addresses.values())
        label = f"{m.name_romaji} ({code}) LGWAN terminals"
        what = f"the approved destinations of {label} (proxy_approved_destinations)"
        entries.append(Approved(code, label, terminals, _check_sites(what, list(sites))))
    return replace(policy, approved=tuple(entries),
                   deny_sites=_check_sites("the deny list (proxy_deny_list)", list(deny_sites)),
                   allow_sites=_check_sites("the allow list (proxy_allow_list)", list(allow_sites)))


def _site_acl(name: str, sites: Sequence[str]) -> list[str]:
    """ACL ``name`` matching any of ``sites`` (names by the URL's host, without a reverse
    lookup; addresses by where the name resolves)."""
    domains = [s for s in sites if site_kind(s) == "dstdomain"]
    nets = [s for s in sites if site_kind(s) == "dst"]
    parts: list[tuple[str, str, list[str]]] = []
    if domains:
        parts.append((f"{name}_names" if nets else name, "dstdomain -n", domains))
    if nets:
        parts.append((f"{name}_addresses" if domains else name, "dst", nets))
    out = [f"acl {acl} {kind} {s}" for acl, kind, values in parts for s in values]
    if len(parts) == 2:
        out.append(f"acl {name} any-of {parts[0][0]} {parts[1][0]}")
    return out


def _acl(name: str, kind: str, ranges: Sequence[Range]) -> list[str]:
    nets = [r.net for r in ranges]
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            if a.overlaps(b):
                # squid would keep one of the two and warn; the inventories never overlap
                raise ValueError(f"acl {name}: {a} and {b} overlap")
    out = []
    for r in ranges:
        out += [f"# {r.label}", f"acl {name} {kind} {r.net}"]
    return out


def render(policy: Policy, address: ipaddress.IPv4Address | None = None,
           files: Files = DEBIAN) -> str:
    """squid.conf for ``policy``; squid listens on every address, or only on ``address``."""
    if not policy.clients:
        raise ValueError(f"{policy.title}: no client range: the proxy would admit nobody")
    listen = f"{address}:{policy.port}" if address else str(policy.port)
    lines = [
        f"# squid.conf of the {policy.title}.",
        "# Rendered by municloud (municloud/cloud/squid.py) from the inventories. Not edited by",
        "# hand: a change here is a change of the inventories or of that module.",
        "",
        f"http_port {listen}",
        f"visible_hostname {policy.hostname}",
        "",
        "# Who may use the proxy: the internet segments of the prefecture's municipalities (the",
        "# same ranges as the cloud proxies' security group).",
        *_acl("municipality_clients", "src", policy.clients),
    ]
    for a in policy.approved:
        lines += ["", f"# α': {a.label} may reach the cloud services approved for them, only",
                  *_acl(f"lgwan_terminals_{a.municipality}", "src", a.terminals),
                  *_site_acl(f"approved_{a.municipality}", a.sites)]
    # whose each client is, for the log: one acl and one note per municipality
    sources: dict[str, list[Range]] = {}
    for r in (*policy.clients, *(t for a in policy.approved for t in a.terminals)):
        if r.municipality:
            sources.setdefault(r.municipality, []).append(r)
    if sources:
        lines += ["", "# The municipality of each client, named on its access log lines",
                  "# (%{municipality}note)."]
        for code, ranges in sources.items():
            lines += [*_acl(f"from_{code}", "src", ranges),
                      f"note municipality {code} from_{code}"]
    lines += ["", "# Where nobody may go."]
    for d in policy.denied:
        lines += [f"# {d.acl}: {d.why}", *_acl(d.acl, "dst", d.ranges)]
    lines += [
        "# link-local: the instance metadata service (169.254.169.254) and AWS's other",
        "# instance services",
        f"acl to_link_local dst {LINK_LOCAL}",
    ]
    if policy.deny_sites:
        lines += ["# the prefecture's deny list: refused to everyone",
                  *_site_acl("deny_list", policy.deny_sites)]
    if policy.allow_sites:
        lines += ["# the prefecture's allow list: the only sites the internet segments may reach",
                  *_site_acl("allow_list", policy.allow_sites)]
    lines += [
        "",
        f"acl web_ports port {' '.join(str(p) for p in WEB_PORTS)}",
        f"acl tls_port port {TLS_PORT}",
        "acl connect_method method CONNECT",
        "",
        "# First match wins.",
        "# squid's cache manager (the predefined acl manager) is nobody's business here",
        "http_access deny manager",
        "http_access deny !web_ports",
        "http_access deny connect_method !tls_port",
        *(f"http_access deny {d.acl}" for d in policy.denied),
        "http_access deny to_link_local",
        *(["http_access deny deny_list"] if policy.deny_sites else []),
        *(f"http_access allow lgwan_terminals_{a.municipality} approved_{a.municipality}"
          for a in policy.approved),
        "http_access deny !municipality_clients",
        *(["http_access deny !allow_list"] if policy.allow_sites else []),
        "http_access allow municipality_clients",
        "http_access deny all",
        "",
        "# No cache: every answer is fetched for the client that asked.",
        "cache deny all",
        "# The client's internal address stays inside (no X-Forwarded-For to the sites).",
        "forwarded_for delete",
        "# No ICMP measurements (netdb): nothing here uses them, and the helper needs raw sockets.",
        "pinger_enable off",
        "",
        "# Fields: time, duration (ms), client address, result/status, bytes, method, URL,",
        "# hierarchy/server address, content type, then municipality=<code> (- when the client",
        "# is no municipality's) and client=<address>: the central log reads these two.",
        "logformat municloud %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %Sh/%<a %mt "
        "municipality=%{municipality}note client=%>a",
        f"access_log daemon:{files.access_log} municloud",
        f"cache_log {files.cache_log}",
        f"pid_filename {files.pid_file}",
        f"coredump_dir {files.coredump_dir}",
        *([f"hosts_file {files.hosts_file}"] if files.hosts_file else []),
    ]
    return "\n".join(lines) + "\n"


def user_data(config: str) -> str:
    """The first-boot script (cloud-init runs it as root) that makes a Debian 12 instance a proxy
    with ``config``: install squid, write the configuration, check it, restart squid. A
    configuration squid refuses stops squid (the load balancer's health check then fails, and
    Auto Scaling replaces the instance) rather than leave Debian's default squid answering."""
    if not config.endswith("\n") or HEREDOC in config.splitlines():
        raise ValueError(f"the configuration must end in a newline and hold no line {HEREDOC}")
    return "\n".join([
        "#!/bin/sh",
        "# The web proxy: Debian's squid with the configuration municloud rendered from the",
        "# inventories (municloud/cloud/squid.py). cloud-init runs this once, as root.",
        "set -eu",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update",
        "apt-get install -y --no-install-recommends squid",
        f"cat >{CONF} <<'{HEREDOC}'",
        f"{config}{HEREDOC}",
        f"if ! squid -k parse -f {CONF}; then",
        "  systemctl stop squid",
        "  exit 1",
        "fi",
        "systemctl restart squid",
        "",
    ])


def user_data_base64(config: str) -> str:
    """:func:`user_data` as a launch template wants it: gzip-compressed (cloud-init unpacks
    gzip user data before it runs it), then base64; refuses what EC2 would (over 16 KB).

    Compressed because every fleet's configuration lists every municipality of the cloud
    among its denied destinations, about 280 bytes each: measured here on the benchmark's
    synthetic cloud of 265 municipalities (benchmarks/cloud_plan.py), one fleet's script is
    75 KB as text and 8 KB compressed. ``mtime=0`` keeps the bytes, and so the launch
    template, the same from one run to the next."""
    script = user_data(config).encode()
    packed = gzip.compress(script, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise ValueError(f"the proxy's user data is {len(packed)} bytes compressed "
                         f"({len(script)} as text); EC2 takes at most {USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()
