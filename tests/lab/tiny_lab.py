"""What the lab tests share: the tiny lab's inventory, and the commands a person runs on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "lab" / "inventories" / "tiny"
# The labs' vault password: `municloud lab up` makes it, and enrols the staff with it.
LAB_VAULT_PASSWORD = REPO / ".lab" / "vault-password"


def municloud(*args: str) -> subprocess.CompletedProcess[str]:
    """The municloud command, as a person runs it from the repository."""
    return subprocess.run(
        [sys.executable, "-m", "municloud.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )


def playbook(
    *args: str, file: str = "playbooks/site.yml", inventory: Path = TINY
) -> subprocess.CompletedProcess[str]:
    """site.yml (or another playbook ``file``, relative to the repository) on the tiny lab (or a
    copy of its ``inventory``), as an integrator runs it (plain ansible-playbook, with the lab's
    vault password)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_VAULT_PASSWORD_FILE": str(LAB_VAULT_PASSWORD),
    }
    tool = Path(sys.executable).with_name("ansible-playbook")
    return subprocess.run(
        [str(tool), "-i", str(inventory), file, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
