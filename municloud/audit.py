"""``municloud audit --inventory INV [--out FILE] [-- ANSIBLE_PLAYBOOK_ARGS]``: what a run of
``site.yml`` would change on each host, found in check mode, as drift findings for the
acceptance tester (a host changed by hand since the last run shows up here).

It runs the repository's ``ansible-playbook -i INV playbooks/site.yml --check --diff`` (always
both options; the command line is built here and nothing given after ``--`` can take them away),
with the repository's ansible.cfg and the vault password the Makefile gives
(``$ANSIBLE_VAULT_PASSWORD_FILE``, else the labs' ``.lab/vault-password`` if it exists). In
check mode a module that supports it reports what it would do and does not do it; Ansible skips
the others. The roles' ``check_mode: false`` tasks still run: read-only probes, and one that
writes (roles/lab_object_store's bucket) but also carries ``when: not ansible_check_mode``,
which is why an argument naming ``ansible_check_mode`` is refused.

What would change is collected through a structured channel, not from the human output: the
project's callback plugin ``plugins/callback/municloud_audit.py``, enabled for this run only
(``ANSIBLE_CALLBACKS_ENABLED``), writes JSON lines to a file named in ``MUNICLOUD_AUDIT_EVENTS``.
Results of ``no_log`` tasks reach callbacks censored by Ansible and stay so: such a change is
listed by task and role, without diff or message.

The findings go to FILE (default ``reports/audit-<inventory>.json``, from the current
directory), ansible-playbook's own output to FILE with ``.log``. Per host: ``drift`` (tasks that
would change something), ``failed`` (a task failed, so the rest was not audited there),
``unreachable``, ``not audited`` (in the run, but no task ran on it), or ``clean``.
``municloud report --audit FILE`` puts them on each municipality's page.

Exit status 0: every host audited and clean; 1: a finding on some host (drift, a failure, an
unreachable or unaudited host); 2: bad input (inventory, playbook, options) or a run that did
not complete (nothing written but the log).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from municloud import inventory

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "playbooks" / "site.yml"
LAB_VAULT_PASSWORD = REPO / ".lab" / "vault-password"
CALLBACK = "municloud_audit"
EVENTS_VARIABLE = "MUNICLOUD_AUDIT_EVENTS"  # as plugins/callback/municloud_audit.py reads it
FORMAT = "municloud-audit/1"
# What a finding keeps of a task's diff (the whole diff is in the log).
EXCERPT_LINES = 40
EXCERPT_CHARS = 3000
# Host statuses, worst first; every one but "clean" is a finding.
STATUSES = ("unreachable", "failed", "not audited", "drift", "clean")
# Extra arguments refused: the command must stay in check mode.
REFUSED = ("ansible_check_mode",)


class AuditError(Exception):
    """An audit cannot be run, or an audit file cannot be used; the message says why."""


# --- the command --------------------------------------------------------------------------


def command(inventory_dir: Path, playbook: Path, extra: Iterable[str]) -> list[str]:
    """The ansible-playbook command line: always ``--check --diff``."""
    extra = list(extra)
    refused = [a for a in extra if any(word in a for word in REFUSED)]
    if refused:
        raise AuditError(f"refused: {' '.join(refused)}: an audit runs in check mode only, and "
                         "ansible_check_mode must stay what --check makes it")
    tool = Path(sys.executable).with_name("ansible-playbook")
    found = str(tool) if tool.exists() else shutil.which("ansible-playbook")
    if found is None:
        raise AuditError("ansible-playbook not found (beside this Python or on PATH): install "
                         "the project (make install)")
    line = [found, "-i", str(inventory_dir), str(playbook), *extra, "--check", "--diff"]
    assert "--check" in line  # an audit never runs without it
    return line


def environment(events: Path, base: Mapping[str, str]) -> dict[str, str]:
    """The run's environment: the repository's ansible.cfg, the audit callback writing to
    ``events``, the vault password as the Makefile gives it, no colours in the log."""
    env = dict(base)
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, CALLBACK])
    env[EVENTS_VARIABLE] = str(events)
    env["ANSIBLE_NOCOLOR"] = "1"
    env.pop("ANSIBLE_FORCE_COLOR", None)
    if not env.get("ANSIBLE_VAULT_PASSWORD_FILE") and LAB_VAULT_PASSWORD.is_file():
        env["ANSIBLE_VAULT_PASSWORD_FILE"] = str(LAB_VAULT_PASSWORD)
    return env


class _Events:
    """The callback's JSON lines, read as they are written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.seen: list[dict[str, Any]] = []

    def new(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        found = [json.loads(line) for line in complete.decode("utf-8").splitlines() if line]
        self.seen.extend(found)
        return found


def _progress(event: dict[str, Any], plays: list[int]) -> str | None:
    kind = event["event"]
    if kind == "playbook_start":
        # No total: a play with `serial` starts once per batch (site.yml's roll-out play, once
        # per municipality: the sample's 17 plays started 19 times).
        plays[:] = [0]
        return (f"playbook {event['playbook']}: check mode "
                f"({'--check' if event['check_mode'] else 'NOT --check'} --diff)")
    if kind == "play_start":
        plays[0] += 1
        return f"  play {plays[0]}: {event['play']}: {len(event['hosts'])} host(s)"
    if kind == "result" and event["status"] == "unreachable":
        return f"    {event['host']}: unreachable"
    return None


def run(line: list[str], env: dict[str, str], events: Path, log: Path,
        echo: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """Run ``line``; its output to ``log``; progress from the events printed as they come.
    Returns ansible-playbook's exit status and every event."""
    reader = _Events(events)
    plays: list[int] = [0]
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(line, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            while True:
                done = proc.poll() is not None
                for event in reader.new():
                    said = _progress(event, plays)
                    if said and echo:
                        print(said, flush=True)
                if done:
                    break
                time.sleep(0.3)
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    return proc.returncode, reader.seen


# --- the findings -------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1, sort_keys=True, default=str)


def excerpt(diffs: Iterable[Mapping[str, Any]]) -> tuple[list[str], str]:
    """(the files a task's diffs name, a unified diff of them cut to EXCERPT_LINES lines)."""
    files: list[str] = []
    lines: list[str] = []
    for d in diffs:
        names = [d.get("before_header"), d.get("after_header")]
        names += [side.get("path") for side in (d.get("before"), d.get("after"))
                  if isinstance(side, Mapping)]
        for name in names:
            if name and str(name) not in files and str(name) != "dynamically generated":
                files.append(str(name))
        if d.get("prepared"):
            lines += _text(d["prepared"]).splitlines()
        if "before" in d or "after" in d:
            lines += difflib.unified_diff(
                _text(d.get("before")).splitlines(), _text(d.get("after")).splitlines(),
                fromfile=str(d.get("before_header") or "before"),
                tofile=str(d.get("after_header") or "after"), lineterm="", n=2)
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) == EXCERPT_LINES or size + len(line) > EXCERPT_CHARS:
            kept.append(f"[... {len(lines) - len(kept)} more line(s) in the log]")
            break
        kept.append(line)
        size += len(line) + 1
    return files, "\n".join(kept)


def _relative(path: str | None) -> str | None:
    if path and path.startswith(f"{REPO}/"):
        return path[len(str(REPO)) + 1:]
    return path


def _change(event: Mapping[str, Any]) -> dict[str, Any]:
    diffs = list(event.get("diff") or [])
    items = []
    for item in event.get("items") or []:
        diffs += item.get("diff") or []
        items.append(item["item"])
    files, text = excerpt(diffs)
    censored = bool(event.get("censored")) or any(i.get("censored")
                                                    for i in event.get("items") or [])
    return {"task": event["task"], "role": event.get("role"), "play": event.get("play"),
            "path": _relative(event.get("path")), "handler": bool(event.get("handler")),
            "changed": True, "files": files, "items": items, "censored": censored,
            "diff": "(no_log: hidden by Ansible)" if censored and not text else text}


def _failure(event: Mapping[str, Any]) -> dict[str, Any]:
    return {"task": event["task"], "role": event.get("role"), "play": event.get("play"),
            "path": _relative(event.get("path")), "censored": bool(event.get("censored")),
            "message": event.get("message") or "", "ignored": bool(event.get("ignored"))}


def host_code(prefecture: inventory.Prefecture) -> dict[str, str]:
    """Host name -> its municipality's code (the prefecture's own for shared hosts)."""
    codes = {h.name: prefecture.code for h in prefecture.shared_hosts}
    codes.update({h.name: m.code for m in prefecture.municipalities for h in m.hosts})
    return codes


def findings(events: list[dict[str, Any]], prefecture: inventory.Prefecture) -> dict[str, Any]:
    """Per host of the run (in inventory order): its status, its changes and failures."""
    in_run: list[str] = []
    for e in events:
        if e["event"] == "play_start":
            in_run += [h for h in e["hosts"] if h not in in_run]
    stats: dict[str, Any] = next((e["hosts"] for e in events if e["event"] == "stats"), {})
    codes = host_code(prefecture)
    order = [h for h in codes if h in in_run] + [h for h in in_run if h not in codes]
    hosts: dict[str, Any] = {}
    for name in order:
        mine = [e for e in events if e["event"] == "result" and e["host"] == name]
        changes = [_change(e) for e in mine if e["status"] == "changed"]
        failures = [_failure(e) for e in mine if e["status"] == "failed"]
        lost = [e for e in mine if e["status"] == "unreachable"]
        if lost:
            status = "unreachable"
        elif any(not f["ignored"] for f in failures):
            status = "failed"
        elif name not in stats:
            status = "not audited"
        elif changes:
            status = "drift"
        else:
            status = "clean"
        hosts[name] = {
            "municipality": codes.get(name),
            "status": status,
            "changes": changes,
            "failures": failures,
            "unreachable": lost[0].get("message") or "unreachable" if lost else None,
            "recap": stats.get(name),
        }
    return hosts


def summary(hosts: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for h in hosts.values():
        counts[h["status"]] += 1
    return {"hosts": len(hosts), **counts,
            "findings": sum(1 for h in hosts.values() if h["status"] != "clean")}


def describe(name: str, host: Mapping[str, Any]) -> str:
    """One line for the terminal: a host and what was found there."""
    where = f"{name} ({host.get('municipality') or '?'})"
    if host["status"] == "unreachable":
        said = " ".join(str(host["unreachable"]).split())
        return f"{where}: unreachable: {said[:240]}"
    parts = []
    if host["changes"]:
        tasks = "; ".join(f"{c['role'] or '-'}: {c['task']}" for c in host["changes"][:5])
        more = f" and {len(host['changes']) - 5} more" if len(host["changes"]) > 5 else ""
        parts.append(f"{len(host['changes'])} change(s): {tasks}{more}")
    failed = [f for f in host["failures"] if not f["ignored"]]
    if failed:
        parts.append(f"failed at {failed[0]['role'] or '-'}: {failed[0]['task']} (the rest of "
                     "the playbook was not audited there)")
    if host["status"] == "not audited":
        parts.append("no task ran on it")
    return f"{where}: {host['status']}: {'; '.join(parts) or 'no change'}"


# --- the audit file, for the report --------------------------------------------------------


def read(path: Path) -> dict[str, Any]:
    """An audit file; AuditError if it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditError(f"{path}: cannot read the audit file ({exc}); write one with "
                         "municloud audit --inventory INV") from None
    hosts = doc.get("hosts") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(hosts, dict) \
            or not all(isinstance(h, dict) and h.get("status") in STATUSES
                       and isinstance(h.get("changes"), list)
                       and isinstance(h.get("failures"), list) for h in hosts.values()):
        raise AuditError(f"{path}: not an audit file of municloud audit (format {FORMAT})")
    return doc


def check(doc: Mapping[str, Any], prefecture: inventory.Prefecture, path: Path) -> None:
    """AuditError unless ``doc`` is an audit of ``prefecture``'s inventory."""
    why = []
    if doc.get("inventory") != prefecture.name:
        why.append(f"the audit names the inventory {doc.get('inventory')!r}")
    known = {h.name for h in prefecture.hosts}
    unknown = sorted(h for h in doc["hosts"] if h not in known)
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        why.append(f"hosts not in it: {', '.join(unknown[:10])}{more}")
    if why:
        raise AuditError(f"{path}: this audit is not of the inventory {prefecture.name} "
                         f"({prefecture.path}): {'; '.join(why)}. Give --audit the audit of the "
                         "inventory the tests ran against (municloud audit --inventory "
                         f"{prefecture.path})")


# --- the command line ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--inventory", required=True,
                        help="the inventory to audit, e.g. inventories/sample")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="where to write the findings (default: "
                             "reports/audit-<inventory>.json); ansible-playbook's output goes "
                             "beside it, FILE with .log")
    parser.add_argument("--playbook", type=Path, default=SITE,
                        help="the playbook to run in check mode (default: the repository's "
                             "playbooks/site.yml)")
    parser.add_argument("ansible_args", nargs="*", metavar="-- ANSIBLE_PLAYBOOK_ARGS",
                        help="more arguments for ansible-playbook, after --, e.g. "
                             "-- --limit 'yonago-shi-*' (--check --diff are always given)")


def main(args: argparse.Namespace) -> int:
    prefecture = inventory.load_or_report(args.inventory)
    if prefecture is None:
        print("nothing audited", file=sys.stderr)
        return 2
    playbook = Path(args.playbook).resolve()
    if not playbook.is_file():
        print(f"{args.playbook}: no such playbook; nothing audited", file=sys.stderr)
        return 2
    out = Path(args.out or Path("reports") / f"audit-{prefecture.name}.json").resolve()
    log = out.with_suffix(".log")
    try:
        line = command(prefecture.path.resolve(), playbook, args.ansible_args)
        out.parent.mkdir(parents=True, exist_ok=True)
    except (AuditError, OSError) as exc:
        print(f"{exc}; nothing audited", file=sys.stderr)
        return 2
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".events", dir=out.parent)
    os.close(fd)
    events = Path(name)
    when = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"audit of {prefecture.name} ({prefecture.path}): {len(prefecture.hosts)} host(s) in "
          "the inventory; ansible-playbook runs in check mode (--check --diff): it reports "
          "what it would change and changes nothing on the hosts", flush=True)
    try:
        code, seen = run(line, environment(events, os.environ), events, log)
    finally:
        events.unlink(missing_ok=True)
    start = next((e for e in seen if e["event"] == "playbook_start"), None)
    completed = any(e["event"] == "stats" for e in seen)
    if start is None or not completed or not start["check_mode"]:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-30:]
        why = ("it did not run in check mode" if start is not None and not start["check_mode"]
               else f"ansible-playbook exited {code} before its recap")
        print("\n".join(tail), file=sys.stderr)
        print(f"the audit did not complete: {why}; its output: {log}; no findings written",
              file=sys.stderr)
        return 2
    hosts = findings(seen, prefecture)
    if not hosts:
        print(f"no play of {args.playbook} ran on any host (--limit?); its output: {log}; no "
              "findings written", file=sys.stderr)
        return 2
    counts = summary(hosts)
    doc = {
        "format": FORMAT,
        "when": when,
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "inventory": prefecture.name,
        "inventory_path": str(prefecture.path),
        "playbook": _relative(str(playbook)),
        "command": [Path(line[0]).name, *(_relative(a) or a for a in line[1:])],
        "check_mode": True,
        "ansible_exit_status": code,
        "log": str(log),
        "summary": counts,
        "not_in_run": [h.name for h in prefecture.hosts if h.name not in hosts],
        "hosts": hosts,
    }
    staged = out.with_name(f".{out.name}.staging")
    staged.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(staged, out)
    for host_name, host in hosts.items():
        if host["status"] != "clean":
            print(f"  {describe(host_name, host)}")
    print(f"findings: {out} (ansible-playbook's output: {log})")
    verdict = (f"DRIFT: {counts['findings']} of {counts['hosts']} host(s) with findings "
               f"({counts['drift']} drift, {counts['failed']} failed, {counts['unreachable']} "
               f"unreachable, {counts['not audited']} not audited)" if counts["findings"]
               else f"no drift: {counts['hosts']} host(s) audited, nothing would change")
    print(verdict)
    return 1 if counts["findings"] else 0
