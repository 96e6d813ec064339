"""``municloud flows``: the segment policy as a document (docs/flows.md is its output).

Written from municloud/flows.py, so the document cannot drift from what the firewalls enforce; a
unit test fails when docs/flows.md differs from what this prints (`make docs` writes it again).
"""

from __future__ import annotations

import argparse

from municloud.flows import FLOWS, INVARIANTS, MANAGEMENT_PROBE, SERVICES, Zone
from municloud.segments import GuidelineModel

MODEL_HEADINGS = {
    GuidelineModel.ALPHA: "α",
    GuidelineModel.ALPHA_PRIME: "α'",
    GuidelineModel.BETA: "β",
    GuidelineModel.BETA_PRIME: "β'",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    del parser, name  # no options: it prints the one document


def markdown() -> str:
    models = list(GuidelineModel)
    lines = [
        "# Flows by guideline model",
        "",
        "<!-- Written by `municloud flows` from municloud/flows.py; "
        "`make docs` writes it again. -->",
        "",
        "What the segment policy allows, per guideline model. A flow allows connections from a "
        "zone (or only some roles in it) to one service, on its ports, and nothing else: "
        "everything not listed here is dropped, at the gateway for traffic between zones and "
        "by each host's own firewall for traffic within a segment. A flow from a segment stays "
        "within its municipality (its own segments, or the prefecture's shared networks).",
        "",
        "## Zones",
        "",
        "| zone | what |",
        "| --- | --- |",
        "| `individual_number` | 個人番号利用事務系: resident registry, tax, social security "
        "terminals and systems |",
        "| `lgwan` | LGWAN接続系: everyday office work, LGWAN and its ASP services |",
        "| `internet` | インターネット接続系: mail and the web, through the security cloud |",
        "| `gateway` | the municipality's gateway itself (its own connections) |",
        "| `security_cloud` | 自治体情報セキュリティクラウド: the prefecture's proxy and "
        "central log |",
        "| `lgwan_backbone` | LGWAN and LGWAN-ASP: the update platform, the 中間サーバー, ASP "
        "services |",
        "| `joint_cloud` | 自治体クラウド: the joint core-business systems |",
        "| `public_internet` | the internet itself (the inventory's shared `internet` network) |",
        "| `management` | the addresses automation and administrators come from "
        "(`municloud_management`) |",
        "",
        "## Services",
        "",
        "| service | what | ports | offered by (roles) | in zones | closed line (特定通信) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in SERVICES.values():
        roles = "every host" if len(s.roles) > 8 else ", ".join(sorted(s.roles))
        zones = "any" if len(s.zones) > 6 else ", ".join(sorted(s.zones))
        lines.append(
            f"| `{s.name}` | {s.title} | {s.protocol}/{', '.join(map(str, s.ports))} | {roles} | "
            f"{zones} | {'yes' if s.closed_line else ''} |"
        )
    lines += [
        "",
        "## Flows",
        "",
        "| flow | from | to | " + " | ".join(MODEL_HEADINGS[m] for m in models) + " | why |",
        "| --- | --- | --- | " + " | ".join("---" for _ in models) + " | --- |",
    ]
    for f in FLOWS:
        source = f"`{f.source.value}`"
        if f.source_roles:
            source += f" ({', '.join(sorted(f.source_roles))})"
        where = f" in `{f.destination.value}`" if f.destination else " on every host"
        cells = " | ".join("allow" if m in f.models else "—" for m in models)
        lines.append(f"| `{f.name}` | {source} | `{f.service}`{where} | {cells} | {f.reason} |")
    lines += [
        "",
        f"Besides: `{MANAGEMENT_PROBE}`: the management addresses may also connect to every "
        "service of every host (health checks; the acceptance tests' proof that a destination "
        "listens before a denial counts). ICMP echo follows the flows: a host may ping where it "
        "may connect. Replies (`ct state established,related`) always pass.",
        "",
        "In β' the office systems themselves (payroll, documents, finance) also sit in the "
        "internet segment: the difference from β is which hosts the inventory places there, not "
        "a new flow between segments.",
        "",
        "## Invariants",
        "",
        "They hold in every model, and no inventory can override them: `municloud validate` "
        "(and the first play of site.yml) checks them on the graph of every flow of the "
        "prefecture, catalogue and site flows together, through every chain of flows, and "
        "refuses a site flow that breaks one, naming the flow, the invariant and the path.",
        "",
        "| invariant | rule | checked |",
        "| --- | --- | --- |",
    ]
    for i in INVARIANTS.values():
        lines.append(
            f"| `{i.id}` | {i.text} | {'through every chain' if i.transitive else 'per flow'} |"
        )
    lines += [
        "",
        "A chain is followed through hosts by role: if a flow reaches a host of some role, "
        "everything that role may reach is reached too (a compromised host uses its own flows). "
        f"`{Zone.MANAGEMENT.value}` starts no chain: nothing may connect to it.",
        "",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    print(markdown(), end="")
    return 0
