"""The rulesets rendered from the policy, judged by nft itself (`nft -c -f`, the kernel's parser)
and by what an operator reads in them. Needs Debian's nftables on this machine (install.sh) and
root, as the rest of the suite."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sample_edit import REPO

from municloud import inventory, nftables, policy

MANAGEMENT = (ipaddress.IPv4Network("198.18.17.254/32"), ipaddress.IPv4Network("198.18.1.254/32"))


def _loaded(name: str) -> inventory.Prefecture:
    return dataclasses.replace(inventory.load(REPO / "inventories" / name), management=MANAGEMENT)


PREFECTURES = {name: _loaded(name) for name in ("sample", "okayama")}
HOSTS = [(name, h.name) for name, p in PREFECTURES.items() for h in p.hosts]


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("nft") is None:
        pytest.fail("nft is not installed: run ./scripts/install.sh (Debian's nftables)")
    path = tmp_path / "ruleset.nft"
    path.write_text(text)
    return subprocess.run(
        ["nft", "-c", "-f", str(path)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("name", "host"), HOSTS, ids=[f"{n}/{h}" for n, h in HOSTS])
def test_every_ruleset_passes_nft_check(tmp_path: Path, name: str, host: str) -> None:
    checked = nft_check(nftables.ruleset(PREFECTURES[name], host), tmp_path)
    assert checked.returncode == 0, checked.stderr


def test_nft_check_is_a_real_judge(tmp_path: Path) -> None:
    """The check above can fail: nft refuses a broken ruleset (here a rate it cannot parse)."""
    text = nftables.ruleset(PREFECTURES["sample"], "tottori-shi-gw", log_limit="ten/fortnight")
    checked = nft_check(text, tmp_path)
    assert checked.returncode != 0 and "ten/fortnight" in checked.stderr


def test_gateway_forward_policy_drops_and_names_each_flow() -> None:
    text = nftables.ruleset(PREFECTURES["sample"], "tottori-shi-gw")
    assert "chain forward {\n\t\ttype filter hook forward priority filter; policy drop;" in text
    crossing = {
        a.flow.name
        for a in policy.allowed(PREFECTURES["sample"])
        if a.municipality == "tottori_shi"
        and a.crosses_gateway
        and a.flow.source.value != "management"
    }
    assert crossing  # e.g. internet-to-proxy, individual-number-to-core-systems
    for name in crossing:
        assert f'counter accept comment "{name}"' in text, name
    # The within-segment flow is the host firewall's, not the gateway's.
    assert 'comment "lgwan-to-update-relay"' not in text
    assert 'log prefix "municloud drop 312011 individual_number>internet "' in text
    assert "table inet municloud {}\ndelete table inet municloud\n" in text  # atomic replace


def test_gateway_drops_go_to_the_kernel_log_and_to_the_nflog_group() -> None:
    """Every drop rule of a gateway logs twice with the same prefix: the kernel log (kept) and
    the NFLOG group ulogd2 reads for the central log (roles/log_forwarding); other hosts' drop
    rules log to the kernel log only."""
    text = nftables.ruleset(PREFECTURES["sample"], "tottori-shi-gw")
    drops = [line.strip() for line in text.splitlines() if line.strip().endswith(" drop")
             and "log prefix" in line]
    assert drops
    for rule in drops:
        prefix = rule.split("log prefix ", 1)[1].split('"')[1]
        assert prefix.startswith("municloud drop 312011 "), rule
        assert f'log group {nftables.DROP_LOG_GROUP} prefix "{prefix}" drop' in rule, rule
    host = nftables.ruleset(PREFECTURES["sample"], "tottori-shi-lgwan-term")
    assert "log prefix" in host and "log group" not in host


def test_host_ruleset_accepts_its_flows_and_management_only() -> None:
    text = nftables.ruleset(PREFECTURES["sample"], "tottori-shi-update-relay")
    assert "chain input {\n\t\ttype filter hook input priority filter; policy drop;" in text
    assert "chain forward" not in text
    assert (
        'ip saddr 198.18.17.0/24 tcp dport 80 counter accept comment "lgwan-to-update-relay"'
        in text
    )
    assert 'ip saddr @management tcp dport { 22, 80 } counter accept comment "management"' in text


def test_no_ruleset_without_management_addresses() -> None:
    bare = dataclasses.replace(PREFECTURES["sample"], management=())
    with pytest.raises(nftables.RulesetError, match="municloud_management"):
        nftables.ruleset(bare, "tottori-shi-lgwan-term")


def test_rendering_does_not_depend_on_hash_order() -> None:
    """A ruleset that changed with Python's hash seed would make every run report a change."""
    script = (
        "import dataclasses, ipaddress, sys\n"
        "from municloud import inventory, nftables\n"
        "p = inventory.load(sys.argv[1])\n"
        "p = dataclasses.replace(p, management=(ipaddress.IPv4Network('192.0.2.1/32'),))\n"
        "print(''.join(nftables.ruleset(p, h.name) for h in p.hosts))\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script, str(REPO / "inventories" / "sample")],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
