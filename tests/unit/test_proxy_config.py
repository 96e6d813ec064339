"""roles/proxy's configuration (plugins/filter/proxy.py over municloud/cloud/squid.py), judged by
``squid -k parse`` and against the inventories, and its refusals of bad input.

The traffic through such a configuration (α' terminals, deny and allow lists, the municipality
on each log line) is tested with a real squid on loopback in tests/unit/test_cloud_squid.py, and
on the lab in tests/acceptance/test_proxy.py.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from municloud.cloud import squid
from municloud.inventory import Prefecture, load
from municloud.segments import GuidelineModel, HostRole, Segment, SharedNetwork

REPO = Path(__file__).resolve().parents[2]
SQUID = "/usr/sbin/squid"
Net = ipaddress.IPv4Network


def _plugin() -> Any:
    spec = importlib.util.spec_from_file_location("proxy_filter",
                                                  REPO / "plugins" / "filter" / "proxy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTER = _plugin()


def hostvars_of(p: Prefecture) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """hostvars and groups as a play sees them (the model's variables, and each inventory's
    group_vars/*/proxy.yml on the hosts of that group)."""
    hostvars: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[str]] = {"all": [], "shared": [], "municipalities": []}
    pref = {"municloud_prefecture": {
        "code": p.code, "name_ja": p.name_ja, "name_romaji": p.name_romaji,
        "security_cloud": p.security_cloud,
        "shared_networks": {k.value: str(n.cidr) for k, n in p.shared_networks.items()}}}
    for h in p.shared_hosts:
        hostvars[h.name] = {**pref, "municloud_role": h.role.value,
                            "municloud_addresses": {k: str(a) for k, a in h.addresses.items()}}
        groups["shared"].append(h.name)
    for m in p.municipalities:
        extra = p.path / "group_vars" / m.group / "proxy.yml"
        own = yaml.safe_load(extra.read_text(encoding="utf-8")) if extra.is_file() else {}
        groups[m.group] = []
        for h in m.hosts:
            hostvars[h.name] = {
                **pref, **own, "municloud_role": h.role.value,
                "municloud_addresses": {k.split(".")[-1]: str(a)
                                        for k, a in h.addresses.items()},
                "municloud_municipality": {
                    "code": m.code, "name_ja": m.name_ja, "name_romaji": m.name_romaji,
                    "model": m.model.value,
                    **({"joint_cloud": m.joint_cloud} if m.joint_cloud else {}),
                    "segments": {s.value: str(n.cidr) for s, n in m.segments.items()}}}
            groups[m.group].append(h.name)
            groups["municipalities"].append(h.name)
    groups["all"] = list(hostvars)
    return hostvars, groups


def options(p: Prefecture) -> dict[str, Any]:
    data = yaml.safe_load((p.path / "group_vars" / "all" / "proxy.yml").read_text("utf-8"))
    return {"deny_list": data.get("proxy_deny_list", []),
            "allow_list": data.get("proxy_allow_list", []),
            "denied_networks": data.get("proxy_denied_networks", []),
            "hosts_file": ""}


INVENTORIES = ("sample", "okayama")


def conf(name: str) -> tuple[Prefecture, str]:
    p = load(REPO / "inventories" / name)
    (proxy,) = [h for h in p.shared_hosts if h.role is HostRole.PROXY]
    hostvars, groups = hostvars_of(p)
    return p, FILTER.municloud_proxy_squid_conf(hostvars, groups, proxy.name, options(p))


def acl(config: str, name: str) -> list[str]:
    return re.findall(rf"^acl {re.escape(name)} (?:src|dst|dstdomain -n) (\S+)$", config,
                      re.MULTILINE)


@pytest.mark.parametrize("name", INVENTORIES)
def test_the_lab_proxy_config_passes_squid_parse(name: str, tmp_path: Path) -> None:
    if not os.access(SQUID, os.X_OK):
        pytest.fail(f"{SQUID} is not installed: run ./scripts/install.sh (Debian's squid)")
    _, config = conf(name)
    path = tmp_path / "squid.conf"
    path.write_text(config, encoding="utf-8")
    result = subprocess.run([SQUID, "-k", "parse", "-f", str(path)], capture_output=True,
                            text=True, check=False, timeout=60)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert [ln for ln in out.splitlines() if re.search(r"WARNING|ERROR|FATAL", ln)] == []
    assert "Processing: note municipality" in out


@pytest.mark.parametrize("name", INVENTORIES)
def test_the_lab_proxy_admits_and_denies_what_the_inventory_says(name: str) -> None:
    p, config = conf(name)
    (proxy,) = [h for h in p.shared_hosts if h.role is HostRole.PROXY]
    # listens on every address: the firewall, not squid, closes the internet side, and the
    # reachability matrix proves that denial against a port that listens
    assert "http_port 3128\n" in config
    assert sorted(map(Net, acl(config, "municipality_clients"))) == sorted(
        m.segments[Segment.INTERNET].cidr for m in p.municipalities)
    # every municipality's segment and every shared network but the internet are denied
    denied = [Net(n) for a in ("to_municipalities", "to_shared_networks", "to_proxy_host",
                               "to_extra") for n in acl(config, a)]
    for net in p.networks:
        inside = any(net.cidr.subnet_of(d) for d in denied)
        assert inside == (net.name != SharedNetwork.INTERNET.value or net.municipality is not None)
    # and the proxy's own internet address, not the rest of the internet
    internet = p.shared_networks[SharedNetwork.INTERNET].cidr
    assert [d for d in denied if d.overlaps(internet)] == [
        Net(f"{proxy.addresses['internet']}/32")]
    # each municipality's clients are named on its log lines
    for m in p.municipalities:
        assert f"note municipality {m.code} from_{m.code}\n" in config
        assert m.segments[Segment.INTERNET].cidr in map(Net, acl(config, f"from_{m.code}"))
    # α' LGWAN terminals: only those of α' municipalities, each only to its approved list
    alpha_primes = [m for m in p.municipalities if m.model is GuidelineModel.ALPHA_PRIME]
    allows = re.findall(r"^http_access allow (.*)$", config, re.MULTILINE)
    assert allows == [*(f"lgwan_terminals_{m.code} approved_{m.code}" for m in alpha_primes),
                      "municipality_clients"]
    for m in alpha_primes:
        terminals = [h for h in m.hosts if h.role is HostRole.TERMINAL
                     and h.segment is Segment.LGWAN]
        assert acl(config, f"lgwan_terminals_{m.code}") == [
            f"{a}/32" for h in terminals for a in h.addresses.values()]
        approved = yaml.safe_load((p.path / "group_vars" / m.group / "proxy.yml").read_text(
            "utf-8"))["proxy_approved_destinations"]
        assert acl(config, f"approved_{m.code}") == approved
    assert acl(config, "deny_list") == options(p)["deny_list"]
    rules = re.findall(r"^http_access .*$", config, re.MULTILINE)
    assert rules.index("http_access deny deny_list") < rules.index(f"http_access allow {allows[0]}")


def test_the_cloud_instance_of_another_prefecture_is_refused() -> None:
    p = load(REPO / "inventories" / "sample")
    hostvars, groups = hostvars_of(p)
    hostvars["i-0123"] = {"municloud_role": "proxy", "proxy_prefecture": "330001"}
    groups["all"].append("i-0123")
    with pytest.raises(AnsibleFilterError, match=r"i-0123 is not a host of the inventory's model "
                                                 r"and serves prefecture 330001"):
        FILTER.municloud_proxy_squid_conf(hostvars, groups, "i-0123", {"prefecture": "330001"})
    config = FILTER.municloud_proxy_squid_conf(hostvars, groups, "i-0123", {"prefecture": "310000"})
    assert "http_port 3128\n" in config
    # the fleet's own denied destinations, as its user data has them
    assert acl(config, "to_inspection_vpc")


@pytest.mark.parametrize(("change", "message"), [
    ({"deny_list": ["Blocked.example.jp"]}, r"proxy_deny_list.*'Blocked.example.jp' is neither"),
    ({"allow_list": [".example.jp", "www.example.jp"]},
     r"proxy_allow_list.*'www.example.jp' is already covered by '.example.jp'"),
    ({"allow_list": "example.jp"}, r"proxy_allow_list must be a list of strings"),
    ({"denied_networks": ["198.51.100.1/24"]}, r"sc-proxy: proxy_denied_networks: .*host bits"),
])
def test_bad_lists_are_refused_naming_the_variable(change: dict[str, Any], message: str) -> None:
    p = load(REPO / "inventories" / "sample")
    hostvars, groups = hostvars_of(p)
    with pytest.raises(AnsibleFilterError, match=message):
        FILTER.municloud_proxy_squid_conf(hostvars, groups, "sc-proxy", {**options(p), **change})


def test_approved_destinations_only_for_alpha_prime_and_once_per_municipality() -> None:
    p = load(REPO / "inventories" / "sample")
    hostvars, groups = hostvars_of(p)
    for h in groups["yonago_shi"]:  # β
        hostvars[h]["proxy_approved_destinations"] = ["cloud.example.jp"]
    with pytest.raises(AnsibleFilterError, match=r"Yonago-shi \(312029, group yonago_shi\) is of "
                                                 r"model beta: only α'"):
        FILTER.municloud_proxy_squid_conf(hostvars, groups, "sc-proxy", options(p))
    hostvars, groups = hostvars_of(p)
    hostvars["kurayoshi-shi-lgwan-term"]["proxy_approved_destinations"] = ["other.example.jp"]
    with pytest.raises(AnsibleFilterError, match=r"differs between the hosts of kurayoshi_shi "
                                                 r"\(312037\): set it once, in "
                                                 r"group_vars/kurayoshi_shi/proxy.yml"):
        FILTER.municloud_proxy_squid_conf(hostvars, groups, "sc-proxy", options(p))


def test_site_kinds() -> None:
    assert squid.site_kind("updates.example.jp") == "dstdomain"
    assert squid.site_kind(".example.jp") == "dstdomain"
    assert squid.site_kind("203.0.113.0/24") == "dst"
    assert squid.site_kind("203.0.113.7") == "dst"
    for bad in ("", "exa mple.jp", "-x.jp", "http://example.jp", "203.0.113.1/24", "x..jp"):
        with pytest.raises(ValueError, match="neither"):
            squid.site_kind(bad)
