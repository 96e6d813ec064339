"""What the lab's update relay needs that a real prefecture gets from elsewhere (lab only).

A real platform fetches from real vendors, signs with the operator's key and stores in the
operator's object store. The lab has none of these, so `municloud lab up` makes them once per lab,
in ``.lab/<lab>/updates/``, and names them in the lab's ``group_vars/all/lab.yml`` under the same
variables a real inventory sets (roles/update_platform, roles/update_relay):

* the lab vendor's OpenPGP key (its secret goes to the vendor host, roles/lab_vendor; its public
  half is what the platform and the terminals pin);
* the platform's signing key (secret on the platform, public half pinned by every relay);
* the object store's TLS certificate, for the store's address on the LGWAN backbone (the relays
  pin it as their CA), and the store's access key;
* a wheelhouse of moto's S3 server for the store itself (roles/lab_object_store): lab hosts have no
  route to PyPI, this machine has.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from municloud.inventory import Prefecture
from municloud.lab.engine import LabError
from municloud.segments import HostRole

KEYS = ("vendor", "platform")


def wanted(prefecture: Prefecture) -> bool:
    return any(h.role is HostRole.UPDATE_PLATFORM for h in prefecture.hosts)


def _gpg_key(directory: Path, name: str, user_id: str) -> str:
    """Make an ed25519 signing key; write <name>.asc and <name>-secret.asc; its fingerprint."""
    public, secret = directory / f"{name}.asc", directory / f"{name}-secret.asc"
    fingerprint_file = directory / f"{name}.fingerprint"
    if public.is_file() and secret.is_file() and fingerprint_file.is_file():
        return fingerprint_file.read_text().strip()
    with tempfile.TemporaryDirectory(prefix="municloud-gpg-") as home:
        gpg = ["gpg", "--homedir", home, "--batch", "--quiet", "--pinentry-mode", "loopback",
               "--passphrase", ""]
        try:
            subprocess.run([*gpg, "--quick-gen-key", user_id, "ed25519", "sign", "never"],
                           check=True, capture_output=True)
            listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], check=True,
                                     capture_output=True, text=True).stdout
            fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                               if line.startswith("fpr:"))
            public.write_bytes(subprocess.run([*gpg, "--armor", "--export", fingerprint],
                                              check=True, capture_output=True).stdout)
            secret.touch(mode=0o600)
            secret.write_bytes(subprocess.run([*gpg, "--armor", "--export-secret-keys",
                                               fingerprint], check=True,
                                              capture_output=True).stdout)
        except FileNotFoundError:
            raise LabError("gpg is not installed: apt-get install gnupg (scripts/install.sh "
                           "does)") from None
        except subprocess.CalledProcessError as exc:
            raise LabError(f"gpg could not make the lab's {name} key: "
                           f"{exc.stderr.decode(errors='replace').strip()}") from None
    fingerprint_file.write_text(fingerprint + "\n")
    return fingerprint


def _tls(directory: Path, addresses: list[str]) -> None:
    """A self-signed certificate for the store's addresses (the relays pin it as their CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_file, key_file = directory / "store.crt", directory / "store.key"
    names = ",".join(sorted(addresses))
    marker = directory / "store.addresses"
    if cert_file.is_file() and key_file.is_file() and marker.is_file() \
            and marker.read_text().strip() == names:
        return
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "municloud lab object store")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file.touch(mode=0o600)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    marker.write_text(names + "\n")


def _wheelhouse(directory: Path) -> None:
    """moto's S3 server and what it needs, as wheels for the lab hosts' Python (Debian 12: 3.11)."""
    version = metadata.version("moto")
    done = directory / f".moto-{version}"
    if done.is_file():
        return
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(directory),
           "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
           "--platform", "manylinux2014_x86_64", f"moto[s3]=={version}", "flask", "flask-cors"]
    done_run = subprocess.run(cmd, capture_output=True, text=True)
    if done_run.returncode != 0:
        raise LabError(f"could not download moto {version} for the lab's object store "
                       f"({' '.join(cmd[2:5])} ...): {done_run.stderr.strip()[-400:]}")
    done.write_text(version + "\n")


def prepare(prefecture: Prefecture, state: Path) -> str:
    """Make the lab's update material (once); the lines it adds to the lab's vars file."""
    if not wanted(prefecture):
        return ""
    directory = state / "updates"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    vendor_fpr = _gpg_key(directory, "vendor", "municloud lab vendor <vendor@lab.invalid>")
    platform_fpr = _gpg_key(directory, "platform",
                            f"municloud lab update platform {prefecture.code} "
                            "<platform@lab.invalid>")
    store = [h for h in prefecture.hosts if h.role is HostRole.UPDATE_PLATFORM]
    _tls(directory, [str(a) for h in store for a in h.addresses.values()])
    credentials = directory / "store.credentials"
    if not credentials.is_file():
        credentials.touch(mode=0o600)
        credentials.write_text(f"lab{secrets.token_hex(6)} {secrets.token_urlsafe(24)}\n")
    access, secret = credentials.read_text().split()
    _wheelhouse(state.parent / "wheelhouse")

    def file(name: str) -> str:
        return f"\"{{{{ lookup('file', '{directory / name}') }}}}\""

    return (
        "# The update relay's keys, certificate and store credentials, made for this lab by\n"
        "# `municloud lab up` (municloud/lab/updates.py); a real inventory sets the same\n"
        "# variables with its vendors' keys, its platform's key and store (secrets vaulted).\n"
        f"municloud_lab_dir: {state}\n"
        f"municloud_lab_wheelhouse: {state.parent / 'wheelhouse'}\n"
        f"municloud_lab_vendor_key: {file('vendor.asc')}\n"
        f"municloud_lab_vendor_signing_key: {file('vendor-secret.asc')}\n"
        f"municloud_lab_vendor_fingerprint: {vendor_fpr}\n"
        f"updates_platform_key: {file('platform.asc')}\n"
        f"update_platform_signing_key: {file('platform-secret.asc')}\n"
        f"update_platform_signing_fingerprint: {platform_fpr}\n"
        f"updates_store_ca: {file('store.crt')}\n"
        f"municloud_lab_store_tls_key: {file('store.key')}\n"
        f"updates_store_access_key: {access}\n"
        f"updates_store_secret_key: {secret}\n"
    )
