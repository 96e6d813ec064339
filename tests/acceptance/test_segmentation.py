"""Acceptance of the three-segment separation (三層の対策), by real packets both ways.

The reachability matrix (municloud.policy.matrix) lists, for every municipality, every pair of a
source host and a service of a destination host (its own hosts' and the shared ones'), and what
the policy says must happen. Each pair is one test:

* an allowed pair must connect: a TCP connection made on the source host (ICMP echo for ping);
* a denied pair must fail to connect, and only counts once the destination is proven to listen:
  the machine running the tests (a management address, the lab machine in the lab) connects to
  the same address and port first.

All probes of one source are made at once, in one SSH login to it (municloud/probe.py: a small
Python program run on the host, standard library only), several sources at a time, once per
test run however many xdist workers there are; so the whole matrix costs seconds, not minutes.

Beside the matrix: the gateway really drops and counts what it denies, per zone pair; no host
lets an SSH login tunnel around the gateway; and no host listens where the policy does not say.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

import paramiko
import pytest

from municloud import policy
from municloud import probe as municloud_probe
from municloud.inventory import Host, Prefecture


def test_reachability(probe: policy.Probe, probe_results: dict[str, dict[str, str]],
                      evidence: Any) -> None:
    what = (
        f"{probe.source.name} -> {probe.destination.name} {probe.address} "
        f"{probe.service}{f'/{probe.port}' if probe.port else ''}"
    )
    got = probe_results[probe.source.name][municloud_probe.key(probe.address, probe.port)]
    evidence(f"connect to {what} ({'allowed' if probe.expected else 'denied'} by the policy)",
             got, on=probe.source)
    if probe.expected:
        assert got == "open", f"{what}: allowed by the flow {probe.flow}, but {got}"
        return
    proof = probe_results[municloud_probe.HERE][municloud_probe.key(probe.address, probe.port)]
    evidence(f"connect to {probe.destination.name} {probe.address} {probe.service} (does it "
             "listen?)", proof, on=evidence.runner)
    assert proof == "open", (
        f"{what}: the destination does not answer a management address "
        f"({proof}), so a denial here would prove nothing"
    )
    assert got != "open", f"{what}: no flow allows this, but it connected"


# --- the gateway drops, counts and logs what it denies, per zone pair ---------------------------


def _counter(host: Any, prefix: str) -> int:
    """The packets counted by the forward-chain rule whose log prefix starts with ``prefix``."""
    chain = json.loads(host.check_output("nft -j list chain inet municloud forward"))
    for item in chain["nftables"]:
        rule = item.get("rule")
        if not rule:
            continue
        exprs = rule["expr"]
        logs = [e["log"]["prefix"] for e in exprs if "log" in e]
        if logs and logs[0].startswith(prefix):
            return int(next(e["counter"]["packets"] for e in exprs if "counter" in e))
    raise AssertionError(f"no rule logging {prefix!r} in the forward chain")


@pytest.mark.clause("segments.default-deny")
@pytest.mark.roles("gateway")
def test_gateway_drops_and_counts_per_zone_pair(
    host: Any,
    lab_host: Host,
    prefecture: Prefecture,
    matrix: list[policy.Probe],
    run_as_root: Callable[..., tuple[int, str, str]],
) -> None:
    """A connection the policy denies between two of the municipality's segments is dropped by
    the gateway's rule for that zone pair, whose log prefix names the municipality; its counter
    shows the packet it dropped."""
    m = prefecture.municipality(str(lab_host.municipality))
    denied = next(
        p
        for p in matrix
        if p.group == m.group
        and not p.expected
        and p.service == "ssh"
        and p.source.segment
        and p.destination.segment
        and p.source.segment != p.destination.segment
    )
    pair = f"{denied.source.segment}>{denied.destination.segment}"
    prefix = f"municloud drop {m.code} {pair}"
    before = _counter(host, prefix)
    status, _, _ = run_as_root(
        denied.source,
        "python3 -c 'import socket; socket.create_connection("
        f'("{denied.address}", 22), timeout=2)\'',
    )
    assert status != 0, f"{denied.id}: the gateway let it through"
    assert _counter(host, prefix) > before, f"the gateway did not count it under {prefix!r}"


# --- no way around the gateway --------------------------------------------------------------------


@pytest.mark.clause("segments.no-bypass")
def test_ssh_refuses_to_tunnel(ssh_login: Callable[[str], Any]) -> None:
    """A login may not carry a TCP tunnel (direct-tcpip), which would be a path past the gateway:
    sshd answers "administratively prohibited". Loopback only is asked for: no packet leaves."""
    transport = ssh_login("root").client.get_transport()
    assert transport is not None
    with pytest.raises(paramiko.ChannelException) as refused:
        transport.open_channel("direct-tcpip", ("127.0.0.1", 22), ("127.0.0.1", 0))
    assert refused.value.code == 1  # SSH_OPEN_ADMINISTRATIVELY_PROHIBITED


@pytest.mark.clause("segments.no-bypass")
def test_host_listens_only_where_the_policy_says(
    host: Any, lab_host: Host, prefecture: Prefecture
) -> None:
    """Every TCP port the host listens on, on any address but loopback, is one of its services."""
    allowed = {port for s in policy.services_on(prefecture, lab_host) for port in s.ports}
    found = set()
    for line in host.check_output("ss -Hltn").splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        if address not in ("*", ""):
            ip = ipaddress.ip_address(address)
            # xrdp's sesman listens on [::ffff:127.0.0.1]: loopback, but ipaddress says not
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if ip.is_loopback:
                continue
        found.add(int(port))
    assert found <= allowed, f"listening outside the policy: {sorted(found - allowed)}"
