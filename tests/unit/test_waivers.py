"""municloud.waivers: the waivers an inventory holds (group_vars/all, municloud_waivers)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from municloud import waivers
from municloud.inventory import InventoryError, load

SAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "sample"

GOOD = """\
municloud_waivers:
  - clause: updates.window
    host: yonago-shi-update-relay
    who: 鳥取県 情報政策課 山田
    why: 回線増強工事中 (line upgrade)
    until: 2027-01-31
  - clause: baseline.time.jst
    municipality: "312037"
    who: 倉吉市 総務課
    why: 時刻サーバの更新待ち
    until: "2026-11-30"
"""


def inventory_with(tmp_path: Path, text: str, name: str = "waivers.yml") -> Path:
    """A copy of the sample inventory (as ``sample``) with ``text`` in group_vars/all/``name``."""
    inv = tmp_path / "sample"
    shutil.copytree(SAMPLE, inv, ignore=shutil.ignore_patterns("lab.yml"))
    (inv / "group_vars" / "all" / name).write_text(text, encoding="utf-8")
    return inv


def test_waivers_are_read_with_their_dates_and_targets(tmp_path: Path) -> None:
    found = waivers.load(load(inventory_with(tmp_path, GOOD)))
    assert [(w.clause, w.target, w.until) for w in found] == [
        ("updates.window", "yonago-shi-update-relay", dt.date(2027, 1, 31)),
        ("baseline.time.jst", "municipality 312037", dt.date(2026, 11, 30)),
    ]
    relay, town = found
    assert town.source.endswith("group_vars/all/waivers.yml: municloud_waivers[1]")
    # a waiver holds through its last day
    assert not town.expired(dt.date(2026, 11, 30)) and town.expired(dt.date(2026, 12, 1))
    assert relay.covers("updates.window", "yonago-shi-update-relay", "312029")
    assert not relay.covers("updates.window", "yonago-shi-gw", "312029")
    assert town.covers("baseline.time.jst", "kurayoshi-shi-gw", "312037")
    assert not town.covers("baseline.ssh.key-only", "kurayoshi-shi-gw", "312037")


def test_an_inventory_without_waivers_has_none() -> None:
    assert waivers.load(load(SAMPLE)) == []


def test_every_bad_entry_is_reported_with_file_entry_and_what_to_do(tmp_path: Path) -> None:
    bad = """\
municloud_waivers:
  - clause: baseline.ssh.passwords
    host: yonago-shi-update-relay
    who: x
    why: y
    until: 2027-01-31
  - clause: updates.window
    host: yonago-shi-update-relay
    municipality: "312029"
    who: x
    why: y
    until: 2027-01-31
  - clause: updates.window
    host: nowhere-gw
    who: x
    why: y
    until: 31/01/2027
  - clause: updates.window
    municipality: "999999"
    who: ""
    why: y
    untill: 2027-01-31
"""
    with pytest.raises(InventoryError) as raised:
        waivers.load(load(inventory_with(tmp_path, bad)))
    text = str(raised.value)
    for expected in (
        "waivers.yml: municloud_waivers[0].clause: 'baseline.ssh.passwords' is not a clause",
        "municloud_waivers[1]: a waiver names exactly one of host or municipality",
        "municloud_waivers[2].host: 'nowhere-gw' is not a host of this inventory",
        "municloud_waivers[2].until: expected a date (YYYY-MM-DD)",
        "municloud_waivers[3].municipality: '999999' is not the code of a municipality",
        "municloud_waivers[3].untill: not a field of a waiver",
        "municloud_waivers[3].who: missing or not a string",
        "municloud_waivers[3].until: expected a date",
    ):
        assert expected in text
    assert len(raised.value.problems) == 8


def test_waivers_must_be_a_list(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"municloud_waivers: expected a list of waivers"):
        waivers.load(load(inventory_with(tmp_path, "municloud_waivers: {clause: x}\n")))


def test_a_whole_vaulted_file_is_skipped(tmp_path: Path) -> None:
    inv = inventory_with(tmp_path, "$ANSIBLE_VAULT;1.1;AES256\n3132\n", "secret.yml")
    assert waivers.load(load(inv)) == []
