"""``municloud report JUNIT_XML --inventory INVENTORY``: acceptance results per municipality and
clause, for the acceptance tester (受入試験) to hand to the municipality.

Reads the JUnit XML that ``pytest tests/acceptance --junitxml=reports/acceptance.xml`` writes:
each test case carries the properties ``host``, ``municipality_code``, ``municipality_name`` and
``clause`` (recorded by tests/acceptance/conftest.py). The inventory gives each municipality's
name and guideline model, and lists the municipalities that have no result at all. Shared hosts
of the prefecture (security cloud, LGWAN-ASP, joint cloud) are counted under the prefecture's own
code. Exit status 1 if any test failed or erred, or if a municipality has no result.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from municloud import clauses, inventory

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


def read_junit(path: Path) -> list[Result]:
    """The test cases in a JUnit XML file (pytest's xunit1 or xunit2 flavour)."""
    root = ET.parse(path).getroot()
    results = []
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
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
        ))
    return results


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


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("junit", type=Path,
                        help="JUnit XML of an acceptance run, e.g. reports/acceptance.xml")
    parser.add_argument("--inventory", default="inventories/sample",
                        help="the inventory the tests ran against (default: %(default)s)")


def main(args: argparse.Namespace) -> int:
    try:
        prefecture = inventory.load(args.inventory)
    except inventory.InventoryError as exc:
        exc.print()
        return 2
    try:
        results = read_junit(args.junit)
    except (OSError, ET.ParseError) as exc:
        print(f"{args.junit}: cannot read JUnit XML ({exc}); run pytest tests/acceptance "
              f"--inventory {args.inventory} --junitxml={args.junit} first", file=sys.stderr)
        return 2
    rows, notes = summarise(results, prefecture)
    print(render(rows, prefecture, args.junit))
    for note in notes:
        print(f"note: {note}")
    failed = sum(r.counts["failed"] for r in rows)
    untested = any(n.startswith("no result for ") for n in notes)
    if failed:
        print(f"FAILED: {failed} test case(s) failed")
    elif untested or not rows:
        print("INCOMPLETE: not every municipality has results")
    return 1 if failed or untested or not rows else 0
