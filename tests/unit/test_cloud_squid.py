"""The proxies' squid (municloud/cloud/squid.py), judged by squid itself and by traffic.

- Each sample stack's rendered configuration passes Debian's ``squid -k parse`` with no warning.
- The same renderer, given loopback ranges, runs a real squid in the foreground: a request to
  the "internet" passes, one to a "municipality" or to a port other than 80/443 gets squid's 403.
- The launch template of each recorded graph carries user data that, run as a script (in a
  mount namespace, with apt-get and systemctl stubbed), writes exactly the rendered configuration.
- Its client ranges are the proxies' security group's, and it denies every range of the graph's
  VPC and of the inventories.

Only loopback addresses are used; squid is always stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import http.server
import importlib.util
import ipaddress
import itertools
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from cloud_stacks import SECURITY_STACKS, graph

from municloud.cloud import squid, stacks, tags
from municloud.cloud.config import ConfigError, ProxySettings
from municloud.inventory import Prefecture, load
from municloud.segments import Segment

SQUID = "/usr/sbin/squid"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
Net = ipaddress.IPv4Network


def need_squid() -> None:
    if not os.access(SQUID, os.X_OK):
        pytest.fail(f"{SQUID} is not installed: run ./scripts/install.sh (Debian's squid)")


def served(ref: str) -> list[Prefecture]:
    stack = stacks.resolve(ref)
    return [load(stack.program_dir / p) for p in stack.config["municloud:inventories"]]


def fleet_configs(ref: str) -> dict[str, str]:
    """Prefecture code -> the configuration its proxies should get, rendered here."""
    prefs = served(ref)
    return {p.code: squid.render(squid.fleet_policy(p, prefs, ProxySettings().port))
            for p in prefs}


def acl(config: str, name: str) -> list[Net]:
    """The ranges of the ACL ``name`` in a configuration, read back from its lines."""
    return [Net(m.group(1)) for m in re.finditer(
        rf"^acl {re.escape(name)} (?:src|dst) (\S+)$", config, re.MULTILINE)]


def squid_parse(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SQUID, "-k", "parse", "-f", str(path)], capture_output=True,
                          text=True, check=False, timeout=60)


def complaints(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines()
            if re.search(r"WARNING|ERROR|FATAL|unrecognized", line)]


# --- squid -k parse ----------------------------------------------------------------------------


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_each_fleet_config_passes_squid_parse(ref: str, tmp_path: Path) -> None:
    need_squid()
    configs = fleet_configs(ref)
    assert len(configs) == len(served(ref))
    for code, config in configs.items():
        path = tmp_path / f"squid-{code}.conf"
        path.write_text(config, encoding="utf-8")
        result = squid_parse(path)
        assert result.returncode == 0, f"{ref} {code}:\n{result.stdout}{result.stderr}"
        assert complaints(result) == [], f"{ref} {code}"
        # squid really read it: it reports each directive it processes
        assert "Processing: http_access deny to_municipalities" in result.stdout + result.stderr


def test_squid_parse_refuses_a_broken_config(tmp_path: Path) -> None:
    """The check above has teeth: squid -k parse fails on an ACL it does not know."""
    need_squid()
    config = fleet_configs(SECURITY_STACKS[0])["310000"]
    path = tmp_path / "broken.conf"
    path.write_text(config.replace("http_access deny to_municipalities",
                                   "http_access deny to_municipalitie"), encoding="utf-8")
    result = squid_parse(path)
    assert result.returncode != 0
    assert complaints(result)


# --- what the configuration says, against the graph and the inventories ------------------------


def _decoded_user_data(ref: str) -> dict[str, str]:
    """Prefecture code -> the launch template's user data (the script), from the graph."""
    out = {}
    for lt in graph(ref).of_type(LAUNCH_TEMPLATE):
        out[lt.tags[tags.PREFECTURE]] = gzip.decompress(
            base64.b64decode(lt.props["userData"])).decode()
    return out


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_clients_are_the_proxy_security_group_ranges(ref: str) -> None:
    """squid admits exactly the ranges the proxies' security group admits (read from the graph),
    and those are the prefecture's municipalities' internet segments."""
    g = graph(ref)
    configs = fleet_configs(ref)
    port = ProxySettings().port
    for p in served(ref):
        (sg,) = [r for r in g.of_type(SECURITY_GROUP)
                 if r.name.endswith(f"-proxy-{p.code}-sg")]
        ingress = sorted(Net(c) for rule in sg.props["ingress"] if rule.get("cidrBlocks")
                         and rule["fromPort"] == port for c in rule["cidrBlocks"])
        assert ingress == sorted(acl(configs[p.code], "municipality_clients"))
        assert ingress == sorted(m.segments[Segment.INTERNET].cidr for m in p.municipalities)


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_every_range_of_the_cloud_is_a_denied_destination(ref: str) -> None:
    """Every segment of every municipality and every shared network of the inventories, every
    range of the graph's inspection VPC, and the metadata service lie in a denied ACL, and every
    deny comes before the one allow."""
    g = graph(ref)
    prefs = served(ref)
    vpc = [Net(r.props["cidrBlock"]) for r in g if r.type in (
        "aws:ec2/vpc:Vpc", "aws:ec2/vpcIpv4CidrBlockAssociation:VpcIpv4CidrBlockAssociation")]
    assert vpc
    must = [*(n.cidr for p in prefs for n in p.networks), *vpc,
            Net("169.254.169.254/32"), Net("127.0.0.1/32")]
    assert len(must) > 2 * len(prefs) * 4
    for code, config in fleet_configs(ref).items():
        names = ("to_municipalities", "to_shared_networks", "to_inspection_vpc",
                 "to_proxy_host", "to_link_local")
        denied = [n for name in names for n in acl(config, name)]
        outside = [str(n) for n in must if not any(n.subnet_of(d) for d in denied)]
        assert outside == [], f"{ref} {code}: not denied: {outside}"
        assert sorted(acl(config, "to_inspection_vpc")) == sorted(vpc)
        assert sorted(acl(config, "to_municipalities")) == sorted(
            n.cidr for p in prefs for m in p.municipalities for n in m.segments.values())
        rules = re.findall(r"^http_access .*$", config, re.MULTILINE)
        assert rules[-2:] == ["http_access allow municipality_clients", "http_access deny all"]
        assert {f"http_access deny {name}" for name in names} <= set(rules)  # defined and used
        assert all(r.startswith("http_access deny") for r in rules[:-2])
    # the inspection_vpc_ranges helper says what InspectionVpc made
    from municloud.cloud.security_cloud import inspection_vpc_ranges
    assert sorted(inspection_vpc_ranges(prefs)) == sorted(vpc)


# --- the user data in the recorded graph, run as a script ------------------------------------


STUBS = {
    "apt-get": 'echo "apt-get $*" >>"$RECORD/calls"\n',
    "systemctl": 'echo "systemctl $*" >>"$RECORD/calls"\n',
    # squid: record the call and a copy of the file it checks, then let the real squid check it
    "squid": ('echo "squid $*" >>"$RECORD/calls"\n'
              'cp "$4" "$RECORD/checked.conf"\n'
              f'exec {SQUID} "$@"\n'),
}


@dataclass
class Ran:
    """What a user data script did: its exit status and output, the commands it ran, the
    squid.conf it wrote (None: none) and the one it gave ``squid -k parse``."""

    returncode: int
    output: str
    calls: list[str]
    written: str | None
    checked: str | None


def run_user_data(script: str, workdir: Path) -> Ran:
    """Run ``script`` as cloud-init would (sh, as root), in a mount namespace whose /etc/squid
    is an empty tmpfs, with apt-get, systemctl and squid stubbed on PATH (the squid stub hands
    ``-k parse`` on to the real squid)."""
    if os.geteuid() != 0:
        pytest.skip("running the user data in a mount namespace needs root")
    if not Path(squid.CONF).parent.is_dir():
        pytest.fail("/etc/squid does not exist: run ./scripts/install.sh (Debian's squid)")
    stubs, record = workdir / "stubs", workdir / "record"
    stubs.mkdir(parents=True)
    record.mkdir()
    for name, body in STUBS.items():
        (stubs / name).write_text("#!/bin/sh\n" + body)
        (stubs / name).chmod(0o755)
    (workdir / "user-data").write_text(script, encoding="utf-8")
    # the script's status is kept; then whatever it wrote is copied out of the namespace
    inner = (f"mount -t tmpfs -o mode=0755 municloud-test {Path(squid.CONF).parent} || exit 99; "
             f'sh {workdir / "user-data"}; status=$?; '
             f'if [ -e {squid.CONF} ]; then cp {squid.CONF} "$RECORD/written.conf"; fi; '
             "exit $status")
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "RECORD": str(record)},
        capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode != 99, f"no tmpfs over /etc/squid: {result.stderr}"

    def text(name: str) -> str | None:
        path = record / name
        return path.read_text(encoding="utf-8") if path.exists() else None

    return Ran(result.returncode, result.stdout + result.stderr,
               (text("calls") or "").splitlines(), text("written.conf"), text("checked.conf"))


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_launch_template_user_data_writes_the_rendered_config(ref: str, tmp_path: Path) -> None:
    need_squid()
    host_conf = Path(squid.CONF).read_bytes() if Path(squid.CONF).exists() else None
    scripts = _decoded_user_data(ref)
    configs = fleet_configs(ref)
    assert set(scripts) == set(configs)
    for code, script in scripts.items():
        assert script.startswith("#!/bin/sh\n")  # cloud-init runs it as a script
        ran = run_user_data(script, tmp_path / code)
        assert ran.returncode == 0, ran.output
        assert ran.written == configs[code], f"{ref} {code}: the script writes another config"
        assert ran.checked == ran.written  # and squid -k parse judged that file
        assert ran.calls == [
            "apt-get update",
            "apt-get install -y --no-install-recommends squid",
            f"squid -k parse -f {squid.CONF}",
            "systemctl restart squid",
        ]
    # the host's own squid.conf was never touched (the namespace's tmpfs hid it)
    assert (Path(squid.CONF).read_bytes() if Path(squid.CONF).exists() else None) == host_conf


def test_user_data_stops_squid_when_the_config_is_refused(tmp_path: Path) -> None:
    """A configuration squid refuses leaves no Debian default squid answering the balancer."""
    need_squid()
    broken = fleet_configs(SECURITY_STACKS[0])["310000"] + "http_access allow no_such_acl\n"
    ran = run_user_data(squid.user_data(broken), tmp_path)
    assert ran.returncode != 0
    assert "no_such_acl" in ran.output
    assert ran.calls[-2:] == [f"squid -k parse -f {squid.CONF}", "systemctl stop squid"]
    assert "systemctl restart squid" not in ran.calls


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_user_data_is_known_at_preview(ref: str) -> None:
    """A first preview already holds the whole user data (a plain string, not an Output)."""
    up = {lt.name: lt.props["userData"] for lt in graph(ref).of_type(LAUNCH_TEMPLATE)}
    first = {lt.name: lt.props["userData"]
             for lt in graph(ref, preview=True).of_type(LAUNCH_TEMPLATE)}
    assert up == first
    assert all(isinstance(v, str) and v for v in first.values())


# --- bad input ---------------------------------------------------------------------------------


def test_a_prefecture_without_internet_segments_is_refused() -> None:
    """No municipality, no client range: the program stops with a message naming the inventory,
    rather than boot proxies that admit nobody. (The inventory model already refuses an
    inventory with no municipality; this is the renderer's own guard.)"""
    (p,) = served(SECURITY_STACKS[0])
    empty = replace(p, municipalities=())
    with pytest.raises(ConfigError, match=r"no municipality of Tottori \(310000\) has an "
                                          r"internet segment"):
        squid.fleet_policy(empty, [empty], 3128)
    policy = squid.fleet_policy(p, [p], 3128)
    with pytest.raises(ValueError, match="admit nobody"):
        squid.render(replace(policy, clients=()))


def test_user_data_of_a_wide_cloud_fits_and_more_than_ec2_takes_is_refused(
        tmp_path: Path) -> None:
    """Every fleet denies every municipality of the cloud: on the benchmark's synthetic cloud
    (7 prefectures, 265 municipalities) one fleet's script is tens of KB as text, and fits
    EC2's 16 KB only compressed. What does not compress is refused, with both sizes."""
    spec = importlib.util.spec_from_file_location(
        "cloud_plan_benchmark", Path(__file__).resolve().parents[2] / "benchmarks/cloud_plan.py")
    assert spec and spec.loader
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    prefectures = [load(p) for p in benchmark.write_synthetic(tmp_path)]
    config = squid.render(squid.fleet_policy(prefectures[0], prefectures, 3128))
    packed = base64.b64decode(squid.user_data_base64(config))
    assert len(squid.user_data(config).encode()) > 4 * squid.USER_DATA_LIMIT
    assert len(packed) <= squid.USER_DATA_LIMIT
    assert gzip.decompress(packed).decode() == squid.user_data(config)

    rng = random.Random(0)
    clients = tuple(squid.Range(net, rng.randbytes(24).hex()) for net in itertools.islice(
        Net("10.0.0.0/8").subnets(new_prefix=24), 2000))
    with pytest.raises(ValueError, match=r"bytes compressed \(\d+ as text\); EC2 takes at "
                                         r"most 16384"):
        squid.user_data_base64(squid.render(replace(squid.fleet_policy(
            prefectures[0], prefectures, 3128), clients=clients)))


# --- a real squid on loopback ------------------------------------------------------------------


@dataclass
class Site:
    """A web server on loopback that records the paths it was asked for."""

    server: http.server.ThreadingHTTPServer
    seen: list[str] = field(default_factory=list)


def _site(address: str, port: int) -> Site:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            body = f"{address}:{port}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Site(server, seen)


@dataclass
class LoopbackProxy:
    """A squid in the foreground on loopback, with the renderer's configuration for test ranges:
    ``client`` is a municipality's internet segment, ``municipality`` a host in a municipality's
    range, ``internet`` a host in no range of the cloud, ``outsider`` no municipality's,
    ``lgwan`` an α' municipality's LGWAN terminal. Names (squid's own hosts file) all lead to
    ``internet``: APPROVED is that municipality's approved cloud service, BLOCKED is on the deny
    list, ALLOWED on neither (or on the allow list, when a test gives one)."""

    address: str
    port: int
    client: str
    outsider: str
    municipality: str
    internet: str
    lgwan: str
    sites: dict[str, Site]
    access_log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # squid's immediate shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def get(self, url: str, source: str | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(self.address, self.port, timeout=10,
                                          source_address=(source or self.client, 0))
        conn.request("GET", url)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def connect(self, target: str) -> str:
        """The status line squid answers a CONNECT to ``target`` with."""
        with socket.create_connection((self.address, self.port), timeout=10,
                                      source_address=(self.client, 0)) as s:
            s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            return s.makefile("rb").readline().decode().strip()


TEST_CODE = "319991"  # the test municipality's code, on its log lines
APPROVED, BLOCKED, ALLOWED = ("approved.test.invalid", "blocked.test.invalid",
                              "allowed.test.invalid")


def _loopback_net() -> Net:
    """A /24 of 127.0.0.0/8 for this run (127.0.0.0/24 left alone), so that parallel runs do not
    meet on the web servers' ports 80 and 443."""
    return Net(f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.0/24")


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def loopback_proxy(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LoopbackProxy]:
    """Indirect parameter (optional): {"allow_sites": (...)}, the prefecture's allow list."""
    need_squid()
    allow_sites = tuple(getattr(request, "param", {}).get("allow_sites", ()))
    sites: dict[str, Site] = {}
    for _ in range(5):
        net = _loopback_net()
        client, municipality, internet, outsider, lgwan = (str(a) for a in list(net.hosts())[:5])
        try:
            for name, address, port in (("municipality", municipality, 80),
                                        ("internet", internet, 80),
                                        ("internet:8080", internet, 8080),
                                        ("internet:443", internet, 443)):
                sites[name] = _site(address, port)
            break
        except OSError as exc:
            for site in sites.values():
                site.server.shutdown()
                site.server.server_close()
            sites = {}
            if isinstance(exc, PermissionError):
                pytest.skip("the traffic test's web servers listen on ports 80 and 443: root")
            # the address is in use: another /24
    assert sites, "no free loopback /24 for the web servers"
    address = str(net.broadcast_address - 1)  # squid's own: 127.x.y.254
    port = _free_port(address)
    (p,) = served(SECURITY_STACKS[0])
    # The production policy with its ranges replaced by the test's: the same renderer.
    policy = replace(
        squid.fleet_policy(p, [p], port),
        clients=(squid.Range(Net(f"{client}/32"), "test municipality's internet segment",
                             TEST_CODE),),
        denied=(squid.Denied("to_municipalities", "a test municipality's range",
                             (squid.Range(Net(f"{municipality}/32"), "test municipality"),)),),
        approved=(squid.Approved(TEST_CODE, "test municipality's LGWAN terminals",
                                 (squid.Range(Net(f"{lgwan}/32"), "LGWAN terminal", TEST_CODE),),
                                 (APPROVED,)),),
        deny_sites=(BLOCKED,),
        allow_sites=allow_sites,
    )
    # squid gives up root for its effective user (Debian's: proxy), which cannot enter
    # pytest's tmp_path (the base is 0700 root's): its pid file and logs live in a directory
    # of its own, removed at the end. The configuration stays under tmp_path (read as root).
    run = Path(tempfile.mkdtemp(prefix="municloud-squid-test-"))
    if os.geteuid() == 0:
        proxy_user = pwd.getpwnam("proxy")
        os.chown(run, proxy_user.pw_uid, proxy_user.pw_gid)
    (run / "hosts").write_text("".join(f"{internet} {name}\n"
                                       for name in (APPROVED, BLOCKED, ALLOWED)))
    files = squid.Files(pid_file=str(run / "squid.pid"), access_log=str(run / "access.log"),
                        cache_log=str(run / "cache.log"), coredump_dir=str(run),
                        hosts_file=str(run / "hosts"))
    config = squid.render(policy, address=ipaddress.IPv4Address(address), files=files)
    # Test harness only: squid's DNS sockets on loopback too.
    config += "\n".join(["", f"udp_incoming_address {address}", f"udp_outgoing_address {address}",
                         "dns_nameservers 127.0.0.1", ""])
    conf = tmp_path / "squid.conf"
    conf.write_text(config, encoding="utf-8")
    # A service name of its own: squid names its shared memory (/dev/shm/<name>-*) after it,
    # so this squid meets no other on the machine.
    service = f"municloudtest{net.network_address.packed[1]}x{net.network_address.packed[2]}"
    process = subprocess.Popen([SQUID, "-N", "-n", service, "-f", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = LoopbackProxy(address, port, client, outsider, municipality, internet, lgwan, sites,
                          run / "access.log", process)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "squid exited:\n" + (
                (run / "cache.log").read_text() if (run / "cache.log").exists() else "")
            with contextlib.suppress(OSError), socket.create_connection((address, port), 1):
                break
            assert time.monotonic() < deadline, "squid did not listen within 20 s"
            time.sleep(0.1)
        yield proxy
    finally:
        proxy.stop()
        for site in sites.values():
            site.server.shutdown()
            site.server.server_close()
        shutil.rmtree(run, ignore_errors=True)
        for segment in Path("/dev/shm").glob(f"{service}-*"):  # left only if squid was killed
            segment.unlink(missing_ok=True)


def _denied_by_squid(response: http.client.HTTPResponse) -> bool:
    return response.status == 403 and (response.getheader("X-Squid-Error") or "").startswith(
        "ERR_ACCESS_DENIED")


def test_loopback_squid_relays_the_internet_and_nothing_else(
        loopback_proxy: LoopbackProxy) -> None:
    proxy = loopback_proxy
    internet = proxy.get(f"http://{proxy.internet}/news")
    assert internet.status == 200
    assert proxy.sites["internet"].seen == ["/news"]

    assert _denied_by_squid(proxy.get(f"http://{proxy.municipality}/secrets"))
    assert proxy.sites["municipality"].seen == []

    assert _denied_by_squid(proxy.get(f"http://{proxy.internet}:8080/other-port"))
    assert proxy.sites["internet:8080"].seen == []

    # a client outside every municipality's internet segment is refused
    assert _denied_by_squid(proxy.get(f"http://{proxy.internet}/outsider", proxy.outsider))
    assert proxy.sites["internet"].seen == ["/news"]

    # CONNECT: a tunnel to 443 of the internet, to nothing else
    assert proxy.connect(f"{proxy.internet}:443").split()[1] == "200"
    assert proxy.connect(f"{proxy.internet}:80").split()[1] == "403"
    assert proxy.connect(f"{proxy.municipality}:443").split()[1] == "403"

    # squid's cache manager is nobody's business
    manager = f"http://{proxy.address}:{proxy.port}/squid-internal-mgr/info"
    assert _denied_by_squid(proxy.get(manager))

    proxy.stop()  # flushes the access log
    log = proxy.access_log.read_text().splitlines()
    lines = [line.split() for line in log]
    # time, duration, client, result/status, bytes, method, URL, hierarchy/server, type
    by_url = {(f[5], f[6], f[2]): f[3] for f in lines}
    assert by_url[("GET", f"http://{proxy.internet}/news", proxy.client)] == "TCP_MISS/200"
    assert by_url[("GET", f"http://{proxy.municipality}/secrets", proxy.client)] == \
        "TCP_DENIED/403"
    assert by_url[("GET", f"http://{proxy.internet}:8080/other-port", proxy.client)] == \
        "TCP_DENIED/403"
    assert by_url[("GET", f"http://{proxy.internet}/outsider", proxy.outsider)] == \
        "TCP_DENIED/403"
    assert by_url[("CONNECT", f"{proxy.municipality}:443", proxy.client)] == "TCP_DENIED/403"

    # every line names the municipality of its client (- for none) and the client, at its end
    assert all(f[-2:] == [f"municipality={TEST_CODE}", f"client={proxy.client}"]
               for f in lines if f[2] == proxy.client), log
    assert [f[-2:] for f in lines if f[2] == proxy.outsider] == [
        ["municipality=-", f"client={proxy.outsider}"]]


def _log(proxy: LoopbackProxy) -> dict[tuple[str, str], list[str]]:
    """(client, URL) -> the fields of its access log line (squid stopped first: flushed)."""
    proxy.stop()
    return {(f[2], f[6]): f for f in (line.split() for line in
                                      proxy.access_log.read_text().splitlines())}


def test_loopback_squid_lgwan_terminals_reach_only_their_approved_service(
        loopback_proxy: LoopbackProxy) -> None:
    """α': the LGWAN terminal reaches its approved service by name, nothing else (not the same
    address under another name, nor by address); the deny list wins over everything; the
    internet segment reaches every name but the deny list."""
    proxy = loopback_proxy
    assert proxy.get(f"http://{APPROVED}/cloud", proxy.lgwan).status == 200
    assert _denied_by_squid(proxy.get(f"http://{ALLOWED}/web", proxy.lgwan))
    assert _denied_by_squid(proxy.get(f"http://{proxy.internet}/by-address", proxy.lgwan))
    assert proxy.get(f"http://{ALLOWED}/web").status == 200
    assert _denied_by_squid(proxy.get(f"http://{BLOCKED}/blocked"))
    assert proxy.sites["internet"].seen == ["/cloud", "/web"]
    log = _log(proxy)
    assert log[(proxy.lgwan, f"http://{APPROVED}/cloud")][3] == "TCP_MISS/200"
    assert log[(proxy.lgwan, f"http://{ALLOWED}/web")][3] == "TCP_DENIED/403"
    assert log[(proxy.client, f"http://{BLOCKED}/blocked")][3] == "TCP_DENIED/403"
    # the LGWAN terminal's lines name its municipality too, allowed or refused
    assert {f[-2] for (client, _), f in log.items() if client == proxy.lgwan} == {
        f"municipality={TEST_CODE}"}


@pytest.mark.parametrize("loopback_proxy", [{"allow_sites": (ALLOWED,)}], indirect=True)
def test_loopback_squid_with_an_allow_list_reaches_only_it(loopback_proxy: LoopbackProxy) -> None:
    """A non-empty allow list: the internet segment reaches the sites on it and nothing else;
    the approved service stays the α' terminals' own (the allow list does not narrow it)."""
    proxy = loopback_proxy
    assert proxy.get(f"http://{ALLOWED}/listed").status == 200
    assert _denied_by_squid(proxy.get(f"http://{APPROVED}/not-listed"))
    assert _denied_by_squid(proxy.get(f"http://{proxy.internet}/by-address"))
    assert proxy.get(f"http://{APPROVED}/cloud", proxy.lgwan).status == 200
    assert proxy.sites["internet"].seen == ["/listed", "/cloud"]
