"""The people of the lab's sanitised file transfer (無害化), lab only.

A real municipality names the staff who send files into its sanitiser's inbox
(``sanitiser_inbox_users``) and those who collect them from its LGWAN file drop
(``file_drop_readers``), with their own public keys, in its group_vars. The lab has no staff, so
`municloud lab up` makes one sender and one reader per municipality that has a sanitiser or a file
server, each with an SSH key in ``.lab/<lab>/sanitiser/<municipality code>/<name>`` (the private
half is what the acceptance tests put on the terminal the staff member works at), and names them
in the lab's ``group_vars/all/lab.yml``, keyed by municipality code.
"""

from __future__ import annotations

import json
from pathlib import Path

from municloud.inventory import Prefecture
from municloud.segments import HostRole

SENDER = "net-staff"  # works at an internet-segment terminal, sends into the inbox
READER = "lgwan-staff"  # works at an LGWAN terminal, collects from the drop


def key_path(state: Path, code: str, name: str) -> Path:
    """Where the lab keeps ``name``'s private key (``.pub`` beside it)."""
    return state / "sanitiser" / code / name


def _keypair(path: Path, comment: str) -> str:
    """Make an ed25519 key (OpenSSH format) once; its public line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = path.with_name(path.name + ".pub")
    if path.is_file() and public.is_file():
        return public.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()
    public.write_text(f"{line} {comment}\n")
    return f"{line} {comment}"


def prepare(prefecture: Prefecture, state: Path) -> str:
    """Make the lab's senders' and readers' keys (once); the lines it adds to the lab's vars."""
    senders: dict[str, list[dict[str, str]]] = {}
    readers: dict[str, list[dict[str, str]]] = {}
    for town in prefecture.municipalities:
        roles = {h.role for h in town.hosts}
        for role, name, table in ((HostRole.SANITISER, SENDER, senders),
                                  (HostRole.FILE_SERVER, READER, readers)):
            if role in roles:
                key = _keypair(key_path(state, town.code, name),
                               f"{name}@{town.group}.lab")
                table[town.code] = [{"name": name, "key": key}]
    if not senders and not readers:
        return ""
    pick = ("\"{{{{ {table}[municloud_municipality.code] | default([]) "
            "if municloud_municipality is defined else [] }}}}\"")
    return (
        "# The sanitiser's senders and the file drops' readers, one each per municipality, with\n"
        "# keys made for this lab by `municloud lab up` (municloud/lab/sanitiser.py); a real\n"
        "# municipality names its staff and their keys in its own group_vars.\n"
        f"municloud_lab_sanitiser_keys: {state / 'sanitiser'}\n"
        f"municloud_lab_inbox_users: {json.dumps(senders, sort_keys=True)}\n"
        f"municloud_lab_drop_readers: {json.dumps(readers, sort_keys=True)}\n"
        f"sanitiser_inbox_users: {pick.format(table='municloud_lab_inbox_users')}\n"
        f"file_drop_readers: {pick.format(table='municloud_lab_drop_readers')}\n"
    )
