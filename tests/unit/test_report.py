"""municloud.report: the per-municipality summary, from a small hand-made JUnit XML (no lab)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from municloud import report
from municloud.inventory import load

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventories" / "sample"

# code, name, host of each municipality of the sample inventory, and the prefecture's own.
TOTTORI = ("312011", "鳥取市", "tottori-shi-gw")
YONAGO = ("312029", "米子市", "yonago-shi-gw")
KURAYOSHI = ("312037", "倉吉市", "kurayoshi-shi-gw")
SHARED = ("310000", "鳥取県", "sc-proxy")


def _case(name: str, where: tuple[str, str, str], clause: str, outcome: str = "passed") -> str:
    code, municipality, host = where
    body = {
        "passed": "",
        "failed": '<failure message="assert 6 == 3">assert 6 == 3</failure>',
        "error": '<error message="fixture failed">boom</error>',
        "skipped": '<skipped type="pytest.skip" message="no lab">no lab</skipped>',
    }[outcome]
    return (
        f'<testcase classname="tests.acceptance.test_baseline" name="{name}[{host}]" time="0.1">'
        "<properties>"
        f'<property name="host" value="{host}"/>'
        f'<property name="municipality_code" value="{code}"/>'
        f'<property name="municipality_name" value="{municipality}"/>'
        f'<property name="clause" value="{clause}"/>'
        f"</properties>{body}</testcase>"
    )


def _junit(tmp_path: Path, *cases: str) -> Path:
    path = tmp_path / "acceptance.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        + "".join(cases) + "</testsuite></testsuites>",
        encoding="utf-8",
    )
    return path


def _all_pass() -> list[str]:
    return [
        _case(test, where, clause)
        for where in (SHARED, TOTTORI, YONAGO, KURAYOSHI)
        for test, clause in (
            ("test_password_login_is_refused", "baseline.ssh.key-only"),
            ("test_clock_shows_jst", "baseline.time.jst"),
        )
    ]


def _run(junit: Path) -> int:
    parser = argparse.ArgumentParser()
    report.add_arguments(parser, "report")
    return report.main(parser.parse_args([str(junit), "--inventory", str(SAMPLE)]))


def test_all_passed_exits_0_with_a_row_per_municipality_and_clause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(_junit(tmp_path, *_all_pass())) == 0
    out = capsys.readouterr().out
    assert "312029 米子市" in out
    assert [line.split()[-3:] for line in out.splitlines() if line.startswith("total")] == [
        ["8", "0", "0"]
    ]


def test_rows_carry_model_from_the_inventory_and_come_in_inventory_order(tmp_path: Path) -> None:
    results = report.read_junit(_junit(tmp_path, *reversed(_all_pass())))
    rows, notes = report.summarise(results, load(SAMPLE))
    assert [(r.code, r.model, r.clause) for r in rows] == [
        ("310000", "shared", "baseline.ssh.key-only"),
        ("310000", "shared", "baseline.time.jst"),
        ("312011", "alpha", "baseline.ssh.key-only"),
        ("312011", "alpha", "baseline.time.jst"),
        ("312029", "beta", "baseline.ssh.key-only"),
        ("312029", "beta", "baseline.time.jst"),
        ("312037", "alpha_prime", "baseline.ssh.key-only"),
        ("312037", "alpha_prime", "baseline.time.jst"),
    ]
    assert notes == []


def test_a_failure_or_error_exits_1_and_is_counted_where_it_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = _junit(
        tmp_path, *_all_pass(),
        _case("test_sshd_setting_in_force", YONAGO, "baseline.ssh.hardened", "failed"),
        _case("test_sshd_setting_in_force", YONAGO, "baseline.ssh.hardened", "error"),
        _case("test_clock_shows_jst", YONAGO, "baseline.time.jst", "skipped"),
    )
    assert _run(junit) == 1
    out = capsys.readouterr().out
    hardened = [line.split() for line in out.splitlines() if "baseline.ssh.hardened" in line]
    assert hardened == [["312029", "米子市", "beta", "baseline.ssh.hardened", "0", "2", "0"]]
    assert "FAILED: 2 test case(s) failed" in out


def test_a_municipality_without_results_is_reported_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [c for c in _all_pass() if KURAYOSHI[0] not in c]
    assert _run(_junit(tmp_path, *cases)) == 1
    assert "no result for 312037 倉吉市" in capsys.readouterr().out


def test_cases_without_properties_and_foreign_codes_are_noted(tmp_path: Path) -> None:
    junit = _junit(
        tmp_path, *_all_pass(),
        '<testcase classname="tests.unit.test_x" name="test_plain" time="0"/>',
        _case("test_clock_shows_jst", ("332011", "岡山市", "okayama-shi-gw"), "baseline.time.jst"),
    )
    rows, notes = report.summarise(report.read_junit(junit), load(SAMPLE))
    assert rows[-1].code == "332011" and rows[-1].model == "?"
    assert any("332011" in n and "not in the inventory sample" in n for n in notes)
    assert any("1 test case(s) carry no municipality" in n for n in notes)


def test_unreadable_junit_exits_2_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path / "missing.xml") == 2
    assert "--junitxml=" in capsys.readouterr().err


def test_japanese_names_are_padded_by_display_width(tmp_path: Path) -> None:
    rows, _ = report.summarise(report.read_junit(_junit(tmp_path, *_all_pass())), load(SAMPLE))
    lines = report.render(rows, load(SAMPLE), Path("x.xml")).splitlines()
    table = [line for line in lines if line[:1].isdigit()]
    # every model column starts at the same display column despite full-width names
    starts = {report._width(line[: line.index(row.model)]) for line, row in zip(table, rows,
                                                                                strict=True)}
    assert len(starts) == 1
