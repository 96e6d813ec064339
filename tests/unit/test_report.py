"""municloud.report: the per-municipality summary, from a small hand-made JUnit XML (no lab)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_waivers import inventory_with

from municloud import report, report_pages
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


def _run(junit: Path, *options: str, inventory: Path = SAMPLE) -> int:
    parser = argparse.ArgumentParser()
    report.add_arguments(parser, "report")
    return report.main(parser.parse_args([str(junit), "--inventory", str(inventory), *options]))


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


# --- bad input: nothing is written, exit 2 --------------------------------------------------------


def test_a_run_against_another_inventory_is_refused_naming_the_file_and_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    okayama = ("332011", "岡山市", "okayama-shi-gw")
    junit = _junit(tmp_path, *_all_pass(),
                   _case("test_clock_shows_jst", okayama, "baseline.time.jst"))
    out = tmp_path / "pages"
    assert _run(junit, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{junit}: these results are not from the inventory sample" in err
    assert "hosts not in it: okayama-shi-gw" in err and "332011 岡山市" in err
    assert "nothing written" in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["acceptance.xml"]


def test_a_run_naming_another_inventory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = _case("test_clock_shows_jst", TOTTORI, "baseline.time.jst").replace(
        "<properties>", '<properties><property name="inventory" value="lab3"/>')
    assert _run(_junit(tmp_path, *_all_pass(), case)) == 2
    assert "the run names the inventory lab3" in capsys.readouterr().err


@pytest.mark.parametrize("cases", [(), ('<testcase classname="tests.unit.test_x" name="t"/>',)],
                         ids=["no test cases", "no acceptance test"])
def test_an_empty_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 cases: tuple[str, ...]) -> None:
    out = tmp_path / "pages"
    assert _run(_junit(tmp_path, *cases), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "acceptance.xml") in err
    assert ("no test cases at all" if not cases else "none of its 1 test case(s)") in err
    assert not out.exists()


def test_a_bad_waiver_is_refused_with_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory_with(tmp_path, "municloud_waivers:\n  - clause: baseline.time.jst\n")
    assert _run(_junit(tmp_path, *_all_pass()), inventory=inv) == 2
    assert "waivers.yml: municloud_waivers[0]" in capsys.readouterr().err


# --- waivers --------------------------------------------------------------------------------------

WAIVER = """\
municloud_waivers:
  - clause: baseline.ssh.hardened
    host: yonago-shi-gw
    who: 鳥取県 情報政策課
    why: 設定変更の承認待ち
    until: 2026-11-30
"""


def _failing_hardened(tmp_path: Path) -> Path:
    return _junit(tmp_path, *_all_pass(),
                  _case("test_sshd_setting_in_force", YONAGO, "baseline.ssh.hardened", "failed"))


def test_a_valid_waiver_turns_the_failure_into_waived_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory_with(tmp_path, WAIVER)
    out = tmp_path / "pages"
    assert _run(_failing_hardened(tmp_path), "--out", str(out), "--today", "2026-11-30",
                inventory=inv) == 0
    text = capsys.readouterr().out
    assert "waiver: baseline.ssh.hardened on yonago-shi-gw" in text
    assert "PASSED WITH WAIVERS: 1 failed test case(s)" in text
    page = json.loads((out / "312029.json").read_text(encoding="utf-8"))
    assert page["counts"]["waived"] == 1 and page["counts"]["failed"] == 0
    [hardened] = [c for c in page["clauses"] if c["id"] == "baseline.ssh.hardened"]
    assert hardened["result"] == "waived"
    assert hardened["hosts"][0]["waivers"][0]["status"] == "valid"
    assert page["waivers"][0]["applied"] is True


def test_an_expired_waiver_is_shown_as_expired_and_the_failure_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = inventory_with(tmp_path, WAIVER)
    out = tmp_path / "pages"
    assert _run(_failing_hardened(tmp_path), "--out", str(out), "--today", "2026-12-01",
                inventory=inv) == 1
    text = capsys.readouterr().out
    assert "EXPIRED on 2026-11-30" in text and "FAILED: 1 test case(s) failed" in text
    page = json.loads((out / "312029.json").read_text(encoding="utf-8"))
    assert page["result"] == "failed"
    assert (page["counts"]["failed"], page["counts"]["waived"]) == (1, 0)
    assert page["counts"]["expired_waivers"] == 1
    [hardened] = [c for c in page["clauses"] if c["id"] == "baseline.ssh.hardened"]
    assert hardened["result"] == "failed"
    assert [w["status"] for w in hardened["hosts"][0]["waivers"]] == ["expired"]
    assert page["waivers"][0] | {"applied": False} == page["waivers"][0]
    assert "期限切れ" in (out / "312029.html").read_text(encoding="utf-8")


# --- the pages ------------------------------------------------------------------------------------


def test_pages_per_municipality_hold_clause_host_and_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probed = json.dumps({"probed": "connect to 198.18.17.10 22", "on": "yonago-shi-gw",
                         "got": "refused"}, ensure_ascii=False)
    evidence = f'<property name="evidence" value="{probed.replace(chr(34), "&quot;")}"/>'
    case = _case("test_sshd_setting_in_force", YONAGO, "baseline.ssh.hardened", "failed")
    junit = _junit(tmp_path, *_all_pass(), case.replace("</properties>",
                                                        evidence + "</properties>"))
    out = tmp_path / "pages"
    assert _run(junit, "--out", str(out)) == 1
    assert f"pages: {out / 'index.html'}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".municloud-report", "index.html"]
        + [f"{code}.{ext}" for code in ("310000", "312011", "312029", "312037")
           for ext in ("html", "json")])
    page = json.loads((out / "312029.json").read_text(encoding="utf-8"))
    assert page["municipality"] == {"code": "312029", "name_ja": "米子市",
                                    "name_romaji": "Yonago-shi", "model": "beta"}
    [hardened] = [c for c in page["clauses"] if c["id"] == "baseline.ssh.hardened"]
    assert "tests/acceptance/test_baseline.py::test_sshd_setting_in_force" in hardened["tests"]
    [host] = hardened["hosts"]
    assert (host["host"], host["result"]) == ("yonago-shi-gw", "failed")
    assert host["cases"][0]["evidence"] == [json.loads(probed)]
    assert host["cases"][0]["message"] == "assert 6 == 3"
    assert {m["id"] for m in page["manual"]} >= {"segments.individual-number.remote-access"}
    assert "updates.delivery" in {c["id"] for c in page["not_run"]}
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "href='312029.html'" in index and "href='312029.json'" in index
    # static and offline: no script, nothing fetched from elsewhere
    for name in ("index.html", "312029.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "<script" not in text and "http://" not in text and "https://" not in text
        assert "@page { size: A4" in text


def test_out_replaces_only_a_directory_it_wrote_and_leaves_nothing_half_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    junit = _junit(tmp_path, *_all_pass())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a report")
    assert _run(junit, "--out", str(mine)) == 2
    assert "was not written by municloud report" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    out = tmp_path / "pages"
    assert _run(junit, "--out", str(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: object, **kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(report_pages, "index_html", broken)
    assert _run(junit, "--out", str(out)) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acceptance.xml", "mine", "pages"]
    monkeypatch.undo()
    assert _run(junit, "--out", str(out)) == 0  # an earlier report's directory is replaced


def test_evidence_recorded_by_the_acceptance_fixture_reaches_the_report(tmp_path: Path) -> None:
    """The acceptance conftest's Evidence, through a real pytest run's JUnit XML."""
    acceptance = str(REPO / "tests" / "acceptance" / "conftest.py")
    (tmp_path / "conftest.py").write_text(
        "import importlib.util, pytest\n"
        f"spec = importlib.util.spec_from_file_location('acc', {acceptance!r})\n"
        "acc = importlib.util.module_from_spec(spec); spec.loader.exec_module(acc)\n"
        "@pytest.fixture\n"
        "def evidence(record_property):\n"
        "    return acc.Evidence(record_property, 'yonago-shi-gw')\n", encoding="utf-8")
    (tmp_path / "test_probe.py").write_text(
        "def test_probe(evidence):\n"
        "    evidence('connect to 198.18.17.10 22', 'refused')\n"
        "    evidence('id -un', {'status': 0, 'stdout': '職員'}, on=evidence.runner)\n"
        "    assert False, 'it connected'\n", encoding="utf-8")
    junit = tmp_path / "run.xml"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={junit}", "--rootdir", str(tmp_path), str(tmp_path)],
                   cwd=tmp_path, env=env, capture_output=True, check=False)
    [result] = report.read_junit(junit)
    assert result.outcome == "failed" and "it connected" in (result.message or "")
    assert result.evidence == (
        {"probed": "connect to 198.18.17.10 22", "on": "yonago-shi-gw", "got": "refused"},
        {"probed": "id -un", "on": "test runner (management address)",
         "got": '{"status": 0, "stdout": "職員"}'},
    )
