"""`municloud diagram`: one SVG per municipality, drawn by Graphviz's dot, with the zones and an
arrow per allowed flow labelled with its service and ports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sample_edit import SAMPLE

from municloud import inventory, policy
from municloud.cli import main as cli

SVG = "{http://www.w3.org/2000/svg}"


def test_diagram_writes_one_svg_per_municipality(tmp_path: Path) -> None:
    assert cli(["diagram", str(SAMPLE), "--output", str(tmp_path)]) == 0
    loaded = inventory.load(SAMPLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{m.group}.svg" for m in loaded.municipalities
    )
    for m in loaded.municipalities:
        root = ET.parse(tmp_path / f"{m.group}.svg").getroot()  # valid XML, drawn by dot
        texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
        assert m.name_ja in texts and m.code in texts
        assert "個人番号利用事務系" in texts and "インターネット接続系" in texts
        edges = [g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
        allows = [
            a
            for a in policy.allowed(loaded)
            if a.municipality == m.group and a.flow.source.value != "management"
        ]
        expected = sum(
            len(a.destinations) * (len(a.source_hosts) if a.source_hosts else 1) for a in allows
        )
        assert len(edges) == expected > 0
        for a in allows:
            assert f"{a.service.name}" in texts and f"tcp/{a.service.ports[0]}" in texts


def test_diagram_of_a_bad_inventory_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text("all: [1, 2")
    assert cli(["diagram", str(tmp_path / "inv"), "--output", str(tmp_path / "out")]) == 1
    assert not (tmp_path / "out").exists()
