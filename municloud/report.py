"""``municloud report JUNIT_XML --inventory INVENTORY [--out DIR]``: acceptance results per
municipality and clause, for the acceptance tester (受入試験) to hand to the municipality.

Reads the JUnit XML that ``pytest tests/acceptance --junitxml=reports/acceptance.xml`` writes:
each test case carries the properties ``inventory``, ``host``, ``municipality_code``,
``municipality_name`` and ``clause``, and any number of ``evidence`` properties (JSON: what was
probed, on which host, what came back), recorded by tests/acceptance/conftest.py. The inventory
gives each municipality's name and guideline model, lists the municipalities that have no result
at all, and holds the waivers (municloud/waivers.py). Shared hosts of the prefecture (security
cloud, LGWAN-ASP, joint cloud) are counted under the prefecture's own code.

The terminal gets a table; with ``--out DIR`` the pages for the municipality are written too
(municloud/report_pages.py): DIR/index.html, DIR/<code>.html and DIR/<code>.json. With
``--audit FILE`` (``municloud audit``'s findings) the terminal gets a line per host with a
finding (drift, or a host that could not be audited), and the pages a drift section.

Exit status 2 for bad input (an unreadable or empty run, results from another inventory, a
waiver that cannot be read, an audit file that cannot be read or is of another inventory), with
nothing written; 1 if a test failed or erred and no valid
waiver covers it, or if a municipality has no result; 0 otherwise. Drift does not change the
exit status: it is what the audit says, beside the tests' results (``municloud audit`` exits 1
on it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from municloud import audit, clauses, inventory, waivers

OUTCOMES = ("passed", "failed", "skipped")


@dataclass(frozen=True)
class Result:
    """One test case of the JUnit XML."""

    name: str
    host: str | None
    municipality_code: str | None
    municipality_name: str | None
    clause: str | None
    outcome: str  # one of OUTCOMES; an error counts as failed
    inventory: str | None = None  # the inventory's name, as the run recorded it
    # what the test recorded as evidence ({"probed", "on", "got"}), in order
    evidence: tuple[dict[str, Any], ...] = ()
    message: str | None = None  # the failure's, error's or skip's message and text
    properties: tuple[tuple[str, str], ...] = field(default=())  # the other JUnit properties


# The properties that Result has a field for; the others are kept in Result.properties.
_LIFTED = ("host", "municipality_code", "municipality_name", "clause", "clause_title",
           "inventory", "evidence")
MESSAGE_LIMIT = 4000  # characters of a failure's text kept as evidence (the start, then the end)


def _message(case: ET.Element) -> str | None:
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is not None:
            parts = [t.strip() for t in (found.get("message"), found.text) if t and t.strip()]
            if len(parts) == 2 and parts[0] in parts[1]:
                parts = parts[1:]  # the text (the traceback) already holds the message
            text = "\n".join(parts)
            if len(text) > MESSAGE_LIMIT:
                half = MESSAGE_LIMIT // 2
                text = f"{text[:half]}\n[...]\n{text[-half:]}"
            return text or tag
    return None


def _evidence(value: str | None) -> dict[str, Any]:
    try:
        found = json.loads(value or "")
    except ValueError:
        found = None
    return found if isinstance(found, dict) else {"got": value}


def read_junit(path: Path) -> list[Result]:
    """The test cases in a JUnit XML file (pytest's xunit1 or xunit2 flavour)."""
    root = ET.parse(path).getroot()
    results = []
    for case in root.iter("testcase"):
        pairs = [(p.get("name") or "", p.get("value") or "") for p in case.iter("property")]
        props = dict(pairs)
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        results.append(Result(
            name=f"{case.get('classname', '')}::{case.get('name', '')}",
            host=props.get("host"),
            municipality_code=props.get("municipality_code"),
            municipality_name=props.get("municipality_name"),
            clause=props.get("clause"),
            outcome=outcome,
            inventory=props.get("inventory"),
            evidence=tuple(_evidence(v) for k, v in pairs if k == "evidence"),
            message=_message(case),
            properties=tuple((k, v) for k, v in pairs if k not in _LIFTED),
        ))
    return results


def run_started(path: Path) -> str | None:
    """When the run started, as the first test suite of the JUnit XML says (pytest writes it)."""
    for suite in ET.parse(path).getroot().iter("testsuite"):
        return suite.get("timestamp")
    return None


class BadInput(Exception):
    """The JUnit XML cannot be reported on against this inventory; the message says why."""


def check_run(results: list[Result], prefecture: inventory.Prefecture, path: Path) -> None:
    """BadInput unless ``results`` are an acceptance run against ``prefecture``'s inventory."""
    if not results:
        raise BadInput(f"{path}: no test cases at all: the run was empty (did pytest collect "
                       f"tests/acceptance? run pytest tests/acceptance --inventory "
                       f"{prefecture.path} --junitxml={path})")
    tagged = [r for r in results if r.municipality_code is not None and r.clause is not None]
    if not tagged:
        raise BadInput(f"{path}: none of its {len(results)} test case(s) names a municipality "
                       "and a clause, so none is an acceptance test of tests/acceptance")
    hosts = {h.name for h in prefecture.hosts}
    codes = {prefecture.code, *(m.code for m in prefecture.municipalities)}

    def listed(names: set[str]) -> str:
        first = sorted(names)[:10]
        more = f" and {len(names) - len(first)} more" if len(names) > len(first) else ""
        return ", ".join(first) + more

    why = []
    named = {r.inventory for r in tagged if r.inventory and r.inventory != prefecture.name}
    if named:
        why.append(f"the run names the inventory {listed(named)}")
    unknown_hosts = {r.host for r in tagged if r.host is not None and r.host not in hosts}
    if unknown_hosts:
        why.append(f"hosts not in it: {listed(unknown_hosts)}")
    unknown_codes = {f"{r.municipality_code} {r.municipality_name or '?'}" for r in tagged
                     if r.municipality_code not in codes}
    if unknown_codes:
        why.append(f"municipalities not in it: {listed(unknown_codes)}")
    if why:
        raise BadInput(f"{path}: these results are not from the inventory {prefecture.name} "
                       f"({prefecture.path}): {'; '.join(why)}. Give --inventory the inventory "
                       "the tests ran against")


@dataclass(frozen=True)
class Row:
    code: str
    name_ja: str
    model: str
    clause: str
    counts: Counter[str]


def summarise(results: list[Result],
              prefecture: inventory.Prefecture) -> tuple[list[Row], list[str]]:
    """Rows (municipality x clause, in inventory order) and the notes a reader must see."""
    known = {m.code: (m.name_ja, m.model.value) for m in prefecture.municipalities}
    known[prefecture.code] = (prefecture.name_ja, "shared")  # the prefecture's shared hosts
    order = [prefecture.code, *(m.code for m in prefecture.municipalities)]
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    names: dict[str, str] = {}
    notes: list[str] = []
    untagged = 0
    for r in results:
        if r.municipality_code is None or r.clause is None:
            untagged += 1
            continue
        counts[(r.municipality_code, r.clause)][r.outcome] += 1
        names.setdefault(r.municipality_code, r.municipality_name or "?")
        if r.municipality_code not in known and r.municipality_code not in order:
            order.append(r.municipality_code)
            notes.append(f"municipality {r.municipality_code} ({names[r.municipality_code]}) is "
                         f"not in the inventory {prefecture.name}: were the tests run against "
                         "another one?")
        if r.clause not in clauses.CLAUSES:
            notes.append(f"{r.name}: clause {r.clause!r} is not in municloud/clauses.py")
    if untagged:
        notes.append(f"{untagged} test case(s) carry no municipality or clause and are not "
                     "counted (not acceptance tests?)")
    rows: list[Row] = []
    for code in order:
        name_ja, model = known.get(code, (names.get(code, "?"), "?"))
        mine = sorted(clause for (c, clause) in counts if c == code)
        if not mine and code in known and code != prefecture.code:
            notes.append(f"no result for {code} {name_ja}: none of its hosts was tested")
        rows.extend(Row(code, name_ja, model, clause, counts[(code, clause)]) for clause in mine)
    return rows, sorted(set(notes), key=notes.index)


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def render(rows: list[Row], prefecture: inventory.Prefecture, source: Path) -> str:
    header = ("municipality", "model", "clause", *OUTCOMES)
    table = [(f"{r.code} {r.name_ja}", r.model, r.clause, *(str(r.counts[o]) for o in OUTCOMES))
             for r in rows]
    total: Counter[str] = sum((r.counts for r in rows), Counter())
    footer = ("total", "", "", *(str(total[o]) for o in OUTCOMES))
    widths = [max(_width(row[i]) for row in (header, *table, footer)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        left = [_pad(v, w) for v, w in zip(row[:3], widths[:3], strict=True)]
        right = [v.rjust(w) for v, w in zip(row[3:], widths[3:], strict=True)]
        return "  ".join(left + right).rstrip()

    rule = "-" * _width(line(header))
    out = [f"{prefecture.name_ja} ({prefecture.name_romaji}, {prefecture.code}), inventory "
           f"{prefecture.name}: acceptance results from {source}", "", line(header), rule]
    out.extend(line(row) for row in table)
    out += [rule, line(footer)]
    return "\n".join(out)


def waived_failures(results: list[Result], found: list[waivers.Waiver],
                    today: dt.date) -> dict[int, waivers.Waiver]:
    """Index in ``results`` -> the valid waiver that covers that failed test case."""
    covered = {}
    for i, r in enumerate(results):
        if r.outcome != "failed" or r.clause is None or r.municipality_code is None:
            continue
        for w in found:
            if not w.expired(today) and w.covers(r.clause, r.host, r.municipality_code):
                covered[i] = w
                break
    return covered


def drift_lines(drift: dict[str, Any], prefecture: inventory.Prefecture, source: Path) -> str:
    """The terminal's lines for an audit: one per host with a finding, then a count."""
    names = {prefecture.code: prefecture.name_ja,
             **{m.code: m.name_ja for m in prefecture.municipalities}}
    codes = audit.host_code(prefecture)
    out = []
    for host, entry in drift["hosts"].items():
        if entry["status"] != "clean":
            where = f"{codes[host]} {names[codes[host]]}"
            out.append(f"drift: {audit.describe(host, {**entry, 'municipality': where})}")
    clean = sum(1 for e in drift["hosts"].values() if e["status"] == "clean")
    left = len(prefecture.hosts) - len(drift["hosts"])
    out.append(f"audit: {source} ({drift.get('when', '?')}): {len(drift['hosts'])} host(s) "
               f"audited, {len(out)} with findings, {clean} without drift"
               + (f"; {left} host(s) of the inventory not in the audit" if left else ""))
    return "\n".join(out)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("junit", type=Path,
                        help="JUnit XML of an acceptance run, e.g. reports/acceptance.xml")
    parser.add_argument("--inventory", default="inventories/sample",
                        help="the inventory the tests ran against (default: %(default)s)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="also write the pages: DIR/index.html (the prefecture), and per "
                             "municipality DIR/<code>.html and DIR/<code>.json; DIR is replaced "
                             "whole, and only if this command wrote it")
    parser.add_argument("--audit", type=Path, metavar="FILE",
                        help="drift findings of `municloud audit` on the same inventory (e.g. "
                             "reports/audit-<inventory>.json): a line per host with a finding, "
                             "and a drift section on the pages")
    parser.add_argument("--today", type=_date, default=None, metavar="YYYY-MM-DD",
                        help="judge the waivers' dates as of this day (default: today)")


def main(args: argparse.Namespace) -> int:
    today = args.today or dt.date.today()
    try:
        prefecture = inventory.load(args.inventory)
        found = waivers.load(prefecture)
    except inventory.InventoryError as exc:
        exc.print()
        return 2
    try:
        results = read_junit(args.junit)
        started = run_started(args.junit)
    except (OSError, ET.ParseError) as exc:
        print(f"{args.junit}: cannot read JUnit XML ({exc}); run pytest tests/acceptance "
              f"--inventory {args.inventory} --junitxml={args.junit} first", file=sys.stderr)
        return 2
    try:
        check_run(results, prefecture, args.junit)
    except BadInput as exc:
        print(f"{exc}; nothing written", file=sys.stderr)
        return 2
    drift: dict[str, Any] | None = None
    if args.audit is not None:
        try:
            drift = audit.read(args.audit)
            audit.check(drift, prefecture, args.audit)
        except audit.AuditError as exc:
            print(f"{exc}; nothing written", file=sys.stderr)
            return 2
        drift["source"] = str(args.audit)
    rows, notes = summarise(results, prefecture)
    covered = waived_failures(results, found, today)
    print(render(rows, prefecture, args.junit))
    for note in notes:
        print(f"note: {note}")
    for w in found:
        uses = sum(1 for v in covered.values() if v is w)
        state = (f"EXPIRED on {w.until} (its failures count as failures)" if w.expired(today)
                 else f"until {w.until}, covers {uses} failed test case(s)")
        print(f"waiver: {w.clause} on {w.target}, by {w.who}, {state}: {w.why}")
    if drift is not None:
        print(drift_lines(drift, prefecture, args.audit))
    if args.out is not None:
        from municloud import report_pages

        try:
            index = report_pages.write(args.out, results, prefecture, found, today,
                                       args.junit, started, drift)
        except (OSError, report_pages.OutputError) as exc:
            print(f"{args.out}: cannot write the pages ({exc}); nothing written",
                  file=sys.stderr)
            return 2
        print(f"pages: {index} (one per municipality beside it, with its JSON)")
    failed = sum(r.counts["failed"] for r in rows) - len(covered)
    untested = any(n.startswith("no result for ") for n in notes)
    if failed:
        print(f"FAILED: {failed} test case(s) failed")
    elif untested or not rows:
        print("INCOMPLETE: not every municipality has results")
    elif covered:
        print(f"PASSED WITH WAIVERS: {len(covered)} failed test case(s) covered by a valid waiver")
    return 1 if failed or untested or not rows else 0
