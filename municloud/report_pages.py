"""The report's pages: per municipality an HTML page and a JSON file, and a prefecture summary.

``municloud report --out DIR`` writes them (municloud/report.py reads and checks the run first):

* ``DIR/<code>.json``: the municipality, and for each clause with results its result per host
  and the evidence of each test case (what was probed, on which host, what came back; a failure's
  message), the clauses checked by hand (``manual`` in municloud/clauses.py), the clauses with no
  test case in this run, and every waiver that touches the municipality, expired ones included;
* ``DIR/<code>.html``: the same for people, Japanese first and English beside it; one static file
  with its style inline (no script, no font or address outside the file), with a print style
  sheet for A4;
* ``DIR/index.html``: the prefecture: each municipality's counts, linking its page and JSON.

With ``--audit FILE`` (``municloud audit``'s findings, municloud/audit.py) each page also has a
section "設定の乖離 / drift": per host of the municipality, what a check-mode run of site.yml would
change (task, role, files, a diff excerpt), or that the host could not be audited; the
prefecture's page counts and lists the hosts with findings.

The prefecture's own code stands for its shared hosts, as in the terminal's table. The pages
are written into a staging directory beside DIR and renamed into place, so a failure leaves DIR
as it was; DIR is replaced whole, and only if it is empty or this module wrote it.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from municloud import clauses, inventory, report, waivers

FORMAT = "municloud-report/1"
MARKER = ".municloud-report"  # in DIR: this module wrote it, and may replace it

# Results of a clause on a host, worst first; a clause's result is its hosts' worst.
RESULTS = ("failed", "waived", "skipped", "passed")
COUNTS = ("passed", "failed", "waived", "skipped", "manual", "expired_waivers")
LABELS = {
    "passed": ("合格", "passed"),
    "failed": ("不合格", "failed"),
    "waived": ("免除", "waived"),
    "skipped": ("スキップ", "skipped"),
    "manual": ("手動確認", "manual checks"),
    "expired_waivers": ("期限切れの免除", "expired waivers"),
    "expired": ("期限切れ", "expired"),
    "valid": ("有効", "valid"),
    "no results": ("結果なし", "no results"),
}
MODELS = {"alpha": "α", "alpha_prime": "α'", "beta": "β", "beta_prime": "β'"}
# The pages' longer sentences, Japanese and English.
TEXT = {
    "counts": ("件数は試験ケースの数です。手動確認は項目の数です。",
               "Counts are test cases; manual checks are clauses."),
    "index counts": ("件数は試験ケースの数、手動確認は団体ごとの項目の数です。",
                     "Counts are test cases; manual checks are clauses, for each municipality."),
    "no results": ("この団体のホストの試験結果はこの実行にありません。",
                   "This run has no result for any host of this municipality."),
    "manual": ("試験では確かめられない項目です。確認者が確認し、証跡を添付して署名します。",
               "What no test here can prove: a person checks, attaches the evidence and signs."),
    "not run": ("この実行で試験されなかった項目", "Clauses with no test case in this run"),
    "not run note": ("この団体に該当しない項目 (モデルや役割による) もあります。",
                     "Some do not apply here (by model or role)."),
    "baseline": ("ガイドラインの記述なし (本プロジェクトの基準)", "project baseline"),
    "drift": ("site.yml をチェックモード (--check --diff) で実行し、実行すれば変更される設定を"
              "ホストごとに示します。チェックモードはホストを変更しません。前回の適用後に手作業で"
              "変更されたホストはここに現れます。",
              "site.yml run in check mode (--check --diff): what a run would change, per host. "
              "Check mode changes nothing on the hosts. A host changed by hand since the last "
              "run shows up here."),
    "no audit hosts": ("この団体のホストは監査に含まれていません。",
                       "The audit did not include any host of this municipality."),
}
# A host's status in the audit (municloud/audit.py), and the CSS class it is shown with.
DRIFT_LABELS = {
    "unreachable": ("到達不能", "unreachable", "failed"),
    "failed": ("監査失敗", "audit failed", "failed"),
    "not audited": ("未監査", "not audited", "failed"),
    "drift": ("乖離あり", "drift", "failed"),
    "clean": ("乖離なし", "no drift", "passed"),
    "not in the audit": ("監査対象外", "not in the audit (--limit)", "skipped"),
}


class OutputError(Exception):
    """DIR cannot be written (e.g. it holds files this module did not write)."""


# --- the model: what the JSON holds and the HTML shows --------------------------------------


def _worst(results: Iterable[str]) -> str:
    found = set(results)
    return next(r for r in RESULTS if r in found)


def _case(r: report.Result) -> dict[str, Any]:
    return {"test": r.name, "outcome": r.outcome, "message": r.message,
            "evidence": list(r.evidence), "properties": dict(r.properties)}


def _clause_info(clause: clauses.Clause) -> dict[str, Any]:
    return {"id": clause.id, "title_ja": clause.title_ja, "title_en": clause.title_en,
            "references": list(clause.references)}


def municipality_page(
    code: str,
    results: list[report.Result],
    prefecture: inventory.Prefecture,
    found: list[waivers.Waiver],
    today: dt.date,
    proofs: clauses.Proofs,
    audit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document of one municipality (or, for the prefecture's code, its shared hosts);
    ``audit``: an audit file (municloud/audit.py) to take the drift of its hosts from."""
    if code == prefecture.code:
        who = {"code": code, "name_ja": prefecture.name_ja, "name_romaji": prefecture.name_romaji,
               "model": "shared"}
        hosts = {h.name for h in prefecture.shared_hosts}
        in_order = [h.name for h in prefecture.shared_hosts]
    else:
        m = next(m for m in prefecture.municipalities if m.code == code)
        who = {"code": code, "name_ja": m.name_ja, "name_romaji": m.name_romaji,
               "model": m.model.value}
        hosts = {h.name for h in m.hosts}
        in_order = [h.name for h in m.hosts]
    mine = [r for r in results if r.municipality_code == code and r.clause is not None]
    touching = [w for w in found if w.municipality == code or w.host in hosts]
    counts = dict.fromkeys(COUNTS, 0)
    applied: set[int] = set()
    rows = []
    for clause_id in dict.fromkeys(c for c in clauses.CLAUSES if any(r.clause == c
                                                                     for r in mine)):
        by_host: dict[str, list[report.Result]] = {}
        for r in mine:
            if r.clause == clause_id:
                by_host.setdefault(r.host or "-", []).append(r)
        host_rows: list[dict[str, Any]] = []
        for host, cases in by_host.items():
            mentioned = [w for w in touching if w.covers(clause_id, host, code)]
            valid = [w for w in mentioned if not w.expired(today)]
            outcomes = []
            for r in cases:
                if r.outcome == "failed" and valid:
                    outcomes.append("waived")
                    applied.add(id(valid[0]))
                else:
                    outcomes.append(r.outcome)
                counts[outcomes[-1]] += 1
            host_rows.append({"host": host, "result": _worst(outcomes),
                              "cases": [_case(r) for r in cases],
                              "waivers": [w.as_json(today) for w in mentioned]})
        rows.append({**_clause_info(clauses.CLAUSES[clause_id]),
                     "tests": list(proofs.of(clause_id)),
                     "result": _worst(h["result"] for h in host_rows), "hosts": host_rows})
    # clauses a result names that the catalogue lacks (report.summarise notes them too)
    unknown = [r.clause for r in mine if r.clause is not None and r.clause not in clauses.CLAUSES]
    for other in dict.fromkeys(unknown):
        cases = [r for r in mine if r.clause == other]
        for r in cases:
            counts[r.outcome] += 1
        rows.append({"id": other, "title_ja": "(カタログにない項目)",
                     "title_en": "(not in municloud/clauses.py)", "references": [], "tests": [],
                     "result": _worst(r.outcome for r in cases),
                     "hosts": [{"host": r.host or "-", "result": r.outcome, "cases": [_case(r)],
                                "waivers": []} for r in cases]})
    manual = [{**_clause_info(c), "check_ja": c.manual.check_ja, "check_en": c.manual.check_en,
               "evidence_ja": c.manual.evidence_ja, "evidence_en": c.manual.evidence_en}
              for c in clauses.CLAUSES.values() if c.manual is not None]
    tested = {row["id"] for row in rows}
    not_run = [{**_clause_info(c), "tests": list(proofs.of(c.id))}
               for c in clauses.CLAUSES.values() if c.manual is None and c.id not in tested]
    listed = [{**w.as_json(today), "applied": id(w) in applied} for w in touching]
    counts["manual"] = len(manual)
    counts["expired_waivers"] = sum(1 for w in touching if w.expired(today))
    result = "no results" if not mine else "failed" if counts["failed"] else "passed"
    return {
        "format": FORMAT,
        "inventory": prefecture.name,
        "prefecture": {"code": prefecture.code, "name_ja": prefecture.name_ja,
                       "name_romaji": prefecture.name_romaji},
        "municipality": who,
        "result": result,
        "counts": counts,
        "clauses": rows,
        "manual": manual,
        "not_run": not_run,
        "waivers": listed,
        "drift": None if audit is None else drift_section(audit, in_order),
    }


def drift_section(audit: Mapping[str, Any], hosts: list[str]) -> dict[str, Any]:
    """The audit's findings on ``hosts`` (one municipality's, in inventory order); a host the
    audit did not include is listed as "not in the audit"."""
    found = audit["hosts"]
    rows: list[dict[str, Any]] = []
    for name in hosts:
        entry = found.get(name)
        if entry is None:
            rows.append({"host": name, "status": "not in the audit", "changes": [],
                         "failures": [], "unreachable": None})
        else:
            rows.append({"host": name, "status": entry["status"], "changes": entry["changes"],
                         "failures": entry["failures"], "unreachable": entry["unreachable"]})
    return {
        "source": audit.get("source"),
        "when": audit.get("when"),
        "playbook": audit.get("playbook"),
        "command": audit.get("command"),
        "findings": sum(1 for r in rows if r["status"] not in ("clean", "not in the audit")),
        "hosts": rows,
    }


# --- HTML ------------------------------------------------------------------------------------

CSS = """
body { font-family: "Noto Sans CJK JP", "IPAexGothic", "IPAPGothic", "IPAGothic",
       "Hiragino Sans", "Yu Gothic", Meiryo, sans-serif; color: #111; margin: 1.5em auto;
       max-width: 62em; padding: 0 1em; font-size: 11pt; line-height: 1.45; }
.en { color: #555; font-size: 0.85em; margin-left: 0.5em; }
h1 { font-size: 1.6em; margin: 0 0 0.2em; } h2 { font-size: 1.25em; margin-top: 1.4em;
  border-bottom: 2px solid #333; } h3 { font-size: 1.05em; margin: 1.1em 0 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.4em 0 0.8em; }
th, td { border: 1px solid #999; padding: 0.2em 0.4em; vertical-align: top; text-align: left; }
th { background: #eee; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.meta td:first-child { width: 28%; }
.result { font-weight: bold; white-space: nowrap; }
.passed { color: #11602a; } .failed { color: #a00; } .waived { color: #8a5a00; }
.skipped, .no-results { color: #555; } .expired { color: #a00; font-weight: bold; }
.ref { color: #444; font-size: 0.85em; } .test { font-family: monospace; font-size: 0.85em; }
pre { white-space: pre-wrap; word-break: break-all; font-size: 0.8em; margin: 0.2em 0;
  background: #f6f6f6; padding: 0.2em 0.4em; }
ul.evidence { margin: 0.1em 0; padding-left: 1.2em; font-size: 0.85em; }
.clause { margin-bottom: 1em; }
.sign td { height: 2.2em; }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 9.5pt; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; } h3 { break-after: avoid; }
  tr, .manual-check { break-inside: avoid; }
  thead { display: table-header-group; }
  pre { background: none; border-left: 2px solid #999; }
}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _bi(ja: str, en: str) -> str:
    """Japanese first, English beside it."""
    return f'<span class="ja">{_e(ja)}</span><span class="en" lang="en">{_e(en)}</span>'


def _label(key: str) -> str:
    ja, en = LABELS[key]
    return f'<span class="result {key.replace(" ", "-")}">{_bi(ja, en)}</span>'


def _model(model: str) -> str:
    if model == "shared":
        return _bi("共用 (セキュリティクラウド等)", "shared hosts (security cloud, ...)")
    return _bi(f"{MODELS.get(model, model)}モデル", f"model {MODELS.get(model, model)}")


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="ja">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
            "</body>\n</html>\n")


def _meta(rows: list[tuple[str, str, str]]) -> str:
    cells = "".join(f"<tr><th>{_bi(ja, en)}</th><td>{value}</td></tr>" for ja, en, value in rows)
    return f'<table class="meta">{cells}</table>'


def _counts_table(counts: dict[str, int]) -> str:
    head = "".join(f"<th>{_bi(*LABELS[k])}</th>" for k in COUNTS)
    cells = "".join(f'<td class="n" id="count-{k}">{counts[k]}</td>' for k in COUNTS)
    return f'<table class="counts"><tr>{head}</tr><tr>{cells}</tr></table>'


def _evidence(case: dict[str, Any]) -> str:
    items = []
    for ev in case["evidence"]:
        parts = []
        for key, ja in (("probed", "確認内容"), ("on", "実行ホスト"), ("got", "結果")):
            if key in ev:
                value = ev[key] if isinstance(ev[key], str) else json.dumps(
                    ev[key], ensure_ascii=False)
                parts.append(f"{_bi(ja, key)}: {_e(value)}")
        parts += [f"{_e(k)}: {_e(v)}" for k, v in ev.items() if k not in ("probed", "on", "got")]
        items.append(f"<li>{'; '.join(parts)}</li>")
    items += [f"<li>{_e(k)}: {_e(v)}</li>" for k, v in case["properties"].items()]
    out = f'<ul class="evidence">{"".join(items)}</ul>' if items else ""
    if case["message"]:
        out += f"<pre>{_e(case['message'])}</pre>"
    return out


def _waiver_rows(listed: list[dict[str, Any]]) -> str:
    if not listed:
        return f"<p>{_bi('免除はありません。', 'No waivers.')}</p>"
    head = "".join(f"<th>{_bi(ja, en)}</th>" for ja, en in (
        ("項目", "clause"), ("対象", "applies to"), ("承認者", "who"), ("理由", "why"),
        ("期限", "until"), ("状態", "status"), ("定義", "written in")))
    rows = []
    for w in listed:
        target = w["host"] or f"{w['municipality']}"
        status = _label(w["status"])
        if w.get("applied"):
            status += f"<br>{_bi('不合格を免除', 'covers failures')}"
        rows.append(f"<tr><td class='test'>{_e(w['clause'])}</td><td>{_e(target)}</td>"
                    f"<td>{_e(w['who'])}</td><td>{_e(w['why'])}</td><td>{_e(w['until'])}</td>"
                    f"<td>{status}</td><td class='ref'>{_e(w['source'])}</td></tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _drift_label(status: str) -> str:
    ja, en, css = DRIFT_LABELS[status]
    return f'<span class="result {css}">{_bi(ja, en)}</span>'


def _drift_findings(row: dict[str, Any]) -> str:
    out = []
    for c in row["changes"]:
        where = f" <span class='ref'>{_e(c['path'])}</span>" if c.get("path") else ""
        files = (f"<div>{_bi('ファイル', 'files')}: <span class='test'>"
                 f"{_e(', '.join(c['files']))}</span></div>" if c["files"] else "")
        items = (f"<div>{_bi('項目', 'items')}: {_e(', '.join(c['items']))}</div>"
                 if c["items"] else "")
        diff = f"<pre>{_e(c['diff'])}</pre>" if c["diff"] else ""
        out.append(f"<div class='change'><b>{_e(c['role'] or '-')}: {_e(c['task'])}</b>{where}"
                   f"{files}{items}{diff}</div>")
    for f in row["failures"]:
        note = _bi("無視された失敗", "ignored failure") if f["ignored"] else _drift_label("failed")
        out.append(f"<div>{note} <b>{_e(f['role'] or '-')}: {_e(f['task'])}</b>"
                   f"<pre>{_e(f['message'])}</pre></div>")
    if row["unreachable"]:
        out.append(f"<pre>{_e(row['unreachable'])}</pre>")
    if row["status"] == "not audited":
        out.append(f"<div>{_bi('タスクが実行されませんでした。', 'No task ran on it.')}</div>")
    return "".join(out)


def _drift_html(drift: dict[str, Any]) -> str:
    meta = _meta([
        ("監査ファイル", "audit file", _e(drift["source"] or "?")),
        ("監査の実行", "audit run", f"{_e(drift['when'] or '?')}: "
                                    f"<span class='test'>{_e(' '.join(drift['command'] or []))}"
                                    "</span>"),
        ("乖離のあるホスト", "hosts with findings", f"<span id='drift-findings'>"
                                                    f"{drift['findings']}</span>"),
    ])
    head = "".join(f"<th>{_bi(ja, en)}</th>" for ja, en in (
        ("ホスト", "host"), ("状態", "status"), ("変更されるタスクと差分", "tasks that would "
                                                                 "change, and their diff")))
    rows = "".join(f"<tr class='drift-host' id='drift-{_e(r['host'])}'><td>{_e(r['host'])}</td>"
                   f"<td>{_drift_label(r['status'])}</td><td>{_drift_findings(r)}</td></tr>"
                   for r in drift["hosts"])
    table = (f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>" if rows
             else f"<p>{_bi(*TEXT['no audit hosts'])}</p>")
    return (f"<section id='drift'><h2>{_bi('設定の乖離', 'Drift')}</h2>"
            f"<p class='ref'>{_bi(*TEXT['drift'])}</p>{meta}{table}</section>")


def _clause_head(row: dict[str, Any]) -> str:
    refs = "".join(f"<li>{_e(r)}</li>" for r in row["references"]) or \
        f"<li>{_bi(*TEXT['baseline'])}</li>"
    return (f"<h3>{_e(row['title_ja'])}<span class='en' lang='en'>{_e(row['title_en'])}</span>"
            f"</h3><div class='test'>{_e(row['id'])}</div><ul class='ref'>{refs}</ul>")


def municipality_html(page: dict[str, Any], source: Path, started: str | None,
                      today: dt.date) -> str:
    who, pref = page["municipality"], page["prefecture"]
    title = f"{who['name_ja']} 受入試験結果 / acceptance results ({who['name_romaji']})"
    back = _bi(f"← {pref['name_ja']} の一覧", f"all of {pref['name_romaji']}")
    body = [f"<p><a href='index.html'>{back}</a></p>",
            f"<h1>{_e(who['name_ja'])} {_bi('受入試験結果', 'acceptance results')}</h1>",
            _meta([
                ("団体", "municipality", f"{_e(who['code'])} {_e(who['name_ja'])} "
                                         f"<span class='en' lang='en'>{_e(who['name_romaji'])}"
                                         "</span>"),
                ("モデル", "model", _model(who["model"])),
                ("都道府県", "prefecture", f"{_e(pref['code'])} {_e(pref['name_ja'])} "
                                          f"<span class='en' lang='en'>"
                                          f"{_e(pref['name_romaji'])}</span>"),
                ("結果", "result", _label(page["result"])),
                ("試験の実行", "test run", f"{_e(source)} ({_e(started or '?')})"),
                ("免除の判定日", "waivers judged on", _e(today.isoformat())),
                ("インベントリ", "inventory", _e(page["inventory"])),
            ]),
            _counts_table(page["counts"]),
            f"<p class='ref'>{_bi(*TEXT['counts'])}</p>"]
    if page.get("drift") is not None:
        body.append(_drift_html(page["drift"]))
    body.append(f"<h2>{_bi('項目ごとの結果と証跡', 'Results and evidence per clause')}</h2>")
    if not page["clauses"]:
        body.append(f"<p>{_label('no results')} {_bi(*TEXT['no results'])}</p>")
    for row in page["clauses"]:
        hosts = []
        for h in row["hosts"]:
            cases = "".join(
                f"<div><span class='test'>{_e(c['test'].rpartition('::')[2])}</span> "
                f"{_label(c['outcome'])}{_evidence(c)}</div>" for c in h["cases"])
            notes = "".join(f"<div>{_label(w['status'])} {_bi('免除', 'waiver')}: "
                            f"{_e(w['who'])}, {_e(w['until'])}: {_e(w['why'])}</div>"
                            for w in h["waivers"])
            hosts.append(f"<tr><td>{_e(h['host'])}</td><td>{_label(h['result'])}{notes}</td>"
                         f"<td>{cases}</td></tr>")
        head = "".join(f"<th>{_bi(ja, en)}</th>" for ja, en in (
            ("ホスト", "host"), ("結果", "result"), ("試験と証跡", "tests and evidence")))
        body.append(f"<section class='clause' id='{_e(row['id'])}'>{_clause_head(row)}"
                    f"<p>{_bi('結果', 'result')}: {_label(row['result'])}</p>"
                    f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(hosts)}</tbody>"
                    "</table></section>")
    body.append(f"<h2>{_bi('手動確認', 'Manual checks')}</h2><p>{_bi(*TEXT['manual'])}</p>")
    for m in page["manual"]:
        body.append(
            f"<section class='manual-check' id='{_e(m['id'])}'>{_clause_head(m)}"
            f"<table><tr><th>{_bi('確認内容', 'check')}</th><td>{_e(m['check_ja'])}"
            f"<br><span class='en' lang='en'>{_e(m['check_en'])}</span></td></tr>"
            f"<tr><th>{_bi('添付する証跡', 'evidence to attach')}</th><td>"
            f"{_e(m['evidence_ja'])}<br><span class='en' lang='en'>{_e(m['evidence_en'])}"
            "</span></td></tr>"
            f"<tr class='sign'><th>{_bi('確認者・日付・結果', 'checked by, date, result')}</th>"
            "<td></td></tr></table></section>")
    body.append(f"<h2>{_bi('免除', 'Waivers')}</h2>{_waiver_rows(page['waivers'])}")
    body.append(f"<h2>{_bi(*TEXT['not run'])}</h2>"
                f"<p class='ref'>{_bi(*TEXT['not run note'])}</p>")
    items = "".join(f"<li>{_e(c['title_ja'])}<span class='en' lang='en'>{_e(c['title_en'])}"
                    f"</span> <span class='test'>{_e(c['id'])}</span></li>"
                    for c in page["not_run"])
    body.append(f"<ul>{items}</ul>" if items else f"<p>{_bi('なし', 'none')}</p>")
    return _document(title, "\n".join(body))


def index_html(pages: list[dict[str, Any]], prefecture: inventory.Prefecture, source: Path,
               started: str | None, today: dt.date, notes: list[str]) -> str:
    title = f"{prefecture.name_ja} 受入試験結果 / acceptance results ({prefecture.name_romaji})"
    audited = any(page.get("drift") is not None for page in pages)
    drift_head = f"<th>{_bi('設定の乖離 (ホスト数)', 'drift (hosts)')}</th>" if audited else ""
    head = "".join(f"<th>{_bi(ja, en)}</th>" for ja, en in (
        ("コード", "code"), ("団体", "municipality"), ("モデル", "model"), ("結果", "result"))) \
        + "".join(f"<th>{_bi(*LABELS[k])}</th>" for k in COUNTS) \
        + drift_head + f"<th>{_bi('詳細', 'details')}</th>"
    rows = []
    total = dict.fromkeys(COUNTS, 0)
    drifted: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (page, host row) with findings
    for page in pages:
        who, counts = page["municipality"], page["counts"]
        for k in COUNTS:
            total[k] += counts[k]
        code = _e(who["code"])
        drift_cell = ""
        if audited:
            found = page["drift"]["findings"]
            left_out = all(r["status"] == "not in the audit" for r in page["drift"]["hosts"])
            shown = (f"<a href='{code}.html#drift'>{found}</a>" if found
                     else _drift_label("not in the audit") if left_out else "0")
            drift_cell = f"<td class='n' id='drift-{code}'>{shown}</td>"
            drifted += [(page, r) for r in page["drift"]["hosts"]
                        if r["status"] not in ("clean", "not in the audit")]
        rows.append(
            f"<tr id='m-{code}'><td>{code}</td><td><a href='{code}.html'>{_e(who['name_ja'])}</a>"
            f"<span class='en' lang='en'>{_e(who['name_romaji'])}</span></td>"
            f"<td>{_model(who['model'])}</td><td>{_label(page['result'])}</td>"
            + "".join(f"<td class='n'>{counts[k]}</td>" for k in COUNTS)
            + drift_cell
            + f"<td><a href='{code}.html'>HTML</a> <a href='{code}.json'>JSON</a></td></tr>")
    drift_total = f"<td class='n' id='total-drift'>{len(drifted)}</td>" if audited else ""
    foot = (f"<tr><th colspan='4'>{_bi('合計', 'total')}</th>"
            + "".join(f"<td class='n' id='total-{k}'>{total[k]}</td>" for k in COUNTS)
            + drift_total + "<td></td></tr>")
    body = [f"<h1>{_e(prefecture.name_ja)} {_bi('受入試験結果', 'acceptance results')}</h1>",
            _meta([
                ("都道府県", "prefecture", f"{_e(prefecture.code)} {_e(prefecture.name_ja)} "
                                          f"<span class='en' lang='en'>"
                                          f"{_e(prefecture.name_romaji)}</span>"),
                ("インベントリ", "inventory", _e(prefecture.name)),
                ("試験の実行", "test run", f"{_e(source)} ({_e(started or '?')})"),
                ("免除の判定日", "waivers judged on", _e(today.isoformat())),
            ]),
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"<tfoot>{foot}</tfoot></table>",
            f"<p class='ref'>{_bi(*TEXT['index counts'])}</p>"]
    if audited:
        body.append(_index_drift(pages, drifted))
    if notes:
        body.append(f"<h2>{_bi('注意', 'Notes')}</h2><ul>"
                    + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return _document(title, "\n".join(body))


def _index_drift(pages: list[dict[str, Any]],
                 drifted: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    drift = next(p["drift"] for p in pages if p.get("drift") is not None)
    intro = (f"<p class='ref'>{_bi(*TEXT['drift'])}</p>"
             + _meta([("監査ファイル", "audit file", _e(drift["source"] or "?")),
                      ("監査の実行", "audit run", _e(drift["when"] or "?"))]))
    if not drifted:
        return (f"<section id='drift'><h2>{_bi('設定の乖離', 'Drift')}</h2>{intro}"
                f"<p>{_bi('乖離のあるホストはありません。', 'No host has drifted.')}</p></section>")
    head = "".join(f"<th>{_bi(ja, en)}</th>" for ja, en in (
        ("団体", "municipality"), ("ホスト", "host"), ("状態", "status"),
        ("変更されるタスク", "tasks that would change")))
    rows = []
    for page, r in drifted:
        who = page["municipality"]
        code = _e(who["code"])
        tasks = "<br>".join(f"{_e(c['role'] or '-')}: {_e(c['task'])}" for c in r["changes"])
        rows.append(f"<tr class='drift-host'><td>{code} {_e(who['name_ja'])}</td>"
                    f"<td><a href='{code}.html#drift-{_e(r['host'])}'>{_e(r['host'])}</a></td>"
                    f"<td>{_drift_label(r['status'])}</td><td>{tasks}</td></tr>")
    return (f"<section id='drift'><h2>{_bi('設定の乖離', 'Drift')}</h2>{intro}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            "</section>")


# --- writing ---------------------------------------------------------------------------------


def build(results: list[report.Result], prefecture: inventory.Prefecture,
          found: list[waivers.Waiver], today: dt.date, source: Path,
          started: str | None, audit: Mapping[str, Any] | None = None) -> dict[str, str]:
    """File name -> text of every page; ``audit``: an audit file's findings, checked against
    the inventory (municloud/audit.py), with its path under ``source``."""
    proofs = clauses.acceptance_tests() if clauses.ACCEPTANCE.is_dir() else clauses.Proofs({})
    codes = [prefecture.code, *(m.code for m in prefecture.municipalities)]
    pages = [municipality_page(c, results, prefecture, found, today, proofs, audit)
             for c in codes]
    _, notes = report.summarise(results, prefecture)
    files = {"index.html": index_html(pages, prefecture, source, started, today, notes)}
    for page in pages:
        code = page["municipality"]["code"]
        files[f"{code}.json"] = json.dumps(
            {**page, "source": str(source), "run_started": started,
             "waivers_judged_on": today.isoformat()},
            ensure_ascii=False, indent=1) + "\n"
        files[f"{code}.html"] = municipality_html(page, source, started, today)
    return files


def write(out: Path, results: list[report.Result], prefecture: inventory.Prefecture,
          found: list[waivers.Waiver], today: dt.date, source: Path,
          started: str | None, audit: Mapping[str, Any] | None = None) -> Path:
    """Write every page into ``out`` (replaced whole, through a staging directory beside it);
    returns the path of the index."""
    if out.exists() and not (out.is_dir() and (not any(out.iterdir())
                                               or (out / MARKER).is_file())):
        raise OutputError(f"{out} exists and was not written by municloud report: give --out "
                          "a new directory, or one an earlier report wrote")
    files = build(results, prefecture, found, today, source, started, audit)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    old = staging.with_suffix(".old")
    try:
        staging.chmod(0o755)
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        (staging / MARKER).write_text("written by `municloud report --out`; the next report "
                                      "replaces this directory whole\n", encoding="utf-8")
        if out.exists():
            out.rename(old)
        os.rename(staging, out)
    except BaseException:
        if old.exists() and not out.exists():
            old.rename(out)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out / "index.html"
