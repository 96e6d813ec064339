"""The central log's pieces that need no lab: the lab's CA and collector certificate
(municloud/lab/logs.py), judged by openssl; the NFLOG group the gateway's ruleset logs to and the
one ulogd2 reads (roles/log_forwarding) are the same; both roles ship the same rsyslog checker."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from municloud import inventory, nftables
from municloud.lab import logs as lab_logs
from municloud.segments import HostRole

REPO = Path(__file__).resolve().parents[2]


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["sample", "okayama"])
def test_the_collector_certificate_is_the_cas_and_names_the_collector(
    tmp_path: Path, name: str
) -> None:
    prefecture = inventory.load(REPO / "inventories" / name)
    lines = lab_logs.prepare(prefecture, tmp_path)
    collector = next(h for h in prefecture.hosts if h.role is HostRole.LOG_COLLECTOR)
    d = tmp_path / "logs"
    verified = _openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile",
                        str(d / "ca.crt"), str(d / "collector.crt"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    text = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in",
                    str(d / "collector.crt")).stdout
    assert f"DNS:{collector.name}" in text
    assert all(f"IP Address:{a}" in text for a in collector.addresses.values())
    assert (d / "collector.key").stat().st_mode & 0o077 == 0
    assert (d / "ca.key").stat().st_mode & 0o077 == 0
    # lab.yml names the files under the variables the roles read; the CA key is not among them.
    assert set(yaml.safe_load(lines)) == {"log_collector_tls_ca", "log_collector_tls_cert",
                                          "log_collector_tls_key", "log_forwarding_tls_ca"}
    assert "ca.key" not in lines


def test_a_second_prepare_keeps_the_certificate_and_a_renamed_collector_gets_a_new_one(
    tmp_path: Path,
) -> None:
    prefecture = inventory.load(REPO / "inventories" / "sample")
    lab_logs.prepare(prefecture, tmp_path)
    cert = tmp_path / "logs" / "collector.crt"
    first = cert.read_bytes()
    lab_logs.prepare(prefecture, tmp_path)
    assert cert.read_bytes() == first
    renamed = dataclasses.replace(prefecture, shared_hosts=tuple(
        dataclasses.replace(h, name="central-log") if h.role is HostRole.LOG_COLLECTOR else h
        for h in prefecture.shared_hosts))
    lab_logs.prepare(renamed, tmp_path)
    assert cert.read_bytes() != first
    assert "DNS:central-log" in _openssl("x509", "-noout", "-ext", "subjectAltName", "-in",
                                         str(cert)).stdout


def test_no_collector_no_material(tmp_path: Path) -> None:
    prefecture = inventory.load(REPO / "inventories" / "sample")
    bare = dataclasses.replace(prefecture, shared_hosts=tuple(
        h for h in prefecture.shared_hosts if h.role is not HostRole.LOG_COLLECTOR))
    assert lab_logs.prepare(bare, tmp_path) == ""
    assert not (tmp_path / "logs").exists()


def test_ulogd_reads_the_group_the_gateways_log_drops_to() -> None:
    internal = yaml.safe_load((REPO / "roles" / "log_forwarding" / "vars" / "main.yml").read_text())
    assert internal["__log_forwarding_nflog_group"] == nftables.DROP_LOG_GROUP


def test_both_roles_ship_the_same_rsyslog_checker() -> None:
    copies = {(REPO / "roles" / r / "files" / "municloud-rsyslog-check").read_text()
              for r in ("log_collector", "log_forwarding")}
    assert len(copies) == 1


