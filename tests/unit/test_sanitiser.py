"""The sanitiser (roles/sanitiser/files/municloud-sanitise) against a real corpus
(test_sanitiser_corpus.py): what passes is rebuilt (another file, the same text or pixels, no
metadata), what may not pass is refused with its reason, and the inbox → job → drop/quarantine
pipeline loses nothing. Outputs are judged by readers other than the sanitiser's own code: poppler
(pdftotext) and qpdf for PDFs, Pillow's decoder for pixels, Python's codecs for text.

The whole path, inbox → sanitiser → LGWAN file drop over SFTP, is proven on the lab
(tests/acceptance/test_sanitiser.py).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles" / "sanitiser" / "files" / "municloud-sanitise"
HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


san = _load("municloud_sanitise", SCRIPT)
corpus = _load("municloud_sanitiser_corpus", HERE / "test_sanitiser_corpus.py")
SAMPLES = corpus.build()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/install.sh installs it", pytrace=False)
    return path


def pdftotext(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{sha(data)[:12]}.pdf"
    path.write_bytes(data)
    return subprocess.run([_tool("pdftotext"), "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def pixels(data: bytes) -> tuple[str, tuple[int, int], list[Any]]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return image.format or "", image.size, list(rgb.getdata())


# --- each sample: passed rebuilt, or refused with its reason -------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_each_sample_gets_its_decision_and_reason(sample: Any) -> None:
    verdict = san.judge(sample.data, sample.name, san.Limits())
    assert (verdict.decision, verdict.reason) == (sample.decision, sample.reason), verdict.detail
    if sample.decision == "passed":
        assert verdict.output and sha(verdict.output) != sha(sample.data)
    else:
        assert verdict.output == b""


def _passed(kind: str) -> list[Any]:
    return [s for s in SAMPLES if s.kind == kind]


@pytest.mark.parametrize("sample", _passed("pdf"), ids=lambda s: s.name)
def test_a_pdf_is_rebuilt_with_the_same_text_and_no_metadata(sample: Any, tmp_path: Path) -> None:
    verdict = san.judge(sample.data, sample.name, san.Limits())
    assert verdict.name == "notice.pdf"
    assert pdftotext(verdict.output, tmp_path) == pdftotext(sample.data, tmp_path)
    assert "Municipal notice 2026 p2" in pdftotext(verdict.output, tmp_path)
    out = tmp_path / "out.pdf"
    out.write_bytes(verdict.output)
    subprocess.run([_tool("qpdf"), "--check", str(out)], check=True, capture_output=True)
    info = subprocess.run([_tool("pdfinfo"), str(out)], capture_output=True, text=True,
                          check=True).stdout
    assert "someone at the sender" not in info and "Pages:           2" in info


@pytest.mark.parametrize("sample", _passed("png"), ids=lambda s: s.name)
def test_a_png_is_rebuilt_from_the_same_pixels_without_metadata(sample: Any) -> None:
    verdict = san.judge(sample.data, sample.name, san.Limits())
    assert pixels(verdict.output) == pixels(sample.data)
    assert b"municloud-secret-metadata" in sample.data
    assert b"municloud-secret-metadata" not in verdict.output
    assert b"tEXt" not in verdict.output


def test_a_png_leaves_without_its_colour_profile() -> None:
    """An ICC profile is bytes of the sender's choosing, which Pillow would carry into a PNG it
    saves from the decoded image: the rebuild starts from the pixels alone."""
    from PIL import Image

    image = Image.new("RGB", (8, 8), (200, 10, 10))
    out = io.BytesIO()
    image.save(out, "PNG", icc_profile=b"municloud-secret-profile" * 8)
    assert b"iCCP" in out.getvalue()
    verdict = san.judge(out.getvalue(), "red.png", san.Limits())
    assert verdict.decision == "passed" and b"iCCP" not in verdict.output


@pytest.mark.parametrize("sample", _passed("jpeg"), ids=lambda s: s.name)
def test_a_jpeg_is_reencoded_within_tolerance_without_exif(sample: Any) -> None:
    verdict = san.judge(sample.data, sample.name, san.Limits())
    fmt, size, before = pixels(sample.data)
    out_fmt, out_size, after = pixels(verdict.output)
    assert (out_fmt, out_size) == (fmt, size) == ("JPEG", (64, 48))
    error = sum(abs(a - b) for p, q in zip(before, after, strict=True) for a, b in zip(p, q,
                                                                                      strict=True))
    assert error / (len(before) * 3) < 3.0  # mean difference per channel, of 255
    assert b"municloud-secret-metadata" in sample.data
    assert b"Exif" not in verdict.output and b"municloud-secret-metadata" not in verdict.output
    assert verdict.name == "camera.jpg"


@pytest.mark.parametrize("sample", _passed("text"), ids=lambda s: s.name)
def test_text_is_reencoded_to_utf8(sample: Any) -> None:
    verdict = san.judge(sample.data, sample.name, san.Limits())
    assert verdict.output.startswith(b"\xef\xbb\xbf")
    assert verdict.output[3:].decode("utf-8") == corpus.TEXT
    assert sha(verdict.output) != sha(sample.data)


# --- the limits and the tricks --------------------------------------------------------------------


def test_a_file_over_the_size_limit_is_refused_before_it_is_looked_at() -> None:
    data = b"a" * 1025
    verdict = san.judge(data, "big.txt", san.Limits(max_bytes=1024))
    assert (verdict.decision, verdict.reason) == ("refused", "too large")
    assert san.judge(data[:1024], "big.txt", san.Limits(max_bytes=1024)).decision == "passed"


def test_a_decompression_bomb_is_refused_by_its_pixel_count() -> None:
    bomb = corpus.png_bomb(3000)
    assert len(bomb) < 100_000  # small file, 9 million pixels
    verdict = san.judge(bomb, "map.png", san.Limits(max_pixels=1_000_000))
    assert (verdict.decision, verdict.reason) == ("refused", "too many pixels"), verdict.detail
    assert san.judge(bomb, "map.png", san.Limits(max_pixels=10_000_000)).decision == "passed"


def test_data_after_a_jpeg_is_a_polyglot() -> None:
    verdict = san.judge(corpus.jpeg() + b"<script>alert(1)</script>", "x.jpg", san.Limits())
    assert (verdict.decision, verdict.reason) == ("refused", "polyglot")


def test_the_type_comes_from_the_content_never_the_name() -> None:
    verdict = san.judge(corpus.png(), "invoice.pdf", san.Limits())
    assert (verdict.decision, verdict.type, verdict.name) == ("passed", "image/png", "invoice.png")
    text = san.judge(corpus.TEXT.encode(), "setup.exe", san.Limits())
    assert (text.decision, text.name) == ("passed", "setup.txt")


def test_a_shell_script_and_a_plain_zip_are_refused() -> None:
    script = san.judge(b"#!/bin/sh\nrm -rf /\n", "notes.txt", san.Limits())
    assert script.reason == "executable"
    archive = san.judge(corpus.zip_of({"a.txt": b"hello"}), "a.txt", san.Limits())
    assert archive.reason == "archive"


def test_an_office_document_without_macros_is_not_on_the_list() -> None:
    plain = corpus.zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"})
    assert san.judge(plain, "letter.docx", san.Limits()).reason == "type not allowed"


def test_control_characters_in_text_are_refused() -> None:
    verdict = san.judge("見積書\x1b[31m red\n".encode(), "a.txt", san.Limits())
    assert verdict.reason == "control characters"


@pytest.mark.parametrize(("uploaded", "leaves"), [
    ("../../etc/passwd.txt", "passwd.txt"), ("..\\win\\報告書.TXT", "報告書.txt"),
    ("\u202eevil\u202dtxt.exe", "eviltxt.txt"), (".hidden", "hidden.txt"), ("...", "file.txt"),
])
def test_the_name_it_leaves_with_is_clean(uploaded: str, leaves: str) -> None:
    assert san.leaving_name(uploaded, ".txt") == leaves


# --- the pipeline: inbox → job → drop, or quarantine; nothing lost ------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Any:
    (tmp_path / "root" / "inbox" / "alice" / "upload").mkdir(parents=True)
    return san.Config(root=tmp_path / "root", audit_log=tmp_path / "audit.jsonl",
                      limits=san.Limits(), settle_seconds=0.3, drop_host="192.0.2.1",
                      drop_port=2022, drop_user="municloud-sanitiser", drop_key=tmp_path / "k",
                      drop_known_hosts=tmp_path / "kh", drop_staging="staging",
                      drop_visible="lgwan/files", rate_kbit=0, attempts=3, retry_seconds=0,
                      host="test")


def _upload(config: Any, name: str, data: bytes, settle: bool = True) -> Path:
    """An upload; with ``settle``, wait until it has settled (its ctime, which a sender cannot
    set back as it can the mtime, is settle_seconds old)."""
    path = config.inbox / "alice" / "upload" / name
    path.write_bytes(data)
    if settle:
        time.sleep(config.settle_seconds + 0.1)
    return path


def _audit(config: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in config.audit_log.read_text().splitlines()]


def test_passed_files_are_delivered_and_refused_ones_quarantined(
        config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    delivered: dict[str, bytes] = {}
    monkeypatch.setattr(san, "deliver", lambda cfg, local, job, name: delivered.__setitem__(
        name, local.read_bytes()))
    _upload(config, "notice.pdf", SAMPLES[0].data)
    _upload(config, "open-me.pdf", corpus.pdf_javascript())
    fresh = _upload(config, "still-coming.txt", b"half", settle=False)
    old = time.time() - 3600
    os.utime(fresh, (old, old))  # sftp put -p sets an old mtime: the ctime still counts
    assert san.run_once(config) == 2
    assert fresh.exists(), "an upload changed within settle_seconds is left alone"
    (name, data), = delivered.items()
    assert name.endswith("_notice.pdf") and data[:5] == b"%PDF-"
    records = {r["name"]: r for r in _audit(config)}
    assert records["notice.pdf"]["decision"] == "passed"
    assert records["notice.pdf"]["sha256_out"] == sha(data)
    assert records["notice.pdf"]["sha256_in"] == sha(SAMPLES[0].data)
    refused = records["open-me.pdf"]
    assert (refused["decision"], refused["reason"], refused["user"]) == ("refused", "javascript",
                                                                           "alice")
    assert set(refused) >= {"time", "user", "name", "size", "sha256_in", "sha256_out", "type",
                            "decision", "reason"}
    kept = list(config.quarantine.glob("*/original"))
    assert len(kept) == 1 and sha(kept[0].read_bytes()) == refused["sha256_in"]
    assert json.loads((kept[0].parent / "decision.json").read_text())["reason"] == "javascript"
    assert not list(config.work.iterdir())


def test_a_transfer_that_keeps_failing_is_quarantined_not_retried_forever(
        config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fail(cfg: Any, local: Path, job: str, name: str) -> None:
        calls.append(job)
        raise OSError("sftp: connection refused")

    monkeypatch.setattr(san, "deliver", fail)
    _upload(config, "memo.txt", corpus.TEXT.encode())
    san.run_once(config)
    assert len(calls) == config.attempts
    (record,) = _audit(config)
    assert (record["decision"], record["reason"]) == ("failed", "transfer failed")
    (kept,) = config.quarantine.glob("*/original")
    assert kept.read_bytes() == corpus.TEXT.encode()


def test_a_job_killed_after_judging_is_delivered_again_under_the_same_names(
        config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def killed(cfg: Any, local: Path, job: str, name: str) -> None:
        seen.append((job, name))
        raise KeyboardInterrupt  # stands in for SIGKILL mid-transfer: nothing after runs

    monkeypatch.setattr(san, "deliver", killed)
    _upload(config, "memo.txt", corpus.TEXT.encode())
    with pytest.raises(KeyboardInterrupt):
        san.run_once(config)
    assert not list((config.inbox / "alice" / "upload").iterdir())
    monkeypatch.setattr(san, "deliver", lambda cfg, local, job, name: seen.append((job, name)))
    san.recover(config)
    assert seen[0] == seen[1], "the same staging and visible names, so the drop gets one copy"
    assert [r["decision"] for r in _audit(config)] == ["passed"]
    assert not list(config.work.iterdir())


def test_two_uploads_of_one_name_never_overwrite_each_other_in_the_drop(
        config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    monkeypatch.setattr(san, "deliver", lambda cfg, local, job, name: names.append(name))
    _upload(config, "memo.txt", b"first\n")
    san.run_once(config)
    _upload(config, "memo.txt", b"second\n")
    san.run_once(config)
    assert len(names) == 2 and len(set(names)) == 2, names
    assert all(n.endswith("_memo.txt") for n in names)


def test_a_claim_that_never_took_its_file_is_dropped(config: Any) -> None:
    job = config.work / "0123"
    job.mkdir(parents=True)
    (job / "claim.json").write_text('{"user": "alice", "name": "x", "received": "2026-12-01"}')
    san.recover(config)
    assert not job.exists()


def test_a_symlink_in_the_inbox_is_never_followed(
        config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root's secret\n")
    link = config.inbox / "alice" / "upload" / "link.txt"
    link.symlink_to(secret)
    monkeypatch.setattr(san, "deliver", lambda *a: pytest.fail("nothing may be delivered"))
    time.sleep(config.settle_seconds + 0.1)
    san.run_once(config)
    (record,) = _audit(config)
    assert record["decision"] == "refused" and record["sha256_in"] == ""
    assert secret.read_text() == "root's secret\n"


def test_a_bad_configuration_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sanitiser.json"
    path.write_text(json.dumps({"root": "/srv", "audit_log": "/var/log/a", "max_bytes": "big"}))
    with pytest.raises(san.ConfigError, match="max_bytes must be a int"):
        san.load_config(path)


# --- the lab's staff (municloud/lab/sanitiser.py) -------------------------------------------------


def test_the_lab_makes_one_sender_and_one_reader_per_municipality_once(tmp_path: Path) -> None:
    import yaml

    from municloud import inventory
    from municloud.lab import sanitiser as lab_sanitiser

    prefecture = inventory.load(REPO / "inventories" / "sample")
    text = lab_sanitiser.prepare(prefecture, tmp_path)
    assert lab_sanitiser.prepare(prefecture, tmp_path) == text, "a second lab up changes nothing"
    lab = yaml.safe_load(text)
    towns = {m.code for m in prefecture.municipalities}
    assert set(lab["municloud_lab_inbox_users"]) == set(lab["municloud_lab_drop_readers"]) == towns
    for code in towns:
        (sender,) = lab["municloud_lab_inbox_users"][code]
        private = lab_sanitiser.key_path(tmp_path, code, sender["name"])
        assert private.stat().st_mode & 0o077 == 0
        public = subprocess.run(["ssh-keygen", "-y", "-f", str(private)], capture_output=True,
                                text=True, check=True).stdout.split()
        assert sender["key"].split()[:2] == public[:2]
    keys = [p["key"] for t in ("municloud_lab_inbox_users", "municloud_lab_drop_readers")
            for people in lab[t].values() for p in people]
    assert len(set(keys)) == len(keys) == 2 * len(towns)
