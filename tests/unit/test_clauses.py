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


# --- how each clause is proven ------------------------------------------------------------------


def test_every_clause_is_proven_by_acceptance_tests_or_by_a_manual_check() -> None:
    """Each clause has tests or a manual check (never neither); a manual clause that gained a
    test drops its manual check, so the report never asks a person to repeat a test."""
    proofs = clauses.acceptance_tests()
    neither = [c.id for c in clauses.CLAUSES.values() if not proofs.of(c.id) and c.manual is None]
    both = [c.id for c in clauses.CLAUSES.values() if proofs.of(c.id) and c.manual is not None]
    assert (neither, both) == ([], [])


def test_every_acceptance_test_names_a_clause_of_the_catalogue() -> None:
    proofs = clauses.acceptance_tests()
    assert proofs.problems == ()
    assert set(proofs.tests) <= set(clauses.CLAUSES)
    # the reachability matrix and a test marked through a module constant are both found
    assert "tests/acceptance/test_segmentation.py::test_reachability" in proofs.of(
        "segments.individual-number.isolated")
    assert proofs.of("segments.logs.central")


def test_a_manual_check_says_what_to_check_and_what_to_attach_in_both_languages() -> None:
    for clause in clauses.CLAUSES.values():
        if clause.manual is not None:
            texts = (clause.manual.check_ja, clause.manual.check_en, clause.manual.evidence_ja,
                     clause.manual.evidence_en)
            assert all(t.strip() for t in texts), clause.id


def test_the_measures_of_the_guideline_this_project_touches_have_clauses() -> None:
    """Issue 11's list of technical measures, each with at least one clause that cites MIC's
    source (a clause of the project's own baseline would cite nothing)."""
    measures = {
        "segment separation, per model": ["segments.individual-number.isolated",
                                          "segments.lgwan.no-internet",
                                          "segments.lgwan.approved-cloud"],
        "multi-factor authentication": ["mfa.login.two-factor"],
        "data export": ["export.removable-storage"],
        "update delivery": ["updates.delivery"],
        "internet through the security cloud": ["segments.internet.via-security-cloud"],
        "central logging": ["segments.logs.central"],
        "sanitised transfer": ["segments.lgwan.sanitised-files"],
        "screen transfer": ["segments.lgwan.screen-transfer"],
        "remote access under 特定通信": ["segments.individual-number.remote-access",
                                         "segments.individual-number.closed-lines"],
    }
    for measure, ids in measures.items():
        for clause_id in ids:
            assert clauses.get(clause_id).references, (measure, clause_id)


def test_matrix_clauses_cover_what_the_matrix_gives() -> None:
    from municloud import policy
    from municloud.inventory import load

    declared = clauses.matrix_clauses()
    repo = ACCEPTANCE.parents[1]
    for name in ("sample", "okayama"):
        given = {p.clause for p in policy.matrix(load(repo / "inventories" / name))}
        assert given <= declared, name
    # the clauses policy gives a pair no flow allows are read from its source
    assert {"segments.default-deny", "segments.lgwan.no-internet",
            "segments.individual-number.isolated"} <= declared


SCANNED = '''
import pytest

CLAUSE = "updates.window"
pytestmark = [pytest.mark.roles("gateway"), pytest.mark.clause("baseline.time.jst")]


def _hardened(keyword):
    return pytest.param(keyword, marks=pytest.mark.clause("baseline.ssh.hardened"))


@pytest.mark.clause("baseline.ssh.key-only")
def test_literal(host): ...


@pytest.mark.clause(CLAUSE)
def test_constant(host): ...


@pytest.mark.parametrize("keyword", [_hardened("maxauthtries")])
def test_param(host, keyword): ...


def test_module_mark(host): ...


@pytest.mark.clause("mfa.login.lockout")
class TestClass:
    def test_method(self): ...
'''


def test_the_scan_reads_clause_marks_as_pytest_applies_them(tmp_path: Path) -> None:
    (tmp_path / "test_scanned.py").write_text(SCANNED, encoding="utf-8")
    (tmp_path / "test_matrix.py").write_text("def test_pairs(probe): ...\n", encoding="utf-8")
    proofs = clauses.acceptance_tests(tmp_path)
    where = f"{tmp_path / 'test_scanned.py'}::"
    found = {(clause, test.replace(where, "")) for clause, tests in proofs.tests.items()
             for test in tests if test.startswith(where)}
    assert found == {
        ("baseline.ssh.key-only", "test_literal"),
        ("updates.window", "test_constant"),
        ("baseline.ssh.hardened", "test_param"),
        ("baseline.time.jst", "test_module_mark"),
        ("mfa.login.lockout", "TestClass::test_method"),
    }
    matrix = {c for c, tests in proofs.tests.items() if f"{tmp_path}/test_matrix.py::test_pairs"
              in tests}
    assert matrix == clauses.matrix_clauses()
    assert proofs.problems == ()


def test_the_scan_reports_unknown_ids_unreadable_marks_and_unmarked_tests(tmp_path: Path) -> None:
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.clause('baseline.ssh.passwords')\ndef test_unknown(): ...\n\n"
        "@pytest.mark.clause(make_id())\ndef test_computed(): ...\n\n"
        "def test_unmarked(): ...\n", encoding="utf-8")
    problems = "\n".join(clauses.acceptance_tests(tmp_path).problems)
    assert ("test_unknown: clause 'baseline.ssh.passwords' is not in municloud/clauses.py"
            in problems)
    assert "test_bad.py:6: a clause mark whose id is neither a string" in problems
    assert "test_unmarked: no clause mark" in problems
