"""Acceptance of multi-factor login (roles/mfa) on every host of the individual-number segment.

Proven with real logins, the way staff and administrators log in: paramiko over SSH with
keyboard-interactive (sshd asks for the password, then PAM's pam_oath for the code), codes
computed with pyotp from the secret `municloud mfa enrol` stored (decrypted here with the
inventory's vault password), and, for the console, PAM's own `login` service driven by
pamtester on the host. The management account's exception is proven from the lab machine (a
management address) and from inside the lab (the host's own address, which is not one).

Each code is good once and never an older one after it (pam_oath records the last used), so
the codes are handed out by :func:`fresh_code`, one step after the last used, with a file
lock shared by the xdist workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pyotp
import pytest
import yaml

from municloud import mfa
from municloud.inventory import Host, Prefecture

pytestmark = pytest.mark.segments("individual_number")

REPO = Path(__file__).resolve().parents[2]
MFA_DEFAULTS = REPO / "roles" / "mfa" / "defaults" / "main.yml"
USERS_FILE = "/etc/security/municloud-oath/users.oath"
STEP = 30  # seconds of a TOTP time step (the role's HOTP/T30/6)
LAB_VAULT_PASSWORD = REPO / ".lab" / "vault-password"

Run = Callable[..., tuple[int, str, str]]


# --- the staff and their secrets -----------------------------------------------------------------


@pytest.fixture(scope="session")
def staff_secrets(inventory_path: Path,
                  prefecture: Prefecture) -> dict[str, dict[str, mfa.Secrets]]:
    """municipality group -> user -> their enrolled secrets, decrypted with the vault password
    ($ANSIBLE_VAULT_PASSWORD_FILE, else the lab's)."""
    password_file = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or (
        str(LAB_VAULT_PASSWORD) if LAB_VAULT_PASSWORD.is_file() else None)
    found = {}
    for m in prefecture.municipalities:
        try:
            found[m.group] = mfa.read_enrolment(inventory_path, m.group, password_file)
        except mfa.MfaError as exc:
            pytest.fail(f"{m.group}: cannot read the enrolment: {exc}", pytrace=False)
    return found


@pytest.fixture
def staff(lab_host: Host, staff_secrets: dict[str, dict[str, mfa.Secrets]]) -> list[str]:
    """The enrolled staff of ``lab_host``'s municipality, by name. The lock-out test locks the
    second; the others spread over the first and the last, since each login takes a code of
    its own (one 30 s step) and the workers wait for the clock between them."""
    assert lab_host.municipality is not None
    users = sorted(staff_secrets[lab_host.municipality])
    if not users:
        pytest.fail(f"{lab_host.name}: nobody is enrolled in {lab_host.municipality}: list staff "
                    "in mfa_users and enrol them (municloud mfa enrol)", pytrace=False)
    return users


def _spare(staff: list[str]) -> str:
    """A user other than the lock-out test's (the second), when there are three or more."""
    return staff[-1] if len(staff) > 2 else staff[0]


def _secrets(staff_secrets: dict[str, dict[str, mfa.Secrets]], host: Host,
             user: str) -> mfa.Secrets:
    assert host.municipality is not None
    return staff_secrets[host.municipality][user]


def _setting(name: str, prefecture: Prefecture) -> int:
    """A role setting as the inventory gives it (all.vars of hosts.yml), else the role's default."""
    data = yaml.safe_load((prefecture.path / "hosts.yml").read_text(encoding="utf-8"))
    given = ((data.get("all") or {}).get("vars") or {}).get(name)
    if given is None:
        given = yaml.safe_load(MFA_DEFAULTS.read_text(encoding="utf-8"))[name]
    return int(given)


# --- fresh codes ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _code_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared / "totp-steps.json"


@pytest.fixture
def fresh_code(lab_host: Host, staff_secrets: dict[str, dict[str, mfa.Secrets]],
               run_as_root: Run, _code_state: Path) -> Callable[[str], Any]:
    """``with fresh_code(user) as code:``: a code pam_oath has not seen and will accept: the
    step after the last one used (by this run, or as the host's users file records), waiting
    for the clock when that step is beyond the window. Held under a lock for the whole block,
    so that no other worker logs in as that user on that host meanwhile."""

    @contextlib.contextmanager
    def code(user: str) -> Iterator[str]:
        totp = pyotp.TOTP(_secrets(staff_secrets, lab_host, user).totp_secret)
        key = f"{lab_host.name} {user}"
        with (_code_state.parent / f"totp-{lab_host.name}-{user}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            steps = json.loads(_code_state.read_text()) if _code_state.exists() else {}
            now = int(time.time()) // STEP
            used = steps.get(key, 0)
            # What the host recorded: the last code used (6th field of the user's line).
            _, out, _ = run_as_root(lab_host, f"cat {USERS_FILE}")
            for line in out.splitlines():
                fields = line.split()
                if len(fields) >= 6 and fields[1] == user:
                    for step in range(now - 3, now + 3):
                        if totp.at(step * STEP) == fields[5]:
                            used = max(used, step)
            step = max(now, used + 1)
            # The role accepts one step ahead (mfa_totp_window: 1); wait beyond that.
            while step > int(time.time()) // STEP + 1:
                time.sleep(1)
            steps[key] = step
            _code_state.write_text(json.dumps(steps))
            yield totp.at(step * STEP)

    return code


@pytest.fixture
def staff_login(lab_host: Host, staff_secrets: dict[str, dict[str, mfa.Secrets]],
                interactive_login: Callable[..., Any]) -> Callable[..., Any]:
    """``staff_login(user, code, password=None)``: ``interactive_login`` with the enrolled
    first password unless another is given."""

    def login(user: str, code: str, password: str | None = None) -> Any:
        secrets = _secrets(staff_secrets, lab_host, user)
        return interactive_login(user, secrets.password if password is None else password, code)

    return login


def _stale_code(totp: pyotp.TOTP) -> str:
    """A code of the right form that is not valid now: that of an hour ago (changed if, by
    chance, it equals one of the current window)."""
    now = time.time()
    current = {totp.at(now + d) for d in (-STEP, 0, STEP)}
    for hours in range(1, 50):
        code = totp.at(now - 3600 * hours)
        if code not in current:
            return code
    raise AssertionError("no stale code found")  # pragma: no cover


# --- multi-factor login (多要素認証) --------------------------------------------------------------


@pytest.mark.clause("mfa.login.two-factor")
def test_staff_log_in_with_password_and_code(staff: list[str], staff_login: Any,
                                             fresh_code: Any, evidence: Any) -> None:
    user = staff[0]
    with fresh_code(user) as code:
        login, prompts = staff_login(user, code)
    evidence(f"SSH keyboard-interactive login as {user} with the password and a fresh "
             "one-time code", {"login": "refused" if login is None else "accepted",
                               "prompts": prompts})
    assert login is not None, f"{user} was refused with the right password and code"
    assert len(prompts) == 2, prompts  # the password, then the code
    status, out, err = login.run("id -un")
    evidence("`id -un` in that login", {"status": status, "stdout": out, "stderr": err})
    assert (status, out.strip()) == (0, user), err


@pytest.mark.clause("mfa.login.two-factor")
def test_password_alone_is_refused(staff: list[str], staff_login: Any) -> None:
    login, prompts = staff_login(staff[0], code="")
    assert login is None
    assert any("One-time" in p for p in prompts), f"no code was asked for: {prompts}"


@pytest.mark.clause("mfa.login.two-factor")
def test_wrong_code_is_refused(staff: list[str], staff_login: Any, lab_host: Host,
                               staff_secrets: dict[str, dict[str, mfa.Secrets]]) -> None:
    totp = pyotp.TOTP(_secrets(staff_secrets, lab_host, staff[0]).totp_secret)
    login, _ = staff_login(staff[0], code=_stale_code(totp))
    assert login is None


@pytest.mark.clause("mfa.login.two-factor")
def test_right_code_with_wrong_password_is_refused(staff: list[str], staff_login: Any,
                                                   fresh_code: Any) -> None:
    user = _spare(staff)
    with fresh_code(user) as code:
        login, _ = staff_login(user, code, password="not-the-password")
    assert login is None


@pytest.mark.clause("mfa.login.two-factor")
def test_staff_cannot_use_a_key_instead(staff: list[str], auth_methods: Any) -> None:
    # What sshd offers staff: keyboard-interactive (password and code through PAM) only.
    assert auth_methods(staff[0]) == ["keyboard-interactive"]


@pytest.mark.clause("mfa.login.two-factor")
def test_console_login_asks_for_the_code(lab_host: Host, staff: list[str], run_as_root: Run,
                                         staff_secrets: dict[str, dict[str, mfa.Secrets]],
                                         fresh_code: Any) -> None:
    # PAM's `login` service (the console), driven through libpam by pamtester on the host.
    user = _spare(staff)
    password = _secrets(staff_secrets, lab_host, user).password
    command = f"pamtester login {shlex.quote(user)} authenticate"
    status, _, err = run_as_root(lab_host, command, stdin=f"{password}\n\n")
    assert status != 0, f"the console let {user} in with the password alone"
    assert "One-time password" in err, err
    with fresh_code(user) as code:
        status, out, err = run_as_root(lab_host, command, stdin=f"{password}\n{code}\n")
    assert status == 0, out + err


@pytest.mark.clause("mfa.login.no-replay")
def test_a_code_cannot_be_used_twice(staff: list[str], staff_login: Any,
                                     fresh_code: Any) -> None:
    user = staff[0]
    with fresh_code(user) as code:
        first, _ = staff_login(user, code)
        again, _ = staff_login(user, code)
    assert first is not None, "the first use of a fresh code was refused"
    assert again is None, "the same code was accepted twice"


# --- lock-out (pam_faillock) ----------------------------------------------------------------------


@pytest.mark.clause("mfa.login.lockout")
def test_failed_logins_lock_the_account_for_a_while(
    lab_host: Host, staff: list[str], staff_login: Any, fresh_code: Any, run_as_root: Run,
    prefecture: Prefecture,
) -> None:
    if len(staff) < 2:
        pytest.skip(f"{lab_host.municipality} has one enrolled user; the lock-out test locks a "
                    "second one, so that the others run meanwhile")
    user = staff[1]
    attempts = _setting("mfa_lockout_attempts", prefecture)
    unlock = _setting("mfa_lockout_seconds", prefecture)
    # Start from no failures (an earlier run may have left some).
    run_as_root(lab_host, f"faillock --user {shlex.quote(user)} --reset")
    for _ in range(attempts):
        login, _ = staff_login(user, "000000", password="not-the-password")
        assert login is None
    with fresh_code(user) as code:
        locked, _ = staff_login(user, code)
    assert locked is None, f"{user} logged in during the lock-out, after {attempts} failures"
    time.sleep(unlock + 2)
    with fresh_code(user) as code:
        after, _ = staff_login(user, code)
    assert after is not None, f"{user} is still locked out {unlock + 2} s later"


# --- the management account: the one exception ---------------------------------------------


@pytest.mark.clause("mfa.management.exception")
def test_management_account_logs_in_by_key_from_a_management_address(
    ssh_login: Callable[[str], Any], admin_user: str, auth_methods: Any,
) -> None:
    # The tests run on the lab machine, whose address is a management address.
    status, out, err = ssh_login(admin_user).run("id -un")
    assert (status, out.strip()) == (0, admin_user), err
    assert auth_methods(admin_user) == ["publickey"]


@pytest.mark.clause("mfa.management.exception")
def test_management_account_is_refused_by_password(ssh_connect: Callable[..., Any],
                                                   admin_user: str) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        ssh_connect(admin_user, password="correct horse battery staple")


@pytest.mark.clause("mfa.management.exception")
@pytest.mark.parametrize("who", ["admin", "root"])
def test_automation_is_refused_from_inside_the_lab(
    lab_host: Host, run_as_root: Run, ssh_identity_file: Path, admin_user: str, who: str,
    ssh_login: Callable[[str], Any],
) -> None:
    # From the host itself, to its own address: not a management address, and the firewall
    # lets it through (loopback), so the refusal is sshd's. With the same key that logs in from
    # the lab machine (checked first): the address is what is refused, not the key.
    user = admin_user if who == "admin" else "root"
    status, out, err = ssh_login(user).run("id -un")
    assert (status, out.strip()) == (0, user), f"{user} cannot log in from the lab machine: {err}"
    key = "/root/.municloud-acceptance-key"
    address = str(lab_host.primary_address)
    status, _, err = run_as_root(lab_host, f"umask 077; cat > {key}",
                                 stdin=ssh_identity_file.read_text())
    assert status == 0, err
    try:
        status, out, err = run_as_root(
            lab_host,
            f"ssh -i {key} -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=5 "
            f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            f"{user}@{address} id -un",
        )
    finally:
        run_as_root(lab_host, f"rm -f {key}")
    assert status != 0 and user not in out, f"{user} logged in from {address}: {out}"
    assert "Permission denied" in err, f"not refused by sshd (firewall? no ssh?): {err}"


# --- the credentials are protected ------------------------------------------------------------


@pytest.mark.clause("mfa.credentials.protected")
def test_secrets_are_root_only(host: Any) -> None:
    directory = host.file(os.path.dirname(USERS_FILE))
    assert (directory.user, directory.group, directory.mode) == ("root", "root", 0o700)
    for name in ("users.oath", "enrolled.json"):
        f = host.file(f"{directory.path}/{name}")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), name


@pytest.mark.clause("mfa.credentials.protected")
def test_staff_cannot_read_the_secrets(staff: list[str], staff_login: Any,
                                       fresh_code: Any) -> None:
    user = staff[0]
    with fresh_code(user) as code:
        login, _ = staff_login(user, code)
    assert login is not None
    status, out, err = login.run(f"cat {USERS_FILE}")
    assert status != 0 and "HOTP" not in out
    assert "Permission denied" in err, err
