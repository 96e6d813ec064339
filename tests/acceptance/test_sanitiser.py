"""Acceptance of sanitised file transfer (無害化), per municipality, with real staff sessions.

A sender at an internet-segment terminal puts a corpus (tests/unit/test_sanitiser_corpus.py: clean
PDF, PNG, JPEG and Japanese text in three encodings; a macro document, an ELF named .pdf, a PDF
that runs JavaScript, a ZIP bomb, an encrypted PDF, polyglots) into the sanitiser's inbox with
OpenSSH's sftp, with their own key on that terminal; a reader at an LGWAN terminal collects what
arrives in the file drop, with theirs. The files are compared here, on the controller, by readers
other than the sanitiser (poppler, Pillow, Python's codecs); the reasons come from the
sanitiser's audit log. Then the sanitiser is killed (SIGKILL) in the middle of delivering a big
file while the reader keeps listing the drop, and the drop's walls are tried from both sides.

Lab only: the staff and their keys are the lab's (municloud/lab/sanitiser.py).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from municloud.inventory import Host, Prefecture
from municloud.segments import HostRole, Segment

Run = Callable[..., tuple[int, str, str]]

REPO = Path(__file__).resolve().parents[2]
AUDIT = "/var/log/municloud-sanitiser/audit.jsonl"
INBOX_HOST_KEY = "/etc/ssh/municloud-inbox/ssh_host_ed25519_key.pub"
DROP_HOST_KEY = "/etc/ssh/municloud-file-drop/ssh_host_ed25519_key.pub"
STAGING = "/srv/municloud-file-drop/staging"
VISIBLE = "/srv/municloud-file-drop/lgwan/files"
QUARANTINE = "/srv/municloud-sanitiser/quarantine"
PORT = 2022
WORK = "/root/municloud-sanitiser-test"  # on the terminals
BIG = 20 * 1024 * 1024  # at the lab's 40 Mbit/s cap, about 4 s on the wire

pytestmark = [pytest.mark.roles("sanitiser"), pytest.mark.clause("segments.lgwan.sanitised-files")]


def _corpus() -> Any:
    path = REPO / "tests" / "unit" / "test_sanitiser_corpus.py"
    loader = importlib.machinery.SourceFileLoader("municloud_sanitiser_corpus", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


corpus = _corpus()


# --- the municipality's hosts and staff ---------------------------------------------------------


class Town:
    def __init__(self, prefecture: Prefecture, sanitiser: Host) -> None:
        town = prefecture.municipality(str(sanitiser.municipality))
        self.code = town.code
        self.sanitiser = sanitiser

        def one(role: HostRole, segment: Segment | None = None) -> Host:
            found = [h for h in town.hosts if h.role is role
                     and (segment is None or h.segment is segment)]
            assert found, f"{town.name_ja} has no {role.value} {segment or ''}"
            return found[0]

        self.file_server = one(HostRole.FILE_SERVER)
        self.net_terminal = one(HostRole.TERMINAL, Segment.INTERNET)
        self.lgwan_terminal = one(HostRole.TERMINAL, Segment.LGWAN)


@pytest.fixture
def town(prefecture: Prefecture, lab_host: Host) -> Town:
    return Town(prefecture, lab_host)


def _staff(host_vars: Callable[[str], dict[str, Any]], prefecture: Prefecture, town: Town,
           table: str) -> tuple[str, str]:
    """(name, private key) of the lab's sender or reader of the town."""
    people = host_vars(town.sanitiser.name).get(table)
    if not isinstance(people, dict):
        pytest.skip(f"{town.sanitiser.name}: no lab staff ({table}): these tests use the lab's")
    name = str(people[town.code][0]["name"])
    key = REPO / ".lab" / prefecture.name / "sanitiser" / town.code / name
    return name, key.read_text()


def _ok(result: tuple[int, str, str], what: str) -> str:
    status, out, err = result
    assert status == 0, f"{what}: exit {status}\n{out}\n{err}"
    return out


class Desk:
    """A staff member at a terminal: their key there, the service's host key pinned, sftp."""

    def __init__(self, run: Run, terminal: Host, user: str, key: str, server: Host,
                 host_key_file: str) -> None:
        self.run, self.terminal, self.user = run, terminal, user
        self.address = str(server.primary_address)
        host_key = _ok(run(server, f"cat {host_key_file}"), "host key").split()
        self.key = f"{WORK}/{user}.key"
        known = f"[{self.address}]:{PORT} {host_key[0]} {host_key[1]}\n"
        _ok(run(terminal, f"install -d -m 700 {WORK} && umask 077 && cat > {self.key} && "
                          f"printf %s {shlex.quote(known)} > {WORK}/known_hosts-{user}",
                stdin=key), "the staff member's key onto the terminal")

    def sftp(self, commands: str, timeout: float = 120) -> tuple[int, str, str]:
        return self.run(self.terminal,
                        f"cd {WORK} && sftp -b - -P {PORT} -i {self.key} -o IdentitiesOnly=yes "
                        f"-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=10 "
                        f"-o UserKnownHostsFile={WORK}/known_hosts-{self.user} "
                        f"{self.user}@{self.address}", stdin=commands, timeout=timeout)

    def listing(self) -> dict[str, int]:
        """The visible directory as the reader's sftp lists it, hidden names too: name -> size."""
        out = _ok(self.sftp("ls -lna\n"), "list the drop")
        sizes = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 9 and not line.startswith("sftp>") and parts[-1] not in (".", ".."):
                sizes[parts[-1]] = int(parts[4])
        return sizes


def _put_files(run: Run, terminal: Host, files: dict[str, bytes]) -> None:
    """Files onto a terminal (as root, over the admin login), into WORK."""
    for name, data in files.items():
        _ok(run(terminal, f"install -d -m 700 {WORK} && base64 -d > {WORK}/{shlex.quote(name)}",
                stdin=base64.b64encode(data).decode(), timeout=300), f"copy {name}")


def _get_file(run: Run, terminal: Host, path: str) -> bytes:
    out = _ok(run(terminal, f"base64 -w0 {shlex.quote(path)}", timeout=300), f"read {path}")
    return base64.b64decode(out)


def _audit(run: Run, sanitiser: Host, prefix: str) -> dict[str, dict[str, Any]]:
    out = run(sanitiser, f"grep -F -- {shlex.quote(prefix)} {AUDIT} || true")[1]
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["name"]: r for r in records}


def _wait_for(run: Run, sanitiser: Host, names: list[str], prefix: str,
              seconds: float = 180) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        records = _audit(run, sanitiser, prefix)
        if all(n in records for n in names) or time.monotonic() > deadline:
            return records
        time.sleep(1)


# --- the corpus, sent and collected once per municipality ---------------------------------------


_SENT: dict[str, Any] = {}


@pytest.fixture
def sent(run_as_root: Run, town: Town, prefecture: Prefecture,
         host_vars: Callable[[str], dict[str, Any]]) -> Any:
    """The corpus sent from the internet terminal; what the LGWAN terminal collected."""
    if town.code in _SENT:
        return _SENT[town.code]
    sender, sender_key = _staff(host_vars, prefecture, town, "municloud_lab_inbox_users")
    reader, reader_key = _staff(host_vars, prefecture, town, "municloud_lab_drop_readers")
    prefix = f"t{secrets.token_hex(3)}"
    samples = {f"{prefix}-{s.name}": s for s in corpus.build()}
    _put_files(run_as_root, town.net_terminal, {n: s.data for n, s in samples.items()})
    outbox = Desk(run_as_root, town.net_terminal, sender, sender_key, town.sanitiser,
                  INBOX_HOST_KEY)
    puts = "".join(f"put {shlex.quote(n)}\n" for n in samples)
    _ok(outbox.sftp(puts), "the sender puts the corpus into the inbox")
    records = _wait_for(run_as_root, town.sanitiser, list(samples), prefix)
    desk = Desk(run_as_root, town.lgwan_terminal, reader, reader_key, town.file_server,
                DROP_HOST_KEY)
    listing = desk.listing()
    mine = [n for n in listing if f"_{prefix}-" in n]
    _ok(desk.sftp("".join(f"get {shlex.quote(n)}\n" for n in mine)), "the reader collects")
    got = {n: _get_file(run_as_root, town.lgwan_terminal, f"{WORK}/{n}") for n in mine}
    _SENT[town.code] = (samples, records, got, listing, prefix, outbox, desk)
    return _SENT[town.code]


def _delivered(got: dict[str, bytes], uploaded: str) -> tuple[str, bytes] | None:
    """The file the drop holds for an upload (its name: <date>-<job>_<upload name, new ext>)."""
    stem = uploaded.rsplit(".", 1)[0]
    found = [(n, d) for n, d in got.items() if n.split("_", 1)[1].rsplit(".", 1)[0] == stem]
    assert len(found) <= 1, found
    return found[0] if found else None


def _text(pdf: bytes, tmp: Path) -> str:
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext (poppler-utils) is not installed: scripts/install.sh installs it"
    path = tmp / f"{hashlib.sha256(pdf).hexdigest()[:12]}.pdf"
    path.write_bytes(pdf)
    return subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def _pixels(data: bytes) -> tuple[tuple[int, int], list[Any]]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size, list(image.convert("RGB").getdata())


def test_clean_files_arrive_rebuilt_in_the_lgwan_drop(sent: Any, tmp_path: Path) -> None:
    samples, records, got, _, _, _, _ = sent
    passed = {n: s for n, s in samples.items() if s.decision == "passed"}
    assert passed
    for name, sample in passed.items():
        record = records.get(name)
        assert record, f"{name}: no decision in the audit log"
        assert (record["decision"], record["reason"]) == ("passed", ""), record
        found = _delivered(got, name)
        assert found, f"{name}: not in the drop ({sorted(got)})"
        _, data = found
        digest = hashlib.sha256(data).hexdigest()
        assert digest != hashlib.sha256(sample.data).hexdigest(), f"{name} was not rebuilt"
        assert digest == record["sha256_out"]
        assert record["sha256_in"] == hashlib.sha256(sample.data).hexdigest()
        if sample.kind == "pdf":
            assert _text(data, tmp_path) == _text(sample.data, tmp_path)
        elif sample.kind == "png":
            assert _pixels(data) == _pixels(sample.data)
        elif sample.kind == "jpeg":
            (size, after), (size0, before) = _pixels(data), _pixels(sample.data)
            assert size == size0
            error = sum(abs(a - b) for p, q in zip(before, after, strict=True)
                        for a, b in zip(p, q, strict=True))
            assert error / (len(before) * 3) < 3.0
        else:
            assert data.decode("utf-8-sig") == corpus.TEXT


def test_refused_files_never_reach_the_drop_and_the_log_says_why(
        sent: Any, run_as_root: Run, town: Town) -> None:
    samples, records, got, _, _, _, _ = sent
    refused = {n: s for n, s in samples.items() if s.decision == "refused"}
    assert len(refused) >= 8
    kept = run_as_root(town.sanitiser, f"sha256sum {QUARANTINE}/*/original")[1]
    for name, sample in refused.items():
        record = records.get(name)
        assert record, f"{name}: no decision in the audit log"
        assert (record["decision"], record["reason"]) == ("refused", sample.reason), record
        assert record["sha256_out"] == ""
        assert _delivered(got, name) is None, f"{name} reached the drop"
        assert hashlib.sha256(sample.data).hexdigest() in kept, f"{name} is not in quarantine"
    journal = run_as_root(town.sanitiser, "journalctl -q -o cat -t municloud-sanitise -n 200")[1]
    assert any('"reason": "macro"' in line and name in line for line in journal.splitlines()
               for name in refused), "the decisions are not in the journal"


def test_a_sanitiser_killed_mid_delivery_never_leaves_a_partial_file(
        sent: Any, run_as_root: Run, town: Town) -> None:
    _, _, _, _, prefix, outbox, desk = sent
    name = f"{prefix}-big.txt"
    line = corpus.TEXT.encode()
    big = line * (BIG // len(line))
    expected = b"\xef\xbb\xbf" + big  # what the sanitiser makes of UTF-8 text
    _ok(run_as_root(town.net_terminal,
                    f"python3 -c 'import sys; sys.stdout.buffer.write(sys.stdin.buffer.read() * "
                    f"{BIG // len(line)})' < /dev/stdin > {WORK}/{name}", stdin=corpus.TEXT),
        "make the big file")
    # The reader lists the whole drop (hidden names too) every 0.2 s while it all happens.
    watcher = (f"cd {WORK}; end=$((SECONDS+90)); while [ $SECONDS -lt $end ]; do "
               f"echo 'ls -lna' | sftp -b - -P {PORT} -i {desk.key} -o BatchMode=yes "
               f"-o UserKnownHostsFile={WORK}/known_hosts-{desk.user} "
               f"{desk.user}@{desk.address} 2>/dev/null; "
               f"sleep 0.2; done > {WORK}/watch-{prefix}.log 2>&1")
    watcher_pid = _ok(run_as_root(town.lgwan_terminal, f"nohup setsid bash -c "
                                                       f"{shlex.quote(watcher)} >/dev/null 2>&1 "
                                                       "& echo $!"), "start the watcher").strip()
    pid_before = _ok(run_as_root(town.sanitiser, "systemctl show -p MainPID --value "
                                                 "municloud-sanitiser"), "pid").strip()
    _ok(outbox.sftp(f"put {name}\n"), "the sender puts the big file")
    # Wait for the delivery to be under way (the service's sftp client runs), then 1 s more.
    deadline, under_way = time.monotonic() + 60, False
    while time.monotonic() < deadline and not under_way:
        under_way = run_as_root(town.sanitiser, "pgrep -u municloud-sanitiser -x sftp")[0] == 0
        time.sleep(0.1)
    assert under_way, "no delivery under way was seen"
    time.sleep(1)
    staged = run_as_root(town.file_server, f"stat -c %s {STAGING}/*.part 2>/dev/null")[1].split()
    _ok(run_as_root(town.sanitiser, "systemctl kill -s KILL municloud-sanitiser"), "kill")
    visible_now = desk.listing()
    assert not [n for n, size in visible_now.items() if "big" in n and size != len(expected)]
    # systemd starts it again; it finishes the job it had taken.
    records = _wait_for(run_as_root, town.sanitiser, [name], prefix, seconds=120)
    assert records.get(name, {}).get("decision") == "passed", records.get(name)
    pid_after = _ok(run_as_root(town.sanitiser, "systemctl show -p MainPID --value "
                                                "municloud-sanitiser"), "pid").strip()
    assert pid_after != pid_before
    final_all = desk.listing()
    final = {n: s for n, s in final_all.items() if f"_{prefix}-big" in n}
    assert list(final.values()) == [len(expected)], final
    (delivered,) = final
    _ok(desk.sftp(f"get {delivered}\n"), "collect the big file")
    digest = _ok(run_as_root(town.lgwan_terminal, f"sha256sum {WORK}/{delivered}"), "sha256")
    assert digest.split()[0] == hashlib.sha256(expected).hexdigest()
    time.sleep(1)
    run_as_root(town.lgwan_terminal, f"kill -- -{watcher_pid} {watcher_pid} 2>/dev/null; true")
    seen = run_as_root(town.lgwan_terminal, f"cat {WORK}/watch-{prefix}.log")[1]
    # Whatever the reader ever saw is a file that is there, whole, at the end.
    glimpses = {(parts[-1], int(parts[4])) for parts in (ln.split() for ln in seen.splitlines())
                if len(parts) >= 9 and parts[-1] not in (".", "..")}
    assert glimpses, "the watcher listed nothing"
    partial = {(n, size) for n, size in glimpses if final_all.get(n) != size}
    assert not partial, f"the reader saw files that are not whole deliveries: {partial}"
    # ... and the kill did come mid-transfer: part of the file was in staging, hidden.
    assert staged and 0 < int(staged[0]) < len(expected), f"not mid-transfer: staged {staged}"
    leftovers = run_as_root(town.file_server, f"ls {STAGING}")[1].split()
    assert not leftovers, f"staging still holds {leftovers}"


def test_an_lgwan_terminal_can_neither_write_the_drop_nor_see_staging(sent: Any) -> None:
    _, _, got, _, _, _, desk = sent
    some = sorted(got)[0]
    for attempt in ("put /etc/hostname planted.txt", f"rm {some}", "mkdir planted",
                    f"rename {some} renamed.txt", "ls /staging", "ls ../staging",
                    "get /staging/x", f"chmod 777 {some}"):
        status, out, err = desk.sftp(attempt + "\n")
        assert status != 0, f"the reader could `{attempt}`:\n{out}{err}"
    assert "planted.txt" not in desk.listing()
    status, out, _ = desk.run(desk.terminal,
                              f"ssh -T -p {PORT} -i {desk.key} -o BatchMode=yes "
                              f"-o UserKnownHostsFile={WORK}/known_hosts-{desk.user} "
                              f"{desk.user}@{desk.address} echo shell-$((6*7))")
    assert "shell-42" not in out, "the reader got a shell on the drop"


def test_an_internet_terminal_cannot_reach_the_drop(run_as_root: Run, town: Town) -> None:
    address = town.file_server.primary_address
    _, out, _ = run_as_root(town.net_terminal,
                            f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{PORT}' "
                            "&& echo connected")
    assert "connected" not in out, f"{town.net_terminal.name} reached the drop at {address}"
    # ... while the sanitiser, beside it in the same segment, does (the flow it is given).
    reach = run_as_root(town.sanitiser, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{PORT}'"
                                        " && echo connected")[1]
    assert "connected" in reach
