"""The roles' fast path (docs/fast-path.md): the municloud_converged module, run on this machine
against real files and commands, and the fingerprint of a run's inputs (plugins/filter).
That a second run on lab hosts skips the roles and still puts back a change made by hand is a
lab test (tests/lab/test_firewall_rollout.py)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from sample_edit import REPO


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


converged = _load("municloud_converged", REPO / "modules" / "library" / "municloud_converged.py")
converge_filter = _load("municloud_converge_filter", REPO / "plugins" / "filter" / "converge.py")


class Done(Exception):
    def __init__(self, result: dict[str, Any], failed: bool) -> None:
        self.result = {**result, "failed": failed}


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The module as a role calls it, on files under tmp_path; returns its result."""
    monkeypatch.setattr(
        basic.AnsibleModule, "exit_json", lambda self, **r: (_ for _ in ()).throw(Done(r, False))
    )
    monkeypatch.setattr(
        basic.AnsibleModule, "fail_json", lambda self, **r: (_ for _ in ()).throw(Done(r, True))
    )
    config = tmp_path / "etc" / "app.conf"
    config.parent.mkdir()
    config.write_text("setting = 1\n")
    config.chmod(0o644)
    # Files and commands only: units and packages are this machine's, not the test's; the lab
    # tests probe those on the lab's hosts.
    probes = {"files": [str(config), str(config.parent)], "commands": [f"cat {config}"]}

    def call(state: str = "checked", inputs: str = "run-1", check: bool = False,
             **over: Any) -> dict[str, Any]:
        args = {"role": "app", "inputs": inputs, "probes": probes, "state": state,
                "stamp_dir": str(tmp_path / "records"), "_ansible_check_mode": check, **over}
        with patch_module_args(args), pytest.raises(Done) as done:
            converged.main()
        return done.value.result

    call.config = config  # type: ignore[attr-defined]
    call.record = tmp_path / "records" / "app.json"  # type: ignore[attr-defined]
    return call


def test_a_host_as_the_last_full_run_left_it_is_converged(host: Any) -> None:
    assert host()["differences"] == ["no record of a full run yet"]
    stamped = host("stamped")
    assert not stamped["changed"] and not stamped["failed"]
    assert host.record.stat().st_mode & 0o777 == 0o600
    again = host()
    assert again["differences"] == [] and again["converged"] and not again["changed"]


@pytest.mark.parametrize(
    "change",
    ["content", "mode", "removed"],
)
def test_a_file_changed_by_hand_is_not_converged_and_the_record_goes(
    host: Any, change: str
) -> None:
    host("stamped")
    if change == "content":
        host.config.write_text("setting = 2\n")
    elif change == "mode":
        host.config.chmod(0o666)
    else:
        host.config.unlink()
    result = host()
    assert not result["converged"]
    assert f"file {host.config}" in result["differences"]
    # A full run follows: until it records again, no later run may take the fast path.
    assert not host.record.exists()


def test_a_command_whose_output_changed_is_a_difference(host: Any) -> None:
    host("stamped")
    host.config.chmod(0o600)  # the file probe differs too; the command's output does not
    assert f"command cat {host.config}" not in host()["differences"]
    host("stamped")
    host.config.write_text("setting = 3\n")
    assert f"command cat {host.config}" in host()["differences"]


def test_other_inputs_are_not_converged(host: Any) -> None:
    host("stamped", inputs="run-1")
    assert host(inputs="run-2")["differences"] == [
        "the inputs (the code or a host's variables) changed"]


def test_check_mode_reads_only(host: Any) -> None:
    host("stamped", check=True)
    assert not host.record.exists()
    host("stamped")
    host.config.write_text("setting = 2\n")
    assert not host(check=True)["converged"]
    assert host.record.exists()  # check mode keeps the record


def test_a_probe_of_an_unknown_kind_fails_and_says_which(host: Any) -> None:
    result = host(probes={"file": ["/etc/hostname"]})
    assert result["failed"] and "unknown kind(s) file" in result["msg"]


def test_an_empty_fingerprint_is_refused(host: Any) -> None:
    result = host(inputs="")
    assert result["failed"] and "municloud_converge_inputs" in result["msg"]


# The fingerprint of the inputs: hostvars and groups as Ansible hands them to the filter.
HOSTVARS = {
    "gw": {"municloud_role": "gateway", "ansible_check_mode": False, "playbook_dir": "/a"},
    "term": {"municloud_role": "terminal", "firewall_drop_log_limit": "5/second"},
}
GROUPS = {"all": ["gw", "term"], "ungrouped": ["gw", "term"]}


def fingerprint(hostvars: dict[str, Any] = HOSTVARS, groups: dict[str, Any] = GROUPS) -> str:
    return str(converge_filter.municloud_converge_inputs(hostvars, groups))


def test_a_changed_variable_of_any_host_changes_the_fingerprint() -> None:
    other = json.loads(json.dumps(HOSTVARS))
    other["term"]["firewall_drop_log_limit"] = "4/second"
    assert fingerprint(other) != fingerprint()
    other = json.loads(json.dumps(HOSTVARS))
    other["gw"]["new_variable"] = 1
    assert fingerprint(other) != fingerprint()


def test_how_the_run_was_started_is_not_in_the_fingerprint() -> None:
    other = json.loads(json.dumps(HOSTVARS))
    other["gw"].update(ansible_check_mode=True, playbook_dir="/b", ansible_run_tags=["x"])
    assert fingerprint(other) == fingerprint()


def test_a_host_moved_to_another_group_changes_the_fingerprint() -> None:
    assert fingerprint(groups={**GROUPS, "town": ["gw"]}) != fingerprint()


def test_a_changed_role_file_changes_the_fingerprint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for d in converge_filter.CODE_DIRS:
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(converge_filter, "CHECKOUT", tmp_path)
    before = fingerprint()
    template = tmp_path / "roles" / "baseline" / "templates" / "sshd_config.j2"
    template.write_text(template.read_text() + "# by hand\n")
    assert fingerprint() != before
