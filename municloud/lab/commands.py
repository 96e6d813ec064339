"""``municloud lab up|status|down``: placeholder, being built."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--inventory", default="inventories/sample")


def main(args: argparse.Namespace) -> int:
    raise SystemExit("municloud lab: not built yet")
