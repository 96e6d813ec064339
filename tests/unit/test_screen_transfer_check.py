"""roles/screen_transfer/files/rdp-tls-check, the role's check that xrdp answers with TLS, run
against a small RDP responder on the loopback: the X.224 Connection Confirm the responder sends
(TLS selected, or an RDP Negotiation Failure) and the certificate its TLS handshake presents."""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "roles/screen_transfer/files/rdp-tls-check"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _certificate(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _confirm(kind: int, value: int) -> bytes:
    body = bytes([14, 0xD0, 0, 0, 0x12, 0x34, 0]) + struct.pack("<BBHI", kind, 0, 8, value)
    return struct.pack(">BBH", 3, 0, 4 + len(body)) + body


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, object]]]:
    """(port, certificate it presents, settings): answers each connection with settings["cc"]
    and, if it selected TLS, a TLS handshake with its certificate."""
    cert, key = _certificate(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    settings: dict[str, object] = {"cc": _confirm(0x02, 0x01)}
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(4096)
                    answer = settings["cc"]
                    assert isinstance(answer, bytes)
                    conn.sendall(answer)
                    if answer[11] == 0x02:
                        with context.wrap_socket(conn, server_side=True) as tls:
                            tls.recv(1)
                except (OSError, ssl.SSLError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], cert, settings
    stop.set()
    server.close()


def _check(port: int, certificate: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), "127.0.0.1", str(port), str(certificate)],
                          capture_output=True, text=True, timeout=30)


def test_tls_selected_with_the_configured_certificate(
    responder: tuple[int, Path, dict[str, object]],
) -> None:
    port, cert, _ = responder
    done = _check(port, cert)
    assert done.returncode == 0, done.stdout
    assert "TLS selected" in done.stdout


def test_another_certificate_fails(responder: tuple[int, Path, dict[str, object]],
                                   tmp_path: Path) -> None:
    port, _, _ = responder
    other, _ = _certificate(tmp_path, "other")
    done = _check(port, other)
    assert done.returncode == 1
    assert "another certificate" in done.stdout


def test_negotiation_failure_fails(responder: tuple[int, Path, dict[str, object]]) -> None:
    port, cert, settings = responder
    settings["cc"] = _confirm(0x03, 0x05)  # RDP_NEG_FAILURE, SSL_CERT_NOT_ON_SERVER
    done = _check(port, cert)
    assert done.returncode == 1
    assert "TLS not selected" in done.stdout


def test_standard_rdp_security_fails(responder: tuple[int, Path, dict[str, object]]) -> None:
    port, cert, settings = responder
    settings["cc"] = _confirm(0x02, 0x00)  # RDP_NEG_RSP selecting PROTOCOL_RDP
    done = _check(port, cert)
    assert done.returncode == 1
    assert "selected protocol 0x0" in done.stdout
