#!/usr/bin/env python3
"""Benchmark of site.yml against the size of the prefecture: labs of 1, 3 and 12 municipalities.

Each lab is generated from the model (`municloud generate lab --municipalities N`: the sample's
shared hosts, and per municipality the hosts the sample's municipalities have, the guideline models
in turn), built, converged with playbooks/site.yml, converged again (which must change nothing),
and removed. Only one lab is up at a time: the labs share the lab range 198.18.0.0/15.

The question it answers: does a run grow with the number of municipalities no faster than the
hosts do? The firewall roll-out goes one municipality at a time, so it is the part that could.
Writes benchmarks/scale.figures.md, and the seconds per task of each converge to
benchmarks/scale.tasks.json.

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
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from converge import REPO, per_role, per_task, recap, role_table, run, stock_config

from municloud.lab.engine import docker, ensure_engine

BIN = Path(sys.executable).parent
FIGURES = REPO / "benchmarks" / "scale.figures.md"
# One lab and settings: municipalities, hosts, settings, lab up s, converge s, rerun s, changed in
# the rerun, cores busy in the converge.
Row = tuple[int, int, str, float, float, float, int, float]
# Seconds per task of each converge (ansible.posix.profile_tasks), for a closer look than the
# figures' tables.
TASKS = REPO / "benchmarks" / "scale.tasks.json"


def lab_containers() -> list[str]:
    """Names of the lab containers up on this machine (any lab), starting the engine if need be
    (as `municloud lab up` would), so a machine where dockerd is not running yet is no error."""
    ensure_engine()
    out = docker("ps", "-a", "--filter", "label=municloud.lab", "--format", "{{.Names}}").stdout
    return out.split()


def cpu_times() -> tuple[int, int]:
    """(busy, all) clock ticks of the whole machine so far (/proc/stat): the lab's hosts are
    containers, so the controller's own CPU time would leave out the hosts' share."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(t) for t in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores busy on average between two cpu_times()."""
    return (os.cpu_count() or 1) * (after[0] - before[0]) / max(1, after[1] - before[1])


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
    rows: list[Row] = []
    roles: dict[str, dict[str, float]] = {}
    tasks: dict[tuple[int, str], dict[str, float]] = {}
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
                    before = cpu_times()
                    converge, out = run(f"{n}: converge, {name}", playbook, config,
                                        "ansible.posix.profile_roles,ansible.posix.profile_tasks")
                    busy = busy_cores(before, cpu_times())
                    roles[f"{n} {name} converge"] = per_role(out)
                    tasks[(n, name)] = per_task(out)
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
                rows.append((n, hosts, name, lab_up, converge, rerun, changed, busy))

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
        "The cores busy are the whole machine's (/proc/stat) during the converge, out of "
        f"{os.cpu_count()}: the controller and the hosts share them.",
        "",
        "| municipalities | hosts | settings | lab up (s) | converge (s) "
        "| converge / 3-municipality converge | cores busy in the converge | rerun (s) "
        "| rerun / converge |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, hosts, name, lab_up, converge, rerun, _, busy in rows:
        b = base.get(name)
        vs3 = f"{converge / b[4]:.2f}" if b else "n/a"
        again = (f"{rerun:.1f} | {rerun / converge:.2f}" if not args.no_rerun
                 else "not run | n/a")
        lines.append(f"| {n} | {hosts} | {name} | {lab_up:.1f} | {converge:.1f} | {vs3} "
                     f"| {busy:.2f} | {again} |")
    if roles:
        lines += ["", *role_table(roles, list(roles)[-1])]
    lines += growth_table(rows, tasks)
    TASKS.write_text(json.dumps({f"{n} {name} converge": t for (n, name), t in tasks.items()},
                                indent=1, ensure_ascii=False, sort_keys=True) + "\n",
                     encoding="utf-8")
    lines.append("")
    FIGURES.write_text("\n".join(lines), encoding="utf-8")
    print(FIGURES.read_text(encoding="utf-8"))
    return 0


def growth_table(
    rows: list[Row],
    tasks: dict[tuple[int, str], dict[str, float]],
) -> list[str]:
    """The tasks that outgrew the hosts most, from the 3-municipality lab (else the smallest) to
    the largest (project settings): where a converge stops growing with the hosts alone."""
    sizes = sorted({(n, hosts) for n, hosts, name, *_ in rows if name == "project"})
    if len(sizes) < 2:
        return []
    # From the 3-municipality lab when there is one: the pair the target compares.
    small, small_hosts = next(((n, h) for n, h in sizes[:-1] if n == 3), sizes[0])
    large, large_hosts = sizes[-1]
    ratio = large_hosts / small_hosts
    a, b = tasks[(small, "project")], tasks[(large, "project")]
    excess = sorted(((b.get(t, 0.0) - ratio * a.get(t, 0.0), t) for t in set(a) | set(b)),
                    reverse=True)
    lines = [
        "",
        f"## Tasks that grew faster than the hosts ({small} to {large} municipalities, hosts "
        f"x{ratio:.2f}; ansible.posix.profile_tasks)",
        "",
        f"Excess: the {large}-municipality time less {ratio:.2f} times the {small}-municipality "
        "time. Summed over the task's runs (a role's tasks run once per play that has it).",
        "",
        f"| task | {small} (s) | {large} (s) | {large} / {small} | excess (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for extra, task in excess[:15]:
        t_a, t_b = a.get(task, 0.0), b.get(task, 0.0)
        growth = f"{t_b / t_a:.1f}" if t_a else "n/a"
        lines.append(f"| {task} | {t_a:.1f} | {t_b:.1f} | {growth} | {extra:.1f} |")
    total = sum(b.values()) - ratio * sum(a.values())
    lines.append(f"| all tasks | {sum(a.values()):.1f} | {sum(b.values()):.1f} | "
                 f"{sum(b.values()) / max(sum(a.values()), 1e-9):.2f} | {total:.1f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
