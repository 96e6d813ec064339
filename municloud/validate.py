"""``municloud validate INVENTORY``: print "ok" and a summary, or every problem and exit 1.

The checks are the inventory's own (ranges, addresses, codes, ...) and the segment policy's
(where hosts of each role may sit, site flows, and the invariants through every chain of flows).
"""

from __future__ import annotations

import argparse

from municloud import inventory, policy


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("inventory", help="an inventory directory, e.g. inventories/sample")


def main(args: argparse.Namespace) -> int:
    prefecture = inventory.load_or_report(args.inventory)
    if prefecture is None:
        return 1
    print(f"ok: {prefecture.summary()}")
    site = len(prefecture.flows) + sum(len(m.flows) for m in prefecture.municipalities)
    print(
        f"segment policy: {len(policy.allowed(prefecture))} flows in force ({site} site flows "
        "declared); every invariant holds"
    )
    if not prefecture.management:
        print(
            "note: no municloud_management yet: the firewall role refuses to run until it names "
            "the addresses automation comes from (`municloud lab up` writes the lab's)"
        )
    return 0
