"""The security cloud program: thin on purpose; the components live in municloud.cloud."""

from __future__ import annotations

from pathlib import Path

from municloud.cloud.security_cloud import program

program(Path(__file__).resolve().parent)
