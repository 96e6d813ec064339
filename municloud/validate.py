"""``municloud validate INVENTORY``: print "ok" and a summary, or every problem and exit 1."""

from __future__ import annotations

import argparse
import sys

from municloud import inventory


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("inventory", help="an inventory directory, e.g. inventories/sample")


def main(args: argparse.Namespace) -> int:
    try:
        prefecture = inventory.load(args.inventory)
    except inventory.InventoryError as exc:
        exc.print()
        print(f"{len(exc.problems)} problem(s) found in {args.inventory}", file=sys.stderr)
        return 1
    print(f"ok: {prefecture.summary()}")
    return 0
