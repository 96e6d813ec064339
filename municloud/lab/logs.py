"""What the lab's central log needs that a real prefecture gets from its own PKI (lab only).

The senders (roles/log_forwarding) speak syslog over TLS (RFC 5425) to the collector
(roles/log_collector) and verify its certificate against a CA, by name. A real prefecture
issues that certificate from its own CA; the lab has none, so `municloud lab up` makes, once per
lab, in ``.lab/<lab>/logs/``:

* a CA (a self-signed certificate and its key, which stays on this machine), and
* the collector's certificate, signed by that CA, naming every collector host of the inventory
  by its inventory name (DNS name; what the senders check, ``x509/name``) and its addresses,

and names them in the lab's ``group_vars/all/lab.yml`` under the variables a real inventory sets
(``log_collector_tls_ca``, ``log_collector_tls_cert``, ``log_collector_tls_key`` for the
collector, ``log_forwarding_tls_ca`` for the senders; the key vault-encrypted in a real one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from municloud.inventory import Host, Prefecture
from municloud.segments import HostRole

CA_DAYS = 3650
CERT_DAYS = 825


def collectors(prefecture: Prefecture) -> list[Host]:
    return [h for h in prefecture.hosts if h.role is HostRole.LOG_COLLECTOR]


def wanted(prefecture: Prefecture) -> bool:
    return bool(collectors(prefecture))


def _names(hosts: list[Host]) -> str:
    """What the collector's certificate must say: its names and addresses (the reissue marker)."""
    return ",".join(sorted([h.name for h in hosts] + [str(a) for h in hosts
                                                      for a in h.addresses.values()]))


def _pki(directory: Path, prefecture: Prefecture) -> None:
    """The lab's log CA (made once) and the collector's certificate (again if its names change)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
        path.touch(mode=0o600)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    now = dt.datetime.now(dt.UTC)
    ca_cert_file, ca_key_file = directory / "ca.crt", directory / "ca.key"
    if not (ca_cert_file.is_file() and ca_key_file.is_file()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "municloud lab"),
            x509.NameAttribute(NameOID.COMMON_NAME,
                               f"municloud lab log CA {prefecture.code} ({prefecture.name})"),
        ])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write_key(ca_key_file, ca_key)
        ca_cert_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (directory / "collector.names").unlink(missing_ok=True)  # a new CA: reissue below

    hosts = collectors(prefecture)
    cert_file, key_file = directory / "collector.crt", directory / "collector.key"
    marker = directory / "collector.names"
    if cert_file.is_file() and key_file.is_file() and marker.is_file() \
            and marker.read_text().strip() == _names(hosts):
        return
    loaded = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    ca_key = loaded
    ca_cert = x509.load_pem_x509_certificate(ca_cert_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h.name) for h in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for h in hosts
              for a in sorted(h.addresses.values())]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "municloud lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0].name),
        ]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_key(key_file, key)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    marker.write_text(_names(hosts) + "\n")


def prepare(prefecture: Prefecture, state: Path) -> str:
    """Make the lab's log CA and the collector's certificate (once); the lines for lab.yml."""
    if not wanted(prefecture):
        return ""
    directory = state / "logs"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _pki(directory, prefecture)

    def file(name: str) -> str:
        return f"\"{{{{ lookup('file', '{directory / name}') }}}}\""

    return (
        "# The central log's CA and the collector's certificate, made for this lab by\n"
        "# `municloud lab up` (municloud/lab/logs.py); a real inventory sets the same variables\n"
        "# from its own CA (the key vault-encrypted).\n"
        f"log_collector_tls_ca: {file('ca.crt')}\n"
        f"log_collector_tls_cert: {file('collector.crt')}\n"
        f"log_collector_tls_key: {file('collector.key')}\n"
        f"log_forwarding_tls_ca: {file('ca.crt')}\n"
    )
