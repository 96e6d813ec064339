"""The ``municloud`` command: validate an inventory, run the lab, plan and verify the clouds.

Each subcommand lives in the module named after it; this file only wires them up, and imports a
module when its subcommand runs, so ``municloud validate`` does not pay for importing Pulumi.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand path -> module with add_arguments(parser) and main(args) -> int
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("validate",): ("municloud.validate", "check an inventory and print every problem found"),
    ("flows",): ("municloud.flowdoc", "print the segment policy: zones, flows, invariants"),
    ("diagram",): ("municloud.diagram", "an SVG per municipality: its zones and allowed flows"),
    ("lab", "up"): ("municloud.lab.commands", "build the inventory's prefecture as containers"),
    ("lab", "status"): ("municloud.lab.commands", "list the lab's hosts, addresses and state"),
    ("lab", "down"): ("municloud.lab.commands", "remove every container and network of the lab"),
    ("report",): ("municloud.report", "acceptance results per municipality and clause"),
    ("audit",): ("municloud.audit", "what site.yml would change per host (check mode): drift"),
    ("cloud", "plan"): ("municloud.cloud.plan", "offline plan of a Pulumi stack under mocks"),
    ("cloud", "verify"): ("municloud.cloud.verify", "check a deployed cloud with boto3"),
    ("cloud", "invariants"): ("municloud.cloud.invariants",
                              "print the cloud invariants and which judge checks each"),
    ("mfa", "enrol"): ("municloud.mfa", "give a user a TOTP secret and first password (vaulted)"),
    ("generate", "lab"): ("municloud.generate",
                          "a lab inventory of N municipalities shaped like the sample"),
    ("generate", "national"): ("municloud.generate",
                               "the 47 prefectures' inventories, 1,741 municipal bodies"),
}

GROUP_HELP = {
    "lab": "a whole virtual prefecture in containers on this machine",
    "cloud": "the Pulumi programs of the security cloud and the joint cloud",
    "mfa": "multi-factor login of the individual-number segment's staff",
    "generate": "synthetic prefecture inventories, written from the model and validated",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="municloud",
        description="Infrastructure automation for Japan's shared municipal clouds.",
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for path, (module, help_) in COMMANDS.items():
        subs = top
        if len(path) == 2:
            if path[0] not in groups:
                group = top.add_parser(path[0], help=GROUP_HELP[path[0]])
                groups[path[0]] = group.add_subparsers(
                    dest="subcommand", required=True, metavar="SUBCOMMAND"
                )
            subs = groups[path[0]]
        sub = subs.add_parser(path[-1], help=help_, description=help_)
        sub.set_defaults(_module=module, _name=path[-1])
        # Arguments are declared by the module itself; importing it here is cheap for all but
        # cloud, whose modules keep their heavy imports inside main().
        importlib.import_module(module).add_arguments(sub, path[-1])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
