"""The lab's own life cycle, on a one-town prefecture: up, up again, status, routing, Ansible, down.

Needs root and a Docker engine (`municloud lab up` starts one if it can). The tiny lab's ranges do
not overlap the sample's or okayama's, so these tests run beside a lab that is already up, and
`lab down` here must leave that lab alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from tiny_lab import REPO, TINY, municloud, playbook

from municloud import inventory, report
from municloud.lab import topology

pytestmark = pytest.mark.lab

KEY = REPO / ".lab" / "tiny" / "id_ed25519"
BYSTANDER = "mc-test-bystander"  # a network the lab did not make; `lab down` must keep it


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def ssh(address: str, command: str) -> tuple[int, str]:
    """Run a command on a lab host as a person would: over SSH with the lab's key."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(KEY.with_name("known_hosts")))  # recorded by `lab up`
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        address,
        username="root",
        key_filename=str(KEY),
        timeout=10,
        allow_agent=False,
        look_for_keys=False,
    )
    try:
        _, stdout, _ = client.exec_command(command, timeout=30)
        out = stdout.read().decode()
        return stdout.channel.recv_exit_status(), out
    finally:
        client.close()


@pytest.fixture(scope="module")
def first_up() -> Iterator[subprocess.CompletedProcess[str]]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    municloud("lab", "down", "--inventory", str(TINY))
    result = municloud("lab", "up", "--inventory", str(TINY))
    yield result
    municloud("lab", "down", "--inventory", str(TINY))


@pytest.fixture(scope="module")
def tiny() -> topology.Topology:
    return topology.build(inventory.load(TINY))


def test_up_builds_every_host_and_network(
    first_up: subprocess.CompletedProcess[str], tiny: topology.Topology
) -> None:
    assert first_up.returncode == 0, first_up.stderr
    assert (f"lab tiny is up: {len(tiny.containers)} hosts on {len(tiny.networks)} networks"
            in first_up.stdout)
    names = docker("ps", "--filter", "label=municloud.lab=tiny", "--format", "{{.Names}}").split()
    assert sorted(names) == sorted(c.docker_name for c in tiny.containers)


def test_every_lab_network_is_internal_and_in_the_lab_range(
    first_up: subprocess.CompletedProcess[str], tiny: topology.Topology
) -> None:
    for net in tiny.networks:
        found = json.loads(docker("network", "inspect", net.docker_name))[0]
        assert found["Internal"] is True
        subnet = found["IPAM"]["Config"][0]["Subnet"]
        assert subnet == str(net.subnet) and net.subnet.subnet_of(topology.LAB_RANGE)


def test_second_up_changes_nothing(first_up: subprocess.CompletedProcess[str]) -> None:
    again = municloud("lab", "up", "--inventory", str(TINY))
    assert again.returncode == 0, again.stderr
    assert "no changes: the lab was already up" in again.stdout
    assert "creating" not in again.stdout


def test_status_lists_hosts_and_addresses(
    first_up: subprocess.CompletedProcess[str], tiny: topology.Topology
) -> None:
    status = municloud("lab", "status", "--inventory", str(TINY))
    assert status.returncode == 0
    hosts = len(tiny.containers)
    assert f"{hosts}/{hosts} hosts running" in status.stdout
    assert "matsue-lgwan-term" in status.stdout and "lgwan=198.19.202.10" in status.stdout


def test_hosts_boot_systemd_and_answer_ssh(first_up: subprocess.CompletedProcess[str]) -> None:
    code, out = ssh("198.19.202.10", "systemctl is-system-running; hostname")
    assert code == 0
    assert out.split() == ["running", "matsue-lgwan-term"], out


def test_segment_traffic_goes_through_the_gateway(
    first_up: subprocess.CompletedProcess[str],
) -> None:
    code, out = ssh(
        "198.19.202.10",
        "ip route get 198.19.203.10; ping -c 1 -W 2 198.19.203.10 >/dev/null && echo reached",
    )
    assert code == 0 and "via 198.19.202.1" in out, out
    assert "reached" in out  # the gateway forwards (no ruleset yet: a fresh lab only routes)
    # ... and the reply came back through the gateway too: the far side routes via its gateway.
    code, out = ssh("198.19.203.10", "ip route show default")
    assert code == 0
    assert out.strip().startswith("default via 198.19.203.1"), out


def test_shared_hosts_route_to_segments_via_the_gateway_uplink(
    first_up: subprocess.CompletedProcess[str],
) -> None:
    code, out = ssh("198.19.200.10", "ip route; ping -c 1 -W 2 198.19.202.10 >/dev/null && echo ok")
    assert code == 0
    assert "198.19.202.0/24 via 198.19.200.101" in out
    assert "default" not in out  # nothing leaves the lab: no default route on a shared host
    assert out.strip().endswith("ok")


def test_ansible_reaches_the_lab_without_hand_edits(
    first_up: subprocess.CompletedProcess[str], tiny: topology.Topology
) -> None:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    ansible = Path(sys.executable).with_name("ansible")
    proc = subprocess.run(
        [str(ansible), "all", "-i", str(TINY), "-m", "ansible.builtin.ping", "-o"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(tiny.containers)


def test_a_stopped_host_is_started_again_with_its_routes(
    first_up: subprocess.CompletedProcess[str],
) -> None:
    docker("stop", "-t", "5", "mc-tiny-matsue-lgwan-term")
    again = municloud("lab", "up", "--inventory", str(TINY))
    assert again.returncode == 0, again.stderr
    assert "matsue-lgwan-term: starting" in again.stdout
    code, out = ssh("198.19.202.10", "ip route show default")
    assert code == 0 and out.strip().startswith("default via 198.19.202.1"), out


def _acceptance_run(junit: Path, *tests: str) -> None:
    """Run the acceptance tests (all, or the named files) on the tiny lab, into ``junit``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *(tests or ("tests/acceptance",)),
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "4",
            "--inventory",
            str(TINY),
            f"--junitxml={junit}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def _acceptance(tmp_path: Path, name: str) -> dict[str, set[str]]:
    """Run the acceptance tests on the tiny lab; clause -> set of outcomes."""
    junit = tmp_path / f"{name}.xml"
    _acceptance_run(junit)
    outcomes: dict[str, set[str]] = {}
    for result in report.read_junit(junit):
        outcomes.setdefault(str(result.clause), set()).add(result.outcome)
    return outcomes


def test_acceptance_fails_before_the_baseline_and_passes_after(
    first_up: subprocess.CompletedProcess[str],
    tmp_path: Path,
) -> None:
    """The acceptance tests prove the roles: on a fresh lab they fail, after site.yml they pass."""
    before = _acceptance(tmp_path, "before")
    for clause in (
        "baseline.admin.account",
        "baseline.ssh.key-only",
        "baseline.ssh.hardened",
        "baseline.ssh.modern-crypto",
        "baseline.time.jst",
        # No firewall yet: denied pairs connect, and nothing listens on the service ports.
        "segments.ssh.management-only",
        "segments.default-deny",
        "segments.no-bypass",  # Debian's sshd allows TCP forwarding
    ):
        assert "failed" in before[clause], (clause, before)
    converge = playbook()
    assert converge.returncode == 0, converge.stdout[-3000:]
    after = _acceptance(tmp_path, "after")
    assert set(after) == set(before)
    # Passed everywhere; skipped only where a lab container cannot show it (the kernel's audit
    # system, for export control), each test says why.
    assert all("passed" in outcomes and outcomes <= {"passed", "skipped"}
               for outcomes in after.values()), after


def test_a_broken_host_fails_its_clause_for_that_host_and_municipality_only(
    first_up: subprocess.CompletedProcess[str],
    tmp_path: Path,
) -> None:
    """Someone starts a file server by hand on 出雲市's LGWAN terminal. The acceptance run and
    `municloud report` show one failed clause, segments.no-bypass, for 出雲市 and that host, with
    the port in the evidence; every other clause, host and municipality passes.

    Runs on the converged lab (site.yml first: a rerun when the test before converged it), and
    the segmentation and baseline tests, which probe every host of both towns."""
    converge = playbook()
    assert converge.returncode == 0, converge.stdout[-3000:]
    container, broken = "mc-tiny-izumo-lgwan-term", "izumo-lgwan-term"
    docker("exec", "-d", container, "python3", "-m", "http.server", "8081")
    junit = tmp_path / "broken.xml"
    try:
        for _ in range(20):
            if ":8081 " in docker("exec", container, "ss", "-Hltn"):
                break
            time.sleep(0.5)
        _acceptance_run(junit, "tests/acceptance/test_segmentation.py",
                        "tests/acceptance/test_baseline.py")
    finally:
        subprocess.run(["docker", "exec", container, "pkill", "-f", "http.server 8081"],
                       check=False)
    pages = tmp_path / "report"
    written = municloud("report", "--inventory", str(TINY), str(junit), "--out", str(pages))
    assert written.returncode == 1, written.stdout + written.stderr  # a failure, not waived
    page = {code: json.loads((pages / f"{code}.json").read_text(encoding="utf-8"))
            for code in ("320005", "322016", "322032")}
    failed = {
        (code, clause["id"], h["host"])
        for code, p in page.items()
        for clause in p["clauses"]
        for h in clause["hosts"]
        if h["result"] != "passed"
    }
    assert failed == {("322032", "segments.no-bypass", broken)}, failed
    assert {code: p["result"] for code, p in page.items()} == {
        "320005": "passed", "322016": "passed", "322032": "failed"}
    assert page["322032"]["counts"]["failed"] == 1
    assert page["322016"]["counts"]["passed"] > 0 and page["322016"]["counts"]["failed"] == 0
    clause = next(c for c in page["322032"]["clauses"] if c["id"] == "segments.no-bypass")
    host = next(h for h in clause["hosts"] if h["host"] == broken)
    (case,) = [c for c in host["cases"] if c["outcome"] != "passed"]
    assert "8081" in case["message"], case
    html = (pages / "322032.html").read_text(encoding="utf-8")
    assert "出雲市" in html and broken in html and "8081" in html


def test_a_lab_left_by_another_clone_is_made_again_with_this_key(
    first_up: subprocess.CompletedProcess[str],
    tmp_path: Path,
    tiny: topology.Topology,
) -> None:
    """Containers made with another lab key (another clone, a lost .lab/) are not reused."""
    KEY.rename(tmp_path / "old-key")
    KEY.with_suffix(".pub").rename(tmp_path / "old-key.pub")
    again = municloud("lab", "up", "--inventory", str(TINY))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("making it again") == len(tiny.containers)
    code, out = ssh("198.19.202.10", "hostname")  # the new key and the new host keys work
    assert code == 0 and out.strip() == "matsue-lgwan-term"


def test_down_removes_the_lab_and_nothing_else(first_up: subprocess.CompletedProcess[str]) -> None:
    docker("network", "create", "--internal", "--subnet=198.19.250.0/24", BYSTANDER)
    others_before = set(docker("ps", "-aq").split()) - set(
        docker("ps", "-aq", "--filter", "label=municloud.lab=tiny").split()
    )
    try:
        down = municloud("lab", "down", "--inventory", str(TINY))
        assert down.returncode == 0, down.stderr
        assert "lab tiny is down" in down.stdout
        assert docker("ps", "-aq", "--filter", "label=municloud.lab=tiny").split() == []
        assert docker("network", "ls", "-q", "--filter", "label=municloud.lab=tiny").split() == []
        assert BYSTANDER in docker("network", "ls", "--format", "{{.Name}}").split()
        assert set(docker("ps", "-aq").split()) == others_before
        assert not (TINY / "group_vars" / "all" / "lab.yml").exists()
        again = municloud("lab", "down", "--inventory", str(TINY))
        assert "no lab tiny was up" in again.stdout
    finally:
        docker("network", "rm", BYSTANDER)
