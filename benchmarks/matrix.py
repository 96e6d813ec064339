#!/usr/bin/env python3
"""Benchmark of the reachability matrix: how many pairs each municipality's matrix probes, and how
long probing takes, on the sample lab and on the okayama lab, in one run.

For each inventory (its lab up and converged: `make lab-up converge INVENTORY=...`), it times:
  1. computing the matrix from the model (municloud.policy.matrix);
  2. probing every pair for real (municloud.probe.probe_all: one SSH login per source host, all
     its probes at once, eight sources at a time), repeated --runs times, the median kept;
  3. the acceptance tests of the matrix as `make acceptance` runs them (pytest -n 4), once.
Writes benchmarks/matrix.figures.md. Read-only on the lab: it only connects.

Usage: .venv/bin/python benchmarks/matrix.py [--inventory inventories/sample ...] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paramiko

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from municloud import inventory, policy, probe  # noqa: E402
from municloud.inventory import Host  # noqa: E402

FIGURES = REPO / "benchmarks" / "matrix.figures.md"


def root_runner(lab: str) -> probe.RunOn:
    key = REPO / ".lab" / lab / "id_ed25519"
    known_hosts = REPO / ".lab" / lab / "known_hosts"

    def run(
        host: Host, command: str, stdin: str = "", timeout: float = 120
    ) -> tuple[int, str, str]:
        client = paramiko.SSHClient()
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            str(host.primary_address),
            username="root",
            key_filename=str(key),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        try:
            chan_in, out, err = client.exec_command(command, timeout=timeout)
            chan_in.write(stdin)
            chan_in.channel.shutdown_write()
            text, errors = out.read().decode(), err.read().decode()
            return out.channel.recv_exit_status(), text, errors
        finally:
            client.close()

    return run


def measure(path: str, runs: int) -> dict[str, Any]:
    prefecture = inventory.load(path)
    started = time.perf_counter()
    probes = policy.matrix(prefecture)
    model_seconds = time.perf_counter() - started
    run = root_runner(prefecture.name)
    seconds = []
    for i in range(runs):
        started = time.perf_counter()
        results = probe.probe_all(probes, run)
        seconds.append(time.perf_counter() - started)
        wrong = [
            p.id
            for p in probes
            if (results[p.source.name][probe.key(p.address, p.port)] == "open") is not p.expected
        ]
        print(
            f"  {path}: probe run {i + 1}: {seconds[-1]:.1f} s, {len(wrong)} not as expected",
            flush=True,
        )
    started = time.perf_counter()
    tests = subprocess.run(
        [
            str(Path(sys.executable).with_name("pytest")),
            "tests/acceptance/test_segmentation.py",
            "-q",
            "-n",
            "4",
            "-p",
            "no:cacheprovider",
            "--inventory",
            path,
            "-k",
            "test_reachability",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    pytest_seconds = time.perf_counter() - started
    summary = re.search(r"(\d+) passed", tests.stdout)
    per_group = Counter((p.group, p.expected) for p in probes)
    return {
        "inventory": path,
        "hosts": len(prefecture.hosts),
        "groups": {
            g: (per_group[(g, True)], per_group[(g, False)])
            for g in dict.fromkeys(p.group for p in probes)
        },
        "model": model_seconds,
        "probe": statistics.median(seconds),
        "pytest": pytest_seconds,
        "pytest_result": summary[0] if summary and tests.returncode == 0 else "FAILED",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--inventory", action="append", help="default: inventories/sample and inventories/okayama"
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    inventories = args.inventory or ["inventories/sample", "inventories/okayama"]
    rows = [measure(path, args.runs) for path in inventories]

    lines = [
        "# Reachability matrix: size and time",
        "",
        f"Measured {datetime.date.today()} by `.venv/bin/python benchmarks/matrix.py` "
        f"({os.cpu_count()} cores, Python {platform.python_version()}), each lab up and "
        "converged. Wall-clock seconds on a shared machine: compare rows of one run.",
        "",
        "## Pairs probed per municipality",
        "",
        "| inventory | municipality | allowed | denied | total |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        for group, (allow, deny) in r["groups"].items():
            lines.append(f"| {r['inventory']} | {group} | {allow} | {deny} | {allow + deny} |")
    lines += [
        "",
        "## Time",
        "",
        "| inventory | hosts | pairs | matrix from the model | probing every pair (median of "
        f"{args.runs}) | `pytest -n 4` of the matrix |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        pairs = sum(a + d for a, d in r["groups"].values())
        lines.append(
            f"| {r['inventory']} | {r['hosts']} | {pairs} | {r['model']:.3f} s | "
            f"{r['probe']:.1f} s | {r['pytest']:.1f} s ({r['pytest_result']}) |"
        )
    if len(rows) >= 2:
        first, second = rows[0], rows[1]
        pairs = [sum(a + d for a, d in r["groups"].values()) for r in (first, second)]
        lines += [
            "",
            f"From {first['inventory']} to {second['inventory']}: pairs x"
            f"{pairs[1] / pairs[0]:.2f}, hosts x{second['hosts'] / first['hosts']:.2f}, probing "
            f"time x{second['probe'] / first['probe']:.2f}.",
        ]
    FIGURES.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(FIGURES.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
