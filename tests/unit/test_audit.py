"""``municloud audit`` through the real engine, without a lab: the real ansible-playbook in check
mode, with the repository's ansible.cfg and the audit callback, on a copy of the tiny lab's
inventory whose hosts are this machine (``ansible_connection: local``). A small playbook of the
test's own manages one file per host under tmp_path (and a secret one, ``no_log``): a file
changed by hand is drift on that host and task, and is still as the hand left it afterwards.
Then ``municloud report --audit`` puts that drift on the right municipality's page only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_report import _case, _junit

from municloud import audit

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "lab" / "inventories" / "tiny"
# code, name and a host of each municipality of the tiny inventory, and the prefecture's own.
SHARED = ("320005", "島根県", "tiny-proxy")
MATSUE = ("322016", "松江市", "matsue-gw")
IZUMO = ("322032", "出雲市", "izumo-gw")
SETTINGS_TASK = "Write the town's settings file"
SECRET_TASK = "Write the town's secret"
SECRET = "hunter2-not-for-any-report"

ROLE = f"""\
- name: {SETTINGS_TASK}
  ansible.builtin.copy:
    dest: "{{{{ town_files }}}}/{{{{ inventory_hostname }}}}.conf"
    content: "managed by the test: {{{{ inventory_hostname }}}}\\n"
    mode: "0644"
- name: {SECRET_TASK}
  ansible.builtin.copy:
    dest: "{{{{ town_files }}}}/{{{{ inventory_hostname }}}}.secret"
    content: "{SECRET} {{{{ inventory_hostname }}}}\\n"
    mode: "0600"
  no_log: true
"""
PLAYBOOK = """\
- name: Town files
  hosts: all
  gather_facts: false
  roles: [town_file]
"""


def municloud(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "municloud.cli", *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def make_inventory(where: Path, files: Path, unreachable: str | None = None,
                   failing: str | None = None) -> Path:
    """The tiny lab's inventory (as ``tiny``) with every host this machine, managed by local
    connection; ``unreachable``: a host reached by SSH on a port nothing listens on;
    ``failing``: a host whose task fails (its files' directory names an undefined variable)."""
    data = yaml.safe_load((TINY / "hosts.yml").read_text(encoding="utf-8"))
    data["all"]["vars"].update(ansible_connection="local", town_files=str(files),
                               ansible_python_interpreter=sys.executable)
    towns = data["all"]["children"]["municipalities"]["children"]

    def entry(host: str) -> dict[str, Any]:
        return next(g["hosts"][host] for g in towns.values() if host in g["hosts"])

    if unreachable is not None:
        with socket.socket() as s:  # a port that was free a moment ago
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        entry(unreachable).update(ansible_connection="ssh", ansible_host="127.0.0.1",
                                  ansible_port=port)
    if failing is not None:
        entry(failing)["town_files"] = "{{ no_such_variable }}"
    inv = where / "tiny"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                                   encoding="utf-8")
    return inv


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The inventory, the playbook and the hosts' files, converged by a real run."""
    tmp = tmp_path_factory.mktemp("audit")
    files = tmp / "hosts"
    files.mkdir()
    (tmp / "play" / "roles" / "town_file" / "tasks").mkdir(parents=True)
    (tmp / "play" / "roles" / "town_file" / "tasks" / "main.yml").write_text(ROLE)
    playbook = tmp / "play" / "town.yml"
    playbook.write_text(PLAYBOOK)
    inv = make_inventory(tmp / "inventory", files)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inv), str(playbook)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert len(list(files.glob("*.conf"))) == 8
    return {"tmp": tmp, "files": files, "playbook": playbook, "inventory": inv}


def contents(files: Path) -> dict[str, str]:
    return {f.name: f.read_text() for f in sorted(files.iterdir())}


@pytest.fixture(scope="module")
def clean(site: dict[str, Path]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """An audit of the converged hosts, from another directory, with the default --out."""
    work = site["tmp"] / "work"
    work.mkdir()
    done = municloud("audit", "--inventory", str(site["inventory"]),
                     "--playbook", str(site["playbook"]), cwd=work)
    return done, json.loads((work / "reports" / "audit-tiny.json").read_text())


@pytest.fixture(scope="module")
def drifted(
    site: dict[str, Path], clean: object
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path, dict[str, str]]:
    """An audit after 松江市's gateway had its two files changed by hand (after ``clean``)."""
    (site["files"] / "matsue-gw.conf").write_text("changed by hand\n")
    (site["files"] / "matsue-gw.secret").write_text("changed by hand\n")
    before = contents(site["files"])
    out = site["tmp"] / "audit-drift.json"
    done = municloud("audit", "--inventory", str(site["inventory"]),
                     "--playbook", str(site["playbook"]), "--out", str(out))
    return done, json.loads(out.read_text()), out, before


def test_converged_hosts_are_clean_and_exit_0(
    clean: tuple[subprocess.CompletedProcess[str], dict[str, Any]]
) -> None:
    done, doc = clean
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changes nothing on the hosts" in done.stdout
    assert "play 1: Town files: 8 host(s)" in done.stdout  # progress
    assert "findings: " in done.stdout and "audit-tiny.json" in done.stdout
    assert "no drift: 8 host(s) audited" in done.stdout
    assert doc["inventory"] == "tiny" and doc["check_mode"] is True
    assert "--check" in doc["command"] and "--diff" in doc["command"]
    assert {h: e["status"] for h, e in doc["hosts"].items()} == dict.fromkeys(
        [*(h for h in doc["hosts"])], "clean")
    assert len(doc["hosts"]) == 8 and doc["summary"]["findings"] == 0


def test_a_file_changed_by_hand_is_drift_on_that_host_and_task_only(
    drifted: tuple[subprocess.CompletedProcess[str], dict[str, Any], Path, dict[str, str]]
) -> None:
    done, doc, out, _ = drifted
    assert done.returncode == 1, done.stdout + done.stderr
    assert {h for h, e in doc["hosts"].items() if e["status"] != "clean"} == {"matsue-gw"}
    gw = doc["hosts"]["matsue-gw"]
    assert gw["status"] == "drift" and gw["municipality"] == "322016"
    settings, secret = gw["changes"]
    assert (settings["task"], settings["role"], settings["changed"]) == (
        SETTINGS_TASK, "town_file", True)
    assert settings["files"] == [str(out.parent / "hosts" / "matsue-gw.conf")]
    assert "-changed by hand" in settings["diff"]
    assert "+managed by the test: matsue-gw" in settings["diff"]
    assert "matsue-gw (322016): drift: 2 change(s)" in done.stdout
    assert "DRIFT: 1 of 8 host(s) with findings" in done.stdout
    # the no_log task: listed, its content censored by Ansible, nowhere in the file or the log
    assert (secret["task"], secret["censored"], secret["files"]) == (SECRET_TASK, True, [])
    assert secret["diff"] == "(no_log: hidden by Ansible)"
    assert SECRET not in out.read_text() and SECRET not in out.with_suffix(".log").read_text()


def test_check_mode_changed_nothing(
    site: dict[str, Path],
    drifted: tuple[subprocess.CompletedProcess[str], dict[str, Any], Path, dict[str, str]],
) -> None:
    *_, before = drifted
    after = contents(site["files"])
    assert after == before
    assert after["matsue-gw.conf"] == "changed by hand\n"


def test_an_unreachable_host_and_a_failed_task_are_findings(
    site: dict[str, Path], tmp_path: Path
) -> None:
    inv = make_inventory(tmp_path, site["files"], unreachable="izumo-lgwan-term",
                         failing="izumo-mynumber-term")
    out = tmp_path / "audit.json"
    done = municloud("audit", "--inventory", str(inv), "--playbook", str(site["playbook"]),
                     "--out", str(out), "--", "--limit", "izumo-*")
    assert done.returncode == 1, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert {h: e["status"] for h, e in doc["hosts"].items()} == {
        "izumo-gw": "clean", "izumo-mynumber-term": "failed", "izumo-lgwan-term": "unreachable"}
    assert "Connection refused" in doc["hosts"]["izumo-lgwan-term"]["unreachable"]
    assert "izumo-lgwan-term (322032): unreachable" in done.stdout
    [failure] = doc["hosts"]["izumo-mynumber-term"]["failures"]
    assert (failure["task"], failure["role"], failure["ignored"]) == (
        SETTINGS_TASK, "town_file", False)
    assert "no_such_variable" in failure["message"]
    assert f"izumo-mynumber-term (322032): failed: failed at town_file: {SETTINGS_TASK}" in (
        done.stdout)
    assert "--limit" in doc["command"] and "matsue-gw" in doc["not_in_run"]


def test_a_bad_inventory_path_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    done = municloud("audit", "--inventory", str(tmp_path / "nowhere"),
                     "--out", str(tmp_path / "audit.json"))
    assert done.returncode == 2
    assert f"{tmp_path / 'nowhere'}" in done.stderr and "no inventory here" in done.stderr
    assert "nothing audited" in done.stderr
    assert list(tmp_path.iterdir()) == []


# A playbook ansible-playbook refuses before it starts; one whose run is killed before its recap
# (a lookup, run in a worker forked from ansible-playbook, kills that worker's parent: the
# ansible-playbook this audit started).
BROKEN = {
    "refused": ("- name: Broken\n  hosts: all\n  tasks:\n    - no.such.module: {}\n",
                "no.such.module"),
    "killed": ("- name: Killed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
               "    - name: Kill ansible-playbook\n      run_once: true\n"
               "      ansible.builtin.debug:\n        msg: \"{{ lookup('ansible.builtin.pipe', "
               "'kill -KILL $(ps -o ppid= -p $PPID)') }}\"\n",
               "exited -9 before its recap"),
}


@pytest.mark.parametrize("how", BROKEN)
def test_a_run_that_stops_before_its_recap_exits_2(
    site: dict[str, Path], tmp_path: Path, how: str
) -> None:
    text, said = BROKEN[how]
    broken = tmp_path / "broken.yml"
    broken.write_text(text)
    out = tmp_path / "audit.json"
    done = municloud("audit", "--inventory", str(site["inventory"]), "--playbook", str(broken),
                     "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the audit did not complete" in done.stderr and said in done.stderr
    assert not out.exists() and out.with_suffix(".log").exists()


def test_nothing_can_take_check_mode_away(site: dict[str, Path], tmp_path: Path) -> None:
    line = audit.command(site["inventory"], site["playbook"], ["--limit", "x"])
    assert line[-2:] == ["--check", "--diff"]
    done = municloud("audit", "--inventory", str(site["inventory"]), "--playbook",
                     str(site["playbook"]), "--out", str(tmp_path / "audit.json"),
                     "--", "-e", "ansible_check_mode=false")
    assert done.returncode == 2 and "refused: ansible_check_mode=false" in done.stderr
    assert list(tmp_path.iterdir()) == []


# --- municloud report --audit ----------------------------------------------------------------


def junit_of_tiny(where: Path) -> Path:
    return _junit(where, *(_case(test, town, clause) for town in (SHARED, MATSUE, IZUMO)
                           for test, clause in (("test_clock_shows_jst", "baseline.time.jst"),)))


def test_report_shows_the_drift_on_that_municipality_only(
    site: dict[str, Path],
    drifted: tuple[subprocess.CompletedProcess[str], dict[str, Any], Path, dict[str, str]],
    tmp_path: Path,
) -> None:
    _, _, audit_file, _ = drifted
    pages = tmp_path / "pages"
    done = municloud("report", "--inventory", str(site["inventory"]), str(junit_of_tiny(tmp_path)),
                     "--audit", str(audit_file), "--out", str(pages))
    assert done.returncode == 0, done.stdout + done.stderr  # the tests passed; drift is beside
    drift_lines = [line for line in done.stdout.splitlines() if line.startswith("drift: ")]
    assert drift_lines == [f"drift: matsue-gw (322016 松江市): drift: 2 change(s): town_file: "
                           f"{SETTINGS_TASK}; town_file: {SECRET_TASK}"]
    assert "8 host(s) audited, 1 with findings, 7 without drift" in done.stdout
    matsue = json.loads((pages / "322016.json").read_text())
    assert matsue["drift"]["findings"] == 1
    rows = {r["host"]: r for r in matsue["drift"]["hosts"]}
    assert rows["matsue-gw"]["status"] == "drift"
    assert [c["task"] for c in rows["matsue-gw"]["changes"]] == [SETTINGS_TASK, SECRET_TASK]
    assert {r["status"] for h, r in rows.items() if h != "matsue-gw"} == {"clean"}
    for other in ("320005", "322032"):
        page = json.loads((pages / f"{other}.json").read_text())
        assert page["drift"]["findings"] == 0
        assert {r["status"] for r in page["drift"]["hosts"]} == {"clean"}
        assert "matsue-gw" not in (pages / f"{other}.html").read_text()
    html = (pages / "322016.html").read_text()
    assert "設定の乖離" in html and "id='drift-matsue-gw'" in html and "-changed by hand" in html
    assert SECRET not in html
    index = (pages / "index.html").read_text()
    assert "<td class='n' id='total-drift'>1</td>" in index
    assert "href='322016.html#drift-matsue-gw'" in index
    assert "<td class='n' id='drift-322032'>0</td>" in index


def test_report_refuses_an_audit_of_another_inventory(
    site: dict[str, Path],
    drifted: tuple[subprocess.CompletedProcess[str], dict[str, Any], Path, dict[str, str]],
    tmp_path: Path,
) -> None:
    _, doc, _, _ = drifted
    other = tmp_path / "audit-sample.json"
    other.write_text(json.dumps({**doc, "inventory": "sample",
                                 "hosts": {**doc["hosts"], "yonago-shi-gw": doc["hosts"][
                                     "izumo-gw"]}}))
    pages = tmp_path / "pages"
    done = municloud("report", "--inventory", str(site["inventory"]), str(junit_of_tiny(tmp_path)),
                     "--audit", str(other), "--out", str(pages))
    assert done.returncode == 2
    assert (f"{other}: this audit is not of the inventory tiny ({site['inventory']}): the audit "
            "names the inventory 'sample'; hosts not in it: yonago-shi-gw") in done.stderr
    assert "nothing written" in done.stderr and not pages.exists()
    assert done.stdout == ""


def test_report_refuses_a_file_that_is_not_an_audit(site: dict[str, Path], tmp_path: Path) -> None:
    junit = junit_of_tiny(tmp_path)
    pages = tmp_path / "pages"
    done = municloud("report", "--inventory", str(site["inventory"]), str(junit),
                     "--audit", str(junit), "--out", str(pages))
    assert done.returncode == 2
    assert f"{junit}: cannot read the audit file" in done.stderr and not pages.exists()
