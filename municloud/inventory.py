"""The inventory model: one prefecture, read from an ordinary Ansible inventory.

An inventory lives in ``inventories/<name>/hosts.yml`` and is a normal Ansible YAML inventory
(``ansible-inventory -i inventories/<name> --graph`` works on it). The domain data sits in a few
well-known variables, so Ansible, the lab, the Pulumi programs and the acceptance tests all read the
same file and nothing is typed twice::

    all:
      vars:
        municloud_prefecture:          # the prefecture (or one member of a multi-prefecture cloud)
          code: "310000"               # 6-digit 全国地方公共団体コード of the prefecture
          name_ja: 鳥取県
          name_romaji: Tottori
          security_cloud: okayama-tottori   # the security cloud this prefecture belongs to
          shared_networks:             # networks of the prefecture, not of one municipality
            internet: 198.18.0.0/24
            security_cloud: 198.18.1.0/24
            lgwan_backbone: 198.18.2.0/24
            joint_cloud: 198.18.3.0/24
      children:
        shared:                        # hosts of the shared networks
          hosts:
            sc-proxy:
              municloud_role: proxy
              municloud_addresses: {security_cloud: 198.18.1.10, internet: 198.18.0.10}
        municipalities:
          children:
            tottori_shi:               # one group per municipality
              vars:
                municloud_municipality:
                  code: "312011"
                  name_ja: 鳥取市
                  name_romaji: Tottori-shi
                  model: alpha         # alpha, alpha_prime, beta or beta_prime
                  joint_cloud: tottori-east   # optional: the joint cloud it belongs to
                  segments:
                    individual_number: 198.18.16.0/24
                    lgwan: 198.18.17.0/24
                    internet: 198.18.18.0/24
              hosts:
                tottori-shi-gw:
                  municloud_role: gateway
                  municloud_addresses: {individual_number: 198.18.16.1, lgwan: 198.18.17.1, ...}
                tottori-shi-lgwan-term:
                  municloud_role: terminal
                  municloud_addresses: {lgwan: 198.18.17.10}

In a municipality's host, the keys of ``municloud_addresses`` are its segments and the uplinks
(``security_cloud``, ``lgwan_backbone``, ``joint_cloud``); in a shared host they are the shared
networks. Only a gateway has legs in more than one network of its municipality.

``load(path)`` returns a validated :class:`Prefecture` or raises :class:`InventoryError` carrying
every problem found, each with the file, the key and what to do.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from municloud.segments import (
    MUNICIPALITY_ROLES,
    SHARED_ROLES,
    GuidelineModel,
    HostRole,
    Segment,
    SharedNetwork,
    Uplink,
)

INVENTORY_FILES = ("hosts.yml", "hosts.yaml")

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an inventory: where, what, and what to do about it."""

    file: str
    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}; {self.fix}"


class InventoryError(Exception):
    """The inventory is not valid. ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def print(self, stream: TextIO | None = None) -> None:
        """Print every problem, one a line, for a person at a terminal (stderr by default)."""
        for problem in self.problems:
            print(problem, file=stream or sys.stderr)


@dataclass(frozen=True)
class Network:
    """One layer-2 network: a municipality's segment or a shared network of the prefecture.

    ``municipality`` is the group name of the municipality it belongs to, or None for a shared one.
    """

    name: str  # a Segment value for a municipality's segment, a SharedNetwork value otherwise
    cidr: IPv4Network
    municipality: str | None = None

    @property
    def id(self) -> str:
        """A name unique within the prefecture, e.g. ``tottori_shi.lgwan`` or ``security_cloud``."""
        return f"{self.municipality}.{self.name}" if self.municipality else self.name


@dataclass(frozen=True)
class Host:
    name: str
    role: HostRole
    addresses: Mapping[str, IPv4Address]  # network id -> address, in inventory order
    municipality: str | None = None  # group name, None for a shared host

    @property
    def segment(self) -> Segment | None:
        """The one segment of a municipality's non-gateway host (None: gateway or shared host)."""
        if self.municipality is None or self.role is HostRole.GATEWAY:
            return None
        return Segment(next(iter(self.addresses)).split(".", 1)[1])

    @property
    def primary_address(self) -> IPv4Address:
        """The address automation reaches the host on: its first one in the inventory."""
        return next(iter(self.addresses.values()))


@dataclass(frozen=True)
class Municipality:
    group: str  # the Ansible group name, e.g. ``tottori_shi``
    code: str  # 6-digit 全国地方公共団体コード
    name_ja: str
    name_romaji: str
    model: GuidelineModel
    segments: Mapping[Segment, Network]
    joint_cloud: str | None = None
    hosts: tuple[Host, ...] = ()

    @property
    def gateway(self) -> Host:
        return next(h for h in self.hosts if h.role is HostRole.GATEWAY)


@dataclass(frozen=True)
class Prefecture:
    """A validated inventory."""

    path: Path  # the inventory directory
    code: str
    name_ja: str
    name_romaji: str
    security_cloud: str
    shared_networks: Mapping[SharedNetwork, Network]
    municipalities: tuple[Municipality, ...]
    shared_hosts: tuple[Host, ...] = field(default=())

    @property
    def name(self) -> str:
        """The inventory's name: its directory name."""
        return self.path.name

    @property
    def networks(self) -> list[Network]:
        nets = list(self.shared_networks.values())
        for m in self.municipalities:
            nets.extend(m.segments.values())
        return nets

    @property
    def hosts(self) -> list[Host]:
        return [*self.shared_hosts, *(h for m in self.municipalities for h in m.hosts)]

    def summary(self) -> str:
        models = ", ".join(sorted({m.model.value for m in self.municipalities}))
        return (
            f"{self.name_ja} ({self.name_romaji}, {self.code}): {len(self.municipalities)} "
            f"municipalities ({models}), {len(self.hosts)} hosts, {len(self.networks)} networks, "
            f"security cloud {self.security_cloud}"
        )


# --- local government codes -------------------------------------------------------------------

_CODE_RE = re.compile(r"^[0-9]{6}$")


def check_digit(first_five: str) -> str:
    """The check digit (検査数字) of a 全国地方公共団体コード, from its first five digits.

    Weights 6,5,4,3,2; the digit is the last digit of 11 minus the remainder mod 11.
    """
    total = sum(int(d) * w for d, w in zip(first_five, (6, 5, 4, 3, 2), strict=True))
    return str((11 - total % 11) % 10)


def code_problem(code: object) -> str | None:
    """Why ``code`` is not a valid local government code, or None if it is."""
    if not isinstance(code, str):
        return f"{code!r} is a {type(code).__name__}, not a quoted string"
    if not _CODE_RE.match(code):
        return f"{code!r} is not 6 digits"
    if code[:2] == "00" or int(code[:2]) > 47:
        return f"{code!r} does not start with a prefecture number 01-47"
    if check_digit(code[:5]) != code[5]:
        need = check_digit(code[:5])
        return f"{code!r} has check digit {code[5]}, but its first five digits need {need}"
    return None


# --- loading -----------------------------------------------------------------------------------


class _Collector:
    """Collects problems while the loader walks the file, so that all of them are reported."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def add(self, key: str, message: str, fix: str) -> None:
        self.problems.append(Problem(self.file, key, message, fix))

    def mapping(self, value: object, key: str, what: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.add(key, f"expected a mapping ({what}), found {_kind(value)}", f"write {what} here")
        return None

    def string(self, parent: Mapping[str, Any], name: str, key: str, fix: str) -> str | None:
        value = parent.get(name)
        if isinstance(value, str) and value.strip():
            return value
        self.add(f"{key}.{name}", f"missing or not a string ({_kind(value)})", fix)
        return None


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({value!r})"


def inventory_file(path: Path) -> Path:
    """The YAML inventory file of an inventory directory (or the file itself)."""
    if path.is_file():
        return path
    for name in INVENTORY_FILES:
        if (path / name).is_file():
            return path / name
    raise InventoryError(
        [
            Problem(
                str(path),
                "-",
                "no inventory here",
                f"create {path}/hosts.yml (see inventories/sample/hosts.yml for the layout)",
            )
        ]
    )


def load(path: str | Path) -> Prefecture:
    """Load and validate the inventory at ``path`` (a directory, or its hosts.yml)."""
    file = inventory_file(Path(path))
    directory = file.parent
    out = _Collector(str(file))
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        out.add("-", f"not valid YAML: {exc}".replace("\n", " "), "fix the YAML syntax")
        raise InventoryError(out.problems) from None
    root = out.mapping(data, "-", "the inventory, starting with `all:`")
    all_ = out.mapping(root.get("all") if root else None, "all", "the `all` group")
    if all_ is None:
        raise InventoryError(out.problems)
    vars_ = out.mapping(all_.get("vars"), "all.vars", "`municloud_prefecture`") or {}
    children = out.mapping(all_.get("children"), "all.children", "`shared` and `municipalities`")
    children = children or {}

    pref_key = "all.vars.municloud_prefecture"
    pref = out.mapping(vars_.get("municloud_prefecture"), pref_key, "the prefecture") or {}
    code = pref.get("code")
    problem = code_problem(code)
    if problem:
        out.add(
            f"{pref_key}.code", problem, 'write the prefecture\'s code, e.g. "310000" for 鳥取県'
        )
    elif isinstance(code, str) and code[2:5] != "000":
        out.add(
            f"{pref_key}.code",
            f"{code!r} is a municipality's code, not a prefecture's",
            'a prefecture\'s code is its number, 000 and a check digit, e.g. "310000"',
        )
    name_ja = out.string(pref, "name_ja", pref_key, "write the name in Japanese, e.g. 鳥取県")
    name_romaji = out.string(
        pref, "name_romaji", pref_key, "write the name in romaji, e.g. Tottori"
    )
    security_cloud = out.string(
        pref, "security_cloud", pref_key, "name the security cloud the prefecture belongs to"
    )

    shared_networks: dict[SharedNetwork, Network] = {}
    nets_key = f"{pref_key}.shared_networks"
    for name, cidr in (
        out.mapping(pref.get("shared_networks"), nets_key, "network: CIDR") or {}
    ).items():
        try:
            kind = SharedNetwork(name)
        except ValueError:
            out.add(
                f"{nets_key}.{name}",
                "unknown shared network",
                f"use one of {', '.join(SharedNetwork)}",
            )
            continue
        net = _network(out, f"{nets_key}.{name}", cidr)
        if net:
            shared_networks[kind] = Network(kind.value, net)

    shared_hosts: list[Host] = []
    shared_group = out.mapping(children.get("shared", {}), "all.children.shared", "`hosts:`") or {}
    shared_by_name = {n.name: n for n in shared_networks.values()}
    for name, hv in (shared_group.get("hosts") or {}).items():
        host = _host(out, f"all.children.shared.hosts.{name}", name, hv, None, shared_by_name)
        if host:
            shared_hosts.append(host)

    mun_key = "all.children.municipalities.children"
    muns_group = (
        out.mapping(
            children.get("municipalities"),
            "all.children.municipalities",
            "`children:` with one group per municipality",
        )
        or {}
    )
    municipalities: list[Municipality] = []
    codes: list[tuple[str, str]] = []  # (group, code) of every entry, even those with problems
    for group, body in (
        out.mapping(muns_group.get("children"), mun_key, "one group per municipality") or {}
    ).items():
        m = _municipality(out, f"{mun_key}.{group}", group, body or {}, shared_networks)
        code_value = ((body or {}).get("vars") or {}).get("municloud_municipality") or {}
        if isinstance(code_value, Mapping) and code_problem(code_value.get("code")) is None:
            codes.append((group, code_value["code"]))
        if m:
            municipalities.append(m)
    if not municipalities and not out.problems:
        out.add(mun_key, "no municipality", "add at least one municipality group")

    _check_whole(out, municipalities, codes, shared_networks, shared_hosts, code)
    if out.problems:
        raise InventoryError(out.problems)
    assert isinstance(code, str) and name_ja and name_romaji and security_cloud
    return Prefecture(
        path=directory.resolve(),
        code=code,
        name_ja=name_ja,
        name_romaji=name_romaji,
        security_cloud=security_cloud,
        shared_networks=shared_networks,
        municipalities=tuple(municipalities),
        shared_hosts=tuple(shared_hosts),
    )


def _network(out: _Collector, key: str, value: object) -> IPv4Network | None:
    try:
        return ipaddress.IPv4Network(str(value), strict=True)
    except ValueError as exc:
        out.add(
            key,
            f"{value!r} is not an IPv4 network in CIDR form ({exc})",
            "write it as network/prefix, e.g. 198.18.16.0/24, with no host bits set",
        )
        return None


def _municipality(
    out: _Collector,
    key: str,
    group: str,
    body: Mapping[str, Any],
    shared_networks: Mapping[SharedNetwork, Network],
) -> Municipality | None:
    vars_ = out.mapping(body.get("vars"), f"{key}.vars", "`municloud_municipality`") or {}
    mkey = f"{key}.vars.municloud_municipality"
    data = out.mapping(vars_.get("municloud_municipality"), mkey, "the municipality") or {}
    if not data:
        return None
    code = data.get("code")
    problem = code_problem(code)
    if problem:
        out.add(
            f"{mkey}.code",
            problem,
            'write its 6-digit 全国地方公共団体コード as a quoted string, e.g. "312011"',
        )
    name_ja = out.string(data, "name_ja", mkey, "write the name in Japanese, e.g. 鳥取市")
    name_romaji = out.string(
        data, "name_romaji", mkey, "write the name in romaji, e.g. Tottori-shi"
    )
    model_value = data.get("model")
    model = None
    try:
        model = GuidelineModel(str(model_value))
    except ValueError:
        out.add(
            f"{mkey}.model",
            f"unknown guideline model {model_value!r}",
            f"use one of {', '.join(GuidelineModel)}",
        )
    joint_cloud = data.get("joint_cloud")
    if joint_cloud is not None and not isinstance(joint_cloud, str):
        out.add(
            f"{mkey}.joint_cloud",
            f"expected a name, found {_kind(joint_cloud)}",
            "name the joint cloud, or leave the key out",
        )
        joint_cloud = None

    segments: dict[Segment, Network] = {}
    seg_data = (
        out.mapping(
            data.get("segments"),
            f"{mkey}.segments",
            "individual_number, lgwan and internet with their CIDR",
        )
        or {}
    )
    for name, cidr in seg_data.items():
        try:
            seg = Segment(name)
        except ValueError:
            out.add(f"{mkey}.segments.{name}", "unknown segment", f"use {', '.join(Segment)}")
            continue
        net = _network(out, f"{mkey}.segments.{name}", cidr)
        if net:
            segments[seg] = Network(seg.value, net, group)
    for seg in Segment:
        if seg_data and seg not in segments and seg.value not in seg_data:
            out.add(
                f"{mkey}.segments",
                f"the {seg.value} segment has no address range",
                f"add `{seg.value}: <CIDR>`: every municipality has all three segments",
            )

    reachable: dict[str, Network] = {n.name: n for n in segments.values()}
    for uplink in Uplink:
        if SharedNetwork(uplink.value) in shared_networks:
            reachable[uplink.value] = shared_networks[SharedNetwork(uplink.value)]
    hosts: list[Host] = []
    for name, hv in (out.mapping(body.get("hosts"), f"{key}.hosts", "its hosts") or {}).items():
        host = _host(out, f"{key}.hosts.{name}", name, hv, group, reachable)
        if host:
            hosts.append(host)
    gateways = [h for h in hosts if h.role is HostRole.GATEWAY]
    if len(gateways) != 1 and body.get("hosts"):
        out.add(
            f"{key}.hosts",
            f"{len(gateways)} gateways",
            "give the municipality exactly one host with `municloud_role: gateway`",
        )
    for gw in gateways:
        for seg_net in segments.values():
            if seg_net.id not in gw.addresses:
                out.add(
                    f"{key}.hosts.{gw.name}.municloud_addresses",
                    f"the gateway has no leg in the {seg_net.name} segment",
                    f"add `{seg_net.name}: <address in {seg_net.cidr}>`",
                )

    if problem or not (name_ja and name_romaji and model and len(segments) == len(Segment)):
        return None
    assert isinstance(code, str)
    return Municipality(
        group, code, name_ja, name_romaji, model, segments, joint_cloud, tuple(hosts)
    )


def _host(
    out: _Collector,
    key: str,
    name: str,
    hv: object,
    municipality: str | None,
    networks: Mapping[str, Network],
) -> Host | None:
    """Read one host. ``networks`` maps the address keys this host may use to their networks."""
    hv = out.mapping(hv, key, "`municloud_role` and `municloud_addresses`")
    if hv is None:
        return None
    allowed = MUNICIPALITY_ROLES if municipality else SHARED_ROLES
    role_value = hv.get("municloud_role")
    role = None
    try:
        role = HostRole(str(role_value))
        if role not in allowed:
            raise ValueError
    except ValueError:
        where = "a municipality" if municipality else "the shared group"
        out.add(
            f"{key}.municloud_role",
            f"{role_value!r} is not a role for a host of {where}",
            f"use one of {', '.join(sorted(allowed))}",
        )
        role = None
    addresses: dict[str, IPv4Address] = {}
    akey = f"{key}.municloud_addresses"
    raw = hv.get("municloud_addresses")
    if not raw:
        out.add(
            akey,
            "the host is in no segment or network",
            f"give it an address in one of: {', '.join(networks) or 'no network is defined'}",
        )
        return None
    raw = out.mapping(raw, akey, "network: address") or {}
    for net_name, value in raw.items():
        net = networks.get(net_name)
        if net is None:
            out.add(
                f"{akey}.{net_name}",
                "no such network for this host",
                f"use one of: {', '.join(networks)}",
            )
            continue
        try:
            address = ipaddress.IPv4Address(str(value))
        except ValueError:
            out.add(
                f"{akey}.{net_name}",
                f"{value!r} is not an IPv4 address",
                "write a dotted address, e.g. 198.18.17.10",
            )
            continue
        if address not in net.cidr or address in (
            net.cidr.network_address,
            net.cidr.broadcast_address,
        ):
            out.add(
                f"{akey}.{net_name}",
                f"{address} is outside the {net.id} range {net.cidr}",
                f"choose a host address inside {net.cidr}",
            )
            continue
        addresses[net.id] = address
    if role is None or len(addresses) != len(raw):
        return None
    if municipality and role is not HostRole.GATEWAY:
        segs = [n for n in addresses if n.startswith(f"{municipality}.")]
        if len(addresses) != 1 or len(segs) != 1:
            out.add(
                akey,
                f"a {role.value} must be in exactly one segment, found {list(raw)}",
                "give it one address, in individual_number, lgwan or internet; "
                "only the gateway joins several networks",
            )
            return None
    return Host(name, role, addresses, municipality)


def _check_whole(
    out: _Collector,
    municipalities: list[Municipality],
    codes: list[tuple[str, str]],
    shared_networks: Mapping[SharedNetwork, Network],
    shared_hosts: list[Host],
    prefecture_code: object,
) -> None:
    """Rules that span municipalities: codes, ranges and addresses unique across the prefecture."""
    mun_key = "all.children.municipalities.children"
    seen_codes: dict[str, str] = {}
    for group, code in codes:
        key = f"{mun_key}.{group}.vars.municloud_municipality.code"
        if code in seen_codes:
            out.add(
                key,
                f"{code} is also the code of {seen_codes[code]}",
                "each municipality has its own code; check both entries",
            )
        seen_codes.setdefault(code, group)
        if isinstance(prefecture_code, str) and code[:2] != prefecture_code[:2]:
            out.add(
                key,
                f"{code} belongs to prefecture {code[:2]}, not {prefecture_code[:2]}",
                "list it in its own prefecture's inventory, or correct the code",
            )

    nets: list[tuple[str, Network]] = [
        (f"all.vars.municloud_prefecture.shared_networks.{n.name}", n)
        for n in shared_networks.values()
    ]
    for m in municipalities:
        nets += [
            (f"{mun_key}.{m.group}.vars.municloud_municipality.segments.{n.name}", n)
            for n in m.segments.values()
        ]
    for i, (key_a, a) in enumerate(nets):
        for key_b, b in nets[i + 1 :]:
            if a.cidr.overlaps(b.cidr):
                out.add(
                    key_b,
                    f"{b.cidr} ({b.id}) overlaps {a.cidr} ({a.id}, at {key_a})",
                    "give every segment and shared network its own address range",
                )

    seen_addr: dict[IPv4Address, str] = {}
    all_hosts = [*shared_hosts, *(h for m in municipalities for h in m.hosts)]
    seen_names: set[str] = set()
    for h in all_hosts:
        if h.name in seen_names:
            out.add(h.name, "the host name is used twice", "give each host its own name")
        seen_names.add(h.name)
        for addr in h.addresses.values():
            if addr in seen_addr and seen_addr[addr] != h.name:
                out.add(
                    f"{h.name}.municloud_addresses",
                    f"{addr} is also the address of {seen_addr[addr]}",
                    "give each host its own address",
                )
            seen_addr.setdefault(addr, h.name)
