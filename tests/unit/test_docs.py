"""The documents that are written from the model are up to date, and the project stands alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from municloud import flowdoc
from municloud.cloud import invariants
from municloud.flows import FLOWS, INVARIANTS

REPO = Path(__file__).resolve().parents[2]


def test_flows_document_is_written_from_the_model() -> None:
    on_disk = (REPO / "docs" / "flows.md").read_text(encoding="utf-8")
    assert on_disk == flowdoc.markdown(), "docs/flows.md is stale: run `make docs`"
    for flow in FLOWS:
        assert f"`{flow.name}`" in on_disk and flow.reason in on_disk
    for invariant in INVARIANTS.values():
        assert f"`{invariant.id}`" in on_disk


def test_cloud_invariants_document_is_written_from_the_catalogue() -> None:
    on_disk = (REPO / "docs" / "cloud-invariants.md").read_text(encoding="utf-8")
    assert on_disk == invariants.markdown(), "docs/cloud-invariants.md is stale: run `make docs`"
    for inv in invariants.CATALOGUE:
        assert f"`{inv.id}`" in on_disk and inv.title_ja in on_disk


def test_the_project_cites_no_document_a_clone_does_not_have() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"ARCHITECTURE\.md|DOMAIN\.md|STYLE\.md|\.\./shared")
    found = [
        name
        for name in tracked
        if (REPO / name).is_file()
        and name.endswith((".py", ".md", ".yml", ".cfg", ".toml"))
        and pattern.search((REPO / name).read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == []
