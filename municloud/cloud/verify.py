"""``municloud cloud verify``: placeholder until deployed-state checks land."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("stack")


def main(args: argparse.Namespace) -> int:
    raise SystemExit("municloud cloud verify: not built yet")
