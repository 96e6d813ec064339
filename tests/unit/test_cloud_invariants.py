"""The cloud invariant catalogue (municloud/cloud/invariants.py) holds its three judges to it.

For every broken variant of a sample stack (tests/unit/cloud_breaks.py):

* the policy pack, run as the engine runs it (pulumi_policy's analyzer over gRPC, proxies and
  all), reports a violation under one of the invariant's rules;
* at least one graph test marked with the invariant fails on the broken graph (the tests of
  test_cloud_graph.py are called with the broken graph in place of the sample's).

``cloud verify``'s side (a seeded moto cloud broken per invariant) is in test_cloud_verify.py,
whose ``BROKEN`` cases name their invariant. Here: every rule and check belongs to an invariant,
and every invariant has its judges, or says why one cannot judge it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import test_cloud_graph
from cloud_breaks import BREAKS, Break
from cloud_stacks import graph

from municloud.cloud import invariants, policies
from municloud.cloud.invariants import CATALOGUE


def _marked(fn: Callable[..., Any], name: str) -> list[Any]:
    return [m for m in getattr(fn, "pytestmark", []) if m.name == name]


def graph_tests(invariant_id: str) -> list[Callable[..., None]]:
    """The graph tests that name ``invariant_id`` in ``@pytest.mark.invariant``."""
    return [fn for name, fn in inspect.getmembers(test_cloud_graph, inspect.isfunction)
            if name.startswith("test_")
            and any(invariant_id in m.args for m in _marked(fn, "invariant"))]


def _refs(fn: Callable[..., Any]) -> tuple[str, ...] | None:
    """The stacks a graph test is parametrized over; None: it picks its own stack."""
    for m in _marked(fn, "parametrize"):
        if m.args[0] == "ref":
            return tuple(m.args[1])
    return None


def test_every_invariant_has_its_judges_or_says_why_not() -> None:
    ids = [inv.id for inv in CATALOGUE]
    assert len(ids) == len(set(ids))
    rules = {r.name for r in policies.RULES}
    for inv in CATALOGUE:
        assert inv.policies or inv.no_policy, inv.id
        assert inv.checks or inv.no_check, inv.id
        assert not (inv.policies and inv.no_policy) and not (inv.checks and inv.no_check), inv.id
        assert set(inv.policies) <= rules, f"{inv.id} names a rule the pack does not have"
        assert graph_tests(inv.id), f"no graph test is marked with {inv.id}"
        assert [b for b in BREAKS if b.invariant == inv.id], f"{inv.id} has no broken stack"


def test_every_rule_of_the_pack_belongs_to_an_invariant() -> None:
    named = {p for inv in CATALOGUE for p in inv.policies}
    assert {r.name for r in policies.RULES} == named


def test_an_unknown_invariant_is_named() -> None:
    with pytest.raises(KeyError, match=r"unknown cloud invariant 'cloud\.nope'; known: "):
        invariants.get("cloud.nope")


@pytest.mark.parametrize("brk", BREAKS, ids=[b.id for b in BREAKS])
def test_the_pack_rejects_the_broken_stack(brk: Break) -> None:
    inv = invariants.get(brk.invariant)
    if not inv.policies:
        pytest.skip(f"{inv.id}: {inv.no_policy}")  # judged across stacks or by verify
    results = policies.run_policy_pack(brk.graph().resources)
    violated = {r.name for r in results if r.violations}
    assert violated & set(inv.policies), (
        f"{brk.id}: none of {inv.policies} saw it; violated: {sorted(violated)}")


@pytest.mark.parametrize("brk", BREAKS, ids=[b.id for b in BREAKS])
def test_the_graph_tests_reject_the_broken_stack(brk: Break,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    broken = brk.graph()
    monkeypatch.setattr(test_cloud_graph, "graph", lambda ref, preview=False: (
        broken if ref == brk.ref else graph(ref, preview)))
    judged, failed = [], []
    for fn in graph_tests(brk.invariant):
        refs = _refs(fn)
        if refs is not None and brk.ref not in refs:
            continue
        judged.append(fn.__name__)
        try:
            fn(brk.ref) if refs is not None else fn()
        except AssertionError:
            failed.append(fn.__name__)
    assert judged, f"no graph test of {brk.invariant} runs on {brk.ref}"
    assert failed, f"{brk.id}: every graph test of {brk.invariant} passed: {judged}"


@pytest.mark.parametrize("brk", BREAKS, ids=[b.id for b in BREAKS])
def test_the_sample_stack_itself_passes_the_same_graph_tests(brk: Break) -> None:
    """The other half of the proof: unbroken, the same tests pass (a test that fails on
    everything would also "catch" every break)."""
    for fn in graph_tests(brk.invariant):
        refs = _refs(fn)
        if refs is None:
            fn()
        elif brk.ref in refs:
            fn(brk.ref)
