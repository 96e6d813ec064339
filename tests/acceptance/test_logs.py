"""Acceptance of the central log (集中監視): roles/log_collector and roles/log_forwarding.

Every line looked for is caused here, with a marker of its own (a fresh UUID, or a source port
picked at random for a dropped packet), by what a person or an attacker would do: a connection the
gateway denies, a web request through the proxy, an SSH login with a user that does not exist.
It is then looked for on the collector, over SSH, in the files a CSIRT reads:
/var/log/municloud/<municipality code>/<YYYY-MM-DD>.log, the day being the collector's day in its
time zone (log_collector_timezone, Asia/Tokyo unless the inventory says otherwise).

What must not arrive (an individual-number host's failed login, a plain-TCP line) is judged only
after a line caused at the same time by a host that may send has arrived: the absence then
means something.
"""

from __future__ import annotations

import datetime as dt
import random
import shlex
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paramiko
import pytest

from municloud import policy
from municloud.inventory import Host, Prefecture
from municloud.segments import HostRole, Segment

Run = Callable[..., tuple[int, str, str]]

ROOT = "/var/log/municloud"
SENDER_CA = "/etc/municloud/logs/ca.pem"  # what the senders trust (roles/log_forwarding)
SYSLOG_PORT = 6514  # the segment policy's `syslog` service (municloud/flows.py)
WAIT_SECONDS = 60  # senders retry every 10 s; a restarted collector takes a few more
CLAUSE = "segments.logs.central"
# An inventory without a central log (e.g. tests/lab's tiny one) has nothing here to prove.
pytestmark = pytest.mark.requires_roles("log_collector")


# --- the hosts -----------------------------------------------------------------------------------


def _collector(prefecture: Prefecture) -> Host:
    found = [h for h in prefecture.hosts if h.role is HostRole.LOG_COLLECTOR]
    assert found, "the inventory has no log_collector host"
    return found[0]


def _one(prefecture: Prefecture, role: HostRole) -> Host:
    found = [h for h in prefecture.hosts if h.role is role]
    assert found, f"the inventory has no {role.value} host"
    return found[0]


def _code(prefecture: Prefecture, host: Host) -> str:
    return prefecture.municipality(host.municipality).code if host.municipality else "shared"


def _in_segment(prefecture: Prefecture, group: str | None, segment: Segment) -> Host:
    return next(h for h in prefecture.hosts if h.municipality == group and h.segment is segment
                and h.role is HostRole.TERMINAL)


@pytest.fixture(scope="module")
def timezone(prefecture: Prefecture, host_vars: Callable[[str], dict[str, Any]]) -> ZoneInfo:
    return ZoneInfo(str(host_vars(_collector(prefecture).name)
                        .get("log_collector_timezone", "Asia/Tokyo")))


def _days(zone: ZoneInfo, started: dt.datetime) -> set[str]:
    """The collector's days between the cause and now (two around midnight)."""
    return {started.astimezone(zone).date().isoformat(),
            dt.datetime.now(zone).date().isoformat()}


def _find(run_as_root: Run, collector: Host, marker: str) -> list[tuple[str, str, str]]:
    """(municipality directory, day, line) of every line on the collector holding ``marker``."""
    status, out, err = run_as_root(
        collector, f"grep -rF -- {shlex.quote(marker)} {ROOT} || true")
    assert status == 0, err
    found = []
    for row in out.splitlines():
        path, _, line = row.partition(":")
        parts = Path(path).relative_to(ROOT).parts
        found.append((parts[0], parts[-1].removesuffix(".log"), line))
    return found


def _wait(run_as_root: Run, collector: Host, marker: str, also: str = "",
          seconds: float = WAIT_SECONDS) -> list[tuple[str, str, str]]:
    """The lines holding ``marker`` (and ``also``), once there are any or the time is up."""
    deadline = time.monotonic() + seconds
    while True:
        found = [f for f in _find(run_as_root, collector, marker) if also in f[2]]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(2)


def _failed_login(address: str, user: str) -> None:
    """An SSH login attempt as a user that does not exist ("Invalid user <user> from ..." in the
    host's auth log): a "none" authentication request, refused."""
    transport = paramiko.Transport((address, 22))
    try:
        transport.start_client(timeout=10)
        try:
            transport.auth_none(user)
        except paramiko.BadAuthenticationType:
            pass
        except paramiko.AuthenticationException:
            pass
    finally:
        transport.close()


def _expect_filed(found: list[tuple[str, str, str]], code: str, days: set[str],
                  what: str) -> str:
    assert found, f"{what}: no line on the collector within {WAIT_SECONDS} s"
    places = {(d, day) for d, day, _ in found}
    assert all(d == code for d, _ in places), f"{what}: filed under {places}, not {code}"
    assert all(day in days for _, day in places), f"{what}: filed under {places}, not {days}"
    return found[0][2]


# --- (a) a gateway's drop log ------------------------------------------------------------------


@pytest.mark.clause(CLAUSE)
@pytest.mark.roles("gateway")
def test_a_gateways_drop_reaches_the_collector_under_its_municipality(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run, timezone: ZoneInfo
) -> None:
    """A terminal opens a connection the policy denies to another segment of its town; the
    gateway drops it and its drop log line (NFLOG, ulogd2, rsyslog over TLS) is filed on the
    collector under the town's code and today, sent from the gateway's security-cloud leg."""
    m = prefecture.municipality(str(lab_host.municipality))
    denied = next(p for p in policy.matrix(prefecture)
                  if p.group == m.group and not p.expected and p.service == "ssh"
                  and p.source.segment and p.destination.segment
                  and p.source.segment != p.destination.segment
                  and p.source.segment is not Segment.INDIVIDUAL_NUMBER)
    # The marker: the dropped packet's source port, below Linux's ephemeral range (32768-60999),
    # so no other connection uses it by chance (CI once found another town's drop, from ephemeral
    # port 42338, under a marker drawn from 20000-59999); the line must also name this source.
    port = random.randint(20000, 32767)
    started = dt.datetime.now(dt.UTC)
    status, _, _ = run_as_root(
        denied.source,
        "python3 -c 'import socket; s = socket.socket(); s.bind((\"\", " + str(port) + ")); "
        f's.settimeout(2); s.connect(("{denied.address}", 22))\'',
    )
    assert status != 0, f"{denied.id}: the gateway let it through"
    pair = f"{denied.source.segment}>{denied.destination.segment}"
    found = _wait(run_as_root, _collector(prefecture), f"SPT={port} DPT=22",
                  also=f"SRC={denied.source.primary_address} DST={denied.address} ")
    line = _expect_filed(found, m.code, _days(timezone, started), f"drop of {denied.id}")
    assert f"municloud drop {m.code} {pair} " in line, line
    sender = line.split()[1]
    assert sender == str(lab_host.addresses["security_cloud"]), (
        f"the drop log came from {sender}, not the gateway's security-cloud leg")


# --- (b) the proxy's access log ----------------------------------------------------------------


@pytest.mark.clause(CLAUSE)
@pytest.mark.roles("terminal")
@pytest.mark.segments("internet")
@pytest.mark.requires_roles("log_collector", "proxy", "vendor_update_source")
def test_the_proxys_access_line_is_filed_under_the_clients_municipality(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run, timezone: ZoneInfo
) -> None:
    """An internet terminal fetches a page through the security cloud's proxy; the proxy's access
    log line (which names the client's municipality) is filed under the terminal's town. Needs
    roles/proxy writing municipality=<code> on each line of /var/log/squid/access.log."""
    proxy = _one(prefecture, HostRole.PROXY)
    vendor = _one(prefecture, HostRole.VENDOR_UPDATE_SOURCE)
    proxy_address = policy.destination_address(prefecture, lab_host, proxy)
    marker = uuid.uuid4().hex
    url = f"http://{vendor.primary_address}/municloud-log-test-{marker}"
    started = dt.datetime.now(dt.UTC)
    run_as_root(lab_host,
                "python3 -c 'import urllib.request as u; "
                f"o = u.build_opener(u.ProxyHandler({{\"http\": \"http://{proxy_address}:3128\"}}));"
                f" o.open(\"{url}\", timeout=10)' 2>&1 || true")
    found = _wait(run_as_root, _collector(prefecture), marker)
    line = _expect_filed(found, _code(prefecture, lab_host), _days(timezone, started),
                         f"the proxy's line for {url}")
    assert "municloud-proxy-access" in line and line.split()[1] in {
        str(a) for a in proxy.addresses.values()}, line


# --- (c), (d) failed logins ---------------------------------------------------------------------


@pytest.mark.clause(CLAUSE)
@pytest.mark.roles("terminal")
@pytest.mark.segments("lgwan", "internet")
def test_a_failed_login_reaches_the_collector_under_its_municipality(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run, timezone: ZoneInfo
) -> None:
    """A login attempt with a user that does not exist, on an LGWAN or internet host: sshd's
    line arrives under the host's municipality, from the host's own address."""
    user = f"nobody-{uuid.uuid4().hex[:12]}"
    started = dt.datetime.now(dt.UTC)
    _failed_login(str(lab_host.primary_address), user)
    found = _wait(run_as_root, _collector(prefecture), user)
    line = _expect_filed(found, _code(prefecture, lab_host), _days(timezone, started),
                         f"failed login of {user} on {lab_host.name}")
    assert f"Invalid user {user}" in line and line.split()[1] == str(lab_host.primary_address)


@pytest.mark.clause(CLAUSE)
@pytest.mark.segments("individual_number")
def test_an_individual_number_hosts_failed_login_stays_local(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run
) -> None:
    """The same attempt on an individual-number host is logged there and nowhere else: once the
    attempt made at the same time on the town's LGWAN terminal has arrived, the collector has
    no trace of it."""
    user = f"nobody-{uuid.uuid4().hex[:12]}"
    control_user = f"nobody-{uuid.uuid4().hex[:12]}"
    control = _in_segment(prefecture, lab_host.municipality, Segment.LGWAN)
    _failed_login(str(lab_host.primary_address), user)
    _failed_login(str(control.primary_address), control_user)
    collector = _collector(prefecture)
    assert _wait(run_as_root, collector, control_user), (
        f"the control attempt on {control.name} did not arrive: nothing can be concluded")
    _, out, _ = run_as_root(lab_host, f"journalctl -q --no-pager -u ssh -g {user} || true")
    assert f"Invalid user {user}" in out, f"{lab_host.name} did not log the attempt locally"
    assert _find(run_as_root, collector, user) == []


# --- (e) TLS only, and nothing lost while the collector restarts -------------------------------


@pytest.mark.clause(CLAUSE)
@pytest.mark.roles("log_collector")
def test_the_port_speaks_tls_with_the_labs_ca_and_ignores_plain_syslog(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run, tmp_path: Path
) -> None:
    """From the management address: a TLS handshake with the collector's port succeeds against
    the CA the senders trust (read from a sender), for the collector's name; a plain-TCP syslog
    line sent to the same port is never filed (judged after a line sent over TLS at the same
    time has arrived)."""
    sender = next(h for h in prefecture.hosts if h.segment is Segment.LGWAN
                  and h.role is HostRole.TERMINAL)
    status, pem, err = run_as_root(sender, f"cat {SENDER_CA}")
    assert status == 0 and "BEGIN CERTIFICATE" in pem, f"{sender.name}: {err}"
    ca = tmp_path / "ca.pem"
    ca.write_text(pem)
    context = ssl.create_default_context(cafile=str(ca))
    address = str(lab_host.primary_address)
    with socket.create_connection((address, SYSLOG_PORT), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=lab_host.name) as tls:
        names = [v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "DNS"]
        assert lab_host.name in names

    marker = uuid.uuid4().hex
    message = f"<38>1 - - sshd - - - Invalid user plain-{marker} from 192.0.2.1"
    with socket.create_connection((address, SYSLOG_PORT), timeout=10) as plain:
        # Both framings a syslog receiver knows: octet-counted (RFC 6587), then LF-terminated.
        plain.sendall(f"{len(message)} {message}{message}\n".encode())
    control_user = f"nobody-{uuid.uuid4().hex[:12]}"
    _failed_login(str(sender.primary_address), control_user)
    assert _wait(run_as_root, lab_host, control_user), "the control line did not arrive"
    assert _find(run_as_root, lab_host, marker) == [], "a plain-TCP line was filed"


@pytest.mark.clause(CLAUSE)
@pytest.mark.roles("log_collector")
# The reachability matrix probes the collector's port from every sender: finish it before the
# collector stops (with xdist's worksteal the two ran at once, and six probes found it closed).
@pytest.mark.usefixtures("probe_results")
def test_a_collector_restart_loses_nothing(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run
) -> None:
    """With the collector's rsyslog stopped, a failed login on an internet host is kept in the
    sender's queue and arrives once the collector is back."""
    sender = next(h for h in prefecture.hosts if h.segment is Segment.INTERNET
                  and h.role is HostRole.TERMINAL)
    user = f"nobody-{uuid.uuid4().hex[:12]}"
    # The socket too: journald's forwarding would start rsyslog again through syslog.socket.
    status, _, err = run_as_root(lab_host, "systemctl stop syslog.socket rsyslog.service")
    assert status == 0, err
    try:
        status, out, _ = run_as_root(lab_host, "systemctl is-active rsyslog.service")
        assert out.strip() == "inactive", f"rsyslog did not stay stopped: {out}"
        _failed_login(str(sender.primary_address), user)
        time.sleep(5)
        status, out, _ = run_as_root(lab_host, "systemctl is-active rsyslog.service")
        assert out.strip() == "inactive", f"rsyslog did not stay stopped: {out}"
        assert _find(run_as_root, lab_host, user) == []
    finally:
        status, _, err = run_as_root(lab_host, "systemctl start syslog.socket rsyslog.service")
        assert status == 0, err
    assert _wait(run_as_root, lab_host, user), (
        f"the failed login on {sender.name} made while the collector was down never arrived")
