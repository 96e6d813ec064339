"""The update relay's job (roles/updates/files/municloud-updates), piece by piece, with real gpg.

The whole relay, vendor to terminal, is proven in the lab (tests/acceptance/test_updates.py);
these pin the pieces whose edge cases the lab would take hours of clock to reach: the window
across midnight, the byte-rate cap, refusals of a bad file or signature, and the atomic switch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles" / "updates" / "files" / "municloud-updates"
TOKYO = dt.timezone(dt.timedelta(hours=9))


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("municloud_updates", str(SCRIPT))
    spec = importlib.util.spec_from_loader("municloud_updates", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


job = _load()


@pytest.mark.parametrize(
    ("hhmm", "inside"),
    [("22:59", False), ("23:00", True), ("00:00", True), ("03:30", True), ("05:59", True),
     ("06:00", False), ("12:00", False)],
)
def test_the_default_window_crosses_midnight(hhmm: str, inside: bool) -> None:
    window = job.Window("23:00", "06:00", "Asia/Tokyo")
    hour, minute = map(int, hhmm.split(":"))
    moment = dt.datetime(2026, 12, 1, hour, minute, tzinfo=TOKYO)
    assert window.contains(moment) is inside
    # the same instant written in UTC is judged in the window's own zone
    assert window.contains(moment.astimezone(dt.UTC)) is inside


def test_a_window_within_one_day() -> None:
    window = job.Window("01:00", "04:00", "Asia/Tokyo")
    assert window.contains(dt.datetime(2026, 12, 1, 2, 0, tzinfo=TOKYO))
    assert not window.contains(dt.datetime(2026, 12, 1, 23, 30, tzinfo=TOKYO))


@pytest.mark.parametrize(
    ("start", "end", "zone", "says"),
    [("23", "06:00", "Asia/Tokyo", "window.start '23'"),
     ("23:00", "25:00", "Asia/Tokyo", "window.end '25:00'"),
     ("23:00", "06:00", "Asia/Nowhere", "window.timezone 'Asia/Nowhere'")],
)
def test_a_bad_window_is_named(start: str, end: str, zone: str, says: str) -> None:
    with pytest.raises(job.ConfigError, match=says.replace(".", r"\.")):
        job.Window(start, end, zone)


def test_the_rate_cap_sleeps_for_the_bytes_over_it() -> None:
    now = [100.0]  # a fake clock: sleeping moves it on
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = job.RateLimit(lambda: 1000, sleep=sleep, monotonic=lambda: now[0])
    for _ in range(10):
        limit.take(500)  # 5000 bytes at 1000 bytes/s: 5 s, taken as it goes
    assert limit.total == 5000
    assert sum(slept) == pytest.approx(5.0)
    assert max(slept) == pytest.approx(0.5)


def test_no_cap_never_sleeps() -> None:
    slept: list[float] = []
    limit = job.RateLimit(lambda: 0, sleep=slept.append)
    limit.take(10**9)
    assert slept == []


def _bytes(size: int) -> bytes:
    return os.urandom(size)


def test_a_file_is_kept_only_if_its_hash_and_size_match(tmp_path: Path) -> None:
    data = _bytes(200_000)
    sha = hashlib.sha256(data).hexdigest()
    good = tmp_path / "good"
    job.copy_verified(io.BytesIO(data), good, sha, len(data), "good")
    assert good.read_bytes() == data

    tampered = bytearray(data)
    tampered[1000] ^= 1
    with pytest.raises(job.Refused, match="sha256"):
        job.copy_verified(io.BytesIO(bytes(tampered)), tmp_path / "bad", sha, len(data), "bad")
    with pytest.raises(job.Refused, match="longer than"):
        job.copy_verified(io.BytesIO(data + b"x"), tmp_path / "long", sha, len(data), "long")
    with pytest.raises(job.Refused, match="bytes, the signed list says"):
        job.copy_verified(io.BytesIO(data[:-1]), tmp_path / "short", sha, len(data), "short")
    # nothing of a refused file is left, not even its partial copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a//b", "a/./b", ""])
def test_unsafe_paths_are_refused(path: str) -> None:
    with pytest.raises(job.Refused, match="unsafe path"):
        job.safe_relative(path, "test")


# --- signatures, with a real gpg and gpgv ----------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two keys (a vendor's and a stranger's): their homes and armored public keys. The
    gpg-agents that signing starts are stopped after the module (pytest keeps the homes, and
    an agent would outlive the run)."""
    base = tmp_path_factory.mktemp("gpg")
    out: dict[str, Path] = {}
    for name in ("vendor", "stranger"):
        home = base / name
        home.mkdir(mode=0o700)
        gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode",
               "loopback", "--passphrase", ""]
        subprocess.run([*gpg, "--quick-gen-key", f"{name} <{name}@test.invalid>", "ed25519",
                        "sign", "never"], check=True, capture_output=True)
        public = base / f"{name}.asc"
        public.write_bytes(subprocess.run([*gpg, "--armor", "--export"], check=True,
                                          capture_output=True).stdout)
        out[name], out[f"{name}.asc"] = home, public
    yield out
    for name in ("vendor", "stranger"):
        subprocess.run(["gpgconf", "--homedir", str(out[name]), "--kill", "gpg-agent"],
                       check=False, capture_output=True)


def _sign(home: Path, file: Path) -> Path:
    signature = file.with_name(file.name + ".asc")
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--armor",
                    "--detach-sign", "--output", str(signature), str(file)],
                   check=True, capture_output=True)
    return signature


def test_dearmor_matches_gpg(keys: dict[str, Path], tmp_path: Path) -> None:
    ours = job.dearmor(keys["vendor.asc"].read_text())
    theirs = subprocess.run(["gpg", "--dearmor"], input=keys["vendor.asc"].read_bytes(),
                            check=True, capture_output=True).stdout
    assert ours == theirs


def test_gpgv_accepts_only_the_pinned_key(keys: dict[str, Path], tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"files": {}}\n')
    signature = _sign(keys["vendor"], manifest)
    job.gpgv(keys["vendor.asc"], manifest, signature)  # no exception: verified
    with pytest.raises(job.Refused, match="does not verify against the pinned key"):
        job.gpgv(keys["stranger.asc"], manifest, signature)
    manifest.write_text('{"files": {"x": {}}}\n')  # changed after signing
    with pytest.raises(job.Refused, match="does not verify"):
        job.gpgv(keys["vendor.asc"], manifest, signature)


# --- snapshots: staged, switched with one rename, pruned ------------------------------------


def test_switching_snapshots_is_one_rename_and_keeps_earlier_ones(tmp_path: Path) -> None:
    snapshots = job.Snapshots(tmp_path)
    for snapshot in ("20261201T000000Z", "20261202T000000Z", "20261203T000000Z"):
        staging = snapshots.staging(snapshot)
        (staging / "file").write_text(snapshot)
        snapshots.publish(snapshot)
        assert (tmp_path / "current" / "file").read_text() == snapshot
        assert os.readlink(tmp_path / "current") == f"snapshots/{snapshot}"
    assert snapshots.prune(2) == ["20261201T000000Z"]
    assert snapshots.all() == ["20261202T000000Z", "20261203T000000Z"]
    snapshots.switch("20261202T000000Z")  # rollback
    assert snapshots.current() == "20261202T000000Z"
    assert snapshots.prune(1) == []  # the served snapshot is never removed


def _relay_config(tmp_path: Path, key: Path) -> dict[str, object]:
    return {"_path": "relay.json", "store": {"bucket": "b"}, "platform_keyring": str(key),
            "root": str(tmp_path / "root"), "keep_snapshots": 3,
            "window": {"start": "23:00", "end": "06:00", "timezone": "Asia/Tokyo"},
            "rate_in_window": 0, "rate_outside_window": 0, "lock": str(tmp_path / "lock")}


def test_outside_the_window_the_store_is_not_even_asked(
        tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_store(config: object) -> None:
        raise AssertionError("the store was contacted outside the window")

    monkeypatch.setattr(job, "s3_client", no_store)
    clock = job.Clock(dt.datetime(2026, 12, 1, 14, 0, tzinfo=TOKYO))
    assert job.sync(_relay_config(tmp_path, keys["vendor.asc"]), clock) == 0
    assert "nothing transferred, 0 bytes" in capsys.readouterr().out


def test_a_bad_config_is_exit_2_and_names_the_key(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "relay.json"
    config.write_text(json.dumps({"store": {"bucket": "b"}}))
    assert job.main(["sync", "--config", str(config)]) == 2
    assert f"{config}: platform_keyring is missing" in capsys.readouterr().out
    assert job.main(["sync", "--config", str(tmp_path / "none.json")]) == 2
    assert job.main(["sync", "--config", str(config), "--now", "2026-12-01T00:00"]) == 2
    assert "give a time zone" in capsys.readouterr().out


def test_an_unsafe_source_name_is_a_configuration_error(tmp_path: Path) -> None:
    config = {"_path": "platform.json", "store": {"bucket": "b"},
              "signing": {"gnupghome": str(tmp_path), "key": "F" * 40},
              "sources": [{"name": "../etc", "type": "files", "url": "http://198.18.0.20/p",
                           "keyring": "/k.asc"}]}
    with pytest.raises(job.ConfigError, match=r"sources\[0\]\.name: unsafe path '\.\./etc'"):
        job.ingest(config, job.Clock(None))
