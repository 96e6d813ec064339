"""Changes to logins (sshd, PAM, the management account) cannot lock automation out, on the tiny
lab's individual-number terminal (松江市, matsue-mynumber-term, with multi-factor login).

What an integrator must be able to trust before hardening logins on a whole prefecture:

* a run that logs in as root (whatever says so: ``-u root`` here, with no ``ansible_user``)
  while root logins are to be closed is refused before anything changes;
* a key list for the management account without the key the run logs in with is refused before
  anything changes;
* an sshd drop-in that would refuse the run's own login is refused by sshd itself
  (``sshd -T -C``) and never installed; a PAM stack naming a module that does not exist is
  refused by libpam (pamtester) and never installed;
* a guarded change that no new login confirms is put back by the host itself (a real systemd
  timer), and a late confirmation says so;
* a host restarted after the roles still takes the management account's key, and staff still
  need their code;
* a second run changes nothing.

Needs root and a Docker engine, like the other lab tests. Converges the tiny lab (it may already
be) and leaves it converged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pyotp
import pytest
from tiny_lab import LAB_VAULT_PASSWORD, REPO, TINY, municloud, playbook

from municloud import mfa

pytestmark = pytest.mark.lab

HOST = "matsue-mynumber-term"
CONTAINER = f"mc-tiny-{HOST}"
ADDRESS = "198.19.201.10"
KEY = REPO / ".lab" / "tiny" / "id_ed25519"
KNOWN_HOSTS = REPO / ".lab" / "tiny" / "known_hosts"
LOGIN_FILES = (
    "/etc/ssh/sshd_config",
    "/etc/ssh/sshd_config.d/50-municloud-mfa.conf",
    "/etc/pam.d/sshd",
    "/etc/pam.d/login",
    "/etc/pam.d/municloud-mfa-auth",
    "/home/municloud/.ssh/authorized_keys",
)


def on(command: str, check: bool = True) -> str:
    """Read something on the host (docker exec: inspection, not the proof itself)."""
    return subprocess.run(["docker", "exec", CONTAINER, "sh", "-c", command],
                          capture_output=True, text=True, check=check).stdout


def digests() -> dict[str, str]:
    return {path: hashlib.sha256(on(f"cat {path}").encode()).hexdigest() for path in LOGIN_FILES}


def changed(output: str, host: str = HOST) -> int | None:
    found = re.search(rf"^{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)", output, re.M)
    return int(found[1]) if found else None


def key_login(user: str) -> str:
    """`id -un` over a new key login from the lab machine (a management address)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(KNOWN_HOSTS))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(ADDRESS, username=user, key_filename=str(KEY), look_for_keys=False,
                   allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10)
    try:
        _, out, _ = client.exec_command("id -un", timeout=10)
        return str(out.read().decode().strip())
    finally:
        client.close()


def staff_login(user: str, password: str, code: str) -> bool:
    transport = paramiko.Transport((ADDRESS, 22))
    try:
        transport.start_client(timeout=10)

        def answer(title: str, instructions: str, asked: list[tuple[str, bool]]) -> list[str]:
            return [code if "One-time" in p else password for p, _ in asked]

        try:
            transport.auth_interactive(user, answer)
        except paramiko.AuthenticationException:
            return False
        return transport.is_authenticated()
    finally:
        transport.close()


@pytest.fixture(scope="module")
def converged() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    up = municloud("lab", "up", "--inventory", str(TINY))
    assert up.returncode == 0, up.stdout + up.stderr
    first = playbook("--limit", f"{HOST},matsue-gw")
    assert first.returncode == 0, first.stdout[-4000:]
    yield


@pytest.fixture
def without_ansible_user(tmp_path: Path) -> Path:
    """A copy of the tiny inventory whose lab.yml does not set ansible_user, so that `-u` is
    what decides the login, as on a site where nothing sets it."""
    copy = tmp_path / "tiny"
    shutil.copytree(TINY, copy)
    lab_vars = copy / "group_vars" / "all" / "lab.yml"
    text = lab_vars.read_text()
    assert "ansible_user: root\n" in text
    lab_vars.write_text(text.replace("ansible_user: root\n", ""))
    return copy


def test_a_root_login_is_refused_before_closing_root_logins(
    converged: None, without_ansible_user: Path,
) -> None:
    before = digests()
    run = playbook("--limit", HOST, "-u", "root", "-e", "baseline_ssh_permit_root_login=no",
                   inventory=without_ansible_user)
    assert run.returncode != 0
    assert f"{HOST}: this run logs in as root (whatever set it" in run.stdout, run.stdout[-3000:]
    assert "Nothing was changed." in run.stdout
    assert changed(run.stdout) == 0
    assert digests() == before


def test_a_key_list_without_the_key_in_use_is_refused(converged: None) -> None:
    # Log in as the management account (with become), as a site does after first contact.
    before = digests()
    other = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQ1vD4jEXAMPLEKEYxTmPDZ3a9MS1o0jIb1Z9pJr1G4 "
             "someone-else")
    run = playbook("--limit", HOST, "-e", "ansible_user=municloud",
                   "-e", json.dumps({"baseline_admin_authorized_keys": [other]}))
    assert run.returncode != 0
    assert "which is not in baseline_admin_authorized_keys" in run.stdout, run.stdout[-3000:]
    assert "Nothing was changed." in run.stdout
    assert changed(run.stdout) == 0
    assert digests() == before
    assert key_login("municloud") == "municloud"


def test_an_sshd_change_that_refuses_this_login_is_never_installed(converged: None) -> None:
    # Take root (what this run logs in as) off the automation accounts: the new drop-in would
    # send root to "no way in". sshd itself (-T -C for this very login) refuses it first.
    before = digests()
    run = playbook("--limit", HOST, "--tags", "mfa", "-e",
                   json.dumps({"mfa_automation_users": ["municloud"]}))
    assert run.returncode != 0
    assert "sshd would refuse the key login this run uses (root from" in run.stdout, \
        run.stdout[-3000:]
    assert digests() == before
    assert key_login("root") == "root"


def test_a_broken_pam_stack_is_never_installed(converged: None) -> None:
    # A line naming a PAM module that does not exist, slipped into the staff's auth stack
    # through the role's own variable: libpam could not load it, so every staff login would fail.
    before = digests()
    run = playbook("--limit", HOST, "--tags", "mfa", "-e",
                   json.dumps({"__mfa_faillock": "deny=5\nauth required pam_nosuch.so"}))
    assert run.returncode != 0
    assert "no such PAM module: pam_nosuch.so" in run.stdout, run.stdout[-3000:]
    assert digests() == before


@pytest.mark.parametrize(
    ("users", "said"),
    [
        ([{"name": "sato.hanako"}, {"name": "kato.not-enrolled"}],
         "kato.not-enrolled in mfa_users has no enrolment (mfa_enrolment): enrol each with"),
        ([{"name": "Sato Hanako"}], "mfa_users has names that are not valid login names"),
        ([{"name": "municloud"}], "that belong to automation: municloud"),
        ([{"name": "sato.hanako"}, {"name": "sato.hanako"}], "mfa_users lists a name twice"),
    ],
    ids=["not-enrolled", "bad-name", "automation-account", "twice"],
)
def test_bad_staff_lists_are_refused_before_anything_changes(
    converged: None, users: list[dict[str, str]], said: str,
) -> None:
    before = digests()
    users_file = on("cat /etc/security/municloud-oath/users.oath")
    run = playbook("--limit", HOST, "--tags", "mfa", "-e", json.dumps({"mfa_users": users}))
    assert run.returncode != 0
    assert said in " ".join(run.stdout.split()), run.stdout[-3000:]
    assert "Nothing was changed." in run.stdout
    assert changed(run.stdout) == 0
    assert digests() == before and on("cat /etc/security/municloud-oath/users.oath") == users_file


def test_a_run_without_the_vault_password_changes_nothing(converged: None) -> None:
    # The secrets are vault-encrypted; without the password Ansible stops at the first one.
    before = digests()
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"}
    env |= {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(TINY),
         "playbooks/site.yml", "--limit", HOST, "--tags", "mfa"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    assert run.returncode != 0
    assert "no vault secrets" in run.stdout + run.stderr, (run.stdout + run.stderr)[-3000:]
    assert digests() == before


def test_an_unconfirmed_change_is_put_back_by_the_host(converged: None) -> None:
    # The guard itself, on the real host: arm it over a test file, change the file, and do not
    # confirm: the host's own timer puts the file back; a confirmation after that fails, saying so.
    on("echo original > /root/guard-test")
    tool = Path(shutil.which("ansible") or REPO / ".venv" / "bin" / "ansible")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_VAULT_PASSWORD_FILE": str(LAB_VAULT_PASSWORD)}

    def guard(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(tool), "-i", str(TINY), HOST, "-m", "municloud_login_guard",
                               "-a", " ".join(("name=test", *args))],
                              cwd=REPO, env=env, capture_output=True, text=True, check=False)

    armed = guard("paths=/root/guard-test", "confirm_within=3",
                  "restore_command='echo restored > /root/guard-test.command'")
    assert armed.returncode == 0, armed.stdout
    on("echo changed > /root/guard-test")
    time.sleep(6)
    assert on("cat /root/guard-test") == "original\n"
    assert on("cat /root/guard-test.command") == "restored\n"
    late = guard("state=confirmed")
    assert late.returncode != 0
    assert "put the saved login files back by itself at" in late.stdout
    on("rm -rf /root/guard-test /root/guard-test.command /var/lib/municloud/login-guard/test")


def test_re_enrolment_rotates_the_secret_and_no_secret_is_shown(converged: None) -> None:
    # Re-enrol one user, as an integrator does when a phone is lost, and converge with every
    # detail Ansible can print (-vvv --diff): the new secret works, the old one no longer does,
    # and neither secret nor password appears in Ansible's output or in the host's journal.
    user = "suzuki.ichiro"
    old = mfa.read_enrolment(TINY, "matsue_shi", str(LAB_VAULT_PASSWORD))[user]
    sheets = REPO / ".lab" / "tiny" / "mfa-sheets"
    enrol = municloud("mfa", "enrol", "--inventory", str(TINY), "--vault-password-file",
                      str(LAB_VAULT_PASSWORD), "--sheets", str(sheets), user)
    assert enrol.returncode == 0, enrol.stderr
    new = mfa.read_enrolment(TINY, "matsue_shi", str(LAB_VAULT_PASSWORD))[user]
    assert new.totp_secret != old.totp_secret
    run = playbook("--limit", HOST, "--diff", "-vvv")
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"{user} (enrolled {new.enrolled}, new secret, first password set)" in run.stdout
    journal = on("journalctl --no-pager -o cat")
    for secret in (old, new):
        hex_secret = base64.b32decode(secret.totp_secret).hex()
        for text in (secret.totp_secret, secret.password, hex_secret):
            assert text not in run.stdout + run.stderr and text not in journal
    code = pyotp.TOTP(old.totp_secret).at(time.time() + 30)
    assert not staff_login(user, new.password, code)
    assert staff_login(user, new.password, pyotp.TOTP(new.totp_secret).at(time.time() + 30))


def test_second_run_changes_nothing(converged: None) -> None:
    again = playbook("--limit", HOST)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed(again.stdout) == 0, again.stdout[-3000:]


def test_after_a_restart_the_management_key_and_the_code_still_work(converged: None) -> None:
    subprocess.run(["docker", "restart", CONTAINER], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            assert key_login("municloud") == "municloud"
            break
        except (OSError, paramiko.SSHException):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    secrets = mfa.read_enrolment(TINY, "matsue_shi", str(LAB_VAULT_PASSWORD))
    user = sorted(secrets)[0]
    totp = pyotp.TOTP(secrets[user].totp_secret)
    assert not staff_login(user, secrets[user].password, "")  # the code is still asked for
    # A step ahead of now, so that no code the acceptance tests used is reused.
    assert staff_login(user, secrets[user].password, totp.at(time.time() + 30))
