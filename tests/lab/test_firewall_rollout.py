"""Rolling the segment policy out safely, on the two-town tiny lab (島根県: 松江市 β, 出雲市 α).

What an integrator must be able to trust before running site.yml on a whole prefecture:

* ``--check --diff`` shows a ruleset change before it is applied, and applies nothing;
* a ruleset that ``nft -c`` rejects leaves the file and the ruleset in force untouched, and the
  play names the municipality, the file and nft's own message;
* a ruleset that cuts the controller off is restored by the gateway itself within the confirm
  time, and the play says so;
* one broken municipality stops the run before the next is touched;
* a second run changes nothing, and skips the roles' tasks where nothing changed (the fast
  path), yet puts back what a person changed by hand;
* a host changed by hand shows up as drift in ``municloud audit`` (check mode), and only it;
* a denied packet is logged with a prefix naming the municipality and the zone pair.

Needs root and a Docker engine, like the other lab tests. The module converges the tiny lab once
and leaves it converged (test_lab_lifecycle.py remakes it from scratch afterwards).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_lab import REPO, TINY, municloud, playbook

from municloud import inventory

pytestmark = pytest.mark.lab

MATSUE_GW = "mc-tiny-matsue-gw"
IZUMO_GW = "mc-tiny-izumo-gw"
CONFIRM_SECONDS = 20
# Tasks of the roles' full runs that a plain second run must not reach (the fast path).
FULL_RUN_TASKS = [
    "baseline : Configure sshd for key-only logins",
    "firewall : Load the ruleset, to be rolled back unless confirmed",
    "lab_listener : Describe the listener to systemd",
]


def on(container: str, command: str) -> str:
    """Read something on a lab host (docker exec: this is inspection, not the proof itself)."""
    return subprocess.run(
        ["docker", "exec", container, "sh", "-c", command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def in_force(container: str) -> str:
    return on(container, "nft -s list table inet municloud")


def file_digest(container: str) -> str:
    return hashlib.sha256(on(container, "cat /etc/nftables.conf").encode()).hexdigest()


def changed_hosts(output: str) -> dict[str, int]:
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)
    }


@pytest.fixture(scope="module")
def converged() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    up = municloud("lab", "up", "--inventory", str(TINY))
    assert up.returncode == 0, up.stdout + up.stderr
    first = playbook()
    assert first.returncode == 0, first.stdout[-4000:]
    yield


@pytest.fixture
def host_vars() -> Iterator[Path]:
    """A host_vars directory for one test (an integrator's per-host override), removed after."""
    directory = TINY / "host_vars"
    directory.mkdir(exist_ok=True)
    yield directory
    for f in directory.iterdir():
        f.unlink()
    directory.rmdir()


def test_second_run_changes_nothing_and_takes_the_fast_path(converged: None) -> None:
    again = playbook()
    assert again.returncode == 0, again.stdout[-3000:]
    counts = changed_hosts(again.stdout)
    assert len(counts) == len(inventory.load(TINY).hosts)
    assert set(counts.values()) == {0}, counts
    # No host ran the fast-path roles' tasks (docs/fast-path.md): the task headers print when
    # any host runs the task. Each is still a task of its role, or this would prove nothing.
    for task in FULL_RUN_TASKS:
        role, name = task.split(" : ", 1)
        tasks = (REPO / "roles" / role / "tasks").glob("*.yml")
        assert any(f"- name: {name}" in f.read_text(encoding="utf-8") for f in tasks), task
        assert f"TASK [{task}" not in again.stdout, task


def test_a_second_run_puts_back_what_a_person_changed_by_hand(converged: None) -> None:
    """An address added to the firewall's management set in force, on one terminal, and a time
    zone set by hand on another (which timedatectl has reported): the next plain run finds both
    (the fast path's probes), puts them back, timedatectl says the zone again, and the run
    changes nothing on any other host."""
    matsue, izumo = "mc-tiny-matsue-lgwan-term", "mc-tiny-izumo-lgwan-term"
    before = in_force(matsue)
    on(matsue, "nft add element inet municloud management '{ 198.18.99.99 }'")
    on(izumo, "echo Europe/London > /etc/timezone && "
              "ln -sf /usr/share/zoneinfo/Europe/London /etc/localtime")
    # systemd-timedated, started now, reads the hand's zone and keeps it while it runs (it exits
    # when idle, some 30 s later): the run must make it let go, or timedatectl says London.
    assert on(izumo, "timedatectl show --property=Timezone --value") == "Europe/London\n"
    assert in_force(matsue) != before
    fixed = playbook()
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    counts = changed_hosts(fixed.stdout)
    assert {h for h, n in counts.items() if n} == {"matsue-lgwan-term", "izumo-lgwan-term"}, counts
    assert in_force(matsue) == before
    assert on(izumo, "cat /etc/timezone") == "Asia/Tokyo\n"
    assert on(izumo, "timedatectl show --property=Timezone --value") == "Asia/Tokyo\n"


def test_a_host_changed_by_hand_shows_up_as_drift(converged: None, tmp_path: Path) -> None:
    """A time zone set by hand on one LGWAN terminal: ``municloud audit`` names that host and
    the baseline's task, and no other host; its check mode leaves the hand's change in place.
    site.yml on that host puts the zone back afterwards, so the tests after this see a converged
    lab."""
    host, container = "matsue-lgwan-term", "mc-tiny-matsue-lgwan-term"
    on(container, "echo Europe/London > /etc/timezone")
    out = tmp_path / "audit-tiny.json"
    try:
        audit = municloud("audit", "--inventory", str(TINY), "--out", str(out))
        assert audit.returncode == 1, audit.stdout[-3000:] + audit.stderr[-3000:]
        hosts = json.loads(out.read_text(encoding="utf-8"))["hosts"]
        assert {h for h, e in hosts.items() if e["status"] != "clean"} == {host}, audit.stdout
        tasks = {(c["role"], c["task"]) for c in hosts[host]["changes"]}
        assert ("baseline", "Name the time zone in /etc/timezone") in tasks, tasks
        assert on(container, "cat /etc/timezone") == "Europe/London\n"  # check mode
    finally:
        fixed = playbook("--limit", host)
        assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert on(container, "cat /etc/timezone") == "Asia/Tokyo\n"


def test_check_diff_shows_a_ruleset_change_and_applies_nothing(converged: None) -> None:
    before, digest = in_force(MATSUE_GW), file_digest(MATSUE_GW)
    check = playbook("--check", "--diff", "-e", "firewall_drop_log_limit=4/second")
    assert check.returncode == 0, check.stdout[-3000:]
    assert re.search(r"^-.*limit rate 5/second burst 10 packets log prefix", check.stdout, re.M)
    assert re.search(
        r"^\+.*limit rate 4/second log prefix \"municloud drop 322016 ", check.stdout, re.M
    )
    assert in_force(MATSUE_GW) == before and file_digest(MATSUE_GW) == digest


def test_a_ruleset_nft_rejects_changes_nothing_and_names_the_municipality(
    converged: None,
) -> None:
    before, digest = in_force(MATSUE_GW), file_digest(MATSUE_GW)
    bad = playbook("--limit", "matsue-gw", "-e", "firewall_drop_log_limit=ten/fortnight")
    assert bad.returncode != 0
    message = bad.stdout
    assert (
        "松江市 (322016), matsue-gw: nft refused the new ruleset for /etc/nftables.conf" in message
    )
    assert "Error: syntax error" in message and "ten/fortnight" in message  # nft's own words
    assert in_force(MATSUE_GW) == before and file_digest(MATSUE_GW) == digest


def test_a_ruleset_that_cuts_the_controller_off_is_rolled_back_by_the_gateway(
    converged: None,
) -> None:
    """The new ruleset lets SSH in only from an address the controller does not have: the
    confirmation over a new connection cannot arrive, and the gateway restores the old ruleset
    by itself within the confirm time."""
    before, digest = in_force(MATSUE_GW), file_digest(MATSUE_GW)
    started = time.monotonic()
    cut = playbook(
        "--limit",
        "matsue-gw",
        "-e",
        '{"municloud_management": ["198.19.255.1"]}',
        "-e",
        f"firewall_confirm_seconds={CONFIRM_SECONDS}",
        "-e",
        "firewall_confirm_connect_timeout=5",
    )
    elapsed = time.monotonic() - started
    assert cut.returncode != 0
    assert "matsue-gw: the new ruleset cut the controller off" in cut.stdout
    assert "restored the previous ruleset by itself at" in cut.stdout  # what the gateway says
    assert in_force(MATSUE_GW) == before and file_digest(MATSUE_GW) == digest
    rolled_at = on(MATSUE_GW, "stat -c %Y /var/lib/municloud/nft/rolled-back")
    loaded_at = on(MATSUE_GW, "stat -c %Y /var/lib/municloud/nft/previous.nft")
    assert 0 <= int(rolled_at) - int(loaded_at) <= CONFIRM_SECONDS + 5
    assert elapsed < CONFIRM_SECONDS + 90
    # ... and the next run finds the gateway as it was, and changes nothing.
    again = playbook("--limit", "matsue-gw")
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_hosts(again.stdout) == {"matsue-gw": 0}


def test_one_broken_municipality_stops_the_run_before_the_next(
    converged: None, host_vars: Path
) -> None:
    """松江市 comes first in the inventory; a gateway ruleset nft refuses there must leave 出雲市's
    hosts untouched by the firewall play."""
    (host_vars / "matsue-gw.yml").write_text("---\nfirewall_drop_log_limit: ten/fortnight\n")
    on(IZUMO_GW, "nft delete table inet municloud")  # so a touch would show
    try:
        run = playbook()
        assert run.returncode != 0
        assert "matsue-gw: nft refused the new ruleset" in run.stdout
        rollout = run.stdout.split("PLAY [Gateways and host firewalls", 1)[1]
        rollout = rollout.split("PLAY RECAP", 1)[0]
        assert "matsue-gw" in rollout and "izumo-" not in rollout
        assert "inet municloud" not in on(IZUMO_GW, "nft list tables")
    finally:
        (host_vars / "matsue-gw.yml").unlink()
        fixed = playbook()
        assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert "table inet municloud" in on(IZUMO_GW, "nft list tables")


def _kernel_log() -> list[tuple[float, str]]:
    """The lab machine's kernel log as (seconds since boot, line). The ring buffer is the
    machine's and wraps on a long run: old lines fall out as new ones come in, so the number of
    matching lines can stay the same while one was added (CI, 2026-12-02: 6 before, 6 after).
    The timestamps say which lines are new."""
    out = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    stamped = (re.match(r"\[\s*(\d+\.\d+)\]", line) for line in out.splitlines())
    return [(float(m.group(1)), m.string) for m in stamped if m]


def test_a_denied_packet_is_logged_with_municipality_and_zone_pair(converged: None) -> None:
    """β: an LGWAN terminal may not reach the internet segment. The gateway drops the packet and
    the kernel log says "municloud drop 322016 lgwan>internet" (the lab lets container netfilter
    logs through: net.netfilter.nf_log_all_netns)."""
    marker = "municloud drop 322016 lgwan>internet"
    since = max((stamp for stamp, _ in _kernel_log()), default=0.0)
    attempt = on(
        "mc-tiny-matsue-lgwan-term",
        'python3 -c \'import socket; socket.create_connection(("198.19.203.10", 22), '
        "timeout=2)' 2>&1 || echo denied",
    )
    assert "denied" in attempt
    lines: list[str] = []
    for _ in range(10):
        lines = [line for stamp, line in _kernel_log() if stamp > since and marker in line]
        if lines:
            break
        time.sleep(0.5)
    assert lines, "no drop log line with the municipality and zone pair"
    assert "SRC=198.19.202.10 DST=198.19.203.10" in lines[-1] and "DPT=22" in lines[-1]
