#!/usr/bin/env python3
"""Benchmark of sanitised file transfer (無害化), on a converged lab (`--tags sanitiser` applied).

In the first municipality with a sanitiser, in one run, the same mixed corpus of clean files
(PDFs of several pages, PNG and JPEG photos, Japanese text in UTF-8 and Shift_JIS; built by
tests/unit/test_sanitiser_corpus.py's generators) goes the same path twice:

  1. plain copy: the sender at the internet terminal puts the files into the inbox (sftp), and the
     sanitiser host's account copies each one unchanged to the LGWAN file drop the way the service
     delivers (one sftp session per file: put into staging, rename into the visible directory,
     the same key, host key, options and rate cap), with the service stopped;
  2. sanitised: the sender puts the same files into the inbox, and the service judges, rebuilds
     and delivers them; timed until the audit log holds the last decision.

Throughput is files/s and MB/s of input, and the ratio is sanitised over plain. Each figure is
the median of --runs runs. Writes benchmarks/sanitiser.figures.md. Leaves the lab as it found it
(the bench's files are removed from the terminal, the inbox and the drop; the service runs).

Usage: .venv/bin/python benchmarks/sanitiser.py [--inventory inventories/sample] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import importlib.machinery
import importlib.util
import json
import platform
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labssh import run, ssh  # noqa: E402  (benchmarks/labssh.py)

from municloud import inventory  # noqa: E402
from municloud.segments import HostRole, Segment  # noqa: E402

FIGURES = REPO / "benchmarks" / "sanitiser.figures.md"
WORK = "/var/tmp/municloud-bench-sanitiser"
CONFIG = "/etc/municloud/sanitiser.json"
AUDIT = "/var/log/municloud-sanitiser/audit.jsonl"
VISIBLE = "/srv/municloud-file-drop/lgwan/files"
STAGING = "/srv/municloud-file-drop/staging"
PORT = 2022


def _corpus() -> Any:
    path = REPO / "tests" / "unit" / "test_sanitiser_corpus.py"
    loader = importlib.machinery.SourceFileLoader("municloud_sanitiser_corpus", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


def photo(kind: str, seed: int) -> bytes:
    """A 1024x768 picture with noise (a photo's entropy, unlike a flat gradient)."""
    import io

    from PIL import Image

    bands = [Image.effect_noise((1024, 768), 40 + seed + k * 10) for k in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return out.getvalue()


def mixed(count: int) -> dict[str, bytes]:
    """``count`` clean files of each kind: 4-page PDFs, 1024x768 PNG and JPEG, 64 KiB texts."""
    c = _corpus()
    lines = [f"Notice line {i}: files from the internet segment, rebuilt" for i in range(30)]
    text = (c.TEXT * 700)[:64 * 1024 // 3]
    files: dict[str, bytes] = {}
    for i in range(count):
        files[f"doc-{i:02}.pdf"] = c.pdf_with_text([f"document {i}", *lines[:20]], pages=4)
        files[f"photo-{i:02}.png"] = photo("PNG", i)
        files[f"photo-{i:02}.jpg"] = photo("JPEG", i)
        files[f"memo-{i:02}.txt"] = (text + f"\n{i}\n").encode("cp932" if i % 2 else "utf-8")
    return files




def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", default="inventories/sample")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=10, help="files of each kind (4 kinds)")
    args = parser.parse_args()
    prefecture = inventory.load(args.inventory)
    lab = REPO / ".lab" / prefecture.path.name
    key, known = lab / "id_ed25519", lab / "known_hosts"
    town = next(m for m in prefecture.municipalities
                if any(h.role is HostRole.SANITISER for h in m.hosts))
    sanitiser = next(h for h in town.hosts if h.role is HostRole.SANITISER)
    drop = next(h for h in town.hosts if h.role is HostRole.FILE_SERVER)
    terminal = next(h for h in town.hosts
                    if h.role is HostRole.TERMINAL and h.segment is Segment.INTERNET)
    sender = "net-staff"
    sender_key = (lab / "sanitiser" / town.code / sender).read_text()
    files = mixed(args.count)
    total = sum(len(d) for d in files.values())
    s, d, t = ssh(sanitiser, key, known), ssh(drop, key, known), ssh(terminal, key, known)
    config = json.loads(run(s, f"cat {CONFIG}"))
    inbox_key = run(s, "cat /etc/ssh/municloud-inbox/ssh_host_ed25519_key.pub").split()
    address = str(sanitiser.primary_address)
    upload = (f"cd {WORK}/files && sftp -q -b {WORK}/batch -P {PORT} -i {WORK}/key "
              f"-o BatchMode=yes -o UserKnownHostsFile={WORK}/known_hosts "
              f"{sender}@{address} >/dev/null")
    cap = f"-l {config['rate_kbit']} " if config["rate_kbit"] else ""
    inbox = f"/srv/municloud-sanitiser/inbox/{sender}/upload"
    plain_runs: list[float] = []
    sanitised_runs: list[float] = []
    try:
        print(f"{len(files)} files, {total / 1e6:.1f} MB, onto {terminal.name} ...", flush=True)
        run(t, f"rm -rf {WORK} && mkdir -p -m 700 {WORK}/files && umask 077 && "
               f"cat > {WORK}/key && echo '[{address}]:{PORT} {inbox_key[0]} {inbox_key[1]}' "
               f"> {WORK}/known_hosts", stdin=sender_key)
        for name, data in files.items():
            run(t, f"base64 -d > {WORK}/files/{name}", stdin=base64.b64encode(data).decode())
        for i in range(args.runs):
            tag = f"b{secrets.token_hex(3)}"
            run(t, f"cd {WORK}/files && for f in *; do echo \"put $f {tag}-$f\"; done "
                   f"> {WORK}/batch")
            # 1. plain copy over the same path, the service stopped
            run(s, "systemctl stop municloud-sanitiser")
            start = time.monotonic()
            run(t, upload)
            run(s, f"cd {inbox} && for f in {tag}-*; do printf 'put %s staging/%s.part\\n"
                   f"rename staging/%s.part lgwan/files/plain-%s\\n' \"$f\" \"$f\" \"$f\" \"$f\" "
                   f"| runuser -u municloud-sanitiser -- sftp -q -b - -F /dev/null {cap}"
                   f"-P {config['drop_port']} -i {config['drop_key']} -o BatchMode=yes "
                   f"-o StrictHostKeyChecking=yes "
                   f"-o UserKnownHostsFile={config['drop_known_hosts']} "
                   f"{config['drop_user']}@{config['drop_host']} >/dev/null || exit 1; done")
            plain_runs.append(time.monotonic() - start)
            copied = int(run(d, f"ls {VISIBLE} | grep -c -- 'plain-{tag}-' || true"))
            assert copied == len(files), f"plain copy delivered {copied} of {len(files)}"
            run(s, f"rm -f {inbox}/{tag}-*")
            run(s, "systemctl start municloud-sanitiser")
            # 2. sanitised: the service takes them as they settle
            start = time.monotonic()
            run(t, upload)
            while True:
                done = int(run(s, f"grep -c -F -- '\"{tag}-' {AUDIT} || true"))
                if done >= len(files):
                    break
                time.sleep(0.2)
            sanitised_runs.append(time.monotonic() - start)
            passed = int(run(s, f"grep -F -- '\"{tag}-' {AUDIT} | grep -c '\"decision\": "
                                f"\"passed\"' || true"))
            assert passed == len(files), f"only {passed} of {len(files)} passed"
            run(d, f"rm -f {VISIBLE}/*_{tag}-* {VISIBLE}/plain-{tag}-*")
            print(f"run {i + 1}: plain {plain_runs[-1]:.1f} s, sanitised "
                  f"{sanitised_runs[-1]:.1f} s", flush=True)
    finally:
        run(s, "systemctl start municloud-sanitiser")
        run(t, f"rm -rf {WORK}")
        s.close()
        d.close()
        t.close()
    plain, sanitised = statistics.median(plain_runs), statistics.median(sanitised_runs)
    n, mb = len(files), total / 1e6
    rows = "\n".join([
        f"| plain copy: inbox, then each file unchanged to the drop (staging, rename) "
        f"| {plain:.1f} s | {n / plain:.2f} files/s, {mb / plain:.2f} MB/s | 1 |",
        f"| sanitised: inbox, judged, rebuilt, delivered (staging, rename) "
        f"| {sanitised:.1f} s | {n / sanitised:.2f} files/s, {mb / sanitised:.2f} MB/s "
        f"| {plain / sanitised:.2f} of the plain copy's throughput |",
    ])
    rate = f"{config['rate_kbit']} kbit/s" if config["rate_kbit"] else "none"
    wire = (f"At the cap the bytes alone take {total * 8 / config['rate_kbit'] / 1000:.1f} s; the "
            f"rest of the plain copy is {n} SSH logins and sftp sessions (one per file, as the "
            "service delivers) and the sender's upload." if config["rate_kbit"] else "")
    text = f"""# Sanitiser figures

Written by `.venv/bin/python benchmarks/sanitiser.py --inventory {args.inventory}
--runs {args.runs} --count {args.count}` on {datetime.date.today()}, {platform.machine()}, the
lab's containers on one machine (shared and noisy: compare the ratio, which comes from one run,
not the absolute figures across machines).
Sender at {terminal.name}, sanitiser {sanitiser.name}, drop {drop.name}; medians of {args.runs}
runs. The corpus: {n} clean files, {mb:.1f} MB ({args.count} each of 4-page PDFs, 1024x768 PNG
and JPEG photos, 64 KiB texts in UTF-8 or Shift_JIS). Delivery rate cap
(sanitiser_transfer_rate_kbit): {rate}, on both paths.

| path | time | throughput | ratio |
| --- | --- | --- | --- |
{rows}

Both paths include the sender's upload and one sftp session per file to the drop, so the
difference is the sanitiser's own work: waiting for each upload to settle
(sanitiser_settle_seconds after its last write), libmagic, decoding and re-encoding (pikepdf
saving PDFs anew, Pillow re-encoding every pixel of the photos), writing the job's files, and
its audit log (fsynced per decision). The plain copy starts each file as soon as the whole
upload is in; the service works file by file, one at a time. {wire}
"""
    FIGURES.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
