"""``municloud mfa enrol``: give a member of staff a TOTP secret and a first password.

Human logins on the individual-number segment's hosts (個人番号利用事務系) need the account's
password and a time-based one-time code (roles/mfa, libpam-oath). The staff of each municipality
are listed in its group's ``mfa_users`` (any other group may carry the list too). Enrolling one:

* makes a TOTP secret (base32, 160 bits) and a first password;
* writes both, vault-encrypted value by value (as ``ansible-vault encrypt_string`` does), into
  ``<inventory>/group_vars/<group>/mfa_enrolment.yml``, where the role reads them; the other
  users' entries in that file are kept byte for byte, and are never decrypted;
* writes the enrolment sheet ``<sheets>/<group>/<user>/`` (the otpauth URI, its QR code and a
  printable page), readable by its owner only, to hand to the user.

Re-enrolling a user rotates both the secret and the password. The group vars are read through
Ansible's own API (DataLoader, InventoryManager and the vars plugins, as the VariableManager
does), so ``group_vars/`` is honoured exactly as Ansible honours it; the vault password comes
from the places Ansible takes it from. Ansible, pyotp and segno are imported only when needed,
so other subcommands do not pay for them.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import os
import re
import secrets as _secrets
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import yaml

from municloud import inventory as _inventory

ENROLMENT_FILE = "mfa_enrolment.yml"
USERS_VAR = "mfa_users"
ENROLMENT_VAR = "mfa_enrolment"
DEFAULT_SHEETS = "mfa-sheets"
JST = timezone(timedelta(hours=9), "JST")  # Asia/Tokyo: no daylight saving time
LOGIN_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*$")
LOGIN_NAME_MAX = 32
# Letters and digits that cannot be misread on paper: no 0/O/o, 1/l/I.
PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
PASSWORD_LENGTH = 16
TOTP_DIGITS = 6
TOTP_INTERVAL = 30
HEADER = (
    "---\n"
    "# Written by `municloud mfa enrol`: each user's TOTP secret (base32) and first password for\n"
    "# roles/mfa. The secrets are vault-encrypted (ansible-vault); re-enrol a user to rotate\n"
    "# them (`municloud mfa enrol --inventory INV USER`). Do not edit by hand.\n"
)
# Names Ansible would read as group_vars of a group instead of the directory (find_vars_files).
_GROUP_VARS_FILE_SUFFIXES = ("", ".yml", ".yaml", ".json")


class MfaError(Exception):
    """A refusal: the message says what is wrong, where, and how to fix it."""


class VaultSecretLike(Protocol):
    """What Ansible's VaultSecret offers and this module needs."""

    @property
    def bytes(self) -> bytes: ...


@dataclass(frozen=True)
class Enrolment:
    """What one enrolment did; it holds no secret."""

    group: str
    user: str
    enrolled: str  # ISO 8601, Asia/Tokyo
    sheet: Path  # the directory of the enrolment sheet
    file: Path  # the vault-encrypted group_vars file


@dataclass(frozen=True)
class Secrets:
    """One user's decrypted enrolment (for the acceptance tests); repr shows no secret."""

    totp_secret: str = field(repr=False)
    password: str = field(repr=False)
    enrolled: str


@dataclass(frozen=True)
class _Group:
    name: str
    users: dict[str, str]  # login name -> comment
    hosts: int
    issuer: str  # the municipality's name_ja, else the group's name


# --- the vault password -------------------------------------------------------------------------


def _configured_password_file() -> str | None:
    """ansible.cfg's ``vault_password_file`` (or its environment variable), as Ansible reads it."""
    from ansible import constants as C  # type: ignore[import-untyped,unused-ignore]

    value = C.config.get_config_value("DEFAULT_VAULT_PASSWORD_FILE")
    return str(value) if value else None


def vault_secret(path: str | None, *, inventory: Path | None = None) -> VaultSecretLike:
    """The vault password: ``path``, else $ANSIBLE_VAULT_PASSWORD_FILE, else ansible.cfg's
    ``vault_password_file``. An executable file is run, as Ansible does (a script or a client).
    ``inventory`` only names the inventory in the error."""
    source = "--vault-password-file"
    if not path:
        path, source = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or None, "environment"
    if not path:
        path, source = _configured_password_file(), "ansible.cfg"
    if not path:
        raise MfaError(
            f"{inventory or 'this run'} has no vault password, and the enrolment's secrets are "
            "written vault-encrypted: pass --vault-password-file FILE or set "
            "ANSIBLE_VAULT_PASSWORD_FILE, or set "
            "vault_password_file in ansible.cfg's [defaults] (use the password the inventory's "
            "other vaulted values use; a new prefecture can make one with "
            "`openssl rand -base64 32 > FILE && chmod 600 FILE`)"
        )
    from ansible.errors import AnsibleError  # type: ignore[import-untyped,unused-ignore]
    from ansible.parsing.dataloader import DataLoader  # type: ignore[import-untyped,unused-ignore]
    from ansible.parsing.vault import get_file_vault_secret  # type: ignore[import-untyped,unused-ignore]

    try:
        secret = get_file_vault_secret(filename=path, loader=DataLoader())
        secret.load()
    except AnsibleError as exc:
        raise MfaError(
            f"cannot read the vault password from {path} (given by {source}): "
            f"{str(exc).splitlines()[0]}; fix the file (one line, the password; or an executable "
            "that prints it) or point to another"
        ) from exc
    if not secret.bytes:
        raise MfaError(f"the vault password from {path} (given by {source}) is empty")
    result: VaultSecretLike = secret
    return result


def _vault(secret: VaultSecretLike) -> Any:
    from ansible.parsing.vault import VaultLib  # type: ignore[import-untyped,unused-ignore]

    return VaultLib([("default", secret)])


# --- the inventory, through Ansible -------------------------------------------------------------


def _inventory_file(inventory: Path) -> Path:
    try:
        return _inventory.inventory_file(Path(inventory))
    except _inventory.InventoryError as exc:
        problem = exc.problems[0]
        raise MfaError(f"{problem.file}: {problem.message}; {problem.fix}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _groups(file: Path, secret: VaultSecretLike | None) -> dict[str, _Group]:
    """Every group of the inventory, with the ``mfa_users`` of its own vars (hosts.yml, then
    group_vars/, combined as Ansible combines them; inherited vars do not count)."""
    from ansible.inventory.manager import InventoryManager  # type: ignore[import-untyped,unused-ignore]
    from ansible.parsing.dataloader import DataLoader  # type: ignore[import-untyped,unused-ignore]
    from ansible.plugins.vars import host_group_vars  # type: ignore[import-untyped,unused-ignore]
    from ansible.utils.vars import combine_vars  # type: ignore[import-untyped,unused-ignore]
    from ansible.vars.plugins import get_vars_from_inventory_sources  # type: ignore[import-untyped,unused-ignore]

    # host_group_vars remembers, per process, which group_vars/ it found (or not): forget it, so
    # a second enrolment in one process (enrol_missing, the tests) sees directories made since.
    for cache in (getattr(host_group_vars, "FOUND", None), getattr(host_group_vars, "NAK", None)):
        if cache is not None:
            cache.clear()
    loader = DataLoader()
    if secret is not None:
        loader.set_vault_secrets([("default", secret)])
    manager = InventoryManager(loader=loader, sources=[str(file)])
    if not manager.hosts and set(manager.groups) <= {"all", "ungrouped"}:
        raise MfaError(
            f"Ansible read no hosts and no groups from {file}; run "
            f"`ansible-inventory -i {file} --graph` to see why, and fix the inventory"
        )
    groups: dict[str, _Group] = {}
    for name, group in sorted(manager.groups.items()):
        plugin_vars = get_vars_from_inventory_sources(loader, manager._sources, [group], "task")
        own = combine_vars(group.get_vars(), plugin_vars)
        where = f"the vars of group {name} in {file} (or its group_vars/{name})"
        listed = _plain(own.get(USERS_VAR))
        users: dict[str, str] = {}
        if listed is not None and not isinstance(listed, list):
            raise MfaError(
                f"{USERS_VAR} in {where} is not a list; write it as a list of "
                "{name: LOGIN, comment: FULL NAME (課)}"
            )
        for entry in listed or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise MfaError(
                    f"{USERS_VAR} in {where} has the entry {entry!r}, which has no name; write "
                    "each entry as {name: LOGIN, comment: FULL NAME (課)}"
                )
            users[entry["name"]] = str(entry.get("comment") or "")
        municipality = _plain(own.get("municloud_municipality"))
        issuer = name
        if isinstance(municipality, dict) and municipality.get("name_ja"):
            issuer = str(municipality["name_ja"])
        groups[name] = _Group(name, users, len(group.get_hosts()), issuer)
    return groups


def _known_users(groups: Mapping[str, _Group]) -> str:
    listed = [f"{g.name}: {', '.join(g.users)}" for g in groups.values() if g.users]
    return "; ".join(listed) if listed else "none (no group has mfa_users)"


def _pick_group(groups: Mapping[str, _Group], user: str, wanted: str | None, file: Path) -> _Group:
    candidates = [g.name for g in groups.values() if user in g.users]
    entry = f"- {{name: {user}, comment: FULL NAME (課)}}"
    if wanted is not None:
        if wanted not in groups:
            raise MfaError(
                f"group {wanted} is not in the inventory {file} (groups listing {user} in "
                f"{USERS_VAR}: {', '.join(candidates) or 'none'}); pass --group with one of "
                "those, or add the group to the inventory"
            )
        if wanted not in candidates:
            raise MfaError(
                f"group {wanted} in {file} does not list {user} in its {USERS_VAR} (groups "
                f"that do: {', '.join(candidates) or 'none'}); add `{entry}` to the "
                f"{USERS_VAR} in group {wanted}'s vars, or pass another --group"
            )
        chosen = groups[wanted]
    elif not candidates:
        raise MfaError(
            f"{user} is not listed in the {USERS_VAR} of any group in {file} or its group_vars "
            f"(known users: {_known_users(groups)}); add `{entry}` to the {USERS_VAR} in "
            "the vars of the user's municipality group, then run again"
        )
    elif len(candidates) > 1:
        raise MfaError(
            f"{user} is listed in the {USERS_VAR} of several groups in {file}: "
            f"{', '.join(candidates)}; pass --group with the one to enrol for (each group "
            "has its own secret)"
        )
    else:
        chosen = groups[candidates[0]]
    if chosen.hosts == 0:
        raise MfaError(
            f"group {chosen.name} in {file} lists {user} in its {USERS_VAR} but has no hosts, "
            "so no host would ever use this enrolment; add the hosts the user logs in to "
            f"under group {chosen.name}, or pass --group with the group that has them"
        )
    return chosen


def _check_login(user: str) -> None:
    if len(user) > LOGIN_NAME_MAX or not LOGIN_NAME.match(user):
        raise MfaError(
            f"{user!r} is not a valid Linux login name: lower-case letters, digits, '_', '.' "
            f"and '-', starting with a letter or '_', at most {LOGIN_NAME_MAX} characters "
            "(e.g. sato.hanako); fix the name in the command and in the group's mfa_users"
        )


def _enrolment_path(file: Path, group: str) -> Path:
    """group_vars/<group>/mfa_enrolment.yml, once sure Ansible would read it.

    Ansible's host_group_vars reads the first of group_vars/<group>, <group>.yml, <group>.yaml,
    <group>.json that exists (DataLoader.find_vars_files: the directory first), so a directory
    next to such a file silently hides the file's vars: refuse rather than create one.
    """
    group_vars = file.parent / "group_vars"
    for suffix in _GROUP_VARS_FILE_SUFFIXES:
        other = group_vars / f"{group}{suffix}"
        if other.is_file():
            raise MfaError(
                f"{other} holds group {group}'s vars as a file, and when the directory "
                f"group_vars/{group}/ exists Ansible reads the directory only and ignores the "
                f"file, so writing {group_vars / group / ENROLMENT_FILE} would silently drop "
                f"that file's vars; move the file into the directory (e.g. `mkdir -p "
                f"{group_vars / group} && mv {other} {group_vars / group}/main.yml`) and run "
                "again"
            )
    return group_vars / group / ENROLMENT_FILE


# --- the enrolment file -------------------------------------------------------------------------


class _VaultText(str):
    """The ciphertext of a ``!vault`` value, as written."""


class _Loader(yaml.SafeLoader):
    pass


def _vault_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> _VaultText:
    return _VaultText(loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else "")


_Loader.add_constructor("!vault", _vault_constructor)


@dataclass
class _File:
    """The enrolment file, as blocks of text: a user's block is kept byte for byte."""

    prefix: str  # up to the first user's entry
    blocks: dict[str, str]  # user -> the lines of its entry
    indent: int  # the column of the users' keys


def _read_file(path: Path) -> _File:
    new = _File(HEADER + f"{ENROLMENT_VAR}:\n", {}, 2)
    if not path.exists():
        return new
    fix = f"move it away and re-enrol the users (`municloud mfa enrol`): {path} is written by it"
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=_Loader)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MfaError(f"{path} is not readable YAML ({exc}); {fix}") from exc
    if root is None:
        return new
    if not isinstance(root, yaml.MappingNode) or [k.value for k, _ in root.value] != [
        ENROLMENT_VAR
    ]:
        raise MfaError(f"{path} should hold only the key {ENROLMENT_VAR}; {fix}")
    users = root.value[0][1]
    if isinstance(users, yaml.ScalarNode) and users.tag == "tag:yaml.org,2002:null":
        return new
    if not isinstance(users, yaml.MappingNode) or (users.value and users.flow_style):
        raise MfaError(f"{path}: {ENROLMENT_VAR} should be a block mapping of users; {fix}")
    if not users.value:
        return new
    lines = text.splitlines(keepends=True)
    starts = [k.start_mark.line for k, _ in users.value] + [len(lines)]
    blocks: dict[str, str] = {}
    for i, (key, value) in enumerate(users.value):
        if not isinstance(key, yaml.ScalarNode) or not isinstance(value, yaml.MappingNode):
            raise MfaError(
                f"{path}: entry {i + 1} of {ENROLMENT_VAR} is not `USER: {{...}}`; {fix}"
            )
        if key.value in blocks:
            raise MfaError(f"{path} has {key.value} twice in {ENROLMENT_VAR}; {fix}")
        block = "".join(lines[starts[i] : starts[i + 1]])
        blocks[key.value] = block if block.endswith("\n") else block + "\n"
    first = users.value[0][0].start_mark
    return _File("".join(lines[: first.line]), blocks, first.column)


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    """The file's entries, the ``!vault`` values still encrypted."""
    if not _read_file(path).blocks:  # also refuses a file of another shape
        return {}
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    entries = (data or {}).get(ENROLMENT_VAR) or {}
    return {str(k): dict(v) for k, v in entries.items()}


def _vault_block(vault: Any, secret: VaultSecretLike, value: str, indent: int) -> str:
    ciphertext = vault.encrypt(value, secret=secret).decode("ascii")
    pad = " " * indent
    return "!vault |\n" + "".join(f"{pad}{line}\n" for line in ciphertext.splitlines())


def _entry(
    vault: Any,
    secret: VaultSecretLike,
    user: str,
    enrolled: str,
    totp: str,
    password: str,
    col: int,
) -> str:
    pad = " " * (col + 2)
    # a name YAML would read as something else (on, no, null, ...) is quoted
    key = user if yaml.safe_load(user) == user else f'"{user}"'
    return (
        f"{' ' * col}{key}:\n"
        f'{pad}enrolled: "{enrolled}"\n'
        f"{pad}totp_secret: {_vault_block(vault, secret, totp, col + 4)}"
        f"{pad}password: {_vault_block(vault, secret, password, col + 4)}"
    )


# --- writing, owner-only ------------------------------------------------------------------------


@contextlib.contextmanager
def _owner_only() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (a temp file in its directory, then os.replace), mode 0600."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _private_dir(path: Path) -> None:
    """Create ``path`` (and its missing parents) 0700; make ``path`` itself 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


# --- the sheet ----------------------------------------------------------------------------------


def _password() -> str:
    while True:
        candidate = "".join(_secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))
        if (
            any(c.isupper() for c in candidate)
            and any(c.islower() for c in candidate)
            and any(c.isdigit() for c in candidate)
        ):
            return candidate


def _uri(totp_secret: str, user: str, issuer: str) -> str:
    import pyotp

    totp = pyotp.TOTP(totp_secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)
    return totp.provisioning_uri(name=user, issuer_name=issuer)


def _qr_png(uri: str) -> bytes:
    import segno

    buffer = io.BytesIO()
    segno.make(uri, error="m", micro=False).save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()


def _sheet_html(
    group: _Group, user: str, enrolled: str, password: str, totp_secret: str, uri: str, png: bytes
) -> str:
    e = html.escape
    who = e(user) + (f" ({e(group.users[user])})" if group.users.get(user) else "")
    where = e(group.issuer) + (f" ({e(group.name)})" if group.issuer != group.name else "")
    key = " ".join(totp_secret[i : i + 4] for i in range(0, len(totp_secret), 4))
    qr = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<title>多要素認証 登録票 / MFA enrolment sheet: {e(user)}</title>
<style>
body {{ font-family: sans-serif; max-width: 42em; margin: 2em auto; line-height: 1.5; }}
.en {{ color: #444; font-size: 0.9em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #888; padding: 0.3em 0.6em; text-align: left; }}
code {{ font-size: 1.1em; word-break: break-all; }}
.warn {{ border: 2px solid #a00; padding: 0.5em; }}
</style>
</head>
<body>
<h1>多要素認証 (ワンタイムコード) 登録票<br><span class="en">Multi-factor login: enrolment
sheet</span></h1>
<p class="warn">この用紙には初期パスワードと認証用の秘密鍵が記載されています。本人以外に見せず、
登録が済んだら破棄 (シュレッダー) してください。<br><span class="en">This sheet holds your first
password and the secret of your one-time codes: show it to no one, and shred it once you are
enrolled.</span></p>
<table>
<tr><th>利用者 <span class="en">User</span></th><td>{who}</td></tr>
<tr><th>団体・グループ <span class="en">Municipality / group</span></th><td>{where}</td></tr>
<tr><th>登録日時 <span class="en">Enrolled</span></th><td>{e(enrolled)}</td></tr>
<tr><th>初期パスワード <span class="en">First password</span></th>
<td><code>{e(password)}</code></td></tr>
</table>
<h2>QRコード <span class="en">QR code</span></h2>
<p><img src="data:image/png;base64,{qr}" alt="otpauth QR code"></p>
<p>QRコードを読み取れない場合は、次の鍵を手入力してください (時間ベース、6桁、30秒)。<br>
<span class="en">If the app cannot scan it, type this key (time-based, 6 digits, 30 seconds):
</span><br><code>{e(key)}</code></p>
<p class="en">URI: <code>{e(uri)}</code></p>
<h2>手順 <span class="en">What to do</span></h2>
<ol>
<li>スマートフォンの認証アプリ (Google Authenticator、Microsoft Authenticator 等) でQRコードを
読み取ります。<br><span class="en">Scan the QR code with an authenticator app on your
phone.</span></li>
<li>ログイン時は、まずパスワード、次にアプリに表示される6桁のコードを入力します。<br>
<span class="en">To log in, type your password first, then the 6-digit code the app
shows.</span></li>
<li>初回ログイン後、直ちにパスワードを変更してください (<code>passwd</code>)。<br>
<span class="en">Change your password at once after your first login
(<code>passwd</code>).</span></li>
<li>同じコードは一度しか使えません。失敗が続くと一定時間ロックされます。<br>
<span class="en">A code works once only; repeated failures lock the account for a
while.</span></li>
</ol>
</body>
</html>
"""


# --- enrolment ----------------------------------------------------------------------------------


def _now(now: datetime | None) -> str:
    moment = now if now is not None else datetime.now(JST)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=JST)
    return moment.astimezone(JST).isoformat(timespec="seconds")


def _enrol_in(
    file: Path,
    group: _Group,
    user: str,
    secret: VaultSecretLike,
    sheets: Path,
    now: datetime | None,
) -> Enrolment:
    """Enrol ``user`` in ``group``, already checked: everything is made in memory first, then the
    sheet is written, then the enrolment file (the commit point)."""
    import pyotp

    _check_login(user)
    path = _enrolment_path(file, group.name)
    current = _read_file(path)
    enrolled = _now(now)
    totp_secret = pyotp.random_base32()  # 32 characters: 160 bits
    password = _password()
    vault = _vault(secret)
    current.blocks[user] = _entry(
        vault, secret, user, enrolled, totp_secret, password, current.indent
    )
    text = current.prefix + "".join(current.blocks.values())
    written = yaml.load(text, Loader=_Loader)
    check = written[ENROLMENT_VAR][user]
    if vault.decrypt(check["totp_secret"]).decode() != totp_secret:  # never: a bug of this file
        raise MfaError(f"internal error: the entry for {user} does not read back; nothing written")
    uri = _uri(totp_secret, user, group.issuer)
    png = _qr_png(uri)
    page = _sheet_html(group, user, enrolled, password, totp_secret, uri, png)
    sheet = sheets / group.name / user
    path.parent.parent.mkdir(exist_ok=True)  # group_vars/: shared, the user's umask
    with _owner_only():
        if not sheets.exists():
            _private_dir(sheets)
        _private_dir(sheets / group.name)
        _private_dir(sheet)
        _write(sheet / "otpauth.txt", (uri + "\n").encode("ascii"))
        _write(sheet / "qr.png", png)
        _write(sheet / "sheet.html", page.encode("utf-8"))
        if not path.parent.exists():
            _private_dir(path.parent)
        _write(path, text.encode("utf-8"))
    return Enrolment(group.name, user, enrolled, sheet, path)


def enrol(
    inventory: Path,
    user: str,
    *,
    group: str | None,
    vault_password_file: str | None,
    sheets: Path,
    now: datetime | None = None,
) -> Enrolment:
    """Enrol ``user`` (in ``group``, or the one group whose own ``mfa_users`` lists the user):
    rotate their TOTP secret and first password, write the vaulted file and the sheet."""
    _check_login(user)
    file = _inventory_file(Path(inventory))
    secret = vault_secret(vault_password_file, inventory=file.parent)
    groups = _groups(file, secret)
    chosen = _pick_group(groups, user, group, file)
    return _enrol_in(file, chosen, user, secret, Path(sheets), now)


def enrol_missing(inventory: Path, *, vault_password_file: str, sheets: Path) -> list[Enrolment]:
    """Enrol every user of every group's ``mfa_users`` who has no entry yet in that group's
    enrolment file (for ``municloud lab up``); a second call enrols nobody."""
    file = _inventory_file(Path(inventory))
    secret = vault_secret(vault_password_file, inventory=file.parent)
    groups = _groups(file, secret)
    done: list[Enrolment] = []
    for group in groups.values():
        if not group.users:
            continue
        have = _entries(_enrolment_path(file, group.name))
        for user in group.users:
            if user not in have:
                chosen = _pick_group(groups, user, group.name, file)
                done.append(_enrol_in(file, chosen, user, secret, Path(sheets), None))
    return done


def read_enrolment(
    inventory: Path, group: str, vault_password_file: str | None
) -> dict[str, Secrets]:
    """The decrypted enrolment of ``group``: user -> Secrets (for the acceptance tests)."""
    from ansible.errors import AnsibleError  # type: ignore[import-untyped,unused-ignore]

    file = _inventory_file(Path(inventory))
    path = file.parent / "group_vars" / group / ENROLMENT_FILE
    entries = _entries(path)
    if not entries:
        return {}  # nobody enrolled: no vault password needed
    vault = _vault(vault_secret(vault_password_file, inventory=file.parent))
    result: dict[str, Secrets] = {}
    for user, entry in entries.items():
        try:
            result[user] = Secrets(
                totp_secret=vault.decrypt(entry["totp_secret"]).decode("utf-8"),
                password=vault.decrypt(entry["password"]).decode("utf-8"),
                enrolled=str(entry["enrolled"]),
            )
        except (AnsibleError, KeyError, TypeError) as exc:
            raise MfaError(
                f"cannot read {user}'s enrolment in {path} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); check the vault password, "
                f"or re-enrol {user}"
            ) from exc
    return result


# --- the command --------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--inventory", "-i", required=True, help="inventory directory, e.g. inventories/sample"
    )
    parser.add_argument(
        "--group",
        help="the group to enrol the user for, when several groups list them in mfa_users",
    )
    parser.add_argument(
        "--vault-password-file",
        help="the vault password (default: $ANSIBLE_VAULT_PASSWORD_FILE, then ansible.cfg's "
        "vault_password_file); an executable is run, as Ansible does",
    )
    parser.add_argument(
        "--sheets",
        default=DEFAULT_SHEETS,
        help=f"where to write the enrolment sheets (default: ./{DEFAULT_SHEETS})",
    )
    parser.add_argument("user", metavar="USER", help="the login name, as listed in mfa_users")


def main(args: argparse.Namespace) -> int:
    try:
        done = enrol(
            Path(args.inventory),
            args.user,
            group=args.group,
            vault_password_file=args.vault_password_file,
            sheets=Path(args.sheets),
        )
    except MfaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"enrolled {done.user} in {done.group} at {done.enrolled}: a new TOTP secret and first "
        f"password, vault-encrypted in {done.file}"
    )
    print(
        f"enrolment sheet (readable by you only; give it to {done.user} in person, then delete "
        f"it): {done.sheet / 'sheet.html'}"
    )
    print(f"next: apply roles/mfa to the group's hosts (ansible-playbook ... --limit {done.group})")
    return 0
