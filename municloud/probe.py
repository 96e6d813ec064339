"""Probing the reachability matrix with real connections, made on the source hosts themselves.

Each source host gets one SSH login and runs :data:`PROGRAM` (its own python3, standard library
only), which makes every probe of that source at once: a TCP connection per (address, port), an
ICMP echo (``ping``) where the port is None. The machine running this (a management address: the
lab machine in the lab) probes every destination too, which proves a destination listens before
a denial counts. Used by the acceptance tests (tests/acceptance/test_segmentation.py) and by
benchmarks/matrix.py.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from municloud.inventory import Host
from municloud.policy import Probe

CONNECT_TIMEOUT = 3.0  # seconds; a dropped SYN takes this long to count as denied
SOURCES_AT_ONCE = 8  # source hosts probing at the same time
HERE = ""  # the key of this machine's own results

# Runs on a source host: reads [[address, port], ...] and a timeout on stdin, prints
# {"address port": "open" | "closed: why"}.
PROGRAM = r"""
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
targets, timeout = json.load(sys.stdin)
def probe(t):
    address, port = t
    if port is None:
        done = subprocess.run(["ping", "-n", "-c", "1", "-W", str(int(timeout)), address],
                              capture_output=True, text=True)
        return "open" if done.returncode == 0 else "closed: no echo reply"
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except OSError as exc:
        return "closed: " + (str(exc) or type(exc).__name__)
with ThreadPoolExecutor(max(1, min(len(targets), 400))) as pool:
    results = list(pool.map(probe, targets))
print(json.dumps({f"{a} {p}": r for (a, p), r in zip(targets, results)}))
"""

RunOn = Callable[..., tuple[int, str, str]]  # (host, command, stdin=..., timeout=...)


def key(address: object, port: int | None) -> str:
    return f"{address} {port}"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def probe_here(target: tuple[str, int | None]) -> str:
    """One probe from this machine."""
    address, port = target
    if port is None:
        done = subprocess.run(
            ["ping", "-n", "-c", "1", "-W", str(int(CONNECT_TIMEOUT)), address],
            capture_output=True,
            check=False,
        )
        return "open" if done.returncode == 0 else "closed: no echo reply"
    try:
        with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT):
            return "open"
    except OSError as exc:
        return f"closed: {exc}"


def _targets(probes: Iterable[Probe]) -> list[tuple[str, int | None]]:
    return sorted({(str(p.address), p.port) for p in probes}, key=str)


def probe_all(probes: list[Probe], run_on: RunOn) -> dict[str, dict[str, str]]:
    """Every probe: {source host name: {key(address, port): result}}, and under :data:`HERE`
    every destination probed from this machine."""
    by_source: dict[str, tuple[Host, list[Probe]]] = {}
    for p in probes:
        by_source.setdefault(p.source.name, (p.source, []))[1].append(p)

    def from_host(name: str) -> dict[str, str]:
        source, mine = by_source[name]
        status, out, err = run_on(
            source,
            "python3 -c " + _quote(PROGRAM),
            stdin=json.dumps([_targets(mine), CONNECT_TIMEOUT]),
            timeout=120,
        )
        if status != 0:
            raise RuntimeError(f"the probe program failed on {name}: {err.strip()}")
        return dict(json.loads(out))

    here = _targets(probes)
    with ThreadPoolExecutor(max(1, min(len(here), 400))) as pool:
        results = {
            HERE: {key(a, p): r for (a, p), r in zip(here, pool.map(probe_here, here), strict=True)}
        }
    with ThreadPoolExecutor(SOURCES_AT_ONCE) as pool:
        results.update(zip(by_source, pool.map(from_host, by_source), strict=True))
    return results
