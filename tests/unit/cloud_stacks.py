"""Shared helper for the cloud unit tests: run each sample stack under mocks once per session."""

from __future__ import annotations

import functools

from municloud.cloud import stacks
from municloud.cloud.mockrun import Graph

SECURITY_STACKS = ("security-cloud/tottori", "security-cloud/okayama-tottori")
JOINT_STACKS = ("joint-cloud/tottori-joint",)
ALL_STACKS = SECURITY_STACKS + JOINT_STACKS


@functools.cache
def graph(ref: str, preview: bool = False) -> Graph:
    """The recorded graph of ``ref`` (as a first preview would send it, with ``preview``);
    asserts it is not empty (an empty graph proves nothing)."""
    g = stacks.run(stacks.resolve(ref), preview=preview)
    assert len(g.cloud_resources) > 20, f"{ref}: the mocked graph is (nearly) empty"
    return g
