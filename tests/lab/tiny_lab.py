"""What the lab tests share: the tiny lab's inventory, and the commands a person runs on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "lab" / "inventories" / "tiny"


def municloud(*args: str) -> subprocess.CompletedProcess[str]:
    """The municloud command, as a person runs it from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "municloud.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def playbook(*args: str) -> subprocess.CompletedProcess[str]:
    """site.yml on the tiny lab, as an integrator runs it (plain ansible-playbook)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    tool = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(tool), "-i", str(TINY), "playbooks/site.yml", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
