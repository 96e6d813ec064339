"""Options of the whole test suite. They live here, at the top of tests/, so that pytest knows
them whichever part of the suite is run (an option added in a deeper conftest is unknown when
pytest starts from tests/)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("municloud", "municloud acceptance tests (tests/acceptance)")
    group.addoption(
        "--inventory",
        default="inventories/sample",
        help="the inventory whose hosts the acceptance tests run against (default: %(default)s)",
    )
    group.addoption(
        "--known-hosts",
        default=None,
        help="known_hosts with the hosts' keys (default: the lab's, .lab/<inventory>/known_hosts)",
    )
    group.addoption(
        "--admin-user",
        default=None,
        help="the management account (default: baseline_admin_user in roles/baseline/defaults)",
    )
