"""The municloud_nft module's decisions, with nft and systemd-run replaced by a fake that records
what the module asks for. Loading, the rollback and the confirmation for real are lab tests
(tests/lab/test_firewall_rollout.py); these cover check mode, diff and "nothing to change"."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from sample_edit import REPO

spec = importlib.util.spec_from_file_location(
    "municloud_nft", REPO / "modules" / "library" / "municloud_nft.py"
)
assert spec and spec.loader
nft_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nft_module)

TABLE = "table inet municloud {\n\tchain input {\n\t}\n}\n"


class Exit(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


class Fail(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result


class FakeHost:
    """nft and systemctl as the module sees them; ``calls`` records every command."""

    def __init__(self, table: str = TABLE, load_rc: int = 0) -> None:
        self.table = table
        self.load_rc = load_rc
        self.calls: list[list[str]] = []

    def run_command(self, args: list[str], **_: Any) -> tuple[int, str, str]:
        self.calls.append(list(args))
        if args[:3] == ["nft", "-s", "list"]:
            return (0, self.table, "") if self.table else (1, "", "No such file or directory")
        if args[:2] == ["nft", "-f"]:
            return (self.load_rc, "", "Error: syntax error" if self.load_rc else "")
        return 0, "", ""


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    def exit_json(self: Any, **result: Any) -> None:
        raise Exit(result)

    def fail_json(self: Any, **result: Any) -> None:
        raise Fail(result)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    ruleset = tmp_path / "nftables.conf"
    ruleset.write_text(TABLE)

    def call(host: FakeHost, **args: Any) -> dict[str, Any]:
        monkeypatch.setattr(
            basic.AnsibleModule, "run_command", lambda self, a, **kw: host.run_command(a, **kw)
        )
        params = {"path": str(ruleset), "state_dir": str(tmp_path / "state"), **args}
        with patch_module_args(params), pytest.raises((Exit, Fail)) as done:
            nft_module.main()
        result = dict(done.value.result)
        result["failed"] = isinstance(done.value, Fail)
        return result

    call.ruleset = ruleset  # type: ignore[attr-defined]
    call.state = tmp_path / "state"  # type: ignore[attr-defined]
    return call


def test_first_load_loads_and_schedules_the_rollback(run: Any) -> None:
    host = FakeHost(table="")
    result = run(host, confirm_within=30)
    assert result["changed"] and result["rollback_in"] == 30 and not result["failed"]
    assert ["nft", "-f", str(run.ruleset)] in host.calls
    timer = next(c for c in host.calls if c[0] == "systemd-run")
    assert "--on-active=30s" in timer and timer[-1].endswith("/rollback")
    assert (run.state / "pending").exists()
    # What the rollback restores: nothing of ours was in force, so it deletes our table.
    assert (run.state / "previous.nft").read_text().endswith("delete table inet municloud\n")


def test_confirmation_makes_the_next_run_change_nothing(run: Any) -> None:
    host = FakeHost()
    run(host, confirm_within=30)
    assert run(host, state="confirmed")["changed"]
    assert not (run.state / "pending").exists()
    again = FakeHost()
    result = run(again, confirm_within=30)
    assert result == {"changed": False, "loaded": False, "failed": False}
    assert not any(c[:2] == ["nft", "-f"] for c in again.calls)


def test_a_table_changed_by_hand_is_loaded_again(run: Any) -> None:
    run(FakeHost(), confirm_within=0)
    drifted = FakeHost(table=TABLE.replace("input", "input_by_hand"))
    result = run(drifted, confirm_within=0)
    assert result["changed"] and result["reason"] == "the table in force was changed"


def test_check_mode_reports_and_changes_nothing(run: Any) -> None:
    host = FakeHost(table="")
    result = run(host, confirm_within=30, _ansible_check_mode=True, _ansible_diff=True)
    assert result["changed"] and result["loaded"]
    assert result["diff"]["before"] == "" and result["diff"]["after"] == TABLE
    assert not any(c[0] == "systemd-run" or c[:2] == ["nft", "-f"] for c in host.calls)
    assert not run.state.exists()


def test_a_refused_load_restores_the_file_and_cancels_the_rollback(
    run: Any, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.conf"
    backup.write_text("# the previous file\n")
    run.ruleset.write_text("table inet municloud { broken\n")
    host = FakeHost(load_rc=1)
    result = run(host, confirm_within=30, restore_file=str(backup))
    assert result["failed"] and "the ruleset in force is unchanged" in result["msg"]
    assert "Error: syntax error" in result["msg"]
    assert run.ruleset.read_text() == "# the previous file\n"
    assert ["systemctl", "stop", "municloud-nft-rollback.timer"] in host.calls
    assert not (run.state / "pending").exists()


def test_confirming_after_the_rollback_fails_and_says_when(run: Any) -> None:
    host = FakeHost()
    run(host, confirm_within=30)
    (run.state / "pending").unlink()  # what the rollback script does
    (run.state / "rolled-back").write_text("2026-11-30T01:02:03+09:00\n")
    result = run(host, state="confirmed")
    assert result["failed"] and result["rolled_back_at"] == "2026-11-30T01:02:03+09:00"
    assert "restored the previous ruleset by itself" in result["msg"]


def test_nothing_to_confirm_is_no_change(run: Any) -> None:
    assert run(FakeHost(), state="confirmed") == {"changed": False, "failed": False}


def test_stamp_records_file_and_table(run: Any) -> None:
    run(FakeHost(), confirm_within=0)
    stamp = json.loads((run.state / "loaded.json").read_text())
    assert set(stamp) == {"file", "listing"}
