"""The joint cloud program: thin on purpose; the components live in municloud.cloud."""

from __future__ import annotations

from pathlib import Path

from municloud.cloud.joint_cloud import program

program(Path(__file__).resolve().parent)
