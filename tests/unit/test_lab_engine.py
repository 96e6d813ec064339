"""`municloud lab down` when dockerd hangs removing containers (municloud/lab/engine.py).

The fault itself (dockerd waiting forever for an exit containerd never reports) cannot be caused
on demand, so a `docker` on PATH stands in for the CLI: its `rm` blocks until dockerd has been
"restarted", as the real one did on 2026-12-02. The dockerd is a real process started under the
name `dockerd` with municloud's pidfile; the test checks it is stopped, started again, and the
containers removed, and that a dockerd municloud did not start is left alone with an error
saying what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from municloud.lab import engine

FAKE_DOCKER = """#!/bin/sh
echo "$*" >> {calls}
if [ "$1" = rm ] && [ ! -e {restarted} ]; then exec sleep 600; fi
exit 0
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {"calls": tmp_path / "calls", "restarted": tmp_path / "restarted",
             "pidfile": tmp_path / "dockerd.pid"}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(**paths))
    docker.chmod(0o755)
    (bin_dir / "dockerd").symlink_to(sys.executable)  # a process named dockerd
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(engine, "DOCKERD_PIDFILE", paths["pidfile"])
    monkeypatch.setattr(engine, "REMOVE_TIMEOUT", 1.0)
    monkeypatch.setattr(engine, "ensure_engine",
                        lambda say=print: paths["restarted"].touch())
    return paths


@pytest.fixture
def our_dockerd(fake: dict[str, Path], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process named dockerd whose pid is in municloud's pidfile, as `lab up` leaves it."""
    dockerd = subprocess.Popen([str(tmp_path / "bin" / "dockerd"), "-c",
                                "import time; time.sleep(600)"])
    fake["pidfile"].write_text(f"{dockerd.pid}\n")
    yield dockerd
    dockerd.kill()
    dockerd.wait()


def test_a_hung_removal_restarts_our_dockerd_and_removes_the_containers(
    fake: dict[str, Path], our_dockerd: subprocess.Popen[bytes]
) -> None:
    said: list[str] = []
    engine.remove_containers(["mc-a", "mc-b"], said.append)
    assert our_dockerd.wait(timeout=10) == -15  # stopped with SIGTERM
    assert fake["restarted"].exists()
    assert fake["calls"].read_text().splitlines() == ["rm -f mc-a mc-b"] * 2
    assert any(f"pid {our_dockerd.pid}" in s and "restarting" in s for s in said), said


def test_a_hung_removal_under_a_dockerd_we_did_not_start_says_what_to_do(
    fake: dict[str, Path],
) -> None:
    with pytest.raises(engine.LabError, match=r"Restart dockerd .* `municloud lab down` again"):
        engine.remove_containers(["mc-a"], print)
    assert not fake["restarted"].exists()
    assert fake["calls"].read_text().splitlines() == ["rm -f mc-a"]


def test_a_quick_removal_restarts_nothing(fake: dict[str, Path]) -> None:
    fake["restarted"].touch()  # rm returns at once
    engine.remove_containers(["mc-a"], print)
    assert fake["calls"].read_text().splitlines() == ["rm -f mc-a"]


def test_a_removal_that_hangs_after_the_restart_too_is_an_error(
    fake: dict[str, Path], our_dockerd: subprocess.Popen[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "ensure_engine", lambda say=print: None)  # restarts, still hangs
    with pytest.raises(engine.LabError, match="even after dockerd was restarted"):
        engine.remove_containers(["mc-a"], print)
    assert fake["calls"].read_text().splitlines() == ["rm -f mc-a"] * 2
