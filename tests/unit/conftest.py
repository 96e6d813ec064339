"""Unit-test collection rules: a test's ``@pytest.mark.invariant(...)`` names only invariants of
:mod:`municloud.cloud.invariants` (collection stops on an unknown id, as the acceptance tests'
clauses do)."""

from __future__ import annotations

import pytest

from municloud.cloud import invariants


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unknown = sorted({f"{item.nodeid.split('[')[0]}: {name!r}" for item in items
                      for mark in item.iter_markers("invariant") for name in mark.args
                      if name not in invariants.BY_ID})
    if unknown:
        raise pytest.UsageError("unknown cloud invariant(s) in @pytest.mark.invariant; known ids "
                                "are in municloud/cloud/invariants.py:\n  " + "\n  ".join(unknown))
