#!/usr/bin/env python3
"""Benchmark of the model at national scale: 47 prefectures, 1,741 municipal bodies.

Generates the national inventories (`municloud generate national`) into a temporary directory
(timed, not counted), then, in this one process, --runs times:
  1. loads and validates all 47 inventories (municloud.inventory.load: the schema, the ranges,
     the segment policy's placement and invariant checks), as `municloud validate` does;
  2. compiles every gateway's nftables ruleset (municloud.nftables.gateway_ruleset), 1,741;
  3. compiles every other host's ruleset (municloud.nftables.host_ruleset), reported apart.
The target is 1 + 2 under 5 s on a 2-core machine. The medians (and the best run) of wall-clock
and CPU seconds are written to benchmarks/national.figures.md, with the machine's load average
(other work on a shared machine shows as wall-clock above CPU time), and a SHA-256 over every
ruleset's text, so that a change to the model that changes a ruleset shows in the figures. With
--nft-check, a sample of the rulesets (each prefecture's first and last gateway, and one host of
each role) is also checked by `nft -c -f` (needs root and Debian's nftables; not timed).

Usage: .venv/bin/python benchmarks/national.py [--runs 5] [--nft-check]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from municloud import generate, inventory, nftables  # noqa: E402
from municloud.inventory import Prefecture  # noqa: E402
from municloud.segments import HostRole  # noqa: E402

FIGURES = REPO / "benchmarks" / "national.figures.md"
TARGET_S = 5.0
# The model before the speed-ups this benchmark led to (the indexes and caches of inventory.py,
# policy.py and nftables.py, the plain-YAML path of yamlfile.py), measured on this machine on
# 2026-12-01 with this script, one run (load average 0.2 at its start): what it gave, and what
# the model gives now, are byte for byte the same rulesets (every gateway's; every other host's
# of 19 prefectures, 01-hokkaido among them). Every other host's ruleset was not timed in full
# before: each one computed the whole prefecture's flows again (01-hokkaido's alone took 695 s,
# at low priority beside other work).
BEFORE = (
    ("load and validate every inventory", "5.21"),
    ("compile every gateway's ruleset", "115.29"),
    ("compile every other host's ruleset of 01-hokkaido (1,260)", "695"),
)


def generate_national(root: Path) -> tuple[Path, float]:
    started = time.perf_counter()
    files = generate.national_files()
    problems = generate.install(files, root / "national", force=False, lab=False)
    assert not problems, problems
    return root / "national", time.perf_counter() - started


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def one_run(directory: Path) -> dict[str, Any]:
    """One measurement, in this process: load, gateways, other hosts (wall and CPU seconds)."""
    started = clock()
    prefectures = [inventory.load(d) for d in sorted(directory.iterdir())]
    loaded = clock()
    gateways = hashlib.sha256()
    count_gw = 0
    for p in prefectures:
        for m in p.municipalities:
            gateways.update(nftables.gateway_ruleset(p, m.group).encode())
            count_gw += 1
    compiled = clock()
    others = hashlib.sha256()
    count_hosts = 0
    for p in prefectures:
        for h in p.hosts:
            if h.role is not HostRole.GATEWAY:
                others.update(nftables.host_ruleset(p, h.name).encode())
                count_hosts += 1
    done = clock()
    return {
        "prefectures": prefectures,
        "load_s": loaded[0] - started[0],
        "gateways_s": compiled[0] - loaded[0],
        "hosts_s": done[0] - compiled[0],
        "load_cpu": loaded[1] - started[1],
        "gateways_cpu": compiled[1] - loaded[1],
        "hosts_cpu": done[1] - compiled[1],
        "gateways": count_gw,
        "hosts": count_hosts,
        "gateway_sha": gateways.hexdigest(),
        "host_sha": others.hexdigest(),
    }


def nft_check(prefectures: list[Prefecture], work: Path) -> tuple[int, list[str]]:
    """`nft -c -f` on a sample: each prefecture's first and last gateway, one host per role."""
    if shutil.which("nft") is None or os.geteuid() != 0:
        raise SystemExit("--nft-check needs root and nft (Debian's nftables)")
    failed: list[str] = []
    checked = 0
    for p in prefectures:
        names = [p.municipalities[0].gateway.name, p.municipalities[-1].gateway.name]
        seen: set[tuple[HostRole, bool]] = set()
        for h in p.hosts:
            kind = (h.role, h.municipality is None)
            if h.role is not HostRole.GATEWAY and kind not in seen:
                seen.add(kind)
                names.append(h.name)
        for name in names:
            path = work / f"{p.name}-{name}.nft"
            path.write_text(nftables.ruleset(p, name))
            proc = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True,
                                  check=False)
            checked += 1
            if proc.returncode != 0:
                failed.append(f"{p.name}/{name}: {proc.stderr.strip()[:300]}")
    return checked, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nft-check", action="store_true",
                        help="check a sample of the rulesets with `nft -c -f` (root)")
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="municloud-national-") as tmp:
        directory, generation_s = generate_national(Path(tmp))
        print(f"generated 47 inventories in {generation_s:.2f} s", flush=True)
        runs = []
        for i in range(args.runs):
            run = one_run(directory)
            print(f"run {i + 1}: load {run['load_s']:.2f} s, gateways {run['gateways_s']:.2f} s, "
                  f"other hosts {run['hosts_s']:.2f} s", flush=True)
            runs.append(run)
        last = runs[-1]
        assert len({(r["gateway_sha"], r["host_sha"]) for r in runs}) == 1, "runs differ"
        nft: tuple[int, list[str]] | None = None
        if args.nft_check:
            nft = nft_check(last["prefectures"], Path(tmp))
            print(f"nft -c: {nft[0]} rulesets checked, {len(nft[1])} refused", flush=True)
        # as BEFORE measured it: 01-hokkaido loaded anew, then every other host's ruleset
        hokkaido = inventory.load(directory / "01-hokkaido")
        started = time.perf_counter()
        for h in hokkaido.hosts:
            if h.role is not HostRole.GATEWAY:
                nftables.host_ruleset(hokkaido, h.name)
        args.hokkaido_s = time.perf_counter() - started
        args.load_after = os.getloadavg()[0]
        write_figures(runs, generation_s, args, nft)
        if nft and nft[1]:
            raise SystemExit("nft refused:\n" + "\n".join(nft[1]))


def write_figures(runs: list[dict[str, Any]], generation_s: float, args: argparse.Namespace,
                  nft: tuple[int, list[str]] | None) -> None:
    last = runs[-1]
    prefectures: list[Prefecture] = last["prefectures"]
    municipalities = sum(len(p.municipalities) for p in prefectures)
    hosts = sum(len(p.hosts) for p in prefectures)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def cells(phase: str) -> str:
        best = min(r[f"{phase}_s"] for r in runs)
        return f"{median(f'{phase}_s'):.2f} | {best:.2f} | {median(f'{phase}_cpu'):.2f}"

    for r in runs:
        r["target_s"] = r["load_s"] + r["gateways_s"]
        r["target_cpu"] = r["load_cpu"] + r["gateways_cpu"]
    verdict = "under" if median("target_s") < TARGET_S else "over"
    command = "python benchmarks/national.py" + f" --runs {args.runs}" + (
        " --nft-check" if args.nft_check else "")
    after = {"load": cells("load").split(" | ")[0], "gateways": cells("gateways").split(" | ")[0]}
    lines = [
        "# National scale: validating and compiling 47 prefectures",
        "",
        f"Written by `.venv/bin/{command}` on {datetime.date.today().isoformat()}: nproc "
        f"{os.cpu_count()}, {platform.machine()}, Python {platform.python_version()}; load "
        f"average {args.load_before:.1f} before the runs and {args.load_after:.1f} after (the "
        "machine is shared: where wall-clock exceeds CPU time, the process waited for a core). "
        f"Seconds in one process, median and best of {args.runs} runs, each loading the "
        "inventories anew.",
        "",
        f"The inventories: `municloud generate national`, {len(prefectures)} prefectures, "
        f"{municipalities:,} municipal bodies, {hosts:,} hosts (the sample's 8 per municipality "
        f"and 7 shared per prefecture); generated, written and validated in "
        f"{generation_s:.2f} s (not counted below).",
        "",
        "| what | count | wall s (median) | wall s (best) | CPU s (median) |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| load and validate every inventory (`inventory.load`) | {len(prefectures)} | "
        f"{cells('load')} |",
        f"| compile every gateway's ruleset (`nftables.gateway_ruleset`) | "
        f"{last['gateways']:,} | {cells('gateways')} |",
        f"| **both: the target, under {TARGET_S:.0f} s** | | {cells('target')} |",
        f"| compile every other host's ruleset (`nftables.host_ruleset`) | {last['hosts']:,} | "
        f"{cells('hosts')} |",
        "",
        f"Validation and every gateway's ruleset: {median('target_s'):.2f} s, {verdict} the "
        f"{TARGET_S:.0f} s target.",
        "",
        f"- SHA-256 of every gateway's ruleset, in order: `{last['gateway_sha']}`",
        f"- SHA-256 of every other host's ruleset, in order: `{last['host_sha']}`",
    ]
    if nft is not None:
        lines.append(f"- `nft -c -f` on a sample (each prefecture's first and last gateway and "
                     f"one host of each role): {nft[0]} rulesets, {len(nft[1])} refused")
    lines += [
        "",
        "Before the speed-ups (see BEFORE in the script): wall-clock seconds, one run.",
        "",
        "| what | before | now (median) |",
        "| --- | ---: | ---: |",
        f"| {BEFORE[0][0]} | {BEFORE[0][1]} | {after['load']} |",
        f"| {BEFORE[1][0]} | {BEFORE[1][1]} | {after['gateways']} |",
        f"| {BEFORE[2][0]} | {BEFORE[2][1]} | {args.hokkaido_s:.2f} |",
        "",
        "The caches keep what is computed from a loaded prefecture with it (its concrete flows,",
        "its hosts and municipalities by name, each host's zones); before, every ruleset",
        "computed the prefecture's flows again, so the work grew with the square of its",
        "municipalities.",
    ]
    FIGURES.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {FIGURES}")


if __name__ == "__main__":
    main()
