"""municloud.clauses: the catalogue the acceptance tests cite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from municloud import clauses

ACCEPTANCE = Path(__file__).resolve().parents[1] / "acceptance"


def test_ids_are_keys_and_every_clause_has_both_titles() -> None:
    for key, clause in clauses.CLAUSES.items():
        assert (key, bool(clause.title_ja), bool(clause.title_en)) == (clause.id, True, True)


def test_unknown_clause_names_the_file_and_the_known_ids() -> None:
    with pytest.raises(KeyError, match=r"municloud/clauses\.py.*baseline\.ssh\.key-only"):
        clauses.get("baseline.ssh.passwords")


def test_every_clause_cited_by_an_acceptance_test_is_in_the_catalogue() -> None:
    cited = {
        node.args[0].value
        for path in ACCEPTANCE.glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "clause"
        and node.args and isinstance(node.args[0], ast.Constant)
    }
    assert cited and cited <= set(clauses.CLAUSES)
