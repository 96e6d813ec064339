"""``municloud diagram INVENTORY``: one SVG per municipality, its zones and the flows allowed.

For integrators' design documents (設計書): each municipality's three segments and gateway, the
shared networks it reaches, the hosts in each, and an arrow for every flow the segment policy
allows there, labelled with the service and its ports. Drawn by Graphviz (Debian's ``graphviz``,
through the ``graphviz`` package from PyPI), from the same model as the firewall rulesets.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import graphviz

from municloud import inventory
from municloud.flows import Zone
from municloud.inventory import Host, Municipality, Prefecture
from municloud.policy import allowed, home_zones

ZONE_TITLES = {
    Zone.INDIVIDUAL_NUMBER: "個人番号利用事務系\nindividual-number segment",
    Zone.LGWAN: "LGWAN接続系\nLGWAN segment",
    Zone.INTERNET: "インターネット接続系\ninternet segment",
    Zone.SECURITY_CLOUD: "自治体情報セキュリティクラウド\nsecurity cloud",
    Zone.LGWAN_BACKBONE: "LGWAN / LGWAN-ASP",
    Zone.JOINT_CLOUD: "自治体クラウド\njoint cloud",
    Zone.PUBLIC_INTERNET: "インターネット\ninternet",
}
ZONE_COLOURS = {
    Zone.INDIVIDUAL_NUMBER: "#fde2e1",
    Zone.LGWAN: "#e3f0fb",
    Zone.INTERNET: "#fff4d6",
}
MODEL_NAMES = {
    "alpha": "αモデル",
    "alpha_prime": "α'モデル",
    "beta": "βモデル",
    "beta_prime": "β'モデル",
}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("inventory", help="an inventory directory, e.g. inventories/sample")
    parser.add_argument(
        "--output",
        "-o",
        default=None,
        help="directory for the SVG files (default: reports/diagrams/<inventory name>)",
    )


def _node(host: Host) -> str:
    return f"host_{host.name}"


def _anchor(zone: Zone) -> str:
    return f"zone_{zone.value}"


def municipality_graph(prefecture: Prefecture, m: Municipality) -> graphviz.Digraph:
    """The diagram of one municipality, as a Graphviz graph."""
    allows = [
        a
        for a in allowed(prefecture)
        if a.municipality == m.group and a.flow.source is not Zone.MANAGEMENT
    ]
    shared_used = {h.name: h for a in allows for h in a.destinations if h.municipality is None}
    title = (
        f"{m.name_ja} ({m.name_romaji}, {m.code}) — {MODEL_NAMES[m.model.value]}\n"
        f"{prefecture.name_ja}: flows allowed by the segment policy (everything else is "
        "dropped at the gateway)"
    )
    g = graphviz.Digraph(
        m.group,
        graph_attr={
            "label": title,
            "labelloc": "t",
            "fontsize": "16",
            "rankdir": "LR",
            "compound": "true",
            "fontname": "sans-serif",
        },
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "white",
            "fontname": "sans-serif",
        },
        edge_attr={"fontname": "sans-serif", "fontsize": "10"},
    )
    zones: dict[Zone, list[Host]] = {}
    for h in m.hosts:
        if h.role.value != "gateway":
            zones.setdefault(min(home_zones(h)), []).append(h)
    for _, h in sorted(shared_used.items()):
        zones.setdefault(min(home_zones(h)), []).append(h)
    # A flow from a whole zone (not from named roles) starts at the zone's "(any host)" node.
    whole_zones = {a.source_zone for a in allows if a.source_hosts is None}
    for zone, hosts in zones.items():
        with g.subgraph(name=f"cluster_{zone.value}") as c:
            c.attr(
                label=ZONE_TITLES.get(zone, zone.value),
                style="filled",
                fillcolor=ZONE_COLOURS.get(zone, "#eeeeee"),
            )
            if zone in whole_zones:
                c.node(_anchor(zone), label="(any host)", shape="plaintext", style="")
            for h in hosts:
                address = ", ".join(str(a) for a in h.addresses.values())
                c.node(_node(h), label=f"{h.name}\n{h.role.value}\n{address}")
    gw = m.gateway
    g.node(
        _node(gw),
        label=f"{gw.name}\ngateway (nftables)",
        shape="doubleoctagon",
        fillcolor="#dddddd",
    )
    for a in allows:
        label = f"{a.service.name}\n{a.service.protocol}/{','.join(map(str, a.service.ports))}"
        sources = (
            [_node(h) for h in a.source_hosts]
            if a.source_hosts is not None
            else [_anchor(a.source_zone)]
        )
        for src in sources:
            for dst in a.destinations:
                g.edge(
                    src,
                    _node(dst),
                    label=label,
                    tooltip=f"{a.flow.name}: {a.flow.reason}",
                    color="#1f6fb2" if a.crosses_gateway else "#555555",
                )
    return g


def render(prefecture: Prefecture, output: Path) -> list[Path]:
    """Write one SVG per municipality into ``output``; the paths written."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for m in prefecture.municipalities:
        path = output / f"{m.group}.svg"
        path.write_text(
            municipality_graph(prefecture, m).pipe(format="svg", encoding="utf-8"), encoding="utf-8"
        )
        written.append(path)
    return written


def main(args: argparse.Namespace) -> int:
    if shutil.which("dot") is None:
        print(
            "municloud diagram: Graphviz's `dot` is not installed; install Debian's graphviz "
            "(./scripts/install.sh does)",
            file=sys.stderr,
        )
        return 1
    prefecture = inventory.load_or_report(args.inventory)
    if prefecture is None:
        return 1
    output = Path(args.output or Path("reports") / "diagrams" / prefecture.name)
    for path in render(prefecture, output):
        print(path)
    return 0
