#!/usr/bin/env python3
"""Benchmark of the lab and of the first converge: the figures of issue 2's closing note.

Measures, on one inventory (default: the sample), in one run so the figures compare:
  1. `municloud lab up` from nothing: no lab, no cached base image (debootstrap + import);
  2. `municloud lab up` from nothing with a warm image cache;
  3. a second `lab up` on the running lab (must change nothing);
  4. the first `ansible-playbook playbooks/site.yml` converge;
  5. the idempotent rerun (must report changed=0 everywhere).
Writes benchmarks/lab.figures.md. This tears the inventory's lab down and rebuilds it, and with
the cold step it removes the cached base image (so no other lab may be up): run it on a machine
you are not using for anything else. `--warm-only` skips the cold step.

Usage: .venv/bin/python benchmarks/lab.py [--inventory inventories/sample] [--warm-only]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIGURES = REPO / "benchmarks" / "lab.figures.md"


def timed(label: str, cmd: list[str]) -> tuple[float, str]:
    print(f"--> {label}: {' '.join(cmd)}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(
            f"{label} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    print(f"    {elapsed:.1f} s", flush=True)
    return elapsed, proc.stdout


def recap(output: str) -> str:
    changed = [int(m) for m in re.findall(r"changed=(\d+)", output)]
    return f"{len(changed)} hosts, changed={sum(changed)} in all"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", default="inventories/sample")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold-cache step")
    args = parser.parse_args()
    municloud = [str(BIN / "municloud")]
    up = [*municloud, "lab", "up", "--inventory", args.inventory]
    down = [*municloud, "lab", "down", "--inventory", args.inventory]
    playbook = [str(BIN / "ansible-playbook"), "-i", args.inventory, "playbooks/site.yml"]

    sys.path.insert(0, str(REPO))
    from municloud.lab import image

    rows: list[tuple[str, float, str]] = []
    subprocess.run(down, cwd=REPO, capture_output=True, check=False)
    if not args.warm_only:
        tag = image.image_tag(image.packages())
        subprocess.run(["docker", "image", "rm", tag], capture_output=True, check=False)
        seconds, _ = timed("lab up, cold image cache", up)
        rows.append(
            ("`lab up` from nothing, no cached base image", seconds, "debootstrap + import")
        )
        subprocess.run(down, cwd=REPO, capture_output=True, check=True)
    seconds, out = timed("lab up, warm image cache", up)
    hosts = re.search(r"(\d+) hosts on (\d+) networks", out)
    rows.append(
        (
            "`lab up` from nothing, warm image cache",
            seconds,
            f"{hosts[1]} hosts, {hosts[2]} networks" if hosts else "",
        )
    )
    seconds, out = timed("lab up again", up)
    rows.append(
        (
            "second `lab up` on the running lab",
            seconds,
            "no changes" if "no changes" in out else "CHANGED",
        )
    )
    seconds, out = timed("first converge", playbook)
    rows.append(("first `site.yml` converge", seconds, recap(out)))
    seconds, out = timed("idempotent rerun", playbook)
    rows.append(("`site.yml` rerun (idempotent)", seconds, recap(out)))

    strategy = os.environ.get("ANSIBLE_STRATEGY", "mitogen_linear (ansible.cfg)")
    lines = [
        "# Lab and converge timings",
        "",
        f"Measured {datetime.date.today()} by `.venv/bin/python benchmarks/lab.py"
        f"{' --warm-only' if args.warm_only else ''}` on `{args.inventory}`: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, strategy {strategy}.",
        "Wall-clock seconds of one run on a shared machine: compare the rows with each other,",
        "not with another day's run.",
        "",
        "| step | seconds | notes |",
        "| --- | ---: | --- |",
        *(f"| {name} | {secs:.1f} | {note} |" for name, secs, note in rows),
        "",
    ]
    FIGURES.write_text("\n".join(lines), encoding="utf-8")
    print(FIGURES.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
