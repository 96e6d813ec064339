"""Labs brought up at once (two terminals, or jobs that share a machine).

Each lab has its own containers, networks and state directory, but they share the machine (the
engine, the iptables rule, the base image: municloud/lab/engine.py's machine lock) and the
checkout's vault password (municloud/lab/commands.py). These tests start real processes at once.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from municloud.lab import commands, engine

# fork: the children inherit the monkeypatched paths.
FORK = multiprocessing.get_context("fork")


def _make_password(state_dir: str, barrier: Barrier,
                   results: Queue[tuple[str, str]]) -> None:
    commands.STATE_DIR = Path(state_dir)
    barrier.wait()
    try:
        path = commands.lab_vault_password()
        results.put(("ok", path.read_text()))
    except Exception as exc:  # the test reports it
        results.put(("error", repr(exc)))


def test_labs_brought_up_at_once_share_one_whole_vault_password(tmp_path: Path) -> None:
    state_dir = tmp_path / ".lab"
    n = 12
    barrier = FORK.Barrier(n)
    results: Queue[tuple[str, str]] = FORK.Queue()
    workers = [FORK.Process(target=_make_password, args=(str(state_dir), barrier, results))
               for _ in range(n)]
    for w in workers:
        w.start()
    got = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert [kind for kind, _ in got] == ["ok"] * n, got
    passwords = {text for _, text in got}
    assert len(passwords) == 1, passwords  # one password, and nobody read it half-written
    (password,) = passwords
    assert len(password.strip()) >= 32 and password.endswith("\n")
    path = state_dir / "vault-password"
    assert path.read_text() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in state_dir.iterdir()) == ["vault-password"]  # no temp file left


def _hold(lock: str, log: str, seconds: float) -> None:
    with engine.machine_lock(say=lambda _: None, path=Path(lock)):
        with open(log, "a") as f:
            f.write(f"in {os.getpid()}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"out {os.getpid()}\n")


def test_a_second_lab_up_waits_for_the_first_to_prepare_the_machine(tmp_path: Path) -> None:
    lock, log = tmp_path / "lab.lock", tmp_path / "log"
    first = FORK.Process(target=_hold, args=(str(lock), str(log), 1.5))
    first.start()
    for _ in range(100):  # until the first holds the lock
        if log.exists():
            break
        time.sleep(0.05)
    said: list[str] = []
    with engine.machine_lock(say=said.append, path=lock), log.open("a") as f:
        f.write(f"in {os.getpid()}\n")
    first.join(timeout=30)
    assert log.read_text().splitlines() == [
        f"in {first.pid}", f"out {first.pid}", f"in {os.getpid()}"]
    assert said == [f"waiting for `municloud lab up` (pid {first.pid}) to finish preparing the "
                    "lab machine ..."]


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(tmp_path: Path) -> None:
    lock, log = tmp_path / "lab.lock", tmp_path / "log"
    killed = FORK.Process(target=_hold, args=(str(lock), str(log), 600))
    killed.start()
    for _ in range(100):
        if log.exists():
            break
        time.sleep(0.05)
    killed.kill()
    killed.join(timeout=30)
    said: list[str] = []
    started = time.monotonic()
    with engine.machine_lock(say=said.append, path=lock):
        pass
    assert said == [] and time.monotonic() - started < 30
    assert lock.read_text() == ""  # no holder named once the lock is free
