"""The Docker engine under the lab: Debian's docker.io, started by us when it is not running.

Only the ``docker`` command line is used (no Python SDK): what the lab does can be read and
repeated by hand. Nothing is pulled from a registry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

DOCKERD_LOG = Path("/var/log/municloud-dockerd.log")
DOCKERD_PIDFILE = Path("/run/municloud-dockerd.pid")
# Held while one `municloud lab up` prepares the machine (the engine, kernel settings, the
# iptables rule, the base image): two labs brought up at once (two terminals, or jobs sharing a
# machine) would otherwise both start a dockerd, both insert the rule, or both debootstrap the
# same image.
MACHINE_LOCK = Path("/run/municloud-lab.lock")

# Docker's isolation rules for --internal networks also drop frames that one container forwards
# to another on the same bridge (br_netfilter sends bridged frames through iptables). This rule
# lets frames bridged within one lab network pass; anything the host itself would route between
# lab networks is still dropped by Docker. See docs/architecture.md, "The lab".
BRIDGED_ACCEPT = ["DOCKER-USER", "-m", "physdev", "--physdev-is-bridged", "-j", "ACCEPT"]


class LabError(Exception):
    """Something the person running the lab must fix; the message says what."""


def run(
    args: Sequence[str], *, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, its output captured; LabError with its message if it fails and ``check``
    (subprocess.TimeoutExpired, the command killed, if it outlasts ``timeout`` seconds)."""
    proc = subprocess.run(list(args), text=True, capture_output=True, check=False,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise LabError(
            f"`{' '.join(args)}` failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout or '').strip()}"
        )
    return proc


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["docker", *args], check=check)


def docker_json(*args: str) -> list[dict[str, Any]]:
    proc = docker(*args, check=False)
    if proc.returncode != 0:
        return []
    data = json.loads(proc.stdout or "[]")
    return data if isinstance(data, list) else [data]


@contextlib.contextmanager
def machine_lock(say: Callable[[str], None] = print, path: Path = MACHINE_LOCK) -> Iterator[None]:
    """Hold the lab machine's lock (an flock: the kernel releases it when the holder exits, so a
    killed run leaves nothing to clean up); say so when another run holds it."""
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            say(f"waiting for {holder} to finish preparing the lab machine ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"`municloud lab up` (pid {os.getpid()})\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)


def engine_running() -> bool:
    return shutil.which("docker") is not None and docker("info", check=False).returncode == 0


def ensure_engine(say: Any = print) -> None:
    """Install Debian's docker.io and start dockerd (no default bridge) if it is not running."""
    if engine_running():
        return
    if os.geteuid() != 0:
        raise LabError(
            "the Docker engine is not running and starting it needs root; "
            "run as root, or start dockerd yourself (`dockerd --bridge=none`)"
        )
    if shutil.which("dockerd") is None:
        say("installing Debian's docker.io (the Docker engine) ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "docker.io", "iptables"],
        ):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise LabError(f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}")
    say(f"starting dockerd --bridge=none (log: {DOCKERD_LOG}) ...")
    with DOCKERD_LOG.open("ab") as log:
        proc = subprocess.Popen(
            ["dockerd", "--bridge=none", f"--pidfile={DOCKERD_PIDFILE}"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    for _ in range(60):
        if engine_running():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise LabError(f"dockerd did not start; see {DOCKERD_LOG}")


# `docker rm -f` waits, with no time limit, for containerd to report each container's exit. With
# Debian's docker.io 20.10 here that report was lost once (2026-12-02, removing the sample lab's
# 31 hosts after `make demo`): 22 containers stayed "Up" with no process left, containerd listed
# no task for them, and `docker rm` had not returned after 10 minutes (a long-known Docker fault,
# e.g. moby/moby#38781). A restarted dockerd finds them dead and removes them in seconds; the
# whole lab's removal otherwise takes a few seconds.
REMOVE_TIMEOUT = 180.0


def our_dockerd() -> int | None:
    """The pid of the dockerd started with municloud's pidfile (by us, or by .ci/run), if alive."""
    try:
        pid = int(DOCKERD_PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if cmdline.split(b"\0")[0].endswith(b"dockerd") else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def restart_engine(pid: int, say: Callable[[str], None] = print) -> None:
    """Stop the dockerd ``pid`` (SIGTERM, as systemd would) and start it again."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while _alive(pid):
        if time.monotonic() > deadline:
            raise LabError(f"dockerd (pid {pid}) did not stop within 90 s of SIGTERM; "
                           f"see {DOCKERD_LOG}")
        time.sleep(0.5)
    ensure_engine(say)


def remove_containers(names: Sequence[str], say: Callable[[str], None] = print) -> None:
    """`docker rm -f` of ``names``; if dockerd hangs on them (see :data:`REMOVE_TIMEOUT`) and
    it is municloud's, restart it and remove them again; else a LabError saying what to do."""
    docker_rm = ["docker", "rm", "-f", *names]
    try:
        run(docker_rm, timeout=REMOVE_TIMEOUT)
        return
    except subprocess.TimeoutExpired:
        pid = our_dockerd()
    if pid is None:
        raise LabError(
            f"`docker rm -f` of {len(names)} containers did not return in {REMOVE_TIMEOUT:.0f} s: "
            "dockerd lost track of their exit (a known Docker fault). Restart dockerd (it then "
            "finds them dead) and run `municloud lab down` again"
        )
    say(f"dockerd did not remove the containers in {REMOVE_TIMEOUT:.0f} s (it lost track of "
        f"their exit, a known Docker fault): restarting the dockerd municloud started (pid "
        f"{pid}); any other lab's hosts stop with it (`municloud lab up` starts them again)")
    restart_engine(pid, say)
    try:
        run(docker_rm, timeout=REMOVE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LabError(f"`docker rm -f` of {len(names)} containers did not return even after "
                       f"dockerd was restarted; see {DOCKERD_LOG}") from None


# Every systemd host takes a few dozen inotify instances, all counted against root's limit on the
# lab machine (128 by default): past about 20 hosts systemd fails to boot ("Too many open
# files") and the container exits at once with status 255. The lab raises the limits it needs.
HOST_SYSCTLS = {
    "fs/inotify/max_user_instances": 8192,
    "fs/inotify/max_user_watches": 524288,
    # The gateways' and hosts' drop logs (nftables `log`) reach the kernel log only from the
    # first network namespace unless this is on: with it, `dmesg` on the lab machine shows them.
    "net/netfilter/nf_log_all_netns": 1,
}


def ensure_host_limits(say: Callable[[str], None] = print) -> None:
    """Raise the kernel settings above to at least the lab's needs (never lowers them)."""
    for key, wanted in HOST_SYSCTLS.items():
        path = Path("/proc/sys") / key
        if not path.exists():  # e.g. no netfilter logging in this kernel: nothing to raise
            continue
        if int(path.read_text()) < wanted:
            say(f"raising {key.replace('/', '.')} to {wanted} for the lab's hosts")
            try:
                path.write_text(str(wanted))
            except OSError as exc:
                raise LabError(
                    f"cannot raise {key.replace('/', '.')} ({exc}); run as root, or "
                    f"`sysctl -w {key.replace('/', '.')}={wanted}`"
                ) from None


def ensure_bridged_accept() -> None:
    """Add :data:`BRIDGED_ACCEPT` once (idempotent)."""
    if run(["iptables", "-C", *BRIDGED_ACCEPT], check=False).returncode != 0:
        run(["iptables", "-I", *BRIDGED_ACCEPT])


def container_pid(name: str) -> int:
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())
    if pid == 0:
        status = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        raise LabError(
            f"container {name} is not running (it exited with status {status}); "
            f"see `docker logs {name}`, or start it with a terminal to watch systemd "
            f"boot: `docker start -ai {name}`"
        )
    return pid


def in_netns(name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a container's network namespace, from the host.

    The lab sets routes this way, so a terminal needs no NET_ADMIN capability of its own.
    """
    return run(["nsenter", "-t", str(container_pid(name)), "-n", *cmd], check=check)
