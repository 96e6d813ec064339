"""Broken copies of the sample inventory, one edit each, for the tests of bad input."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventories" / "sample"
SAMPLE_DATA = yaml.safe_load((SAMPLE / "hosts.yml").read_text(encoding="utf-8"))
MUN = ("all", "children", "municipalities", "children")


def dig(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        data = data[key]
    return data


def write(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the sample inventory with ``edit`` applied, in ``tmp_path/broken``."""
    data = copy.deepcopy(SAMPLE_DATA)
    edit(data)
    inv = tmp_path / "broken"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return inv


def prefecture(data: dict[str, Any]) -> dict[str, Any]:
    return dig(data, "all", "vars", "municloud_prefecture")


def municipality(data: dict[str, Any], group: str = "tottori_shi") -> dict[str, Any]:
    return dig(data, *MUN, group, "vars", "municloud_municipality")


def hosts(data: dict[str, Any], group: str = "tottori_shi") -> dict[str, Any]:
    return dig(data, *MUN, group, "hosts")
