"""Waivers: a failed clause accepted for a while, by a named person, for a stated reason.

A waiver lives in the inventory, in any file of ``group_vars/all/`` (or ``group_vars/all.yml``),
under ``municloud_waivers``::

    municloud_waivers:
      - clause: updates.window              # an id of municloud/clauses.py
        host: yonago-shi-update-relay              # one host of the inventory, or:
        # municipality: "312029"            # every host of a municipality (or the prefecture's
        #                                   # own code: its shared hosts)
        who: 鳥取県 情報政策課 山田           # who accepted it
        why: 回線増強工事中 (line upgrade until January)
        until: 2027-01-31                   # the last day it holds

``municloud report`` shows every waiver that touches a municipality. A valid waiver turns that
clause's failures on its hosts into "waived"; one past its ``until`` is shown as expired and the
failures stay failures. Ansible reads the variable too and nothing uses it there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from municloud import clauses, yamlfile
from municloud.inventory import Prefecture
from municloud.problems import Collector, InventoryError, kind

VARIABLE = "municloud_waivers"
FIELDS = ("clause", "host", "municipality", "who", "why", "until")


@dataclass(frozen=True)
class Waiver:
    clause: str
    host: str | None  # one host, or
    municipality: str | None  # every host of a municipality (or of the prefecture's own code)
    who: str
    why: str
    until: dt.date  # the last day the waiver holds
    source: str  # "<file>: municloud_waivers[<n>]", for people

    def expired(self, today: dt.date) -> bool:
        return today > self.until

    def covers(self, clause: str, host: str | None, municipality: str) -> bool:
        """Whether this waiver is about ``clause`` on ``host`` of ``municipality``."""
        if clause != self.clause:
            return False
        if self.host is not None:
            return host == self.host
        return municipality == self.municipality

    @property
    def target(self) -> str:
        return self.host if self.host is not None else f"municipality {self.municipality}"

    def as_json(self, today: dt.date) -> dict[str, Any]:
        return {
            "clause": self.clause, "host": self.host, "municipality": self.municipality,
            "who": self.who, "why": self.why, "until": self.until.isoformat(),
            "status": "expired" if self.expired(today) else "valid", "source": self.source,
        }


def _files(directory: Path) -> list[Path]:
    """The vars files of group ``all``, in the order Ansible reads them (sorted)."""
    found = [directory / "group_vars" / f"all{ext}" for ext in (".yml", ".yaml")]
    folder = directory / "group_vars" / "all"
    if folder.is_dir():
        found += sorted(p for p in folder.rglob("*")
                        if p.is_file() and p.suffix in (".yml", ".yaml", ""))
    return [p for p in found if p.is_file() and p.read_bytes()[:14] != b"$ANSIBLE_VAULT"]


def load(prefecture: Prefecture) -> list[Waiver]:
    """Every waiver of the inventory of ``prefecture``; InventoryError naming the file, the entry
    and what to do for each one that cannot be read."""
    hosts = {h.name for h in prefecture.hosts}
    codes = {prefecture.code, *(m.code for m in prefecture.municipalities)}
    waivers: list[Waiver] = []
    problems = []
    for path in _files(prefecture.path):
        out = Collector(str(path))
        data = yamlfile.read(path, out)
        entries = data.get(VARIABLE) if isinstance(data, Mapping) else None
        if entries is not None and not isinstance(entries, list):
            out.add(VARIABLE, f"expected a list of waivers, found {kind(entries)}",
                    "write one `- clause: ...` entry per waiver (docs/report.md)")
            entries = None
        for n, entry in enumerate(entries or ()):
            waiver = _waiver(entry, f"{VARIABLE}[{n}]", out, hosts, codes)
            if waiver is not None:
                waivers.append(waiver)
        problems += out.problems
    if problems:
        raise InventoryError(problems)
    return waivers


def _waiver(entry: object, key: str, out: Collector, hosts: set[str],
            codes: set[str]) -> Waiver | None:
    body = out.mapping(entry, key, "a waiver: clause, host or municipality, who, why, until")
    if body is None:
        return None
    before = len(out.problems)
    for name in sorted(set(body) - set(FIELDS)):
        out.add(f"{key}.{name}", "not a field of a waiver",
                f"use only {', '.join(FIELDS)} (docs/report.md)")
    clause = out.string(body, "clause", key, "name the clause, an id of municloud/clauses.py")
    if clause is not None and clause not in clauses.CLAUSES:
        out.add(f"{key}.clause", f"{clause!r} is not a clause of municloud/clauses.py",
                "use one of its ids (the report's pages list them)")
    host, municipality = body.get("host"), body.get("municipality")
    if isinstance(municipality, int):
        municipality = f"{municipality:06d}"  # an unquoted code read as a number by YAML
    if (host is None) == (municipality is None):
        out.add(key, "a waiver names exactly one of host or municipality",
                "write `host: <inventory host name>` or `municipality: \"<6-digit code>\"`")
    elif host is not None and host not in hosts:
        out.add(f"{key}.host", f"{host!r} is not a host of this inventory",
                "use a host name of hosts.yml")
    elif municipality is not None and municipality not in codes:
        out.add(f"{key}.municipality",
                f"{municipality!r} is not the code of a municipality of this inventory, nor "
                "the prefecture's", f"use one of {', '.join(sorted(codes))}")
    who = out.string(body, "who", key, "name who accepted the waiver")
    why = out.string(body, "why", key, "say why the failure is accepted")
    until = _date(body.get("until"), f"{key}.until", out)
    if len(out.problems) > before or clause is None or who is None or why is None \
            or until is None:
        return None
    return Waiver(clause, None if host is None else str(host),
                  None if municipality is None else str(municipality), who, why, until,
                  f"{out.file}: {key}")


def _date(value: object, key: str, out: Collector) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    out.add(key, f"expected a date (YYYY-MM-DD), found {kind(value)}",
            "write the last day the waiver holds, e.g. `until: 2027-03-31`")
    return None
