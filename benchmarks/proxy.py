#!/usr/bin/env python3
"""Benchmark of the security cloud's web proxy (squid, roles/proxy), on a converged lab
(`make lab-up converge INVENTORY=...`).

In one run, the same N small GETs of the lab's web site (the vendor's index page), each over one
keep-alive connection, with a short Python loop (http.client):
  1. through squid: from the first municipality's internet-segment terminal to the proxy
     (absolute URLs, as a browser configured with a proxy sends them);
  2. directly: from the proxy host itself to the site (the terminals have no direct way out: the
     firewalls refuse it), with the same Host header.
Requests per second of each, and their ratio. Each figure is the median of --runs runs. The
loops are bounded (N requests, 10 s timeout each) and reach only the lab's hosts. Writes
benchmarks/proxy.figures.md.

Usage: .venv/bin/python benchmarks/proxy.py [--inventory inventories/sample] [--requests 2000]
       [--runs 3] [--site updates.vendor.lab.invalid]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import statistics
import sys
from pathlib import Path

import paramiko

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labssh import ssh  # noqa: E402  (benchmarks/labssh.py)

from municloud import inventory  # noqa: E402
from municloud.segments import HostRole, Segment, SharedNetwork  # noqa: E402

FIGURES = REPO / "benchmarks" / "proxy.figures.md"

# Runs on a lab host: N GETs over one keep-alive connection to host:port, asking for url.
LOOP = r"""
import http.client, json, sys, time
host, port, url, name, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
conn = http.client.HTTPConnection(host, port, timeout=10)
ok = 0
start = time.monotonic()
for _ in range(n):
    conn.request("GET", url, headers={"Host": name})
    response = conn.getresponse()
    response.read()
    ok += response.status == 200
seconds = time.monotonic() - start
conn.close()
print(json.dumps({"seconds": seconds, "ok": ok}))
"""



def loop(client: paramiko.SSHClient, *args: object) -> float:
    """Requests per second of LOOP with ``args``; every answer must be a 200."""
    command = "python3 - " + " ".join(shlex.quote(str(a)) for a in args)
    channel_in, out, err = client.exec_command(command, timeout=900)
    channel_in.write(LOOP)
    channel_in.channel.shutdown_write()
    text, errors = out.read().decode(), err.read().decode()
    if out.channel.recv_exit_status() != 0:
        raise SystemExit(f"{command}: {errors or text}")
    result = json.loads(text)
    n = int(str(args[-1]))
    if result["ok"] != n:
        raise SystemExit(f"{command}: {n - result['ok']} of {n} answers were not 200")
    return n / float(result["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inventory", default="inventories/sample")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--site", default="updates.vendor.lab.invalid",
                        help="a name the proxy resolves to the web site (proxy_static_hosts)")
    args = parser.parse_args()
    prefecture = inventory.load(args.inventory)
    lab = REPO / ".lab" / prefecture.path.name
    key, known = lab / "id_ed25519", lab / "known_hosts"
    proxy = next(h for h in prefecture.shared_hosts if h.role is HostRole.PROXY)
    web = next(h for h in prefecture.shared_hosts if h.role is HostRole.VENDOR_UPDATE_SOURCE)
    town = prefecture.municipalities[0]
    terminal = next(h for h in town.hosts
                    if h.role is HostRole.TERMINAL and h.segment is Segment.INTERNET)
    proxy_address = str(proxy.addresses[SharedNetwork.SECURITY_CLOUD.value])
    port = prefecture.services["proxy"].ports[0]
    web_address = str(web.primary_address)
    p, t = ssh(proxy, key, known), ssh(terminal, key, known)
    proxied: list[float] = []
    direct: list[float] = []
    try:
        for i in range(args.runs):
            proxied.append(loop(t, proxy_address, port, f"http://{args.site}/", args.site,
                                args.requests))
            direct.append(loop(p, web_address, 80, "/", args.site, args.requests))
            print(f"run {i + 1}: through squid {proxied[-1]:.0f} req/s, direct "
                  f"{direct[-1]:.0f} req/s", flush=True)
    finally:
        p.close()
        t.close()
    via, straight = statistics.median(proxied), statistics.median(direct)
    rows = "\n".join([
        f"| {args.requests} GETs over one keep-alive connection, through squid "
        f"({terminal.name} → {proxy.name}:{port} → {web.name}) | {via:.0f} req/s "
        f"| directly ({proxy.name} → {web.name}:80): {straight:.0f} req/s "
        f"| {via / straight:.2f} of direct |",
    ])
    text = f"""# Web proxy figures

Written by `.venv/bin/python benchmarks/proxy.py --inventory {args.inventory} --requests \
{args.requests} --runs {args.runs}`
on {datetime.date.today()}, {platform.machine()}, the lab's containers on one machine (shared and
noisy: compare the ratio, which comes from one run, not the absolute figures across machines).
The page is the lab site's index (nginx autoindex; 629 bytes with headers, as squid logs it);
medians of {args.runs} runs.

| what | figure | against | ratio |
| --- | --- | --- | --- |
{rows}

Through squid, each request crosses the terminal's segment bridge, its municipality's gateway
(forwarding and its nftables ruleset) and the proxy's ruleset, and squid matches its ACLs, writes
an access log line and forwards it to the site; the direct requests come from the proxy host,
the one place with a direct way to the lab's internet, so they skip the gateway as well as
squid: the ratio is the cost of the whole proxied path, not of squid alone. No cache: every
request reaches the site.
"""
    FIGURES.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
