"""`municloud mfa enrol`: secrets made per user, vaulted on disk (Ansible itself decrypts them),
a sheet whose URI and QR code give back the same secret, owner-only files, rotation on
re-enrolment, and refusals that change nothing. No lab: a copy of the tiny inventory."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from municloud import mfa
from municloud.cli import main as cli

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "lab" / "inventories" / "tiny" / "hosts.yml"
BIN = Path(sys.executable).parent
GROUP = "matsue_shi"  # the tiny inventory's group with mfa_users
HOST = "matsue-mynumber-term"  # one of its hosts
USERS = ("sato.hanako", "suzuki.ichiro")
T0 = datetime(2026, 11, 30, 17, 4, 5, tzinfo=mfa.JST)


@pytest.fixture(autouse=True)
def _no_ambient_vault_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_VAULT_PASSWORD_FILE", raising=False)


@pytest.fixture
def inv(tmp_path: Path) -> Path:
    """A copy of the tiny inventory (hosts.yml only: no lab connection vars), with staff in
    matsue_shi only: izumo_shi's are taken out, so that it is the group without users here."""
    (tmp_path / "inv").mkdir()
    text = TINY.read_text(encoding="utf-8")
    start = text.index("mfa_users:", text.index("izumo_shi:"))
    start = text.rindex("\n", 0, start) + 1
    end = text.index("          hosts:", start)
    (tmp_path / "inv" / "hosts.yml").write_text(text[:start] + text[end:], encoding="utf-8")
    return tmp_path / "inv"


@pytest.fixture
def vault_pw(tmp_path: Path) -> Path:
    path = tmp_path / "vault-password"
    path.write_text("correct horse battery staple\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def sheets(tmp_path: Path) -> Path:
    return tmp_path / "sheets"


@pytest.fixture
def empty_cfg(tmp_path: Path) -> Path:
    """An ansible.cfg with nothing in it: no vault_password_file, no project plugins."""
    path = tmp_path / "empty.cfg"
    path.write_text("[defaults]\n")
    return path


def enrol_cli(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path | None, sheets: Path, *args: str
) -> tuple[int, str, str]:
    argv = ["mfa", "enrol", "--inventory", str(inv), "--sheets", str(sheets)]
    if vault_pw is not None:
        argv += ["--vault-password-file", str(vault_pw)]
    rc = cli([*argv, *args])
    out, err = capsys.readouterr()
    return rc, out, err


def enrolment_file(inv: Path, group: str = GROUP) -> Path:
    return inv / "group_vars" / group / "mfa_enrolment.yml"


def sheet_uri(sheets: Path, user: str, group: str = GROUP) -> str:
    return (sheets / group / user / "otpauth.txt").read_text().strip()


def block(text: str, user: str) -> str:
    """The lines of ``user``'s entry in the enrolment file."""
    match = re.search(rf"^  {re.escape(user)}:\n(?:    .*\n)*", text, re.M)
    assert match, f"no entry for {user}"
    return match.group(0)


def ansible_sees(inv: Path, vault_pw: Path, cfg: Path, host: str = HOST) -> Any:
    """``mfa_enrolment`` as Ansible itself resolves it for ``host``, decrypted by Ansible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    done = subprocess.run(
        [
            *(BIN / "ansible", "-i", inv, host, "-c", "local", "--vault-password-file", vault_pw),
            *("-m", "ansible.builtin.debug", "-a", "var=mfa_enrolment"),
        ],
        env=env,
        cwd=inv.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"][host]
    return result["mfa_enrolment"]


def zbar(png: Path) -> str:
    done = subprocess.run(
        ["zbarimg", "--raw", "-q", png], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def tree(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path under ``root``: mode, inode and content (a rewrite changes the inode)."""
    return {
        str(p.relative_to(root)): (
            p.stat().st_mode,
            p.stat().st_ino,
            p.read_bytes() if p.is_file() else None,
        )
        for p in sorted(root.rglob("*"))
    }


# --- secrets ------------------------------------------------------------------------------------


def test_each_user_gets_own_secret_and_password(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path, sheets: Path
) -> None:
    for user in USERS:
        rc, _, err = enrol_cli(capsys, inv, vault_pw, sheets, user)
        assert rc == 0, err
    got = mfa.read_enrolment(inv, GROUP, str(vault_pw))
    assert set(got) == set(USERS)
    a, b = (got[u] for u in USERS)
    assert a.totp_secret != b.totp_secret
    assert a.password != b.password
    for s in (a, b):
        assert re.fullmatch(r"[A-Z2-7]{32}", s.totp_secret)  # base32, 160 bits
        assert len(s.password) == 16
        assert set(s.password) <= set(mfa.PASSWORD_ALPHABET)
    # the sheets agree with the file, user by user
    for user in USERS:
        assert pyotp.parse_uri(sheet_uri(sheets, user)).secret == got[user].totp_secret


def test_secrets_are_vaulted_and_ansible_decrypts_them(
    capsys: pytest.CaptureFixture[str],
    inv: Path,
    vault_pw: Path,
    sheets: Path,
    empty_cfg: Path,
) -> None:
    for user in USERS:
        assert enrol_cli(capsys, inv, vault_pw, sheets, user)[0] == 0
    text = enrolment_file(inv).read_text()
    assert text.startswith("---\n")
    assert text.count("$ANSIBLE_VAULT;1.1;AES256") == 4  # two values per user

    seen = ansible_sees(inv, vault_pw, empty_cfg)
    assert set(seen) == set(USERS)
    for user in USERS:
        secret = pyotp.parse_uri(sheet_uri(sheets, user)).secret
        entry = seen[user]
        assert entry["totp_secret"] == secret
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00", entry["enrolled"])
        assert secret not in text
        assert entry["password"] not in text
        # the first password is on the user's sheet, and only there
        assert entry["password"] in (sheets / GROUP / user / "sheet.html").read_text()
    # the exact shape the role reads
    data = yaml.load(text, Loader=mfa._Loader)
    assert list(data) == ["mfa_enrolment"]
    for user in USERS:
        assert set(data["mfa_enrolment"][user]) == {"enrolled", "totp_secret", "password"}
        assert f'  {user}:\n    enrolled: "' in text
        assert "    totp_secret: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n" in block(text, user)
        assert "    password: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n" in block(text, user)


def test_uri_and_qr_give_back_the_secret(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path, sheets: Path, tmp_path: Path
) -> None:
    user = USERS[0]
    assert enrol_cli(capsys, inv, vault_pw, sheets, user)[0] == 0
    secret = mfa.read_enrolment(inv, GROUP, str(vault_pw))[user].totp_secret
    sheet = sheets / GROUP / user
    uri = sheet_uri(sheets, user)
    assert zbar(sheet / "qr.png") == uri
    # the QR code inline in the printable page is the same
    page = (sheet / "sheet.html").read_text()
    inline = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert inline
    (tmp_path / "inline.png").write_bytes(base64.b64decode(inline.group(1)))
    assert zbar(tmp_path / "inline.png") == uri
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    assert totp.secret == secret
    assert totp.name == user
    assert totp.issuer == "松江市"  # the municipality's name_ja
    assert totp.digits == 6 and totp.interval == 30
    assert totp.verify(pyotp.TOTP(secret).now())
    assert "sato.hanako (佐藤 花子 (市民課))" in page and "松江市 (matsue_shi)" in page


def test_reenrolment_rotates_and_keeps_the_others(inv: Path, vault_pw: Path, sheets: Path) -> None:
    for i, user in enumerate(USERS):
        mfa.enrol(
            inv,
            user,
            group=None,
            vault_password_file=str(vault_pw),
            sheets=sheets,
            now=T0 + timedelta(seconds=i),
        )
    before = mfa.read_enrolment(inv, GROUP, str(vault_pw))
    text = enrolment_file(inv).read_text()
    assert block(text, USERS[0]).startswith(
        '  sato.hanako:\n    enrolled: "2026-11-30T17:04:05+09:00"'
    )

    for user, other in (USERS, USERS[::-1]):  # the first entry, then the last
        kept = block(enrolment_file(inv).read_text(), other)
        later = T0 + timedelta(hours=1, minutes=len(user))
        done = mfa.enrol(
            inv, user, group=None, vault_password_file=str(vault_pw), sheets=sheets, now=later
        )
        assert done.enrolled == later.isoformat()
        after_text = enrolment_file(inv).read_text()
        assert block(after_text, other) == kept  # byte for byte
        after = mfa.read_enrolment(inv, GROUP, str(vault_pw))
        assert after[user].totp_secret != before[user].totp_secret
        assert after[user].password != before[user].password
        assert after[user].enrolled == later.isoformat() != before[user].enrolled
        assert pyotp.parse_uri(sheet_uri(sheets, user)).secret == after[user].totp_secret
    assert list(
        yaml.load(enrolment_file(inv).read_text(), Loader=mfa._Loader)["mfa_enrolment"]
    ) == list(USERS)


def test_files_and_directories_are_owner_only(inv: Path, vault_pw: Path, sheets: Path) -> None:
    old = os.umask(0o022)  # a permissive caller: the command must not rely on the umask
    try:
        done = mfa.enrol(
            inv, USERS[0], group=None, vault_password_file=str(vault_pw), sheets=sheets
        )
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert done.file == enrolment_file(inv)
    assert mode(done.file) == 0o600
    assert mode(done.file.parent) == 0o700
    assert done.sheet == sheets / GROUP / USERS[0]
    for d in (sheets, sheets / GROUP, done.sheet):
        assert mode(d) == 0o700, d
    assert sorted(p.name for p in done.sheet.iterdir()) == ["otpauth.txt", "qr.png", "sheet.html"]
    for f in done.sheet.iterdir():
        assert mode(f) == 0o600, f
    # no temp file left behind, where Ansible would read it
    assert [p.name for p in done.file.parent.iterdir()] == ["mfa_enrolment.yml"]

    # a sheet directory someone opened up is closed again at the next enrolment
    for d in (sheets / GROUP, done.sheet):
        d.chmod(0o755)
    (done.sheet / "qr.png").chmod(0o644)
    mfa.enrol(inv, USERS[0], group=None, vault_password_file=str(vault_pw), sheets=sheets)
    for p in (sheets / GROUP, done.sheet):
        assert mode(p) == 0o700, p
    assert mode(done.sheet / "qr.png") == 0o600


def test_mfa_users_from_group_vars_as_ansible_reads_them(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path, sheets: Path
) -> None:
    staff = inv / "group_vars" / "izumo_shi"
    staff.mkdir(parents=True)
    (staff / "staff.yml").write_text(
        "---\nmfa_users:\n  - {name: tanaka.jiro, comment: 田中 次郎 (税務課)}\n"
    )
    rc, out, err = enrol_cli(capsys, inv, vault_pw, sheets, "tanaka.jiro")
    assert rc == 0, err
    assert "in izumo_shi" in out
    assert pyotp.parse_uri(sheet_uri(sheets, "tanaka.jiro", "izumo_shi")).issuer == "出雲市"
    assert set(mfa.read_enrolment(inv, "izumo_shi", str(vault_pw))) == {"tanaka.jiro"}
    assert (staff / "staff.yml").exists()  # the site's own file is left alone
    # and the inventory, vaulted values and all, is still a valid municloud inventory
    assert cli(["validate", str(inv)]) == 0


def test_login_names_yaml_would_misread_are_quoted(inv: Path, vault_pw: Path, sheets: Path) -> None:
    def add(children: Any) -> None:
        matsue = children["municipalities"]["children"][GROUP]
        matsue["vars"]["mfa_users"] += [{"name": "on"}, {"name": "null"}]

    _edit_hosts(inv, add)
    done = mfa.enrol_missing(inv, vault_password_file=str(vault_pw), sheets=sheets)
    assert [d.user for d in done] == [*USERS, "on", "null"]
    text = enrolment_file(inv).read_text()
    assert '\n  "on":\n' in text and '\n  "null":\n' in text
    assert set(mfa.read_enrolment(inv, GROUP, str(vault_pw))) == {*USERS, "on", "null"}
    assert mfa.enrol_missing(inv, vault_password_file=str(vault_pw), sheets=sheets) == []


# --- what is printed ----------------------------------------------------------------------------


def test_nothing_secret_is_printed(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path, sheets: Path
) -> None:
    rc, out, err = enrol_cli(capsys, inv, vault_pw, sheets, USERS[0])
    assert rc == 0, err
    got = mfa.read_enrolment(inv, GROUP, str(vault_pw))[USERS[0]]
    for printed in (out, err):
        assert got.totp_secret not in printed
        assert got.password not in printed
        assert "otpauth://" not in printed
    assert str(sheets / GROUP / USERS[0] / "sheet.html") in out
    assert str(enrolment_file(inv)) in out
    assert got.totp_secret not in repr(got) and got.password not in repr(got)
    done = mfa.enrol(inv, USERS[0], group=None, vault_password_file=str(vault_pw), sheets=sheets)
    now = mfa.read_enrolment(inv, GROUP, str(vault_pw))[USERS[0]]
    assert now.totp_secret not in repr(done) and now.password not in repr(done)


# --- where the vault password comes from --------------------------------------------------------


def test_vault_password_from_environment(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    inv: Path,
    vault_pw: Path,
    sheets: Path,
) -> None:
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(vault_pw))
    rc, _, err = enrol_cli(capsys, inv, None, sheets, USERS[0])
    assert rc == 0, err
    assert mfa.read_enrolment(inv, GROUP, str(vault_pw))[USERS[0]].totp_secret


def test_vault_password_script_from_ansible_cfg(
    tmp_path: Path, inv: Path, vault_pw: Path, sheets: Path
) -> None:
    script = tmp_path / "vault-pass.sh"
    script.write_text(f"#!/bin/sh\ncat {vault_pw}\n")
    script.chmod(0o700)
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text(f"[defaults]\nvault_password_file = {script}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(cfg)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "municloud.cli",
            "mfa",
            "enrol",
            "-i",
            inv,
            "--sheets",
            sheets,
            USERS[1],
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    got = mfa.read_enrolment(inv, GROUP, str(vault_pw))[USERS[1]]
    assert got.totp_secret == pyotp.parse_uri(sheet_uri(sheets, USERS[1])).secret


# --- refusals, each changing nothing ------------------------------------------------------------


def _edit_hosts(inv: Path, change: Any) -> None:
    data = yaml.safe_load((inv / "hosts.yml").read_text())
    change(data["all"]["children"])
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _add_empty_group(children: Any) -> None:
    children["mfa_only"] = {"vars": {"mfa_users": [{"name": "sato.hanako", "comment": "x"}]}}


def _list_sato_in_izumo(children: Any) -> None:
    izumo = children["municipalities"]["children"]["izumo_shi"]
    izumo["vars"]["mfa_users"] = [{"name": "sato.hanako", "comment": "佐藤 花子"}]


@pytest.mark.parametrize(
    ("edit", "args", "expected"),
    [
        (None, ["nobody.here"], ["nobody.here is not listed", "matsue_shi: sato.hanako, suzuki"]),
        (None, ["Sato.Hanako"], ["not a valid Linux login name"]),
        (None, ["1sato"], ["not a valid Linux login name"]),
        (None, ["a" * 33], ["at most 32 characters"]),
        (None, ["--group", "nosuch", "sato.hanako"], ["group nosuch is not in the inventory"]),
        (None, ["--group", "izumo_shi", "sato.hanako"], ["izumo_shi", "does not list"]),
        (_add_empty_group, ["--group", "mfa_only", "sato.hanako"], ["mfa_only", "no hosts"]),
        (_list_sato_in_izumo, ["sato.hanako"], ["several groups", "izumo_shi, matsue_shi"]),
    ],
    ids=[
        "unknown-user",
        "upper-case",
        "leading-digit",
        "too-long",
        "no-such-group",
        "group-without-user",
        "group-without-hosts",
        "ambiguous",
    ],
)
def test_refusals_change_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    inv: Path,
    vault_pw: Path,
    sheets: Path,
    edit: Any,
    args: list[str],
    expected: list[str],
) -> None:
    # an earlier enrolment, which a refusal must leave alone
    assert enrol_cli(capsys, inv, vault_pw, sheets, "--group", GROUP, "suzuki.ichiro")[0] == 0
    if edit is not None:
        _edit_hosts(inv, edit)
    before = tree(tmp_path)
    rc, out, err = enrol_cli(capsys, inv, vault_pw, sheets, *args)
    assert rc == 2
    assert out == ""
    assert err.startswith("error: ") and err.count("\n") == 1  # one paragraph
    for words in expected:
        assert words in err
    assert tree(tmp_path) == before


def test_refuses_group_vars_file_beside_the_directory(
    capsys: pytest.CaptureFixture[str], inv: Path, vault_pw: Path, sheets: Path, tmp_path: Path
) -> None:
    """Ansible reads group_vars/<group>/ and then ignores group_vars/<group>.yml: creating the
    directory would drop the file's vars, so the command refuses."""
    (inv / "group_vars").mkdir()
    (inv / "group_vars" / f"{GROUP}.yml").write_text("---\nsite_var: 1\n")
    before = tree(tmp_path)
    rc, _, err = enrol_cli(capsys, inv, vault_pw, sheets, USERS[0])
    assert rc == 2
    assert f"{GROUP}.yml" in err and "move the file into the directory" in err
    assert tree(tmp_path) == before


def test_refuses_without_vault_password(
    tmp_path: Path, inv: Path, sheets: Path, empty_cfg: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(empty_cfg)
    before = tree(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "municloud.cli",
            "mfa",
            "enrol",
            "-i",
            inv,
            "--sheets",
            sheets,
            USERS[0],
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert "no vault password" in done.stderr
    assert "--vault-password-file" in done.stderr
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in done.stderr
    assert tree(tmp_path) == before


def test_missing_vault_password_file_is_named(inv: Path, tmp_path: Path) -> None:
    with pytest.raises(mfa.MfaError, match=r"nope.*--vault-password-file"):
        mfa.vault_secret(str(tmp_path / "nope"))


# --- the lab's entry point ----------------------------------------------------------------------


def test_enrol_missing_enrols_each_user_once(inv: Path, vault_pw: Path, sheets: Path) -> None:
    mfa.enrol(inv, USERS[1], group=None, vault_password_file=str(vault_pw), sheets=sheets)
    kept = block(enrolment_file(inv).read_text(), USERS[1])
    done = mfa.enrol_missing(inv, vault_password_file=str(vault_pw), sheets=sheets)
    assert [(d.group, d.user) for d in done] == [(GROUP, USERS[0])]
    assert block(enrolment_file(inv).read_text(), USERS[1]) == kept
    assert set(mfa.read_enrolment(inv, GROUP, str(vault_pw))) == set(USERS)
    assert mfa.enrol_missing(inv, vault_password_file=str(vault_pw), sheets=sheets) == []


def test_read_enrolment_wrong_password_and_nobody_enrolled(
    inv: Path, vault_pw: Path, sheets: Path, tmp_path: Path
) -> None:
    assert mfa.read_enrolment(inv, "izumo_shi", None) == {}  # no file: no password needed
    mfa.enrol(inv, USERS[0], group=None, vault_password_file=str(vault_pw), sheets=sheets)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    with pytest.raises(mfa.MfaError, match="check the vault password"):
        mfa.read_enrolment(inv, GROUP, str(wrong))
