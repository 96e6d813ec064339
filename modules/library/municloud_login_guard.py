#!/usr/bin/python
"""Guard changes to how a host is logged in to (sshd, PAM, keys): restored unless confirmed."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: municloud_login_guard
short_description: Restore login files by the host itself unless a new login confirms the change
description:
  - With O(state=armed), saves the current content (or absence), mode and owner of every file in
    O(paths), and starts a systemd timer that, after O(confirm_within) seconds, puts them all
    back and runs O(restore_command) (e.g. reloads sshd). Arm before changing those files.
  - With O(state=confirmed), stops the timer and forgets the saved files. Run it over a new
    connection after the change (C(meta: reset_connection) first): if the change locked the
    controller out, the confirmation never arrives and the host restores the files by itself.
    If the timer has already fired, it fails and says when.
  - Arming and confirming change no configuration, so they report C(changed=false); a run that
    changes nothing else stays a run that changes nothing.
  - If an earlier arming was never confirmed (the run died in between), arming again keeps the
    files saved then, which are the last ones known to let the controller in.
version_added: "0.1.0"
author: municloud
options:
  name:
    description: A name for this guard (one timer and one state directory per name).
    type: str
    required: true
  state:
    description: V(armed) saves the files and starts the timer; V(confirmed) stops it.
    type: str
    choices: [armed, confirmed]
    default: armed
  paths:
    description: The files to save and restore (with O(state=armed)).
    type: list
    elements: path
    default: []
  confirm_within:
    description: Seconds before the host restores the files unless confirmed.
    type: int
    default: 90
  restore_command:
    description: A shell command run after the files are restored (e.g. C(systemctl reload ssh)).
    type: str
  state_dir:
    description: Where the saved files and the restore script are kept, one directory per name.
    type: path
    default: /var/lib/municloud/login-guard
notes:
  - Needs systemd (C(systemd-run)) for the timer.
  - In check mode nothing is saved and no timer starts.
"""

EXAMPLES = r"""
- name: Save the sshd configuration, to be restored in 90 s unless confirmed
  municloud_login_guard:
    name: baseline
    paths: [/etc/ssh/sshd_config]
    restore_command: systemctl reload ssh

- name: Forget the connection, so the confirmation must come over a new one
  ansible.builtin.meta: reset_connection

- name: Confirm
  municloud_login_guard:
    name: baseline
    state: confirmed
"""

RETURN = r"""
restore_in:
  description: Seconds until the host restores the files unless confirmed.
  returned: state=armed
  type: int
restored_at:
  description: When the host restored the files (a confirmation that came too late).
  returned: failure of state=confirmed
  type: str
"""

import fcntl
import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule

RESTORE_SCRIPT = """#!/bin/sh
# Written by the municloud_login_guard module: puts back the login files saved before a change,
# because no new login confirmed that change in time (it may have locked the controller out).
set -u
cd "$(dirname "$0")"
# The confirmation takes the same lock: whichever comes first wins, the other does nothing.
exec 9>lock
flock 9
[ -f pending ] || exit 0
python3 - <<'EOF'
import json, os, shutil
for entry in json.load(open("saved.json")):
    path = entry["path"]
    if entry["saved"] is None:
        if os.path.lexists(path):
            os.remove(path)
        continue
    tmp = path + ".municloud-restore"
    shutil.copyfile(entry["saved"], tmp)
    os.chown(tmp, entry["uid"], entry["gid"])
    os.chmod(tmp, entry["mode"])
    os.replace(tmp, path)
EOF
if [ -s restore_command ]; then
  sh restore_command
fi
date --iso-8601=seconds > restored
rm -f pending
logger -t municloud-login-guard "change not confirmed in time: login files restored"
"""


def _unit(name):
    return f"municloud-login-guard-{name}"


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


def _stop_timer(module, name):
    module.run_command(["systemctl", "stop", f"{_unit(name)}.timer"])
    module.run_command(
        ["systemctl", "reset-failed", f"{_unit(name)}.service", f"{_unit(name)}.timer"]
    )


def arm(module, p, state_dir):
    seconds = p["confirm_within"]
    if module.check_mode:
        module.exit_json(changed=False, restore_in=seconds)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    pending = os.path.join(state_dir, "pending")
    kept = os.path.exists(pending)
    _stop_timer(module, p["name"])
    if not kept:
        files_dir = os.path.join(state_dir, "files")
        shutil.rmtree(files_dir, ignore_errors=True)
        os.makedirs(files_dir, mode=0o700)
        saved = []
        for i, path in enumerate(p["paths"]):
            if not os.path.isabs(path):
                continue  # e.g. "~user/..." of an account that does not exist yet: nothing to save
            if not os.path.lexists(path):
                saved.append({"path": path, "saved": None})
                continue
            copy = os.path.join(files_dir, str(i))
            shutil.copyfile(path, copy)
            os.chmod(copy, 0o600)
            st = os.stat(path)
            saved.append({"path": path, "saved": copy, "mode": st.st_mode & 0o7777,
                          "uid": st.st_uid, "gid": st.st_gid})
        _write(os.path.join(state_dir, "saved.json"), json.dumps(saved, indent=1))
        _write(os.path.join(state_dir, "restore_command"), p["restore_command"] or "")
        _write(os.path.join(state_dir, "restore"), RESTORE_SCRIPT, 0o700)
        restored = os.path.join(state_dir, "restored")
        if os.path.exists(restored):
            os.remove(restored)
        # Pending before the timer starts, so that a restore always finds it.
        _write(pending, "")
    rc, _, err = module.run_command(
        ["systemd-run", f"--unit={_unit(p['name'])}", f"--on-active={seconds}s",
         "--timer-property=AccuracySec=1s", "--description",
         "municloud: restore the login files unless the change is confirmed by a new login",
         "/bin/sh", os.path.join(state_dir, "restore")]
    )
    if rc != 0:
        os.remove(pending)
        module.fail_json(msg=f"could not start the restore timer with systemd-run: {err.strip()}; "
                         "nothing was changed")
    result = {"changed": False, "restore_in": seconds}
    if kept:
        result["warnings"] = [
            f"an earlier change guarded by {p['name']!r} was never confirmed; the files saved "
            "before it are kept, and restored unless this run confirms"]
    module.exit_json(**result)


def confirm(module, p, state_dir):
    pending = os.path.join(state_dir, "pending")
    restored = os.path.join(state_dir, "restored")
    if not os.path.exists(pending):
        if os.path.exists(restored):
            when = (_read(restored) or "").strip()
            module.fail_json(msg=f"the change was not confirmed in time: this host put the saved "
                             f"login files back by itself at {when}", restored_at=when)
        module.exit_json(changed=False)
    if module.check_mode:
        module.exit_json(changed=False)
    with open(os.path.join(state_dir, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(restored) or not os.path.exists(pending):
            when = (_read(restored) or "").strip()
            module.fail_json(msg=f"too late: this host put the saved login files back at {when}",
                             restored_at=when)
        os.remove(pending)
        _stop_timer(module, p["name"])
    shutil.rmtree(os.path.join(state_dir, "files"), ignore_errors=True)
    module.exit_json(changed=False)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["armed", "confirmed"], "default": "armed"},
            "paths": {"type": "list", "elements": "path", "default": []},
            "confirm_within": {"type": "int", "default": 90},
            "restore_command": {"type": "str"},
            "state_dir": {"type": "path", "default": "/var/lib/municloud/login-guard"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not p["name"].replace("-", "").replace("_", "").isalnum():
        module.fail_json(msg=f"name {p['name']!r}: letters, digits, - and _ only")
    if p["confirm_within"] <= 0:
        module.fail_json(msg="confirm_within is a number of seconds, above 0")
    state_dir = os.path.join(p["state_dir"], p["name"])
    if p["state"] == "armed":
        arm(module, p, state_dir)
    else:
        confirm(module, p, state_dir)


if __name__ == "__main__":
    main()

