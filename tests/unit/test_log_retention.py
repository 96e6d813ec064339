"""The central log's retention job (roles/log_collector/files/municloud-log-retention), run as the
timer runs it, on a tree of day files: which days go, which stay, what it never touches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles" / "log_collector" / "files" / "municloud-log-retention"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args],
                          capture_output=True, text=True, check=False)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "municloud"
    for code in ("312011", "shared"):
        (root / code).mkdir(parents=True)
        for day in ("2026-11-30", "2026-11-26", "2026-11-25", "2026-11-24", "2025-01-01"):
            (root / code / f"{day}.log").write_text("line\n")
    (root / "312011" / "2026-11-20.log.gz").write_bytes(b"")
    (root / "312011" / "notes.txt").write_text("a CSIRT's notes\n")
    (root / "312011" / "2026-13-40.log").write_text("not a day\n")
    return root


def _left(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_keeps_the_last_days_and_removes_older_ones(tree: Path) -> None:
    """--days 6 on 2026-11-30 keeps 11-25 .. 11-30 (six days) and removes 11-24 and before."""
    done = _run(tree, "--days", "6", "--timezone", "Asia/Tokyo", "--today", "2026-11-30")
    assert done.returncode == 0, done.stderr
    assert _left(tree) == {
        "312011/2026-11-30.log", "312011/2026-11-26.log", "312011/2026-11-25.log",
        "312011/notes.txt", "312011/2026-13-40.log",
        "shared/2026-11-30.log", "shared/2026-11-26.log", "shared/2026-11-25.log",
    }
    assert "removed" in done.stdout and "2026-11-24.log" in done.stdout
    assert "5 day file(s)" in done.stdout  # 2 x (11-24, 2025-01-01), and the .gz


def test_dry_run_removes_nothing(tree: Path) -> None:
    before = _left(tree)
    done = _run(tree, "--days", "1", "--today", "2026-11-30", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert _left(tree) == before and "would remove" in done.stdout


def test_a_linked_directory_is_not_followed(tree: Path, tmp_path: Path) -> None:
    """A symbolic link under the root to another directory: nothing in it is removed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "2020-01-01.log").write_text("keep\n")
    (tree / "linked").symlink_to(elsewhere)
    assert _run(tree, "--days", "1", "--today", "2026-11-30").returncode == 0
    assert (elsewhere / "2020-01-01.log").is_file()


def test_refuses_zero_days(tree: Path) -> None:
    done = _run(tree, "--days", "0", "--today", "2026-11-30")
    assert done.returncode != 0 and "--days must be 1 or more" in done.stderr
    assert "312011/2025-01-01.log" in _left(tree)
