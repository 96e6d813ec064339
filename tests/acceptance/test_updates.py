"""Acceptance of the update relay: vendor → platform → town-hall delivery server → LGWAN terminal.

Everything here is real traffic between the lab's hosts: the lab vendor (roles/lab_vendor) builds
and publishes Debian packages and pattern files signed with its key; the platform's ingest runs as
its systemd service; each delivery server's sync runs as its own account with the clock given on
the command line (``--now``), the one thing a test may not wait for; the terminal's apt and
fetch job take what the delivery server serves.

The vendor, the platform and its store are shared by every municipality, so each test holds one
lock (shared by the xdist workers) and pauses the timers of the hosts it drives, so that no timed
run moves a snapshot under it. What is asserted comes from the hosts (apt's view, the served
files, nftables counters of the bytes that crossed, the jobs' logs), never from the roles' own
variables; the delivery window is read from the inventory, with the source's 23:00-06:00 as the
default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import shlex
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from municloud.inventory import Host, Prefecture
from municloud.segments import HostRole, Segment

Run = Callable[..., tuple[int, str, str]]

JOB = "/usr/local/sbin/municloud-updates"
VENDOR = "/usr/local/sbin/municloud-lab-vendor"
RELAY_CONFIG = "/etc/municloud/update-relay.json"
RELAY_ROOT = "/srv/municloud-updates"
PLATFORM_CREDENTIALS = "/etc/municloud/update-platform.credentials"
STORE_CA = "/etc/municloud/update-store-ca.pem"
PATTERNS_ON_TERMINAL = "/var/lib/municloud/updates/lab-av-patterns/current"
PACKAGE = "municloud-lab-hello"
DEBIAN_SOURCE, FILES_SOURCE = "lab-vendor", "lab-av-patterns"
# The source's delivery window, where the inventory names none (update_relay_window).
DEFAULT_WINDOW = {"start": "23:00", "end": "06:00", "timezone": "Asia/Tokyo"}

pytestmark = pytest.mark.roles("update_relay")


# --- the hosts ---------------------------------------------------------------------------------


def _one(prefecture: Prefecture, role: HostRole) -> Host:
    found = [h for h in prefecture.hosts if h.role is role]
    assert found, f"the inventory has no {role.value} host"
    return found[0]


@pytest.fixture
def vendor(prefecture: Prefecture) -> Host:
    return _one(prefecture, HostRole.VENDOR_UPDATE_SOURCE)


@pytest.fixture
def platform(prefecture: Prefecture) -> Host:
    return _one(prefecture, HostRole.UPDATE_PLATFORM)


@pytest.fixture
def terminal(prefecture: Prefecture, lab_host: Host) -> Host:
    """An LGWAN-segment terminal of the delivery server's municipality."""
    town = prefecture.municipality(str(lab_host.municipality))
    found = [h for h in town.hosts
             if h.role is HostRole.TERMINAL and h.segment is Segment.LGWAN]
    assert found, f"{town.name_ja} has no LGWAN terminal"
    return found[0]


def _address(host: Host, *networks: str) -> str:
    for net in networks:
        for key, address in host.addresses.items():
            if key == net or key.endswith(net):
                return str(address)
    return str(host.primary_address)


# --- one updater at a time, with the timers paused ---------------------------------------------


@pytest.fixture(scope="session")
def _lock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "updates.lock"


TIMERS = ("municloud-update-sync.timer", "municloud-update-ingest.timer",
          "municloud-update-fetch.timer")


@pytest.fixture
def relay_lab(_lock_file: Path, run_as_root: Run, vendor: Host, platform: Host,
              lab_host: Host, terminal: Host,
              host_vars: Callable[[str], dict[str, Any]]) -> Iterator[None]:
    """Hold the update lock; pause the timers of the hosts this test drives, then start them.
    Lab only: these tests publish at the vendor (roles/lab_vendor), which no real one allows."""
    if "municloud_lab" not in host_vars(vendor.name):
        pytest.skip(f"{vendor.name} is a real vendor: these tests publish at the lab's vendor")
    hosts = (platform, lab_host, terminal)
    with _lock_file.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for h in hosts:
            # Stop the timers, then wait for a timed run already going (a oneshot's stop waits).
            run_as_root(h, f"systemctl stop {' '.join(TIMERS)} "
                           "municloud-update-sync.service municloud-update-ingest.service "
                           "municloud-update-fetch.service 2>/dev/null; true", timeout=600)
        try:
            yield
        finally:
            for h in hosts:
                run_as_root(h, "for t in " + " ".join(TIMERS) + "; do "
                               "systemctl is-enabled -q $t 2>/dev/null && systemctl start $t; "
                               "done; true")


# --- what the vendor publishes, and the jobs ---------------------------------------------------


def _ok(result: tuple[int, str, str], what: str) -> str:
    status, out, err = result
    assert status == 0, f"{what}: exit {status}\n{out}\n{err}"
    return out


def publish_package(run: Run, vendor: Host, version: str, size: int = 4096) -> None:
    _ok(run(vendor, f"cd /tmp && deb=$({VENDOR} build-deb {PACKAGE} {version} {size}) && "
                    f"{VENDOR} add-deb \"$deb\" && rm -f \"$deb\""), f"publish {version}")


def publish_pattern(run: Run, vendor: Host, size: int = 2048) -> tuple[str, str]:
    """A new pattern file at the vendor (name, sha256), with the manifest signed again."""
    name = f"av-pattern-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}.dat"
    _ok(run(vendor, f"head -c {size} /dev/urandom > /tmp/{name} && {VENDOR} add-file /tmp/{name}"
                    f" && rm /tmp/{name} && sha256sum /srv/vendor/patterns/{name}"),
        f"publish {name}")
    _, out, _ = run(vendor, f"sha256sum /srv/vendor/patterns/{name}")
    return name, out.split()[0]


def ingest(run: Run, platform: Host) -> tuple[int, str]:
    """Run the platform's ingest as its systemd service; (exit status, what it logged)."""
    since = run(platform, "date +%s.%N")[1].strip()
    status, _, _ = run(platform, "systemctl start municloud-update-ingest.service", timeout=600)
    _, log, _ = run(platform, f"journalctl -q -o cat -u municloud-update-ingest.service "
                              f"--since @{since}")
    return status, log


def sync(run: Run, relay: Host, now: dt.datetime, *extra: str,
         timeout: float = 600) -> tuple[int, str]:
    status, out, err = run(relay, f"runuser -u municloud-updates -- {JOB} sync --config "
                                  f"{RELAY_CONFIG} --now {now.isoformat()} {' '.join(extra)}",
                           timeout=timeout)
    return status, out + err


def up_to_date(run: Run, platform: Host, relay: Host, window: dict[str, str]) -> str:
    """Ingest (the first snapshot, on a lab no ingest has run on yet) and sync in the window;
    the snapshot served then."""
    status, log = ingest(run, platform)
    assert status == 0, log
    status, log = sync(run, relay, inside(window))
    assert status == 0, log
    return served(run, relay)


def served(run: Run, relay: Host) -> str:
    """The snapshot the delivery server serves now."""
    return run(relay, f"readlink {RELAY_ROOT}/current")[1].strip()


def terminal_gets(run: Run, terminal: Host, relay: Host, path: str) -> tuple[bool, str]:
    """The terminal asks its delivery server for ``path``: (served?, the body's SHA-256)."""
    status, out, _ = run(terminal, f"curl -sSf -o /tmp/got http://{_address(relay, 'lgwan')}/"
                                   f"{path} && sha256sum /tmp/got && rm /tmp/got")
    return status == 0, out.split()[0] if status == 0 else ""


def latest(run: Run, platform: Host) -> str:
    """The platform's newest snapshot, asked of its store."""
    return _store(run, platform, "print(s3.get_object(Bucket=B, Key='latest')['Body']"
                                 ".read().decode())").strip()


def _store(run: Run, platform: Host, code: str) -> str:
    """Run Python with a boto3 client ``s3`` of the platform's store (its own credentials)."""
    program = (
        "import json, boto3, os\n"
        f"cfg = json.load(open('/etc/municloud/update-platform.json'))\n"
        f"os.environ['AWS_SHARED_CREDENTIALS_FILE'] = '{PLATFORM_CREDENTIALS}'\n"
        "st = cfg['store']; B = st['bucket']\n"
        "s3 = boto3.client('s3', endpoint_url=st['endpoint'], region_name=st['region'],"
        " verify=st['ca_file'] or True)\n" + code + "\n"
    )
    return _ok(run(platform, "python3 -", stdin=program), "the platform's store")


# --- the window, from the inventory -------------------------------------------------------------


@pytest.fixture
def window(host_vars: Callable[[str], dict[str, Any]], lab_host: Host) -> dict[str, str]:
    return dict(host_vars(lab_host.name).get("update_relay_window") or DEFAULT_WINDOW)


def _at(window: dict[str, str], hhmm: str) -> dt.datetime:
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(2026, 12, 1, hour, minute, tzinfo=ZoneInfo(window["timezone"]))


def inside(window: dict[str, str]) -> dt.datetime:
    """Ten minutes after the window opens."""
    return _at(window, window["start"]) + dt.timedelta(minutes=10)


def outside(window: dict[str, str]) -> dt.datetime:
    """Halfway between the window's end and its next start."""
    end, start = _at(window, window["end"]), _at(window, window["start"])
    if start <= end:
        start += dt.timedelta(days=1)
    return end + (start - end) / 2


# --- bytes that cross, counted by nftables on the delivery server ----------------------------


@contextlib.contextmanager
def counted(run: Run, relay: Host, platform_address: str) -> Iterator[dict[str, int]]:
    """Count the bytes the delivery server receives from the platform's store while inside."""
    table = "municloud_test_count"
    run(relay, f"nft delete table inet {table} 2>/dev/null; true")
    _ok(run(relay, f"nft add table inet {table} && nft add chain inet {table} input "
                   "'{ type filter hook input priority -400; policy accept; }' && "
                   f"nft add rule inet {table} input ip saddr {platform_address} tcp sport 443 "
                   "counter"), "the byte counter")
    found: dict[str, int] = {}
    try:
        yield found
    finally:
        _, out, _ = run(relay, f"nft -j list table inet {table}")
        run(relay, f"nft delete table inet {table}")
        for item in json.loads(out)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    found["bytes"] = int(expr["counter"]["bytes"])


# --- delivery ---------------------------------------------------------------------------------


@pytest.mark.clause("updates.delivery")
def test_a_new_package_and_pattern_file_reach_the_lgwan_terminal(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        terminal: Host, window: dict[str, str], evidence: Any) -> None:
    version = f"1.{int(time.time())}"
    publish_package(run_as_root, vendor, version)
    pattern, pattern_sha = publish_pattern(run_as_root, vendor)

    status, log = ingest(run_as_root, platform)
    assert status == 0 and "REFUSED" not in log, log
    status, log = sync(run_as_root, lab_host, inside(window))
    assert status == 0, log
    assert "switched to snapshot" in log, log

    # apt on the terminal: its only source is the delivery server, the vendor's key pinned.
    out = _ok(run_as_root(terminal, "apt-get update 2>&1", timeout=300), "apt-get update")
    assert not [line for line in out.splitlines() if line.startswith(("W:", "E:", "Err:"))], out
    out = _ok(run_as_root(terminal, "apt-cache policy " + PACKAGE), "apt-cache policy")
    evidence(f"`apt-cache policy {PACKAGE}` after publishing version {version}", out,
             on=terminal)
    relay_uri = f"http://{_address(lab_host, 'lgwan')}/{DEBIAN_SOURCE}"
    assert version in out and relay_uri in out, out
    sources = _ok(run_as_root(terminal, "apt-get indextargets --format '$(URI)' | sort -u"),
                  "apt's index targets")
    assert sources.strip() and all(line.startswith(relay_uri) for line in sources.split()), sources
    _ok(run_as_root(terminal, f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                              f"{PACKAGE}={version} 2>&1", timeout=300), "apt-get install")
    installed = _ok(run_as_root(terminal, PACKAGE), PACKAGE)
    evidence(f"run `{PACKAGE}` (prints its version) after `apt-get install`", installed,
             on=terminal)
    assert installed.split() == [PACKAGE, version]

    # the pattern file, fetched by the terminal's own job and checked against the vendor's key
    _ok(run_as_root(terminal, "systemctl start municloud-update-fetch.service", timeout=300),
        "the fetch job")
    out = _ok(run_as_root(terminal, f"sha256sum {PATTERNS_ON_TERMINAL}/{pattern}"), "the pattern")
    evidence(f"sha256sum of the pattern file {pattern} fetched by the terminal (the vendor "
             f"published {pattern_sha})", out, on=terminal)
    assert out.split()[0] == pattern_sha


@pytest.mark.clause("updates.delivery")
def test_a_person_can_start_the_jobs_again_and_again(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        terminal: Host, window: dict[str, str], evidence: Any) -> None:
    """After an urgent vendor release an operator starts the jobs by hand, perhaps several times
    in a row: systemd must never refuse one. (With systemd's default start limit, 5 starts in
    10 s, the sixth ingest in a row was refused: each takes about a second here.)

    A pattern file is delivered to the relay first, so that the terminal has something to fetch
    whatever ran before (on a lab no test has delivered to, the fetch fails: nothing served)."""
    publish_pattern(run_as_root, vendor)
    up_to_date(run_as_root, platform, lab_host, window)
    starts = 6  # one past the default burst
    for host, unit in ((platform, "municloud-update-ingest.service"),
                       (lab_host, "municloud-update-sync.service"),
                       (terminal, "municloud-update-fetch.service")):
        status, out, err = run_as_root(
            host, f"for i in $(seq {starts}); do systemctl start {unit} 2>&1 || "
                  f"{{ echo \"start $i refused\"; exit 1; }}; done; echo {starts} starts",
            timeout=600)
        evidence(f"systemctl start {unit}, {starts} times in a row", out + err, on=host)
        assert status == 0, f"{host.name}: {out}{err}"


# --- the window and the cap --------------------------------------------------------------------


@pytest.mark.clause("updates.window")
def test_outside_the_window_nothing_is_transferred(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        window: dict[str, str]) -> None:
    publish_pattern(run_as_root, vendor, size=256 * 1024)
    assert ingest(run_as_root, platform)[0] == 0
    newest, before = latest(run_as_root, platform), served(run_as_root, lab_host)
    assert newest not in before, "the test needs a snapshot the delivery server lacks"

    with counted(run_as_root, lab_host, _address(platform, "lgwan_backbone")) as got:
        status, log = sync(run_as_root, lab_host, outside(window))
    assert status == 0, log
    assert got["bytes"] == 0, f"{got['bytes']} bytes came from the platform outside the window"
    assert served(run_as_root, lab_host) == before
    assert "outside the delivery window" in log and "nothing transferred" in log, log


@pytest.mark.clause("updates.window")
def test_inside_the_window_the_byte_rate_stays_under_the_cap(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        window: dict[str, str]) -> None:
    size, cap = 3 * 1024 * 1024, 1024 * 1024  # 3 MiB at 1 MiB/s: at least 3 s
    publish_pattern(run_as_root, vendor, size=size)
    assert ingest(run_as_root, platform)[0] == 0
    with counted(run_as_root, lab_host, _address(platform, "lgwan_backbone")) as got:
        started = time.monotonic()
        status, log = sync(run_as_root, lab_host, inside(window), f"--rate {cap}")
        elapsed = time.monotonic() - started
    assert status == 0 and "switched to snapshot" in log, log
    assert got["bytes"] >= size, f"only {got['bytes']} bytes crossed for a {size}-byte file"
    # A lower bound on the time (a slow machine only makes it longer): never faster than the cap,
    # less the one second of allowance the cap may carry.
    assert elapsed >= size / cap - 1, f"{got['bytes']} bytes in {elapsed:.1f} s: over the cap"


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.clause("updates.verified")
def test_a_tampered_package_is_refused_by_the_platform(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        terminal: Host, window: dict[str, str]) -> None:
    up_to_date(run_as_root, platform, lab_host, window)  # the terminal has the repository
    version = f"1.{int(time.time())}"
    publish_package(run_as_root, vendor, version)
    # The pool file is replaced after the vendor signed its hash: a tampered download.
    _ok(run_as_root(vendor, f"cd /tmp && deb=$({VENDOR} build-deb {PACKAGE} {version} 5000) && "
                            f"cp \"$deb\" $(find /srv/vendor/debian/pool -name "
                            f"'{PACKAGE}_{version}_all.deb') && rm \"$deb\""), "tamper")
    try:
        status, log = ingest(run_as_root, platform)
        assert status != 0, log
        assert f"REFUSED {DEBIAN_SOURCE}" in log and f"{PACKAGE}_{version}_all.deb" in log, log
        assert "sha256" in log or "bytes" in log, log
        sync(run_as_root, lab_host, inside(window))
        _ok(run_as_root(terminal, "apt-get update 2>&1", timeout=300), "apt-get update")
        policy = _ok(run_as_root(terminal, "apt-cache policy " + PACKAGE), "apt-cache policy")
        assert version not in policy, f"the tampered {version} is offered:\n{policy}"
    finally:  # the vendor publishes a good build again
        publish_package(run_as_root, vendor, f"1.{int(time.time()) + 1}")
        ingest(run_as_root, platform)


@pytest.mark.clause("updates.verified")
def test_a_tampered_pattern_file_is_refused_by_the_platform(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        window: dict[str, str]) -> None:
    name, _ = publish_pattern(run_as_root, vendor)
    _ok(run_as_root(vendor, f"head -c 2048 /dev/urandom > /srv/vendor/patterns/{name}"), "tamper")
    try:
        status, log = ingest(run_as_root, platform)
        assert status != 0, log
        assert f"REFUSED {FILES_SOURCE}" in log and name in log, log
        sync(run_as_root, lab_host, inside(window))
        status, _, _ = run_as_root(lab_host, f"test -e {RELAY_ROOT}/current/{FILES_SOURCE}/{name}")
        assert status != 0, f"the delivery server serves the tampered {name}"
    finally:
        run_as_root(vendor, f"rm -f /srv/vendor/patterns/{name} && {VENDOR} sign")
        ingest(run_as_root, platform)


@pytest.mark.clause("updates.verified")
def test_a_manifest_signed_by_another_key_is_refused_by_the_platform(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host) -> None:
    name, _ = publish_pattern(run_as_root, vendor)
    _ok(run_as_root(vendor, "set -e; home=$(mktemp -d); "
                            "gpg --homedir $home --batch --quiet --pinentry-mode loopback "
                            "--passphrase '' --quick-gen-key 'not the vendor' ed25519 sign never; "
                            "gpg --homedir $home --batch --yes --armor --detach-sign "
                            "--output /srv/vendor/patterns/manifest.json.asc "
                            "/srv/vendor/patterns/manifest.json; rm -rf $home"), "re-sign")
    try:
        status, log = ingest(run_as_root, platform)
        assert status != 0, log
        assert f"REFUSED {FILES_SOURCE}" in log and "does not verify" in log, log
        manifest = _store(run_as_root, platform,
                          "k = s3.get_object(Bucket=B, Key='latest')['Body'].read().decode()\n"
                          "print(s3.get_object(Bucket=B, Key=f'snapshots/{k}/manifest.json')"
                          "['Body'].read().decode())")
        assert f"{FILES_SOURCE}/{name}" not in json.loads(manifest)["files"]
    finally:
        run_as_root(vendor, f"{VENDOR} sign")
        ingest(run_as_root, platform)


@pytest.mark.clause("updates.verified")
def test_the_terminal_refuses_a_repository_the_vendor_did_not_sign(
        relay_lab: None, run_as_root: Run, platform: Host, lab_host: Host, terminal: Host,
        window: dict[str, str]) -> None:
    """The last hop: apt on the terminal checks the vendor's own signature, so even a delivery
    server that serves a forged InRelease (here: re-signed by another key, in place) is refused."""
    up_to_date(run_as_root, platform, lab_host, window)
    inrelease = f"{RELAY_ROOT}/current/{DEBIAN_SOURCE}/dists/bookworm/InRelease"
    saved = "/tmp/InRelease.saved"
    _ok(run_as_root(lab_host, f"set -e; cp -p {inrelease} {saved}; home=$(mktemp -d); "
                              "gpg --homedir $home --batch --quiet --pinentry-mode loopback "
                              "--passphrase '' --quick-gen-key 'not the vendor' ed25519 sign "
                              f"never; gpg --homedir $home --batch --decrypt {saved} 2>/dev/null"
                              f" | gpg --homedir $home --batch --yes --clearsign > /tmp/forged; "
                              f"cat /tmp/forged > {inrelease}; rm -rf $home /tmp/forged; "
                              # an hour newer than the real one: see the restore below
                              f"touch -d @$(( $(stat -c %Y {saved}) + 3600 )) {inrelease}"),
        "forge InRelease")
    try:
        # apt refuses it and keeps its previous indexes; --error-on=any makes that the exit status
        status, out, _ = run_as_root(terminal, "apt-get update --error-on=any 2>&1", timeout=300)
        assert status != 0, f"apt accepted an InRelease the vendor did not sign:\n{out}"
        assert "NO_PUBKEY" in out and "Err:" in out, out
    finally:
        # The same bytes and time back, in place (the file is shared with other snapshots). The
        # time matters: apt keeps the InRelease it refused in lists/partial/ and asks for the
        # rest of it (Range: bytes=<its size>-, If-Range: <its Last-Modified>). The forgery has
        # the real file's size (both ed25519), so a restored file with the forgery's time, to the
        # second, is answered "416, nothing more" and apt goes on judging the forgery (seen in CI
        # on a terminal that had no lists yet).
        run_as_root(lab_host, f"cat {saved} > {inrelease} && touch -r {saved} {inrelease} "
                              f"&& rm {saved}")
    _ok(run_as_root(terminal, "apt-get update 2>&1", timeout=300), "apt-get update after")


@pytest.mark.clause("updates.verified")
def test_an_object_changed_in_the_store_is_refused_by_the_delivery_server(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        window: dict[str, str]) -> None:
    name, sha = publish_pattern(run_as_root, vendor)
    assert ingest(run_as_root, platform)[0] == 0
    before = served(run_as_root, lab_host)
    original = f"/tmp/{sha}"
    _store(run_as_root, platform,
           f"s3.download_file(B, 'objects/{sha}', '{original}')\n"
           f"s3.put_object(Bucket=B, Key='objects/{sha}', Body=os.urandom(2048))")
    try:
        status, log = sync(run_as_root, lab_host, inside(window))
        assert status != 0, log
        assert "REFUSED snapshot" in log and f"{FILES_SOURCE}/{name}" in log, log
        assert served(run_as_root, lab_host) == before
        status, _, _ = run_as_root(lab_host, f"test -e {RELAY_ROOT}/current/{FILES_SOURCE}/{name}")
        assert status != 0
    finally:
        _store(run_as_root, platform, f"s3.upload_file('{original}', B, 'objects/{sha}')\n"
                                      f"os.remove('{original}')")
    status, log = sync(run_as_root, lab_host, inside(window))
    assert status == 0 and "switched to snapshot" in log, log


@pytest.mark.clause("updates.verified")
def test_a_platform_manifest_signed_by_another_key_is_refused_by_the_delivery_server(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        window: dict[str, str]) -> None:
    publish_pattern(run_as_root, vendor)
    assert ingest(run_as_root, platform)[0] == 0
    snapshot, before = latest(run_as_root, platform), served(run_as_root, lab_host)
    key = f"snapshots/{snapshot}/manifest.json.asc"
    saved = f"/tmp/{snapshot}.asc"
    _ok(run_as_root(platform, "set -e; home=$(mktemp -d); "
                              "gpg --homedir $home --batch --quiet --pinentry-mode loopback "
                              "--passphrase '' --quick-gen-key 'not the platform' ed25519 sign "
                              "never; echo forged | gpg --homedir $home --batch --armor "
                              "--detach-sign > /tmp/forged.asc; rm -rf $home"), "a stranger key")
    _store(run_as_root, platform, f"s3.download_file(B, '{key}', '{saved}')\n"
                                  f"s3.upload_file('/tmp/forged.asc', B, '{key}')")
    try:
        status, log = sync(run_as_root, lab_host, inside(window))
        assert status != 0, log
        assert "REFUSED snapshot" in log and "does not verify" in log, log
        assert served(run_as_root, lab_host) == before
    finally:
        _store(run_as_root, platform, f"s3.upload_file('{saved}', B, '{key}')\n"
                                      f"os.remove('{saved}')")


# --- a sync cut short ---------------------------------------------------------------------------


@pytest.mark.clause("updates.atomic")
def test_a_sync_killed_midway_leaves_the_served_snapshot_intact(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        terminal: Host, window: dict[str, str]) -> None:
    # Something served to compare against: bring the delivery server up to date first.
    before = up_to_date(run_as_root, platform, lab_host, window)
    manifest = f"{FILES_SOURCE}/manifest.json"
    manifest_before = terminal_gets(run_as_root, terminal, lab_host, manifest)

    name, _ = publish_pattern(run_as_root, vendor, size=8 * 1024 * 1024)
    assert ingest(run_as_root, platform)[0] == 0
    # 8 MiB at 1 MiB/s, killed as soon as it has staged a file: well before the end. (A fixed
    # 2 s wait was not enough on a busy machine: the sync had not staged anything yet.)
    kill = _ok(run_as_root(
        lab_host, f"runuser -u municloud-updates -- {JOB} sync --config {RELAY_CONFIG} "
                  f"--now {inside(window).isoformat()} --rate {1024 * 1024} "
                  ">/tmp/killed-sync.log 2>&1 & "
                  "for _ in $(seq 150); do "
                  f"[ -n \"$(find {RELAY_ROOT}/.staging -type f 2>/dev/null | head -1)\" ] "
                  "&& break; "
                  "sleep 0.2; done; "
                  f"pkill -KILL -f '^/usr/bin/python3 {JOB} sync' && echo killed; sleep 0.5"),
        "start and kill a sync")
    assert "killed" in kill, "the sync had ended before it could be killed"
    assert served(run_as_root, lab_host) == before, "the snapshot switched under a killed sync"
    staged = _ok(run_as_root(lab_host, f"find {RELAY_ROOT}/.staging -type f | wc -l"), "staging")
    assert int(staged) > 0, "the killed sync had staged nothing: it was not cut midway"
    assert terminal_gets(run_as_root, terminal, lab_host, manifest) == manifest_before
    assert not terminal_gets(run_as_root, terminal, lab_host, f"{FILES_SOURCE}/{name}")[0], \
        f"{name} is served before its snapshot is complete"

    status, log = sync(run_as_root, lab_host, inside(window))
    assert status == 0 and "switched to snapshot" in log, log
    assert served(run_as_root, lab_host) != before
    assert terminal_gets(run_as_root, terminal, lab_host, f"{FILES_SOURCE}/{name}")[0]


@pytest.mark.clause("updates.atomic")
def test_the_previous_snapshot_is_kept_and_can_be_served_again(
        relay_lab: None, run_as_root: Run, vendor: Host, platform: Host, lab_host: Host,
        terminal: Host, window: dict[str, str]) -> None:
    before = up_to_date(run_as_root, platform, lab_host, window)
    name, _ = publish_pattern(run_as_root, vendor)
    assert ingest(run_as_root, platform)[0] == 0
    assert sync(run_as_root, lab_host, inside(window))[0] == 0
    newer = served(run_as_root, lab_host)
    assert newer != before
    assert terminal_gets(run_as_root, terminal, lab_host, f"{FILES_SOURCE}/{name}")[0]

    out = _ok(run_as_root(lab_host, f"runuser -u municloud-updates -- {JOB} rollback "
                                    f"--config {RELAY_CONFIG}"), "rollback")
    assert served(run_as_root, lab_host) == before, out
    assert not terminal_gets(run_as_root, terminal, lab_host, f"{FILES_SOURCE}/{name}")[0], \
        f"{name} is still served after the rollback"
    # the next sync moves forward again
    assert sync(run_as_root, lab_host, inside(window))[0] == 0
    assert served(run_as_root, lab_host) == newer


# --- the paths -----------------------------------------------------------------------------------


@pytest.mark.clause("segments.lgwan.updates")
def test_terminals_reach_only_the_delivery_server(
        run_as_root: Run, vendor: Host, platform: Host, lab_host: Host, terminal: Host) -> None:
    vendor_url = f"http://{_address(vendor, 'internet')}/debian/dists/"
    store_url = f"https://{_address(platform, 'lgwan_backbone')}/"
    relay_url = f"http://{_address(lab_host, 'lgwan')}/"

    def fetches(host: Host, url: str, *options: str) -> bool:
        status, _, _ = run_as_root(host, f"curl -s -o /dev/null --max-time 5 {' '.join(options)}"
                                         f" {shlex.quote(url)}", timeout=30)
        return status == 0

    # Each address answers where the model allows it, so a refusal below is the firewall's.
    assert fetches(platform, vendor_url), "the platform cannot reach the vendor"
    assert fetches(lab_host, store_url, f"--cacert {STORE_CA}"), "the relay cannot reach the store"
    assert fetches(terminal, relay_url), "the terminal cannot reach its delivery server"
    assert not fetches(terminal, vendor_url), "an LGWAN terminal reaches the vendor"
    assert not fetches(terminal, store_url, "-k"), "an LGWAN terminal reaches the platform"
    assert not fetches(lab_host, vendor_url), "the delivery server reaches the vendor"

