#!/usr/bin/env python3
"""Benchmark of site.yml with the project's Ansible settings against stock ansible-core's.

On one inventory's lab (default: the sample), in one run so the figures compare:
  1. the controller's cost per host-task: four `debug` tasks on every host, stock settings, stock
     with only the preload callback (plugins/callback/municloud_preload.py), and the project's;
  2. for each of the two settings, on a fresh lab: the first converge of playbooks/site.yml, the
     idempotent rerun (must change nothing) and the check-mode run, with the time per role
     (ansible.posix.profile_roles).

"Stock" is the project's ansible.cfg without what it adds for speed: the linear strategy that
ansible-core ships (not mitogen_linear), OpenSSH with pipelining, no preload callback, and
ansible-core's interpreter discovery (the project names /usr/bin/python3). Both
settings keep the same forks (10), the same roles, filters and modules, so the difference is what
those settings buy. Writes benchmarks/converge.figures.md.

This tears the inventory's lab down and builds it again (twice): run it on a machine you are not
using for anything else, with no other lab up.

`--rerun-only` measures on the lab as it is (up and converged): the per-task cost and the
idempotent rerun with each setting, no fresh lab, no first converge.

`--converge-once` makes one fresh lab, converges it with the project's settings, then times the
idempotent rerun with each setting and check mode with the project's: the two ratios of the
rerun (stock / project, and project rerun / project first converge) in one run, at about a third
of the cost of the full comparison (no stock first converge).

Usage: .venv/bin/python benchmarks/converge.py [--inventory inventories/sample]
       [--rerun-only | --converge-once]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from municloud.lab.commands import lab_vault_password

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FIGURES = REPO / "benchmarks" / "converge.figures.md"
# What ansible.cfg sets only to go faster; "stock" is the same file without these lines.
SPEED_SETTINGS = ("strategy_plugins", "strategy", "callback_plugins", "interpreter_python")
DEBUG_PLAY = """\
- name: Four tasks that only the controller works on
  hosts: all
  gather_facts: false
  tasks:
    - {name: a, ansible.builtin.debug: {msg: a}}
    - {name: b, ansible.builtin.debug: {msg: b}}
    - {name: c, ansible.builtin.debug: {msg: c}}
    - {name: d, ansible.builtin.debug: {msg: d}}
"""


def stock_config(workdir: Path, preload: bool = False) -> Path:
    """The project's ansible.cfg without its speed settings (with the preload if asked)."""
    lines = []
    for line in (REPO / "ansible.cfg").read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if key in SPEED_SETTINGS and not (preload and key == "callback_plugins"):
            continue
        # relative paths in ansible.cfg are relative to the file: make them absolute here
        if key in ("roles_path", "library", "module_utils", "filter_plugins", "callback_plugins"):
            line = f"{key} = {REPO / line.split('=', 1)[1].strip()}"
        lines.append(line)
    path = workdir / ("preload.cfg" if preload else "stock.cfg")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(label: str, cmd: list[str], config: Path, callbacks: str = "") -> tuple[float, str]:
    print(f"--> {label}: {' '.join(cmd)}", flush=True)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        # Yours, else the labs' own (made on first use, as `municloud lab up` makes it: a fresh
        # checkout has none yet, and lab up would read a missing file named here).
        "ANSIBLE_VAULT_PASSWORD_FILE": os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
        or str(lab_vault_password()),
    }
    if callbacks:
        env["ANSIBLE_CALLBACKS_ENABLED"] = callbacks
        env["PROFILE_ROLES_TASK_OUTPUT_LIMIT"] = "100"
        # profile_tasks (when named) for its line after each task's header, which per_task
        # reads; its own summary is left out.
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "0"
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(
            f"{label} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    print(f"    {elapsed:.1f} s", flush=True)
    return elapsed, proc.stdout


def recap(output: str) -> tuple[int, int]:
    """(hosts, changed in all) from a PLAY RECAP."""
    changed = [int(m) for m in re.findall(r"\bchanged=(\d+)", output)]
    return len(changed), sum(changed)


def per_role(output: str) -> dict[str, float]:
    """Seconds per role from ansible.posix.profile_roles' summary."""
    roles: dict[str, float] = {}
    summary = output.rsplit("ROLES RECAP", 1)[-1].split("TASKS RECAP", 1)[0]
    summary = summary.rsplit("=" * 20, 1)[-1]
    for m in re.finditer(r"^(\S+) -+ (\d+\.\d+)s$", summary, re.MULTILINE):
        roles[m[1]] = roles.get(m[1], 0.0) + float(m[2])
    return roles


# profile_tasks' line after each task's header (and after the recap's): the time of the task
# before, in parentheses.
_TASK_HEADER = re.compile(
    r"^(?:(?:TASK|RUNNING HANDLER) \[(.+?)\]|[A-Z]+ RECAP) \**\n"
    r".*\((\d+):(\d+):(\d+\.\d+)\)",
    re.MULTILINE,
)


def per_task(output: str) -> dict[str, float]:
    """Seconds per task (summed over its runs, its hosts in parallel) from
    ansible.posix.profile_tasks' lines: each header's line says how long the task before took."""
    tasks: dict[str, float] = {}
    previous = None
    for m in _TASK_HEADER.finditer(output):
        if previous is not None:
            seconds = int(m[2]) * 3600 + int(m[3]) * 60 + float(m[4])
            tasks[previous] = tasks.get(previous, 0.0) + seconds
        if m[1] is None:  # the first recap: every task is counted
            break
        previous = m[1]
    return tasks


def role_table(roles: dict[str, dict[str, float]], sort_by: str) -> list[str]:
    """A Markdown table of seconds per role, a column per run, the slowest of ``sort_by`` first."""
    lines = [
        "## Seconds per role (ansible.posix.profile_roles)",
        "",
        "| role | " + " | ".join(roles) + " |",
        "| --- | " + " | ".join("---:" for _ in roles) + " |",
    ]
    names = sorted({r for t in roles.values() for r in t}, key=lambda r: -roles[sort_by].get(r, 0))
    for role in names:
        lines.append(
            f"| {role} | " + " | ".join(f"{t.get(role, 0):.1f}" for t in roles.values()) + " |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", default="inventories/sample")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--rerun-only", action="store_true", help="use the lab as it is: per-task cost and rerun"
    )
    mode.add_argument(
        "--converge-once", action="store_true",
        help="one fresh lab: the project's first converge, the rerun with each setting, check mode",
    )
    args = parser.parse_args()
    municloud = [str(BIN / "municloud")]
    up = [*municloud, "lab", "up", "--inventory", args.inventory]
    down = [*municloud, "lab", "down", "--inventory", args.inventory]
    playbook = [str(BIN / "ansible-playbook"), "-i", args.inventory, "playbooks/site.yml"]
    project = REPO / "ansible.cfg"

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stock, preload = stock_config(work), stock_config(work, preload=True)
        debug = work / "debug.yml"
        debug.write_text(DEBUG_PLAY, encoding="utf-8")

        if not args.rerun_only:
            subprocess.run(down, cwd=REPO, capture_output=True, check=False)
            run("lab up", up, project)
        overhead = []
        for name, config in (("stock", stock), ("stock + preload", preload), ("project", project)):
            seconds, out = run(f"debug tasks, {name}", [*playbook[:-1], str(debug)], config)
            hosts, _ = recap(out)
            overhead.append((name, seconds, hosts))

        check = ("check", ["--check", "--diff"])
        # (settings, a fresh lab first?, its steps)
        plan: list[tuple[str, Path, bool, list[tuple[str, list[str]]]]] = [
            ("project", project, True, [("converge", []), ("rerun", []), check]),
            ("stock", stock, True, [("converge", []), ("rerun", []), check]),
        ]
        if args.rerun_only:
            plan = [("project", project, False, [("rerun", [])]),
                    ("stock", stock, False, [("rerun", [])])]
        elif args.converge_once:
            plan = [("project", project, False, [("converge", []), ("rerun", [])]),
                    ("stock", stock, False, [("rerun", [])]),
                    ("project", project, False, [check])]
        steps = [(step, []) for step in ("converge", "rerun", "check")
                 if any(step == s for _, _, _, ss in plan for s, _ in ss)]
        runs: dict[str, dict[str, tuple[float, int, int]]] = {"project": {}, "stock": {}}
        roles: dict[str, dict[str, float]] = {}
        for name, config, fresh, its_steps in plan:
            if fresh:
                subprocess.run(down, cwd=REPO, capture_output=True, check=True)
                run("lab up", up, project)
            for step, extra in its_steps:
                seconds, out = run(
                    f"{step}, {name}", [*playbook, *extra], config, "ansible.posix.profile_roles"
                )
                hosts, changed = recap(out)
                if step == "rerun" and changed:
                    sys.exit(f"the rerun with {name} settings changed {changed} things")
                runs[name][step] = (seconds, hosts, changed)
                roles[f"{name} {step}"] = per_role(out)

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "n/a"

    hosts = runs["project"]["rerun"][1]
    flags = " --rerun-only" if args.rerun_only else " --converge-once" if args.converge_once else ""
    lines = [
        "# site.yml: the project's settings against stock ansible-core",
        "",
        f"Measured {datetime.date.today()} by `.venv/bin/python benchmarks/converge.py "
        f"--inventory {args.inventory}{flags}` ({hosts} hosts; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}). Wall-clock seconds of one run on a shared "
        "machine: compare the rows of this file with each other, not with another day's run.",
        "",
        "Stock: ansible.cfg without `strategy`, `strategy_plugins`, `callback_plugins` and",
        "`interpreter_python`, i.e. ansible-core's linear strategy over OpenSSH with pipelining",
        "and its interpreter discovery, forks 10 as the project. Project: mitogen_linear, the",
        "preload callback (plugins/callback/municloud_preload.py) and /usr/bin/python3 named.",
        "",
        "## The controller's cost per host-task (four `debug` tasks on every host)",
        "",
        "| settings | seconds | per host-task |",
        "| --- | ---: | ---: |",
        *(f"| {n} | {s:.1f} | {s / (4 * h):.3f} s |" for n, s, h in overhead),
        "",
        "## site.yml on the lab as it was (converged)"
        if args.rerun_only
        else "## site.yml on a fresh lab (stock: the rerun only, on the same lab)"
        if args.converge_once
        else "## site.yml on a fresh lab",
        "",
        "| step | project (s) | stock (s) | stock / project | changed (project, stock) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for step, _ in steps:
        p, s = runs["project"][step], runs["stock"].get(step)
        if s is None:  # --converge-once: the project's settings only
            lines.append(f"| {step} | {p[0]:.1f} | | | {p[2]}, |")
            continue
        lines.append(f"| {step} | {p[0]:.1f} | {s[0]:.1f} | {ratio(s[0], p[0])} | {p[2]}, {s[2]} |")
    if "converge" in runs["project"]:
        lines += [
            "",
            f"Project rerun / project first converge: "
            f"{ratio(runs['project']['rerun'][0], runs['project']['converge'][0])}.",
        ]
    lines += ["", *role_table(roles, "stock rerun"), ""]
    FIGURES.write_text("\n".join(lines), encoding="utf-8")
    print(FIGURES.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
