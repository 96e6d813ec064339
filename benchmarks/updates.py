#!/usr/bin/env python3
"""Benchmark of the update relay, on a converged lab (`make lab-up converge INVENTORY=...`).

On the first municipality's delivery server and one of its LGWAN terminals, in one run:
  1. verification throughput: municloud-updates' own check of 1 GiB of files (streamed, hashed
     with SHA-256, written, size and hash compared: what a sync does to every file it fetches),
     against `sha256sum` over the same files on the same host, as a ratio;
  2. download throughput: a terminal fetching one 1 GiB file from the delivery server's nginx,
     against the same nginx serving the same file on loopback (curl on the server itself), as a
     ratio. The file is put into the served snapshot for the run and removed after.
Each figure is the median of --runs runs. Writes benchmarks/updates.figures.md. Leaves the lab as
it found it (files in /tmp and the bench file are removed).

Usage: .venv/bin/python benchmarks/updates.py [--inventory inventories/sample] [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labssh import run, ssh  # noqa: E402  (benchmarks/labssh.py)

from municloud import inventory  # noqa: E402
from municloud.segments import HostRole, Segment  # noqa: E402

FIGURES = REPO / "benchmarks" / "updates.figures.md"
GIB = 1024**3
FILES = 16  # 16 files of 64 MiB
# On disk, not /tmp: a lab host's /tmp is a tmpfs inside its 512 MiB memory limit.
WORK = "/var/tmp/municloud-bench-updates"
SERVED = "/srv/municloud-updates/current"

# Runs on the delivery server: times the job's verification of each file against sha256sum.
VERIFY = r"""
import hashlib, importlib.machinery, importlib.util, json, pathlib, subprocess, sys, time
loader = importlib.machinery.SourceFileLoader("job", "/usr/local/sbin/municloud-updates")
spec = importlib.util.spec_from_loader("job", loader)
job = importlib.util.module_from_spec(spec); loader.exec_module(job)
work = pathlib.Path(sys.argv[1]); files = sorted(work.glob("in-*"))
sums = {}
for line in subprocess.run(["sha256sum", *map(str, files)], capture_output=True, text=True,
                           check=True).stdout.splitlines():
    digest, name = line.split(maxsplit=1); sums[name] = digest
start = time.monotonic()
subprocess.run(["sha256sum", *map(str, files)], capture_output=True, check=True)
sha256sum = time.monotonic() - start
start = time.monotonic()
for f in files:
    with f.open("rb") as source:
        job.copy_verified(source, work / ("out-" + f.name), sums[str(f)], f.stat().st_size, f.name)
verify = time.monotonic() - start
for f in work.glob("out-*"):
    f.unlink()
print(json.dumps({"sha256sum": sha256sum, "verify": verify}))
"""




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", default="inventories/sample")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prefecture = inventory.load(args.inventory)
    lab = REPO / ".lab" / prefecture.path.name
    key, known = lab / "id_ed25519", lab / "known_hosts"
    town = prefecture.municipalities[0]
    relay = next(h for h in town.hosts if h.role is HostRole.UPDATE_RELAY)
    terminal = next(h for h in town.hosts
                    if h.role is HostRole.TERMINAL and h.segment is Segment.LGWAN)
    relay_address = next(str(a) for n, a in relay.addresses.items() if n.endswith("lgwan"))
    r, t = ssh(relay, key, known), ssh(terminal, key, known)
    verify_runs: list[dict[str, float]] = []
    remote_runs: list[float] = []
    loopback_runs: list[float] = []
    try:
        print(f"making 1 GiB of files on {relay.name} ...", flush=True)
        run(r, f"rm -rf {WORK} && mkdir -p {WORK} && for i in $(seq 1 {FILES}); do "
               f"head -c {GIB // FILES} /dev/urandom > {WORK}/in-$i; done")
        run(r, f"cat {WORK}/in-* > {SERVED}/bench.bin && sync")
        for i in range(args.runs):
            verify_runs.append(json.loads(run(r, f"python3 - {WORK}", stdin=VERIFY)))
            loopback_runs.append(float(run(
                r, "curl -s -o /dev/null -w '%{speed_download}' http://127.0.0.1/bench.bin")))
            remote_runs.append(float(run(
                t, "curl -s -o /dev/null -w '%{speed_download}' "
                   f"http://{relay_address}/bench.bin")))
            print(f"run {i + 1}: verify {verify_runs[-1]['verify']:.2f} s, sha256sum "
                  f"{verify_runs[-1]['sha256sum']:.2f} s; download {remote_runs[-1] / 2**20:.0f} "
                  f"MiB/s, loopback {loopback_runs[-1] / 2**20:.0f} MiB/s", flush=True)
    finally:
        run(r, f"rm -rf {WORK} {SERVED}/bench.bin")
        r.close()
        t.close()
    verify = statistics.median(v["verify"] for v in verify_runs)
    sha = statistics.median(v["sha256sum"] for v in verify_runs)
    remote, loopback = statistics.median(remote_runs), statistics.median(loopback_runs)
    rows = "\n".join([
        f"| verification of 1 GiB in {FILES} files (stream, SHA-256, write, compare) "
        f"| {verify:.2f} s ({GIB / verify / 2**20:.0f} MiB/s) "
        f"| `sha256sum` on the same files: {sha:.2f} s ({GIB / sha / 2**20:.0f} MiB/s) "
        f"| {sha / verify:.2f} of sha256sum's throughput |",
        f"| a terminal downloads 1 GiB from the delivery server (nginx) "
        f"| {remote / 2**20:.0f} MiB/s "
        f"| the same nginx, same file, on loopback: {loopback / 2**20:.0f} MiB/s "
        f"| {remote / loopback:.2f} of loopback |",
    ])
    text = f"""# Update relay figures

Written by `.venv/bin/python benchmarks/updates.py --inventory {args.inventory} --runs {args.runs}`
on {datetime.date.today()}, {platform.machine()}, the lab's containers on one machine (shared and
noisy: compare the ratios, which come from one run, not the absolute figures across machines).
Delivery server {relay.name}, terminal {terminal.name}; medians of {args.runs} runs.

| what | figure | against | ratio |
| --- | --- | --- | --- |
{rows}

Both sides read the files from the page cache (sha256sum reads them once before it is timed). The
verification also writes each file, as a sync does, and is still the faster here: Python's
hashlib computes SHA-256 with OpenSSL (which uses the CPU's SHA instructions where it has them),
while Debian 12's `sha256sum` uses coreutils' own portable code. The download crosses the LGWAN
segment's lab bridge and both hosts' nftables rulesets; on loopback curl and nginx share one
host's CPU, which on a 2-core machine costs more than the bridge and the rulesets do.
"""
    FIGURES.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
