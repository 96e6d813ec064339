"""Acceptance of the baseline role (roles/baseline), on every host of the inventory.

Proven the way a person would check it: real SSH logins (by key as the management account; by
password, refused, for it and for root), weak algorithms offered and refused, then what sshd
says is in force, the clock, the host name and sudo. Each test fails on a host the role has not
converged (except where a stock Debian already agrees: see the notes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paramiko
import pytest
from paramiko.ssh_exception import IncompatiblePeer

from municloud.inventory import Host

# Who is tried: root (first contact, the lab) and the management account.
WHO = ["root", "admin"]


def _user(who: str, admin_user: str) -> str:
    return admin_user if who == "admin" else "root"


# --- administration by key only (管理者認証は鍵認証のみ) ---------------------------------


@pytest.mark.clause("baseline.admin.account")
def test_admin_logs_in_with_its_key(ssh_login: Callable[[str], Any], admin_user: str) -> None:
    status, out, err = ssh_login(admin_user).run("id -un")
    assert (status, out.strip()) == (0, admin_user), err


@pytest.mark.clause("baseline.admin.account")
def test_admin_uses_sudo_without_a_password(ssh_login: Callable[[str], Any],
                                           admin_user: str) -> None:
    status, out, err = ssh_login(admin_user).run("sudo -n id -u")
    assert (status, out.strip()) == (0, "0"), err


@pytest.mark.clause("baseline.ssh.key-only")
@pytest.mark.parametrize("who", WHO)
def test_server_offers_key_login_only(auth_methods: Callable[[str], list[str]], who: str,
                                      admin_user: str) -> None:
    # What sshd answers to an SSH "none" request: the methods it would accept for this user.
    assert auth_methods(_user(who, admin_user)) == ["publickey"]


@pytest.mark.clause("baseline.ssh.key-only")
@pytest.mark.parametrize("who", WHO)
def test_password_login_is_refused(ssh_connect: Callable[..., Any], who: str,
                                   admin_user: str) -> None:
    # The server refuses the password method itself (BadAuthenticationType), before any
    # password is checked; a server that took passwords would say "wrong password" instead.
    with pytest.raises(paramiko.BadAuthenticationType) as refused:
        ssh_connect(_user(who, admin_user), password="correct horse battery staple")
    assert "password" not in refused.value.allowed_types


# --- modern algorithms only --------------------------------------------------------------------

_PARAMIKO = {
    "kex": paramiko.Transport._preferred_kex,
    "ciphers": paramiko.Transport._preferred_ciphers,
    "macs": paramiko.Transport._preferred_macs,
}


@pytest.mark.clause("baseline.ssh.modern-crypto")
@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("kex", "diffie-hellman-group14-sha256"),  # offered by a stock OpenSSH 9.2
        ("kex", "ecdh-sha2-nistp256"),  # offered by a stock OpenSSH 9.2
        ("macs", "hmac-sha1"),  # offered by a stock OpenSSH 9.2
        ("ciphers", "aes128-cbc"),  # not offered by a stock OpenSSH 9.2 either
    ],
    ids=lambda value: str(value),
)
def test_weak_algorithm_is_refused(ssh_connect: Callable[..., Any], ssh_identity_file: Any,
                                   kind: str, algorithm: str) -> None:
    # The client offers nothing else of that kind; a MAC is only negotiated with a non-AEAD
    # cipher, so for MACs the cipher is pinned to aes128-ctr (which the server does accept).
    disabled = {kind: [a for a in _PARAMIKO[kind] if a != algorithm]}
    if kind == "macs":
        disabled["ciphers"] = [c for c in _PARAMIKO["ciphers"] if c != "aes128-ctr"]
    with pytest.raises(IncompatiblePeer):
        ssh_connect("root", key_filename=str(ssh_identity_file), disabled_algorithms=disabled)


# --- the sshd configuration in force (a supplement to the logins above) -----------------------

_SSHD_T: dict[str, dict[str, str]] = {}


def _sshd_in_force(host: Any, name: str) -> dict[str, str]:
    """`sshd -T`: the configuration sshd reads, as keyword -> value (one run per host)."""
    if name not in _SSHD_T:
        lines = host.check_output("/usr/sbin/sshd -T").splitlines()
        _SSHD_T[name] = dict(line.split(" ", 1) for line in lines if " " in line)
    return _SSHD_T[name]


def _key_only(keyword: str, *values: str) -> Any:
    return pytest.param(keyword, set(values), id=keyword,
                        marks=pytest.mark.clause("baseline.ssh.key-only"))


def _hardened(keyword: str, *values: str) -> Any:
    return pytest.param(keyword, set(values), id=keyword,
                        marks=pytest.mark.clause("baseline.ssh.hardened"))


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        _key_only("passwordauthentication", "no"),
        _key_only("kbdinteractiveauthentication", "no"),  # also Debian's own setting
        _key_only("permitemptypasswords", "no"),  # also OpenSSH's default
        # OpenSSH's default too; sshd -T prints prohibit-password by its older name
        _key_only("permitrootlogin", "prohibit-password", "without-password"),
        _hardened("maxauthtries", "3"),
        _hardened("x11forwarding", "no"),
        _hardened("loglevel", "VERBOSE"),
    ],
)
def test_sshd_setting_in_force(host: Any, lab_host: Host, keyword: str,
                               expected: set[str]) -> None:
    assert _sshd_in_force(host, lab_host.name).get(keyword) in expected


# --- time zone, host name ----------------------------------------------------------------------


@pytest.mark.clause("baseline.time.jst")
def test_clock_shows_jst(host: Any) -> None:
    assert host.check_output("date +%Z%z") == "JST+0900"


@pytest.mark.clause("baseline.time.jst")
def test_timedatectl_reports_asia_tokyo(host: Any) -> None:
    assert host.check_output("timedatectl show --property=Timezone --value") == "Asia/Tokyo"


@pytest.mark.clause("baseline.time.jst")
def test_localtime_is_the_asia_tokyo_zone(host: Any) -> None:
    assert host.check_output("readlink -f /etc/localtime") == "/usr/share/zoneinfo/Asia/Tokyo"


@pytest.mark.clause("baseline.host.name")
def test_host_name_is_the_inventory_name(host: Any, lab_host: Host) -> None:
    # The lab already names its containers so; on real hosts this is the role's doing.
    assert host.check_output("hostname") == lab_host.name


@pytest.mark.clause("baseline.host.name")
def test_static_host_name_is_the_inventory_name(host: Any, lab_host: Host) -> None:
    assert host.file("/etc/hostname").content_string.strip() == lab_host.name
