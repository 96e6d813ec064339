"""Acceptance of the screen-transfer servers (画面転送, roles/screen_transfer), by real RDP.

On each terminal the policy lets use a municipality's screen-transfer server (its LGWAN terminals
for α/α', its internet terminals for β/β'; municloud/flows.py), :data:`CLIENT` (python3 on the
terminal, standard library only) speaks RDP to the server as a client starts a session
(MS-RDPBCGR 1.3.1.1): an X.224 Connection Request with an RDP Negotiation Request (2.2.1.1), the
server's Connection Confirm (2.2.1.2), a TLS handshake on the same socket, then the MCS Connect
Initial with the GCC Conference Create Request (2.2.1.3), in which it asks for the clipboard,
drive, sound and dynamic channels (cliprdr, rdpdr, rdpsnd, drdynvc), and the server's MCS Connect
Response (2.2.1.4), whose network data (TS_UD_SC_NET) lists the channels the server granted.

What is judged comes from the wire and from xrdp: the negotiation the server answers (TLS
selected; Standard RDP Security, CredSSP-only and legacy clients refused), the TLS version and the
certificate it presents (the one its xrdp.ini names), the channels it grants (none), what xrdp
logs for the connection, and which ports answer. The configuration files are read only for what
the wire cannot show (each channel also off by name, sesman's clipboard and drive settings),
with xrdp's own rules for reading them.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import shlex
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from municloud import flows
from municloud import probe as municloud_probe
from municloud.inventory import Host, Municipality, Prefecture
from municloud.segments import HostRole, Segment

Run = Callable[..., tuple[int, str, str]]

pytestmark = [pytest.mark.roles("screen_transfer"),
              pytest.mark.clause("segments.lgwan.screen-transfer")]

XRDP_INI = "/etc/xrdp/xrdp.ini"
SESMAN_INI = "/etc/xrdp/sesman.ini"
XRDP_LOG = "/var/log/xrdp.log"
# The channels the client asks for: clipboard, drives/printers/smartcards, sound, dynamic.
ASKED_CHANNELS = ("cliprdr", "rdpdr", "rdpsnd", "drdynvc")
# Every channel xrdp 0.9 knows by name (xrdp.ini [Channels]).
XRDP_CHANNELS = ("cliprdr", "rdpdr", "rdpsnd", "drdynvc", "rail", "xrdpvr", "tcutils")
# Ports a screen-transfer host might offer beyond RDP: SSH, sesman, VNC and X displays.
OTHER_PORTS = (22, 3350, 5900, 5910, 6000, 6010)
SSL_REQUIRED_BY_SERVER = 0x00000001

# Runs on a terminal: reads {"address", "port", "probes": [...]} on stdin, prints one JSON
# object per probe name. Probes: "tls" (negotiate TLS, handshake, MCS Connect Initial asking for
# channels), "rdp" (ask for Standard RDP Security only), "hybrid" (CredSSP only), "legacy" (no
# negotiation request at all, then an MCS Connect Initial as an RDP 5 client sends it), "tls11"
# (TLS, but at most TLS 1.1), "connect:<port>" (a bare TCP connection).
CLIENT = r'''
import hashlib, json, socket, ssl, struct, sys, warnings
from concurrent.futures import ThreadPoolExecutor

warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are asked for on purpose

PROTOCOL_RDP, PROTOCOL_SSL, PROTOCOL_HYBRID = 0, 1, 2
CHANNELS = ("cliprdr", "rdpdr", "rdpsnd", "drdynvc")
TIMEOUT = 5


def tpkt(payload):
    return struct.pack(">BBH", 3, 0, 4 + len(payload)) + payload


def connection_request(requested):
    cookie = b"Cookie: mstshash=municloud\r\n"
    neg = b"" if requested is None else struct.pack("<BBHI", 1, 0, 8, requested)
    return tpkt(bytes([6 + len(cookie) + len(neg), 0xE0, 0, 0, 0, 0, 0]) + cookie + neg)


def read_exact(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    return data


def read_tpkt(sock):
    version, _, length = struct.unpack(">BBH", read_exact(sock, 4))
    if version != 3:
        raise ValueError("not a TPKT header: version %d" % version)
    return read_exact(sock, length - 4)


def confirm(sock):
    """The X.224 Connection Confirm: its negotiation data, if any."""
    body = read_tpkt(sock)
    if body[1] != 0xD0:
        raise ValueError("not an X.224 Connection Confirm: %s" % body.hex())
    out = {"x224": "connection confirm"}
    if len(body) >= 15:
        kind, flags, _, value = struct.unpack("<BBHI", body[7:15])
        out.update(neg_type=kind, neg_flags=flags, neg_value=value)
    return out


def ber_len(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82]) + n.to_bytes(2, "big")


def ber(tag, body):
    return tag + ber_len(len(body)) + body


def domain_params(values):
    out = b""
    for v in values:
        out += ber(b"\x02", v.to_bytes(1 if v < 0x80 else 2 if v < 0x10000 else 3, "big"))
    return ber(b"\x30", out)


def client_data(selected, encryption_methods):
    name = "municloud".encode("utf-16-le").ljust(32, b"\0")
    core = struct.pack("<IHHHHII", 0x00080004, 1024, 768, 0xCA01, 0xAA03, 0x409, 2600)
    core += name + struct.pack("<III", 4, 0, 12) + b"\0" * 64
    core += struct.pack("<HHIHHH", 0xCA01, 1, 0, 24, 0x0007, 0x0001) + b"\0" * 64
    core += struct.pack("<BBI", 0, 0, selected)
    blocks = struct.pack("<HH", 0xC001, 4 + len(core)) + core
    blocks += struct.pack("<HHII", 0xC002, 12, encryption_methods, 0)
    net = struct.pack("<I", len(CHANNELS))
    for c in CHANNELS:
        # CHANNEL_OPTION_INITIALIZED | ENCRYPT_RDP | COMPRESS_RDP
        net += c.encode().ljust(8, b"\0") + struct.pack("<I", 0x80000000 | 0x40000000 | 0x00800000)
    blocks += struct.pack("<HH", 0xC003, 4 + len(net)) + net
    length = len(blocks) + 14
    gcc = (struct.pack(">HHBH", 5, 0x14, 0x7C, 1) + struct.pack(">H", length | 0x8000)
           + struct.pack(">HHB", 8, 16, 0) + struct.pack("<H", 0xC001) + b"\0" + b"Duca"
           + struct.pack(">H", (length - 14) | 0x8000) + blocks)
    body = (ber(b"\x04", b"\x01") + ber(b"\x04", b"\x01") + ber(b"\x01", b"\xff")
            + domain_params([34, 2, 0, 1, 0, 1, 0xFFFF, 2])
            + domain_params([1, 1, 1, 1, 0, 1, 0x420, 2])
            + domain_params([0xFFFF, 0xFC17, 0xFFFF, 1, 0, 1, 0xFFFF, 2])
            + ber(b"\x04", gcc))
    return tpkt(b"\x02\xf0\x80" + ber(b"\x7f\x65", body))


def ber_read(data, pos):
    """(tag, value, next position) of the BER element at pos."""
    tag_len = 2 if data[pos] & 0x1F == 0x1F else 1
    tag = data[pos:pos + tag_len]
    pos += tag_len
    n = data[pos]
    pos += 1
    if n & 0x80:
        count = n & 0x7F
        n = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    return tag, data[pos:pos + n], pos + n


def connect_response(sock):
    """The MCS Connect Response: its result and the server's data blocks."""
    body = read_tpkt(sock)
    if body[:3] != b"\x02\xf0\x80":
        raise ValueError("not an X.224 Data TPDU: %s" % body[:8].hex())
    tag, value, _ = ber_read(body, 3)
    if tag != b"\x7f\x66":
        raise ValueError("not an MCS Connect Response: tag %s" % tag.hex())
    out = {}
    gcc = b""
    pos = 0
    while pos < len(value):
        tag, item, pos = ber_read(value, pos)
        if tag == b"\x0a":
            out["mcs_result"] = int.from_bytes(item, "big")
        elif tag == b"\x04":
            gcc = item
    at = gcc.index(b"McDn") + 4
    n = gcc[at]
    at += 1
    if n & 0x80:
        at += 1
    while at + 4 <= len(gcc):
        kind, size = struct.unpack("<HH", gcc[at:at + 4])
        block = gcc[at + 4:at + size]
        if kind == 0x0C01:
            out["sc_core_version"] = struct.unpack("<I", block[:4])[0]
            if len(block) >= 8:
                out["sc_core_requested_protocols"] = struct.unpack("<I", block[4:8])[0]
        elif kind == 0x0C02:
            out["encryption_method"], out["encryption_level"] = struct.unpack("<II", block[:8])
        elif kind == 0x0C03:
            io, count = struct.unpack("<HH", block[:4])
            out["io_channel"] = io
            out["channel_count"] = count
            out["channel_ids"] = list(struct.unpack("<%dH" % count, block[4:4 + 2 * count]))
        if size < 4:
            break
        at += size
    return out


def tls_context(max_version=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test compares the certificate itself
    if max_version is not None:
        # Let this client offer old versions at all (Debian's OpenSSL refuses them by default),
        # so that a refusal is the server's.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = max_version
    return context


def probe(address, port, name):
    out = {}
    try:
        if name.startswith("connect:"):
            with socket.create_connection((address, int(name[8:])), timeout=TIMEOUT):
                return {"connect": "open"}
        with socket.create_connection((address, port), timeout=TIMEOUT) as sock:
            out["connect"] = "open"
            if name == "legacy":
                sock.sendall(connection_request(None))
                out.update(confirm(sock))
                sock.settimeout(TIMEOUT)
                # An RDP 5 client without negotiation goes on with Standard RDP Security.
                sock.sendall(client_data(PROTOCOL_RDP, 0x0000001B))
                out.update(connect_response(sock))
                return out
            requested = {"rdp": PROTOCOL_RDP, "hybrid": PROTOCOL_HYBRID}.get(name, PROTOCOL_SSL)
            sock.sendall(connection_request(requested))
            out.update(confirm(sock))
            if name in ("rdp", "hybrid") or out.get("neg_type") != 2:
                return out
            max_version = ssl.TLSVersion.TLSv1_1 if name == "tls11" else None
            with tls_context(max_version).wrap_socket(sock) as tls:
                out["tls_version"] = tls.version()
                out["tls_cipher"] = tls.cipher()[0]
                der = tls.getpeercert(binary_form=True)
                out["certificate_sha256"] = hashlib.sha256(der).hexdigest()
                if name == "tls":
                    tls.sendall(client_data(PROTOCOL_SSL, 0))
                    out.update(connect_response(tls))
    except (OSError, ValueError, IndexError, struct.error) as exc:
        out["error"] = "%s: %s" % (type(exc).__name__, exc)
    return out


request = json.load(sys.stdin)
names = request["probes"]
with ThreadPoolExecutor(max(1, len(names))) as pool:
    results = list(pool.map(lambda n: probe(request["address"], request["port"], n), names))
print(json.dumps(dict(zip(names, results))))
'''


# --- the hosts, from the inventory and the policy ---------------------------------------------


def _town(prefecture: Prefecture, screen: Host) -> Municipality:
    return prefecture.municipality(str(screen.municipality))


def _screen_flow(town: Municipality) -> flows.Flow:
    """The policy's flow to the screen-transfer service for the town's model."""
    found = [f for f in flows.flows_for(town.model) if f.service == "screen_transfer"]
    assert len(found) == 1, f"{town.name_romaji}: {len(found)} screen-transfer flows"
    return found[0]


def _segment(zone: flows.Zone) -> Segment:
    return Segment(zone.value)


def _terminals(town: Municipality, segment: Segment) -> list[Host]:
    return [h for h in town.hosts if h.role is HostRole.TERMINAL and h.segment is segment]


def _allowed_terminals(prefecture: Prefecture, screen: Host) -> list[Host]:
    town = _town(prefecture, screen)
    flow = _screen_flow(town)
    assert flow.destination is not None
    assert screen.segment is _segment(flow.destination), (
        f"{screen.name} sits in {screen.segment}, the policy puts {town.model.value}'s "
        f"screen transfer in {flow.destination.value}")
    found = _terminals(town, _segment(flow.source))
    assert found, f"{town.name_romaji} has no terminal in {flow.source.value}"
    return found


def _port(prefecture: Prefecture) -> int:
    return prefecture.services["screen_transfer"].ports[0]


def _ports_of(prefecture: Prefecture, host: Host) -> list[int]:
    """SSH and the ports of every service the host's role offers."""
    return sorted({p for s in prefecture.services.values() if host.role in s.roles
                   for p in s.ports} | {22})


def rdp(run: Run, source: Host, screen: Host, port: int,
        *probes: str) -> dict[str, dict[str, Any]]:
    """Run :data:`CLIENT` on ``source`` against ``screen``; its observations per probe."""
    request = {"address": str(screen.primary_address), "port": port, "probes": list(probes)}
    status, out, err = run(source, f"python3 -c {shlex.quote(CLIENT)}",
                           stdin=json.dumps(request), timeout=120)
    assert status == 0, f"{source.name}: the RDP client failed: {err}"
    return dict(json.loads(out))


def connects(run: Run, source: Host, dest: Host, ports: list[int]) -> dict[int, str]:
    """TCP connections made on ``source`` to ``dest``'s ports: "open" or why not."""
    got = rdp(run, source, dest, 0, *(f"connect:{p}" for p in ports))
    return {int(k[8:]): str(v.get("connect", v.get("error", ""))) for k, v in got.items()}


def _open_from_here(address: str, port: int) -> bool:
    return municloud_probe.probe_here((address, port)) == "open"


# --- what xrdp reads, by xrdp's own rules (common/file.c, g_text2bool) --------------------------


def xrdp_ini(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections (lower-cased names) of an xrdp ini file, each a list of (lower-cased key, value):
    xrdp cuts a line at the first '#' or ';', splits at the first '=', trims both sides and
    matches section and key names without regard to case."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = re.split(r"[#;]", raw, maxsplit=1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), [])
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current.append((key.strip().lower(), value.strip()))
    return sections


def text2bool(value: str) -> bool:
    """xrdp's g_text2bool: a non-zero number, or true / yes / on in any case."""
    try:
        if int(value) != 0:
            return True
    except ValueError:
        pass
    return value.lower() in ("true", "yes", "on")


def setting(section: list[tuple[str, str]], key: str) -> str | None:
    """The value xrdp uses: settings are read in order, so the last one wins."""
    values = [v for k, v in section if k == key.lower()]
    return values[-1] if values else None


@pytest.fixture
def xrdp_config(lab_host: Host, run_as_root: Run) -> dict[str, list[tuple[str, str]]]:
    status, text, err = run_as_root(lab_host, f"cat {XRDP_INI}")
    assert status == 0, f"{lab_host.name}: {XRDP_INI}: {err}"
    return xrdp_ini(text)


# --- the tests ---------------------------------------------------------------------------------


def test_rdp_handshake_selects_tls_and_grants_no_channel(
    lab_host: Host, prefecture: Prefecture, run_as_root: Run,
    xrdp_config: dict[str, list[tuple[str, str]]],
) -> None:
    """From each terminal the policy allows: the server selects TLS in its Connection Confirm,
    completes a TLS 1.2+ handshake with the certificate its xrdp.ini names, and answers the MCS
    Connect Initial asking for clipboard, drive, sound and dynamic channels with no channel at
    all; xrdp logs the same of that connection."""
    port = _port(prefecture)
    certificate = setting(xrdp_config["globals"], "certificate")
    assert certificate, f"{lab_host.name}: xrdp.ini names no certificate"
    status, pem, err = run_as_root(lab_host, f"cat {shlex.quote(certificate)}")
    assert status == 0, f"{lab_host.name}: {certificate}: {err}"
    first = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()

    for terminal in _allowed_terminals(prefecture, lab_host):
        lines_before = int(run_as_root(lab_host, f"wc -l < {XRDP_LOG}")[1].strip() or 0)
        got = rdp(run_as_root, terminal, lab_host, port, "tls")["tls"]
        what = f"{terminal.name} -> {lab_host.name}:{port}"
        assert "error" not in got, f"{what}: {got}"
        assert (got["neg_type"], got["neg_value"]) == (2, 1), (
            f"{what}: the Connection Confirm does not select TLS (RDP_NEG_RSP, PROTOCOL_SSL): "
            f"{got}")
        assert got["tls_version"] in ("TLSv1.2", "TLSv1.3"), f"{what}: {got['tls_version']}"
        assert got["certificate_sha256"] == fingerprint, (
            f"{what}: the server presents another certificate than {certificate}")
        assert got["mcs_result"] == 0, f"{what}: MCS Connect Response result {got['mcs_result']}"
        assert got["encryption_method"] == 0, f"{what}: Standard RDP encryption inside TLS: {got}"
        assert got["channel_count"] == 0 and got["channel_ids"] == [], (
            f"{what}: asked for {', '.join(ASKED_CHANNELS)}, the server granted channels "
            f"{got['channel_ids']}")
        _, log, _ = run_as_root(lab_host, f"tail -n +{lines_before + 1} {XRDP_LOG}")
        assert re.search(r"Security protocol: configured \[SSL\], requested \[[A-Z|]*SSL[A-Z|]*\], "
                         r"selected \[SSL\]", log), (
            f"{lab_host.name}: xrdp did not log TLS for {what}:\n{log}")
        assert "All channels are disabled" in log, (
            f"{lab_host.name}: xrdp did not log its channels off for {what}:\n{log}")


def test_weak_security_is_refused(lab_host: Host, prefecture: Prefecture,
                                  run_as_root: Run) -> None:
    """Standard RDP Security and CredSSP-only requests get an RDP Negotiation Failure
    (SSL_REQUIRED_BY_SERVER); a legacy client without a negotiation request gets no MCS Connect
    Response; TLS at most 1.1 finds no handshake."""
    port = _port(prefecture)
    terminal = _allowed_terminals(prefecture, lab_host)[0]
    got = rdp(run_as_root, terminal, lab_host, port, "rdp", "hybrid", "legacy", "tls11")
    what = f"{terminal.name} -> {lab_host.name}:{port}"
    for name in ("rdp", "hybrid"):
        answer = (got[name].get("neg_type"), got[name].get("neg_value"))
        assert answer == (3, SSL_REQUIRED_BY_SERVER), (
            f"{what}: asking for {name} only was not refused: {got[name]}")
    assert "channel_count" not in got["legacy"] and "error" in got["legacy"], (
        f"{what}: a client without negotiation got an MCS Connect Response: {got['legacy']}")
    assert "tls_version" not in got["tls11"] and "error" in got["tls11"], (
        f"{what}: TLS at most 1.1 was accepted: {got['tls11']}")


def test_terminal_reaches_nothing_else_there(lab_host: Host, prefecture: Prefecture,
                                            run_as_root: Run) -> None:
    """The terminal that may use the server reaches no other port of it (what it listens on,
    SSH, sesman, VNC, X) and nothing else in its segment (each host's service ports and SSH).
    A denial counts only where the lab machine (a management address) gets through: each
    destination host must have at least one such port."""
    port = _port(prefecture)
    town = _town(prefecture, lab_host)
    _, listening, _ = run_as_root(lab_host, "ss -Hltn")
    listened = {int(line.split()[3].rsplit(":", 1)[1]) for line in listening.splitlines()}
    targets: dict[str, tuple[Host, list[int]]] = {
        lab_host.name: (lab_host, sorted((listened | set(OTHER_PORTS)) - {port}))}
    for h in town.hosts:
        if h.segment is lab_host.segment and h is not lab_host:
            targets[h.name] = (h, _ports_of(prefecture, h))
    for terminal in _allowed_terminals(prefecture, lab_host):
        for dest, ports in targets.values():
            address = str(dest.primary_address)
            got = connects(run_as_root, terminal, dest, ports)
            for p in ports:
                assert got[p] != "open", (
                    f"{terminal.name} -> {dest.name} {address}:{p}: connected; only "
                    f"{lab_host.name}:{port} is for the terminal")
            with ThreadPoolExecutor(len(ports)) as pool:
                here = list(pool.map(functools.partial(_open_from_here, address), ports))
            proven = [p for p, ok in zip(ports, here, strict=True) if ok]
            assert proven, (
                f"{dest.name}: none of {ports} answers the lab machine, so the terminal's "
                "denials there prove nothing")


def test_other_places_are_refused(lab_host: Host, prefecture: Prefecture,
                                  run_as_root: Run) -> None:
    """Every terminal of the town outside the policy's source segment (the server's own segment,
    the individual-number segment: the wrong direction for the model) cannot open the RDP port,
    which answers the lab machine; and the server itself opens nothing in the terminals'
    segment."""
    port = _port(prefecture)
    town = _town(prefecture, lab_host)
    address = str(lab_host.primary_address)
    assert _open_from_here(address, port), (
        f"{lab_host.name} {address}:{port} does not answer the lab machine: a denial would "
        "prove nothing")
    allowed = _allowed_terminals(prefecture, lab_host)
    others = [h for h in town.hosts if h.role is HostRole.TERMINAL and h not in allowed]
    assert others, f"{town.name_romaji}: no terminal outside the allowed segment"
    for terminal in others:
        got = connects(run_as_root, terminal, lab_host, [port])[port]
        assert got != "open", (
            f"{terminal.name} ({terminal.segment}) -> {lab_host.name}:{port} connected; the "
            f"policy gives {town.model.value}'s screen transfer to "
            f"{allowed[0].segment} terminals only")
    for dest in town.hosts:
        if dest.segment is not allowed[0].segment:
            continue
        ports = _ports_of(prefecture, dest)
        got_back = connects(run_as_root, lab_host, dest, ports)
        for p in ports:
            assert got_back[p] != "open", (
                f"{lab_host.name} -> {dest.name} {dest.primary_address}:{p} connected: the "
                "server opens nothing towards the terminals' segment")


def test_xrdp_listens_on_its_port_only(lab_host: Host, prefecture: Prefecture,
                                       run_as_root: Run) -> None:
    """xrdp listens on the policy's port only; its session manager on the loopback only. The
    sockets are told apart by the systemd unit of their cgroup (``ss -e``): root in a container
    without CAP_SYS_PTRACE cannot see the owner process of xrdp's socket (``ss -p``)."""
    port = _port(prefecture)
    _, listening, _ = run_as_root(lab_host, "ss -Hltne")
    by_unit: dict[str, list[tuple[str, int]]] = {}
    for line in listening.splitlines():
        address, _, p = line.split()[3].rpartition(":")
        unit = re.search(r"/([\w@.-]+)\.service\b", line)
        by_unit.setdefault(unit.group(1) if unit else "", []).append((address, int(p)))
    assert {p for _, p in by_unit.get("xrdp", [])} == {port}, (
        f"{lab_host.name}: xrdp listens on {by_unit.get('xrdp')}, not on {port} alone:\n"
        f"{listening}")
    sesman = by_unit.get("xrdp-sesman", [])
    assert sesman and all(_loopback(a) for a, _ in sesman), (
        f"{lab_host.name}: xrdp-sesman listens on {sesman}, not on the loopback only")


def _loopback(address: str) -> bool:
    text = address.strip("[]")
    if text == "*":
        return False
    ip = ipaddress.ip_address(text.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def test_every_channel_off_in_what_xrdp_reads(
    lab_host: Host, run_as_root: Run, xrdp_config: dict[str, list[tuple[str, str]]],
) -> None:
    """What the wire cannot show: each channel is also off by name (should allow_channels ever be
    turned on), no session type is a proxy to other hosts, and sesman keeps the clipboard and
    drives closed. Read with xrdp's rules for its ini files."""
    globals_ = xrdp_config["globals"]
    assert (setting(globals_, "security_layer") or "").lower() == "tls"
    assert not text2bool(setting(globals_, "allow_channels") or "true")
    channels = xrdp_config.get("channels", [])
    on = [k for k, v in channels if text2bool(v)]
    assert not on, f"{lab_host.name}: [Channels] turns on {on}"
    for name in XRDP_CHANNELS:
        value = setting(channels, name)
        assert value is None or not text2bool(value), f"[Channels] {name}={value}"
    for section, items in xrdp_config.items():
        if section in ("globals", "logging", "loggingperlogger", "channels"):
            continue
        lib = setting(items, "lib") or ""
        assert "vnc" not in lib and "neutrinordp" not in lib, (
            f"{lab_host.name}: session type [{section}] ({lib}) can proxy to other hosts")
        on = [k for k, v in items if k.startswith("channel.") and text2bool(v)]
        assert not on, f"{lab_host.name}: [{section}] turns on {on}"
    status, text, err = run_as_root(lab_host, f"cat {SESMAN_INI}")
    assert status == 0, err
    sesman = xrdp_ini(text)
    security, chansrv = sesman.get("security", []), sesman.get("chansrv", [])
    assert (setting(security, "RestrictOutboundClipboard") or "").lower() in ("all", "true", "yes")
    assert (setting(security, "RestrictInboundClipboard") or "").lower() in ("all", "true", "yes")
    assert not text2bool(setting(security, "AllowRootLogin") or "true")
    assert not text2bool(setting(chansrv, "EnableFuseMount") or "true")
    assert setting(sesman.get("globals", []), "ListenAddress") == "127.0.0.1"
