#!/usr/bin/python
"""Load an nftables ruleset file with "commit confirmed", the way network operating systems do."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: municloud_nft
short_description: Load an nftables ruleset that rolls itself back unless confirmed
description:
  - With O(state=loaded), loads O(path) with C(nft -f) when it is not what is in force (the file
    changed, or the table in force was changed by hand), after saving the table in force.
    With O(confirm_within) above zero, a systemd timer restores the saved table (and
    O(restore_file) over O(path)) after that many seconds unless the load is confirmed.
  - With O(state=confirmed), stops that timer. Run it over a new connection after the load: if the
    new ruleset cut the controller off, the confirmation never arrives and the host restores the
    previous ruleset by itself. If the timer already fired, it fails and says when.
  - A load that C(nft) refuses changes nothing in force; the module restores O(restore_file) over
    O(path) and fails with nft's own message.
  - The table is compared with C(nft -s list table), so counters do not count as changes.
version_added: "0.1.0"
author: municloud
options:
  path:
    description: The ruleset file to load (it manages O(table) only).
    type: path
    default: /etc/nftables.conf
  table:
    description: The table the file writes, as C(family name).
    type: str
    default: inet municloud
  state:
    description: V(loaded) loads the file if needed; V(confirmed) confirms the last load.
    type: str
    choices: [loaded, confirmed]
    default: loaded
  confirm_within:
    description: Seconds before an unconfirmed load is rolled back; 0 loads without a rollback.
    type: int
    default: 0
  restore_file:
    description: A copy of the previous O(path) (e.g. the template's backup) to put back on a
      rollback or a failed load.
    type: path
  state_dir:
    description: Where the saved table, the rollback script and the load stamp are kept.
    type: path
    default: /var/lib/municloud/nft
notes:
  - Needs systemd (C(systemd-run)) for the rollback timer, and nft.
  - Supports check mode and diff (the table in force against the file).
"""

EXAMPLES = r"""
- name: Load the ruleset, to be rolled back in 60 s unless confirmed
  municloud_nft:
    path: /etc/nftables.conf
    confirm_within: 60
    restore_file: "{{ written.backup_file | default(omit) }}"

- name: Forget the connection, so the confirmation must come over a new one
  ansible.builtin.meta: reset_connection

- name: Confirm
  municloud_nft:
    state: confirmed
"""

RETURN = r"""
loaded:
  description: Whether the file was loaded (or would be, in check mode).
  returned: state=loaded
  type: bool
reason:
  description: Why it was loaded, e.g. "the file changed" or "the table in force was changed".
  returned: state=loaded and changed
  type: str
rollback_in:
  description: Seconds until the rollback unless confirmed.
  returned: state=loaded and changed
  type: int
rolled_back_at:
  description: When the host restored the previous ruleset (a failed confirmation).
  returned: failure of state=confirmed
  type: str
"""

import fcntl
import hashlib
import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

UNIT = "municloud-nft-rollback"

ROLLBACK_SCRIPT = """#!/bin/sh
# Written by the municloud_nft module: restores the ruleset that was in force before the last
# load, because that load was not confirmed in time (the controller could not reach this host
# over a new connection). See roles/firewall/README.md.
set -u
cd "$(dirname "$0")"
# The confirmation takes the same lock: whichever comes first wins, the other does nothing.
exec 9>lock
flock 9
[ -f pending ] || exit 0
nft -f previous.nft
if [ -f previous.conf.path ]; then
  cp "$(cat previous.conf.path)" "$(cat target.path)"
fi
date --iso-8601=seconds > rolled-back
rm -f pending
logger -t municloud-nft "load not confirmed in time: previous ruleset restored"
"""


def _digest(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write(path, text, mode=0o600):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def in_force(module, table):
    """The table in force, without counters ("" when there is none)."""
    rc, out, _ = module.run_command(["nft", "-s", "list", "table", *table.split()])
    return out if rc == 0 else ""


def stop_timer(module):
    module.run_command(["systemctl", "stop", f"{UNIT}.timer"])
    module.run_command(["systemctl", "reset-failed", f"{UNIT}.service", f"{UNIT}.timer"])


def load(module, p):
    state_dir = p["state_dir"]
    content = _read(p["path"])
    if content is None:
        module.fail_json(msg=f"{p['path']} does not exist: write the ruleset first")
    current = in_force(module, p["table"])
    stamp = json.loads(_read(os.path.join(state_dir, "loaded.json")) or "{}")
    pending = os.path.exists(os.path.join(state_dir, "pending"))
    in_step = stamp.get("file") == _digest(content) and stamp.get("listing") == _digest(current)
    if in_step and not pending:
        # A rollback the last run reported is over: what is in force is what was confirmed.
        rolled = os.path.join(state_dir, "rolled-back")
        if os.path.exists(rolled) and not module.check_mode:
            os.remove(rolled)
        module.exit_json(changed=False, loaded=False)
    reason = (
        "the file changed"
        if stamp.get("file") != _digest(content)
        else "an earlier load was not confirmed"
        if pending
        else "the table in force was changed"
    )
    result = {"changed": True, "loaded": True, "reason": reason}
    if module._diff:
        result["diff"] = {
            "before": current,
            "after": content,
            "before_header": f"nft list table {p['table']} (in force)",
            "after_header": p["path"],
        }
    if module.check_mode:
        module.exit_json(**result)

    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    table = p["table"]
    previous = f"table {table} {{}}\ndelete table {table}\n" + current
    _write(os.path.join(state_dir, "previous.nft"), previous)
    _write(os.path.join(state_dir, "target.path"), p["path"])
    conf_path = os.path.join(state_dir, "previous.conf.path")
    if p["restore_file"]:
        _write(conf_path, p["restore_file"])
    elif os.path.exists(conf_path):
        os.remove(conf_path)
    _write(os.path.join(state_dir, "rollback"), ROLLBACK_SCRIPT, 0o700)
    for marker in ("pending", "rolled-back"):
        if os.path.exists(os.path.join(state_dir, marker)):
            os.remove(os.path.join(state_dir, marker))
    stop_timer(module)

    seconds = p["confirm_within"]
    if seconds > 0:
        # Pending before the timer starts, so that a rollback always finds it to remove.
        _write(os.path.join(state_dir, "pending"), _digest(content))
        rc, _, err = module.run_command(
            [
                "systemd-run",
                f"--unit={UNIT}",
                f"--on-active={seconds}s",
                "--timer-property=AccuracySec=1s",
                "--description",
                "municloud: restore the previous nftables ruleset unless the load is confirmed",
                "/bin/sh",
                os.path.join(state_dir, "rollback"),
            ]
        )
        if rc != 0:
            module.fail_json(
                msg=f"could not schedule the rollback with systemd-run: {err}; nothing was loaded"
            )
    rc, _, err = module.run_command(["nft", "-f", p["path"]])
    if rc != 0:
        stop_timer(module)
        for marker in ("pending",):
            if os.path.exists(os.path.join(state_dir, marker)):
                os.remove(os.path.join(state_dir, marker))
        restored = ""
        if p["restore_file"] and os.path.exists(p["restore_file"]):
            shutil.copyfile(p["restore_file"], p["path"])
            restored = f"; {p['path']} was restored from {p['restore_file']}"
        module.fail_json(
            msg=f"nft refused {p['path']}; the ruleset in force is unchanged"
            f"{restored}. nft said: {err.strip()}",
            stderr=err,
        )
    after = in_force(module, p["table"])
    stamp = {"file": _digest(content), "listing": _digest(after)}
    if seconds > 0:
        _write(os.path.join(state_dir, "candidate.json"), json.dumps(stamp))
        result["rollback_in"] = seconds
    else:
        _write(os.path.join(state_dir, "loaded.json"), json.dumps(stamp))
    module.exit_json(**result)


def confirm(module, p):
    state_dir = p["state_dir"]
    pending = os.path.join(state_dir, "pending")
    rolled = os.path.join(state_dir, "rolled-back")
    if not os.path.exists(pending):
        if os.path.exists(rolled):
            when = (_read(rolled) or "").strip()
            module.fail_json(
                msg=f"the last load was not confirmed in time: this host restored the previous "
                f"ruleset by itself at {when}",
                rolled_back_at=when,
            )
        module.exit_json(changed=False)
    if module.check_mode:
        module.exit_json(changed=True)
    # The rollback script takes this lock too: if it is already restoring, confirming waits and
    # then finds it done; if confirming comes first, the script finds nothing pending.
    with open(os.path.join(state_dir, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(rolled) or not os.path.exists(pending):
            when = (_read(rolled) or "").strip()
            module.fail_json(
                msg=f"too late: this host restored the previous ruleset at {when}",
                rolled_back_at=when,
            )
        os.remove(pending)
        stop_timer(module)
        os.replace(
            os.path.join(state_dir, "candidate.json"), os.path.join(state_dir, "loaded.json")
        )
    # The previous file is no longer needed where the template left its backup: keep one copy
    # here, for a person who wants to see what was replaced.
    conf_path = os.path.join(state_dir, "previous.conf.path")
    backup = _read(conf_path)
    if backup and os.path.exists(backup):
        shutil.move(backup, os.path.join(state_dir, "previous.conf"))
    if os.path.exists(conf_path):
        os.remove(conf_path)
    module.exit_json(changed=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "/etc/nftables.conf"},
            "table": {"type": "str", "default": "inet municloud"},
            "state": {"type": "str", "choices": ["loaded", "confirmed"], "default": "loaded"},
            "confirm_within": {"type": "int", "default": 0},
            "restore_file": {"type": "path"},
            "state_dir": {"type": "path", "default": "/var/lib/municloud/nft"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["confirm_within"] < 0:
        module.fail_json(msg="confirm_within is a number of seconds, 0 or more")
    if p["state"] == "loaded":
        load(module, p)
    else:
        confirm(module, p)


if __name__ == "__main__":
    main()
