"""Export control (roles/export_control) on one host of the tiny lab: 出雲市's individual-number
terminal, izumo-mynumber-term.

What an integrator must be able to trust before rolling the role out:

* a bad exception in the inventory (no reason, a blank reason, a module the role does not block)
  fails the play with a message naming the host, the key and the fix, and changes nothing on the
  host (its files, the mask, auditd are as before);
* ``--check --diff`` shows a new exception in the files' diffs and changes nothing;
* a second run changes nothing.

The role is applied alone (tests/lab/export_control.yml, the way site.yml includes it) to this one
host only. Needs root, like the other lab tests; brings the tiny lab up only if the host is not
running.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator

import paramiko
import pytest
from tiny_lab import REPO, TINY, municloud, playbook

from municloud import inventory

pytestmark = pytest.mark.lab

HOST = "izumo-mynumber-term"
PLAYBOOK = "tests/lab/export_control.yml"
KEY = REPO / ".lab" / "tiny" / "id_ed25519"
# Everything the role puts on the host, and what systemd says of the units it touches.
STATE = (
    "sha256sum /etc/modprobe.d/municloud-export-control.conf "
    "/etc/udev/rules.d/10-municloud-export-control.rules "
    "/etc/audit/rules.d/60-municloud-export-control.rules "
    "/etc/systemd/system/auditd.service.d/municloud-container.conf; "
    "systemctl is-enabled udisks2.service; systemctl is-failed auditd.service; "
    "modprobe --showconfig | grep -E '^(install|blacklist) ' | sort"
)


def on_host(command: str) -> str:
    """Run a command on the host as a person would: over SSH, as root, with the lab's key."""
    address = str(next(h for h in inventory.load(TINY).hosts if h.name == HOST).primary_address)
    client = paramiko.SSHClient()
    client.load_host_keys(str(KEY.with_name("known_hosts")))  # recorded by `lab up`
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, username="root", key_filename=str(KEY), timeout=10,
                   allow_agent=False, look_for_keys=False)  # fmt: skip
    try:
        _, stdout, _ = client.exec_command(command, timeout=30)
        return stdout.read().decode()
    finally:
        client.close()


def run_role(*args: str) -> subprocess.CompletedProcess[str]:
    return playbook("--limit", HOST, *args, file=PLAYBOOK)


def changed(output: str) -> int:
    found = re.search(rf"^{re.escape(HOST)}\s+: ok=\d+\s+changed=(\d+)", output, re.M)
    assert found, output[-2000:]
    return int(found[1])


def exceptions(*entries: dict[str, str]) -> str:
    return json.dumps({"export_control_exceptions": list(entries)})


@pytest.fixture(scope="module")
def converged() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    status = municloud("lab", "status", "--inventory", str(TINY))
    if not re.search(rf"^\s+{re.escape(HOST)}\s.*\brunning\b", status.stdout, re.M):
        up = municloud("lab", "up", "--inventory", str(TINY))
        assert up.returncode == 0, up.stdout + up.stderr
    first = run_role()
    assert first.returncode == 0, first.stdout[-4000:]
    yield


def test_second_run_changes_nothing(converged: None) -> None:
    again = run_role()
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed(again.stdout) == 0


def test_check_diff_shows_a_new_exception_and_changes_nothing(converged: None) -> None:
    before = on_host(STATE)
    check = run_role(
        "--check",
        "--diff",
        "-e",
        exceptions({"module": "mmc_block", "reason": "SD card reader of the passport counter"}),
    )
    assert check.returncode == 0, check.stdout[-3000:]
    assert re.search(r"^-install mmc_block /bin/false$", check.stdout, re.M)
    assert re.search(
        r"^\+# mmc_block: EXCEPTION, may load on this host: SD card reader of the passport",
        check.stdout,
        re.M,
    )
    assert on_host(STATE) == before


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"module": "usb-storage"},
            f"{HOST}: export_control_exceptions[0] (module usb-storage) has no reason.",
            id="no-reason",
        ),
        pytest.param(
            {"module": "usb-storage", "reason": "   "},
            f"{HOST}: export_control_exceptions[0] (module usb-storage) has no reason.",
            id="blank-reason",
        ),
        pytest.param(
            {"module": "floppy", "reason": "old records on diskettes"},
            f'{HOST}: export_control_exceptions[0].module is "floppy", which this role does '
            "not block (export_control_modules: usb-storage, uas, firewire-sbp2, thunderbolt, "
            "mmc_block), so there is nothing to lift: fix the name, or remove the entry.",
            id="unknown-module",
        ),
    ],
)
def test_a_bad_exception_fails_the_play_and_changes_nothing(
    converged: None, entry: dict[str, str], message: str
) -> None:
    before = on_host(STATE)
    assert "install usb_storage /bin/false" in before  # so a lifted block would show
    bad = run_role("-e", exceptions(entry))
    after = on_host(STATE)
    if after != before:  # a role that let it through: put the host back for the next tests
        run_role()
    assert bad.returncode != 0, bad.stdout[-3000:]
    said = " ".join(bad.stdout.split())  # the YAML callback folds long messages
    assert message in said, bad.stdout[-3000:]
    assert f"export_control on {HOST}: nothing was changed." in said
    assert changed(bad.stdout) == 0
    assert after == before
