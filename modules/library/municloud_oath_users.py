#!/usr/bin/python
"""The TOTP users file of pam_oath, and each user's first password, from an enrolment."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: municloud_oath_users
short_description: Keep pam_oath's users file and first passwords in step with an enrolment
description:
  - Writes the users file of pam_oath (libpam-oath) so that it lists exactly O(users), each
    with its TOTP secret (given in base32, as `municloud mfa enrol` stores it; written as hex, as
    liboath reads it).
  - pam_oath records in that file, per user, the last code used (so that no code is accepted
    twice). Those fields are kept for every user whose secret did not change: a second run, or
    a run after logins, changes nothing. A new or rotated secret starts with no such record.
  - Sets a user's password to the enrolment's first password (C(chpasswd), from standard input)
    when that user's enrolment is new or newer than the one last applied, and only then: a
    password the user has since changed is left alone.
  - Takes liboath's own lock (C(<path>.lock), created exclusively and removed after) while it
    reads and writes the file, and writes it whole (a new file, then a rename), root-only (0600,
    in a 0700 directory).
  - Never returns a secret or a password; the diff names users and enrolment times only.
author: municloud
options:
  path:
    description: The users file pam_oath reads (its O(path) argument C(usersfile=)).
    type: path
    required: true
  users:
    description: Every user who may log in with a code.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The login name.
        type: str
        required: true
      secret:
        description: The TOTP secret, base32.
        type: str
        required: true
        no_log: true
      password:
        description: The first password, set when O(users[].enrolled) is new for this user.
        type: str
        required: true
        no_log: true
      enrolled:
        description: When the user was (re-)enrolled; a change sets the first password again.
        type: str
        required: true
  digits:
    description: Digits of a code.
    type: int
    default: 6
  period:
    description: Seconds a code is valid for (the TOTP time step).
    type: int
    default: 30
notes:
  - Supports check mode and diff.
"""

EXAMPLES = r"""
- name: Keep the users file in step with the enrolment
  municloud_oath_users:
    path: /etc/security/municloud-oath/users.oath
    users:
      - name: sato.hanako
        secret: "{{ mfa_enrolment['sato.hanako'].totp_secret }}"
        password: "{{ mfa_enrolment['sato.hanako'].password }}"
        enrolled: "{{ mfa_enrolment['sato.hanako'].enrolled }}"
"""

RETURN = r"""
added:
  description: Users given a secret for the first time.
  returned: always
  type: list
rotated:
  description: Users whose secret changed.
  returned: always
  type: list
removed:
  description: Users no longer in the file.
  returned: always
  type: list
passwords_set:
  description: Users whose first password was set (a new enrolment).
  returned: always
  type: list
"""

import base64
import binascii
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule


def _hex_secret(module, user):
    text = user["secret"].strip().replace(" ", "").upper()
    try:
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        module.fail_json(msg=f"the TOTP secret of {user['name']} is not base32: re-enrol them "
                         "(municloud mfa enrol)")
    if len(raw) < 10:
        module.fail_json(msg=f"the TOTP secret of {user['name']} is {len(raw) * 8} bits; at "
                         "least 80 are needed: re-enrol them (municloud mfa enrol)")
    return raw.hex()


def _parse(text):
    """user -> (the identifying fields, the whole line) of an existing users file."""
    entries = {}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 4 or line.lstrip().startswith("#"):
            continue
        entries[fields[1]] = (tuple(fields[:4]), line)
    return entries


def _take_lock(module, lock_path, seconds=15.0):
    """liboath's lock on the users file, taken the way it takes it when it records a login (as
    Debian 12 patches it): by creating "<usersfile>.lock" exclusively, and removing it after.
    A lock file left behind makes pam_oath refuse every code (OATH_FILE_LOCK_ERROR), so this
    one is always removed (see the caller)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            if time.monotonic() > deadline:
                module.fail_json(msg=f"{lock_path} has existed for {seconds:.0f} s: a login is "
                                 "stuck recording its code, or the file was left behind; if no "
                                 "login is under way, remove it (pam_oath refuses every code "
                                 "while it exists)")
            time.sleep(0.1)


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "secret": {"type": "str", "required": True, "no_log": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                    "enrolled": {"type": "str", "required": True},
                },
            },
            "digits": {"type": "int", "default": 6},
            "period": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    directory = os.path.dirname(path)
    record_path = os.path.join(directory, "enrolled.json")
    kind = f"HOTP/T{p['period']}/{p['digits']}"
    names = [u["name"] for u in p["users"]]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        module.fail_json(msg=f"a user is listed twice: {twice}")

    if not module.check_mode:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    dir_changed = os.path.isdir(directory) and (os.stat(directory).st_mode & 0o777) != 0o700
    if dir_changed and not module.check_mode:
        os.chmod(directory, 0o700)

    lock = None
    if os.path.isdir(directory) and not module.check_mode:
        lock = _take_lock(module, f"{path}.lock")
    try:
        before_text = _read(path)
        existing = _parse(before_text)
        record = json.loads(_read(record_path) or "{}")
        lines, added, rotated, passwords = [], [], [], []
        for user in p["users"]:
            wanted = (kind, user["name"], "-", _hex_secret(module, user))
            old = existing.get(user["name"])
            if old and old[0] == wanted:
                lines.append(old[1])
            else:
                lines.append("\t".join(wanted))
                (rotated if old else added).append(user["name"])
            if record.get(user["name"]) != user["enrolled"]:
                passwords.append(user["name"])
        removed = sorted(set(existing) - set(names))
        header = ("# pam_oath users file, written by municloud (roles/mfa) from the enrolment; "
                  "pam_oath adds the last code used to each line.\n")
        after_text = header + "".join(f"{line}\n" for line in lines)
        mode_changed = before_text is not None and (os.stat(path).st_mode & 0o777) != 0o600
        changed = bool(added or rotated or removed or passwords or mode_changed or dir_changed
                       or before_text is None)
        if before_text is not None and not (added or rotated or removed):
            after_text = before_text  # unchanged users: keep the file as pam_oath left it

        result = {"changed": changed, "added": added, "rotated": rotated, "removed": removed,
                  "passwords_set": passwords}
        if module._diff:
            def describe(users):
                return "".join(f"{n} (enrolled {record.get(n, '-')})\n" for n in users)
            result["diff"] = {
                "before": describe(sorted(existing)),
                "after": "".join(
                    f"{u['name']} (enrolled {u['enrolled']}"
                    f"{', new secret' if u['name'] in added + rotated else ''}"
                    f"{', first password set' if u['name'] in passwords else ''})\n"
                    for u in sorted(p["users"], key=lambda u: u["name"])),
                "before_header": f"{path} (users; secrets not shown)",
                "after_header": f"{path} (users; secrets not shown)",
            }
        if module.check_mode or not changed:
            module.exit_json(**result)

        if after_text != before_text or mode_changed:
            tmp = f"{path}.municloud-new"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(after_text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        for name in passwords:
            user = next(u for u in p["users"] if u["name"] == name)
            rc, _, err = module.run_command(["chpasswd"], data=f"{name}:{user['password']}",
                                            binary_data=False)
            if rc != 0:
                module.fail_json(msg=f"chpasswd could not set the first password of {name}: "
                                 f"{err.strip()}", **result)
            record[name] = user["enrolled"]
        for name in list(record):
            if name not in names:
                del record[name]
        tmp = f"{record_path}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
        os.replace(tmp, record_path)
        module.exit_json(**result)
    finally:
        if lock is not None:
            os.close(lock)
            os.remove(f"{path}.lock")


if __name__ == "__main__":
    main()
