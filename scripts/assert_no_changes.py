#!/usr/bin/env python3
"""Fail unless an ansible-playbook log's PLAY RECAP shows changed=0 and no failures on every host.

Used by `make converge` on the second run of site.yml: an idempotent playbook changes nothing.
"""

from __future__ import annotations

import re
import sys

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)"
)


def main(path: str) -> int:
    hosts = bad = 0
    with open(path, encoding="utf-8") as log:
        for line in log:
            m = RECAP.match(line.strip())
            if not m:
                continue
            hosts += 1
            if any(int(m[k]) for k in ("changed", "unreachable", "failed")):
                bad += 1
                print(f"not idempotent or failed: {line.strip()}", file=sys.stderr)
    if hosts == 0:
        print(f"{path}: no PLAY RECAP found", file=sys.stderr)
        return 1
    print(f"idempotent: {hosts} hosts, changed=0" if not bad else f"{bad}/{hosts} hosts changed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
