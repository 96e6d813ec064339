#!/usr/bin/env python3
"""Benchmark of site.yml against the size of the prefecture: labs of 1, 3 and 12 municipalities.

Each lab is generated from the model (`municloud generate lab --municipalities N`: the sample's
shared hosts, and per municipality the hosts the sample's municipalities have, the guideline models
in turn), built, converged with playbooks/site.yml, converged again (which must change nothing),
and removed. Only one lab is up at a time: the labs share the lab range 198.18.0.0/15.

The question it answers: does a run grow with the number of municipalities no faster than the
hosts do? The firewall roll-out goes one municipality at a time, so it is the part that could.
Writes benchmarks/scale.figures.md.

Run it on a machine you are not using for anything else, with no other lab up (it refuses to start
while one is).

Usage: .venv/bin/python benchmarks/scale.py [--municipalities 1 3 12] [--no-rerun] [--stock]
  --no-rerun  converge only (the 12-municipality lab's rerun is most of the run's time)
  --stock   also converge and rerun each lab with stock ansible-core settings (as
            benchmarks/converge.py defines them), on a fresh lab of the same size
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from converge import REPO, per_role, recap, role_table, run, stock_config

from municloud.lab.engine import docker, ensure_engine

BIN = Path(sys.executable).parent
FIGURES = REPO / "benchmarks" / "scale.figures.md"


def lab_containers() -> list[str]:
    """Names of the lab containers up on this machine (any lab), starting the engine if need be
    (as `municloud lab up` would), so a machine where dockerd is not running yet is no error."""
    ensure_engine()
    out = docker("ps", "-a", "--filter", "label=municloud.lab", "--format", "{{.Names}}").stdout
    return out.split()


def host_count(inventory: Path) -> int:
    data = yaml.safe_load((inventory / "hosts.yml").read_text(encoding="utf-8"))
    names: set[str] = set()

    def walk(group: dict[str, object]) -> None:
        names.update((group.get("hosts") or {}).keys())  # type: ignore[union-attr]
        for child in (group.get("children") or {}).values():  # type: ignore[union-attr]
            walk(child or {})

    walk(data["all"])
    return len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--municipalities", type=int, nargs="+", default=[1, 3, 12])
    parser.add_argument("--stock", action="store_true", help="also with stock settings")
    parser.add_argument("--no-rerun", action="store_true", help="converge only")
    args = parser.parse_args()
    if lab_containers():
        sys.exit("a lab is up on this machine (docker ps --filter label=municloud.lab): take it "
                 "down first (municloud lab down --inventory ...); the labs share one range")

    municloud = [str(BIN / "municloud")]
    project = REPO / "ansible.cfg"
    rows: list[tuple[int, int, str, float, float, float, int]] = []
    roles: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="municloud-scale-") as tmp:
        work = Path(tmp)
        configs = [("project", project)]
        if args.stock:
            configs.append(("stock", stock_config(work)))
        for n in args.municipalities:
            inventory = work / f"scale{n}"
            gen = subprocess.run(
                [*municloud, "generate", "lab", "--municipalities", str(n),
                 "--output", str(inventory)],
                cwd=REPO, capture_output=True, text=True, check=False,
            )
            if gen.returncode != 0:
                sys.exit(f"generate failed:\n{gen.stdout}\n{gen.stderr}")
            hosts = host_count(inventory)
            up = [*municloud, "lab", "up", "--inventory", str(inventory)]
            down = [*municloud, "lab", "down", "--inventory", str(inventory)]
            playbook = [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/site.yml"]
            for name, config in configs:
                try:
                    lab_up, _ = run(f"{n} municipalities: lab up", up, project)
                    converge, out = run(f"{n}: converge, {name}", playbook, config,
                                        "ansible.posix.profile_roles")
                    roles[f"{n} {name} converge"] = per_role(out)
                    rerun, changed = 0.0, 0
                    if not args.no_rerun:
                        rerun, out = run(f"{n}: rerun, {name}", playbook, config,
                                         "ansible.posix.profile_roles")
                        _, changed = recap(out)
                        if changed:
                            sys.exit(f"the rerun of {n} municipalities ({name}) changed "
                                     f"{changed}")
                        roles[f"{n} {name} rerun"] = per_role(out)
                finally:
                    subprocess.run(down, cwd=REPO, capture_output=True, check=False)
                rows.append((n, hosts, name, lab_up, converge, rerun, changed))

    base = {name: next((r for r in rows if r[0] == 3 and r[2] == name), None) for name, _ in
            configs}
    flags = "" if args.municipalities == [1, 3, 12] else " --municipalities " + " ".join(
        str(n) for n in args.municipalities)
    flags += " --no-rerun" if args.no_rerun else ""
    flags += " --stock" if args.stock else ""
    lines = [
        "# site.yml against the size of the prefecture",
        "",
        f"Measured {datetime.date.today()} by `.venv/bin/python benchmarks/scale.py{flags}` "
        f"({os.cpu_count()} cores, Python {platform.python_version()}). Wall-clock seconds of "
        "one run on a shared machine: compare the rows with each other, not with another day's "
        "run. Each lab generated by `municloud generate lab --municipalities N`, built fresh.",
        "",
        "| municipalities | hosts | settings | lab up (s) | converge (s) "
        "| converge / 3-municipality converge | rerun (s) | rerun / converge |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, hosts, name, lab_up, converge, rerun, _ in rows:
        b = base.get(name)
        vs3 = f"{converge / b[4]:.2f}" if b else "n/a"
        again = (f"{rerun:.1f} | {rerun / converge:.2f}" if not args.no_rerun
                 else "not run | n/a")
        lines.append(f"| {n} | {hosts} | {name} | {lab_up:.1f} | {converge:.1f} | {vs3} "
                     f"| {again} |")
    if roles:
        lines += ["", *role_table(roles, list(roles)[-1])]
    lines.append("")
    FIGURES.write_text("\n".join(lines), encoding="utf-8")
    print(FIGURES.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
