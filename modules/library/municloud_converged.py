#!/usr/bin/python
"""The fast path of a role's rerun: is the host still as the role's last full run left it?"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: municloud_converged
short_description: Tell whether a host is still as a role's last full run left it
description:
  - A role's idempotent rerun costs the controller about 0.07 s per task and host even when
    nothing changes (benchmarks/converge.figures.md). This module lets a role skip its tasks on a
    host where nothing it manages can have changed, and run them in full everywhere else.
  - With O(state=stamped), at the end of a successful full run of the role, it records on the host
    the run's O(inputs) (the controller's fingerprint of the code and of every host's variables)
    and a digest of each probe: each file's type, owner, mode and content; each unit's
    ActiveState and UnitFileState; each package's dpkg status; each command's exit status and
    output.
  - With O(state=checked), at the start of the role, it compares the same probes and the inputs
    with that record. C(converged) is true only when all are equal; otherwise C(differences)
    says what differs, and (outside check mode) the record is removed, so that the record never
    outlives a full run that did not finish.
  - Never reports a change: the record is the automation's own bookkeeping, not the host's
    configuration. Read-only in check mode.
version_added: "0.1.0"
author: municloud
options:
  role:
    description: The role whose record this is (one record per role and host).
    type: str
    required: true
  inputs:
    description: The fingerprint of what the role is run with; any change makes the run a full one.
    type: str
    required: true
  probes:
    description: What the role manages on the host. Keys V(files) (paths; C(~user) expands),
      V(services) (systemd units), V(packages) (Debian packages) and V(commands) (command lines,
      run without a shell, whose exit status and output are compared).
    type: dict
    required: true
  state:
    description: V(checked) compares with the record; V(stamped) writes it.
    type: str
    choices: [checked, stamped]
    default: checked
  stamp_dir:
    description: Where the records are kept, one C(<role>.json) each, readable by root only.
    type: path
    default: /var/lib/municloud/converged
notes:
  - A probe must cover everything the role manages that a person could change on the host;
    what no probe covers is not put back by a rerun until the inputs change. Each role lists its
    probes in its C(vars/main.yml) (C(__<role>_probes)).
"""

EXAMPLES = r"""
- name: Ask the host whether it is as this role left it, with the same inputs
  municloud_converged:
    role: baseline
    inputs: "{{ municloud_converge_inputs }}"
    probes:
      files: [/etc/ssh/sshd_config, ~municloud/.ssh/authorized_keys]
      services: [ssh.service]
      packages: [openssh-server]
      commands: [hostname]
  register: __baseline_converged
"""

RETURN = r"""
converged:
  description: Whether the inputs and every probe are as the record says (state=checked).
  returned: always
  type: bool
differences:
  description: What differs from the record, e.g. "no record yet" or "file /etc/timezone".
  returned: always
  type: list
  elements: str
"""

import hashlib
import json
import os
import shlex
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

PROBE_KINDS = ("files", "services", "packages", "commands")


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _file(path):
    real = os.path.expanduser(path)
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return "absent"
    head = f"{st.st_mode:o} {st.st_uid}:{st.st_gid}"
    if stat.S_ISLNK(st.st_mode):
        return head + " -> " + os.readlink(real)
    if stat.S_ISREG(st.st_mode):
        with open(real, "rb") as f:
            return head + " " + _sha(f.read())
    return head


def _run(module, argv):
    # Not module.run_command: its select loop gives up on a command's output when a 1 s select
    # times out and the command exits before the next poll (ansible/ansible#51393, still so in
    # ansible-core 2.19). On a loaded host that turns an unchanged probe into an empty one, a
    # false difference and a needless full run; it failed this module's unit test once on CI.
    # communicate() reads both pipes to their end.
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              env={**os.environ, "LC_ALL": "C"}, check=False)
    except OSError as e:
        module.fail_json(msg=f"probe {' '.join(argv)}: {e}")
    return done.returncode, done.stdout, done.stderr


def _services(module, units):
    if not units:
        return {}
    rc, out, err = _run(module, ["systemctl", "show", "--property=Id,ActiveState,UnitFileState",
                                 "--", *units])
    if rc != 0:
        module.fail_json(msg=f"systemctl show failed: {err.strip()}")
    # One block per unit, in the order asked, separated by blank lines.
    blocks = out.strip().split("\n\n")
    if len(blocks) != len(units):
        module.fail_json(msg=f"systemctl show gave {len(blocks)} answers for units {units}")
    found = {}
    for unit, block in zip(units, blocks, strict=True):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        found[unit] = f"{props.get('ActiveState', '?')} {props.get('UnitFileState', '?')}"
    return found


def _packages(module, names):
    found = {}
    for name in names:
        rc, out, _ = _run(module, ["dpkg-query", "-W", "-f=${Status}", name])
        found[name] = out.strip() if rc == 0 else "absent"
    return found


def _commands(module, lines):
    found = {}
    for line in lines:
        rc, out, _ = _run(module, shlex.split(line))
        found[line] = f"{rc} {_sha(out.encode())}"
    return found


def digests(module, probes):
    """Each probe's digest, under "<kind> <name>"."""
    unknown = set(probes) - set(PROBE_KINDS)
    if unknown:
        module.fail_json(
            msg=f"probes: unknown kind(s) {', '.join(sorted(unknown))}; use "
            f"{', '.join(PROBE_KINDS)}")
    out = {}
    for path in probes.get("files") or []:
        out["file " + path] = _file(path)
    for unit, d in _services(module, list(probes.get("services") or [])).items():
        out["service " + unit] = d
    for name, d in _packages(module, probes.get("packages") or []).items():
        out["package " + name] = d
    for line, d in _commands(module, probes.get("commands") or []).items():
        out["command " + line] = d
    return out


def compare(record, inputs, now):
    """What differs between the record and the host now (empty: converged)."""
    if record is None:
        return ["no record of a full run yet"]
    differences = []
    if record.get("inputs") != inputs:
        differences.append("the inputs (the code or a host's variables) changed")
    was = record.get("probes", {})
    for key in sorted(set(was) | set(now)):
        if was.get(key) != now.get(key):
            differences.append(key)
    return differences


def main():
    module = AnsibleModule(
        argument_spec=dict(
            role=dict(type="str", required=True),
            inputs=dict(type="str", required=True, no_log=False),
            probes=dict(type="dict", required=True),
            state=dict(type="str", choices=["checked", "stamped"], default="checked"),
            stamp_dir=dict(type="path", default="/var/lib/municloud/converged"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not p["inputs"]:
        module.fail_json(
            msg="inputs is empty: pass the run's fingerprint (municloud_converge_inputs)")
    record_path = os.path.join(p["stamp_dir"], p["role"] + ".json")
    now = digests(module, p["probes"])

    if p["state"] == "stamped":
        if not module.check_mode:
            os.makedirs(p["stamp_dir"], mode=0o700, exist_ok=True)
            tmp = record_path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"inputs": p["inputs"], "probes": now}, f, indent=1, sort_keys=True)
            os.replace(tmp, record_path)
        module.exit_json(changed=False, converged=True, differences=[])

    try:
        with open(record_path) as f:
            record = json.load(f)
    except FileNotFoundError:
        record = None
    except ValueError:
        record = {}
    differences = compare(record, p["inputs"], now)
    if differences and record is not None and not module.check_mode:
        os.unlink(record_path)
    module.exit_json(changed=False, converged=not differences, differences=differences)


if __name__ == "__main__":
    main()
