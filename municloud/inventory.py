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
networks. Only a gateway has legs in more than one network of its municipality. A gateway may
also name ``municloud_outside_address``: its router's address on the internet or a closed line,
where the VPNs to the clouds come from (the cloud programs need it; the lab does not).

Three optional keys adapt the segment policy (municloud/flows.py) to a site:
``municloud_prefecture.services`` (services of the site's own, with ports and the roles that
offer them), ``municloud_prefecture.flows`` (flows for every municipality) and
``municloud_municipality.flows`` (flows for one). A site flow that breaks an invariant is refused.
``municloud_management`` (in ``all.vars`` or ``group_vars/all``) lists the addresses automation and
administrators come from; the lab writes the lab machine's own into ``group_vars/all/lab.yml``.

``load(path)`` reads the files and returns a validated :class:`Prefecture`, or raises
:class:`InventoryError` carrying every problem found, each with the file, the key and what to do.
``parse(data, file)`` does the same from a mapping shaped like ``hosts.yml``: the Ansible filter
plugin builds one from the variables Ansible resolved, so that AWX's copy of an inventory, which
is no file, is checked the same way.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from municloud import yamlfile
from municloud.flows import FLOWS, SERVICES, Flow, Service, parse_flows, parse_services
from municloud.problems import Collector, InventoryError, Problem
from municloud.problems import kind as _kind
from municloud.segments import (
    MUNICIPALITY_ROLES,
    SHARED_ROLES,
    GuidelineModel,
    HostRole,
    Segment,
    SharedNetwork,
    Uplink,
)

__all__ = ["Collector", "InventoryError", "Problem", "load", "parse"]

INVENTORY_FILES = ("hosts.yml", "hosts.yaml")
# The variables the model reads, and where: Ansible would also take them from group_vars/ and
# host_vars/, and the model would not see them there, so they are refused anywhere else.
MODEL_VARS_IN_HOSTS_FILE = (
    "municloud_prefecture",
    "municloud_municipality",
    "municloud_role",
    "municloud_addresses",
    "municloud_outside_address",
)
MANAGEMENT_VAR = "municloud_management"
# Ansible's rule for group names (others are "invalid characters" and get rewritten).
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address


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
    # A gateway's outside address (municloud_outside_address): where its VPNs to the clouds come
    # from, on the internet or a closed line. The cloud programs need it; the lab does not.
    outside_address: IPv4Address | None = None

    # The properties below are cached: a Host, like every object of the model, is not changed
    # once loaded. ``cache`` keeps what other modules compute from it (policy.host_zones).

    @cached_property
    def cache(self) -> dict[str, Any]:
        return {}

    @cached_property
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
    # The site flows of this municipality (municloud_municipality.flows).
    flows: tuple[Flow, ...] = ()

    @cached_property
    def gateway(self) -> Host:
        return next(h for h in self.hosts if h.role is HostRole.GATEWAY)

    @cached_property
    def uplinks(self) -> frozenset[str]:
        """The shared networks the gateway has a leg in (ids, e.g. ``security_cloud``)."""
        return frozenset(n for n in self.gateway.addresses if "." not in n)


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
    # Where automation and administrators come from (municloud_management); empty: not given.
    management: tuple[IPv4Network, ...] = ()
    services: Mapping[str, Service] = field(default_factory=lambda: dict(SERVICES))
    flows: tuple[Flow, ...] = ()  # site flows for every municipality (municloud_prefecture.flows)

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
        return list(self._hosts)

    # Indexes and ``cache`` are kept with the prefecture, which is not changed once loaded:
    # at national scale (benchmarks/national.py) every ruleset needs the concrete flows
    # (policy.allowed), and looking hosts and municipalities up by scanning lists was quadratic.

    @cached_property
    def _hosts(self) -> tuple[Host, ...]:
        return (*self.shared_hosts, *(h for m in self.municipalities for h in m.hosts))

    @cached_property
    def _host_index(self) -> dict[str, Host]:
        index: dict[str, Host] = {}
        for h in self._hosts:
            index.setdefault(h.name, h)
        return index

    @cached_property
    def _municipality_index(self) -> dict[str, Municipality]:
        index: dict[str, Municipality] = {}
        for m in self.municipalities:
            index.setdefault(m.group, m)
        return index

    @cached_property
    def cache(self) -> dict[str, Any]:
        """What other modules compute from the whole prefecture (e.g. policy.allowed)."""
        return {}

    def host(self, name: str) -> Host | None:
        """The host named ``name``, or None."""
        return self._host_index.get(name)

    def municipality(self, group: str) -> Municipality:
        found = self._municipality_index.get(group)
        if found is None:
            raise StopIteration(group)  # as the search this index replaced did
        return found

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
    """Load and validate the inventory at ``path`` (a directory, or its hosts.yml).

    Besides hosts.yml it reads ``municloud_management`` from ``group_vars/all`` (where the lab
    and most sites keep connection settings), and refuses the model's other variables in any
    group_vars or host_vars file, where Ansible would use them and the model would not.
    """
    file = inventory_file(Path(path))
    out = Collector(str(file))
    data = yamlfile.read(file, out)
    management = _vars_files(file.parent, out)
    if out.problems:
        raise InventoryError(out.problems)
    if management is not None and isinstance(data, dict):
        all_ = data.get("all")
        if isinstance(all_, dict) and isinstance(all_.get("vars"), dict):
            all_["vars"].setdefault(MANAGEMENT_VAR, management)
    return parse(data, str(file), file.parent)


def load_or_report(path: str | Path) -> Prefecture | None:
    """:func:`load` for a command: None once every problem is printed to stderr."""
    try:
        return load(path)
    except InventoryError as exc:
        exc.print()
        print(f"{len(exc.problems)} problem(s) found in {path}", file=sys.stderr)
        return None


def _vars_files(directory: Path, out: Collector) -> object:
    """``municloud_management`` from group_vars/all (None if absent); problems for model
    variables given in any vars file."""
    management: object = None
    for vars_dir in ("group_vars", "host_vars"):
        for path in sorted((directory / vars_dir).glob("**/*")):
            if path.suffix not in (".yml", ".yaml", "") or not path.is_file():
                continue
            if path.read_bytes()[:14] == b"$ANSIBLE_VAULT":
                continue  # a whole vaulted file: nothing the model reads belongs in it
            file_out = Collector(str(path))
            data = yamlfile.read(path, file_out)
            out.roots.extend(file_out.roots)
            if not isinstance(data, dict):
                continue
            for name in MODEL_VARS_IN_HOSTS_FILE:
                if name in data:
                    file_out.add(
                        name,
                        f"{path.relative_to(directory)} sets {name}; Ansible would use it, but "
                        "the model reads it from hosts.yml only, so the two would disagree",
                        f"move it into {directory / 'hosts.yml'}",
                    )
            out.others.extend(file_out.others)
            in_all = path.relative_to(directory).parts[:2] in (
                ("group_vars", "all"),
                ("group_vars", "all.yml"),
                ("group_vars", "all.yaml"),
            )
            if MANAGEMENT_VAR in data and in_all:
                management = data[MANAGEMENT_VAR]
    return management


def parse(data: object, file: str, directory: Path | None = None) -> Prefecture:
    """Validate ``data``, shaped like a hosts.yml; problems name ``file``.

    ``directory`` is the inventory's directory (the Prefecture's ``path``); it defaults to the
    directory of ``file``.
    """
    out = Collector(file)
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
    management = _management(out, "all.vars.municloud_management", vars_.get(MANAGEMENT_VAR))

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

    mun_key = "all.children.municipalities.children"
    muns_group = (
        out.mapping(
            children.get("municipalities"),
            "all.children.municipalities",
            "`children:` with one group per municipality",
        )
        or {}
    )
    groups = out.mapping(muns_group.get("children"), mun_key, "one group per municipality") or {}
    # Ranges first: a range that overlaps another is the cause of the problems of the addresses
    # in it, so it is reported first and those problems point back to it.
    overlapping = _check_ranges(out, shared_networks, groups)

    services = parse_services(out, f"{pref_key}.services", pref.get("services"))
    taken = {f.name for f in FLOWS}
    site_flows = parse_flows(out, f"{pref_key}.flows", pref.get("flows"), services, taken)

    shared_hosts: list[Host] = []
    shared_group = out.mapping(children.get("shared", {}), "all.children.shared", "`hosts:`") or {}
    shared_by_name = {n.name: n for n in shared_networks.values()}
    for name, hv in (shared_group.get("hosts") or {}).items():
        host = _host(
            out, f"all.children.shared.hosts.{name}", name, hv, None, shared_by_name, overlapping
        )
        if host:
            shared_hosts.append(host)

    municipalities: list[Municipality] = []
    codes: list[tuple[str, str]] = []  # (group, code) of every entry, even those with problems
    for group, body in groups.items():
        gkey = f"{mun_key}.{group}"
        if not isinstance(group, str) or not _GROUP_RE.match(group):
            out.add(
                gkey,
                f"{group!r} is not a name Ansible accepts for a group (it would rewrite it)",
                "use letters, digits and underscores, starting with a letter, e.g. tottori_shi",
            )
            continue
        m = _municipality(
            out, gkey, group, body or {}, shared_networks, overlapping, services, taken
        )
        code_value = ((body or {}).get("vars") or {}).get("municloud_municipality") or {}
        if isinstance(code_value, Mapping) and code_problem(code_value.get("code")) is None:
            codes.append((group, code_value["code"]))
        if m:
            municipalities.append(m)
    if not municipalities and not out.problems:
        out.add(mun_key, "no municipality", "add at least one municipality group")

    _check_whole(out, municipalities, codes, shared_hosts, code)
    if out.problems:
        raise InventoryError(out.problems)
    assert isinstance(code, str) and name_ja and name_romaji and security_cloud
    prefecture = Prefecture(
        path=(directory or Path(file).parent).resolve(),
        code=code,
        name_ja=name_ja,
        name_romaji=name_romaji,
        security_cloud=security_cloud,
        shared_networks=shared_networks,
        municipalities=tuple(municipalities),
        shared_hosts=tuple(shared_hosts),
        management=management,
        services=services,
        flows=tuple(site_flows),
    )
    # The segment policy's own checks need the whole model: where hosts of each role may sit,
    # and that no chain of flows (catalogue and site) breaks an invariant.
    from municloud import policy  # here, not at the top: the policy builds on this module

    policy_problems = policy.problems(prefecture, file)
    if policy_problems:
        raise InventoryError(policy_problems)
    return prefecture


def _management(out: Collector, key: str, value: object) -> tuple[IPv4Network, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        out.add(key, f"expected a list of addresses, found {_kind(value)}", "e.g. [192.0.2.10]")
        return ()
    found = []
    for i, item in enumerate(value):
        try:
            found.append(ipaddress.IPv4Network(str(item), strict=True))
        except ValueError as exc:
            out.add(
                f"{key}[{i}]", f"{item!r} is not an address or range ({exc})", "e.g. 192.0.2.10"
            )
    return tuple(found)


def _check_ranges(
    out: Collector,
    shared_networks: Mapping[SharedNetwork, Network],
    groups: Mapping[str, Any],
) -> set[str]:
    """Report ranges that overlap (as root causes); the ids of the networks involved."""
    mun_key = "all.children.municipalities.children"
    nets: list[tuple[str, Network]] = [
        (f"all.vars.municloud_prefecture.shared_networks.{n.name}", n)
        for n in shared_networks.values()
    ]
    for group, body in groups.items():
        data = ((body or {}).get("vars") or {}).get("municloud_municipality") or {}
        segments = data.get("segments") if isinstance(data, Mapping) else None
        for name, cidr in (segments if isinstance(segments, Mapping) else {}).items():
            try:
                net = ipaddress.IPv4Network(str(cidr), strict=True)
            except ValueError:
                continue  # reported where the segment is read
            key = f"{mun_key}.{group}.vars.municloud_municipality.segments.{name}"
            nets.append((key, Network(str(name), net, str(group))))
    # Every overlapping pair, found by a sweep over the ranges sorted by their first address (a
    # range overlaps an earlier one exactly when it starts before that one ends), then reported
    # in the order of the pairs in the inventory.
    spans = sorted(
        (int(n.cidr.network_address), int(n.cidr.broadcast_address), i)
        for i, (_, n) in enumerate(nets)
    )
    pairs: list[tuple[int, int]] = []
    active: list[tuple[int, int]] = []  # (last address, index) of ranges that may still overlap
    for start, end, i in spans:
        active = [(e, j) for e, j in active if e >= start]
        pairs.extend((min(i, j), max(i, j)) for _, j in active)
        active.append((end, i))
    overlapping: set[str] = set()
    for i, j in sorted(pairs):
        (key_a, a), (key_b, b) = nets[i], nets[j]
        out.add(
            key_b,
            f"{b.cidr} ({b.id}) overlaps {a.cidr} ({a.id}, at {key_a})",
            "give every segment and shared network its own address range",
            root=True,
        )
        overlapping |= {a.id, b.id}
    return overlapping


def _network(out: Collector, key: str, value: object) -> IPv4Network | None:
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
    out: Collector,
    key: str,
    group: str,
    body: Mapping[str, Any],
    shared_networks: Mapping[SharedNetwork, Network],
    overlapping: set[str],
    services: dict[str, Service],
    taken: set[str],
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
    flows = parse_flows(out, f"{mkey}.flows", data.get("flows"), services, taken)

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
        host = _host(out, f"{key}.hosts.{name}", name, hv, group, reachable, overlapping)
        if host:
            hosts.append(host)
    gateways = [h for h in hosts if h.role is HostRole.GATEWAY]
    # Count what the file declares, not what parsed: a gateway with a bad address is one gateway
    # with a problem, not a municipality without a gateway.
    declared = [
        n
        for n, hv in (body.get("hosts") or {}).items()
        if isinstance(hv, Mapping) and hv.get("municloud_role") == HostRole.GATEWAY.value
    ]
    if len(declared) != 1 and body.get("hosts"):
        out.add(
            f"{key}.hosts",
            f"{len(declared)} gateways" + (f" ({', '.join(declared)})" if declared else ""),
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
    if len(gateways) != 1:
        return None
    return Municipality(
        group, code, name_ja, name_romaji, model, segments, joint_cloud, tuple(hosts), tuple(flows)
    )


def _host(
    out: Collector,
    key: str,
    name: str,
    hv: object,
    municipality: str | None,
    networks: Mapping[str, Network],
    overlapping: set[str],
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
            fix = f"choose a host address inside {net.cidr}"
            if net.id in overlapping:
                fix = (
                    f"but first check the range: {net.cidr} overlaps another range (the first "
                    "problems above), and this address may be right for the range meant"
                )
            out.add(
                f"{akey}.{net_name}", f"{address} is outside the {net.id} range {net.cidr}", fix
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
    refused, outside = _outside_address(out, key, hv, role, networks)
    if refused:
        return None
    return Host(name, role, addresses, municipality, outside)


def _outside_address(out: Collector, key: str, hv: Mapping[str, Any], role: HostRole,
                     networks: Mapping[str, Network]) -> tuple[bool, IPv4Address | None]:
    """A gateway's ``municloud_outside_address``: (refused?, the address or None)."""
    value = hv.get("municloud_outside_address")
    if value is None:
        return False, None
    okey = f"{key}.municloud_outside_address"
    if role is not HostRole.GATEWAY:
        out.add(okey, f"a {role.value} has no outside address",
                "only a municipality's gateway has one (its router's address for the VPNs)")
        return True, None
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        out.add(okey, f"{value!r} is not an IPv4 address",
                "write the router's outside address, e.g. 203.0.113.10")
        return True, None
    if address.is_loopback or address.is_multicast or address.is_unspecified or (
            address.is_link_local) or address.is_reserved:
        out.add(okey, f"{address} cannot be a router's outside address",
                "write the address the router's VPNs come from")
        return True, None
    inside = [n for n in networks.values() if address in n.cidr]
    if inside:
        out.add(okey, f"{address} is inside the {inside[0].id} range {inside[0].cidr}, which "
                "the VPN carries: a tunnel cannot come from inside itself",
                "write the router's outside address (internet or closed line), not its leg "
                "in a municipal or shared network")
        return True, None
    return False, address


def _check_whole(
    out: Collector,
    municipalities: list[Municipality],
    codes: list[tuple[str, str]],
    shared_hosts: list[Host],
    prefecture_code: object,
) -> None:
    """Rules that span municipalities: codes, host names and addresses unique in the prefecture."""
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
