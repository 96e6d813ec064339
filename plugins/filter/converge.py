"""The fingerprint of a run's inputs, for the roles' fast path (docs/fast-path.md).

``hostvars | municloud_converge_inputs(groups)``: a SHA-256 over

* the code the roles run: every file under ``roles/``, ``playbooks/``, ``modules/`` and
  ``plugins/`` of this checkout, and the ``municloud`` package the filters import;
* the groups, and every host's variables as Ansible resolved them (inventory, group and host
  variables, ``-e``, vault values decrypted, lookups done), less the few that say how this run
  was started rather than what it deploys (check mode, diff, verbosity, forks, tags, paths).
  A variable this run cannot resolve (a vault value and no password: a run of hosts that do not
  need it; a template naming what is not defined) counts as written, and fails nothing here.

site.yml's first play computes it once for the whole run, before any role sets a fact. A role
whose record on a host (modules/library/municloud_converged.py) holds the same fingerprint, and
whose probes there are unchanged, is skipped on that host; anything else runs the role in full.
A change to any host's variables runs every role in full everywhere: deliberately coarse (the
firewall of one host depends on every other host's addresses), and right whatever a role reads.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

try:
    import municloud
except ImportError:  # a checkout used with an Ansible that lacks the package: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import municloud

CHECKOUT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("roles", "playbooks", "modules", "plugins")

# Variables that describe how this run was started, not what it deploys. Anything not named here
# is in the fingerprint: an unknown variable costs a full run, never a skipped change.
HOW_RUN = frozenset({
    "ansible_check_mode", "ansible_diff_mode", "ansible_verbosity", "ansible_forks",
    "ansible_run_tags", "ansible_skip_tags", "ansible_limit", "ansible_config_file",
    "ansible_inventory_sources", "ansible_playbook_python", "ansible_facts", "inventory_dir",
    "inventory_file", "playbook_dir", "groups", "omit",
})


def _code_digest() -> str:
    h = hashlib.sha256()
    roots = [CHECKOUT / d for d in CODE_DIRS] + [Path(municloud.__file__).resolve().parent]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(root.parent)).encode() + b"\0")
                h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _unresolved(value: Any) -> Any:
    """A variable as written, for one this run cannot resolve: a vault value without the
    password (its ciphertext), a template naming what is not defined (its text)."""
    if hasattr(value, "_ciphertext"):  # ansible-core's EncryptedString
        return "vault " + str(value._ciphertext)
    if isinstance(value, dict):
        return {str(k): _unresolved(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_unresolved(v) for v in value]
    return value


def _resolved(hostvars: Any, host: str) -> dict[str, Any]:
    """The host's variables, each as JSON text (or its unresolved form)."""
    variables = hostvars[host]
    raw_get = getattr(hostvars, "raw_get", None)
    out = {}
    for key in sorted(variables.keys()):
        if key in HOW_RUN:
            continue
        try:  # serialised here: a vault value is decrypted only when read as text
            out[key] = json.dumps(variables[key], sort_keys=True, default=str)
        except Exception:  # whatever the template raised: count the unresolved form
            out[key] = ["unresolved", _unresolved(raw_get(host).get(key) if raw_get else None)]
    return out


def municloud_converge_inputs(hostvars: Any, groups: Any) -> str:
    h = hashlib.sha256(_code_digest().encode())
    h.update(json.dumps({g: list(m) for g, m in groups.items()}, sort_keys=True).encode())
    for host in sorted(groups.get("all", [])):
        resolved = _resolved(hostvars, host)
        h.update(json.dumps([host, resolved], sort_keys=True, default=str).encode())
    return h.hexdigest()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"municloud_converge_inputs": municloud_converge_inputs}
