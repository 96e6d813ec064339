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
- an access log whose every line carries the client address (its municipality's segment).

Everything here is known when the program runs (the inventories), so the user data is a plain
string at preview too, not an Output.

:func:`fleet_policy` reads the inventory model; :func:`render` takes plain ranges, so the unit
tests render the same configuration for loopback ranges and run it (tests/unit/test_cloud_squid.py).
"""

from __future__ import annotations

import base64
import gzip
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Files:
    """Where squid keeps its pid file and logs."""

    pid_file: str
    access_log: str
    cache_log: str
    coredump_dir: str


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

    p = prefecture
    clients = tuple(Range(net, f"{m.name_romaji} ({m.code}) internet segment")
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
    vpc = tuple(Range(net, "inspection VPC, " + ("primary range" if i == 0 else "secondary range"))
                for i, net in enumerate(inspection_vpc_ranges(served)))
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
        "# Rendered by municloud (municloud/cloud/squid.py) from the inventories the stack",
        "# serves, and written by the launch template's user data. Not edited by hand: a change",
        "# here is a change of the inventories or of that module.",
        "",
        f"http_port {listen}",
        f"visible_hostname {policy.hostname}",
        "",
        "# Who may use the proxy: the internet segments of the prefecture's municipalities (the",
        "# same ranges as the proxies' security group).",
        *_acl("municipality_clients", "src", policy.clients),
        "",
        "# Where nobody may go.",
    ]
    for d in policy.denied:
        lines += [f"# {d.acl}: {d.why}", *_acl(d.acl, "dst", d.ranges)]
    lines += [
        "# link-local: the instance metadata service (169.254.169.254) and AWS's other",
        "# instance services",
        f"acl to_link_local dst {LINK_LOCAL}",
        "",
        f"acl web_ports port {' '.join(str(p) for p in WEB_PORTS)}",
        f"acl tls_port port {TLS_PORT}",
        "acl connect_method method CONNECT",
        "",
        "# First match wins.",
        "http_access deny !municipality_clients",
        "# squid's cache manager (the predefined acl manager) is nobody's business here",
        "http_access deny manager",
        "http_access deny !web_ports",
        "http_access deny connect_method !tls_port",
        *(f"http_access deny {d.acl}" for d in policy.denied),
        "http_access deny to_link_local",
        "http_access allow municipality_clients",
        "http_access deny all",
        "",
        "# No cache: every answer is fetched for the client that asked.",
        "cache deny all",
        "# The client's internal address stays inside (no X-Forwarded-For to the sites).",
        "forwarded_for delete",
        "",
        "# Every line carries the client address (%>a), which lies in one municipality's",
        "# internet segment (the acl municipality_clients above says whose). The line does not",
        "# name the municipality's code; the project's proxy Ansible role is where that is to",
        "# be added (no such role exists in roles/ at the time of writing).",
        "# Fields: time, duration (ms), client address, result/status, bytes, method, URL,",
        "# hierarchy/server address, content type.",
        "logformat municloud %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %Sh/%<a %mt",
        f"access_log daemon:{files.access_log} municloud",
        f"cache_log {files.cache_log}",
        f"pid_filename {files.pid_file}",
        f"coredump_dir {files.coredump_dir}",
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
