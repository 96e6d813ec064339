"""Acceptance of the security cloud's web proxy (roles/proxy): real requests from the terminals.

From each terminal, over SSH, with curl: an internet-segment terminal fetches an allowed site
through the proxy, gets squid's 403 for a site on the deny list, and cannot reach the site
directly; the proxy's access log names the terminal's municipality on the line of each of its
requests. An α' municipality's LGWAN terminals reach their approved cloud service through the
proxy and nothing else; any other model's LGWAN terminals are refused (by squid or by a
firewall before it).

The proxy's address and port, the terminals, their municipalities' codes and models, and the
site's address come from the inventory (the ``prefecture`` fixture). The site names are the
inventory's too (``proxy_static_hosts``, ``proxy_deny_list``, ``proxy_approved_destinations``
as ``ansible-inventory`` resolves them): the lab has no DNS, every name leads to the lab's web
server on its "internet", so what differs between them is squid's decision alone.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Callable
from typing import Any

import pytest
import testinfra.host

from municloud.inventory import Host, Prefecture
from municloud.segments import GuidelineModel, HostRole, SharedNetwork

Run = Callable[..., tuple[int, str, str]]
ACCESS_LOG = "/var/log/squid/access.log"
MARK = "%{http_code} %header{x-squid-error}"  # curl's -w: status and squid's error, if any


def _one(prefecture: Prefecture, role: HostRole) -> Host:
    found = [h for h in prefecture.hosts if h.role is role]
    assert found, f"the inventory has no {role.value} host"
    return found[0]


@pytest.fixture
def proxy(prefecture: Prefecture) -> Host:
    return _one(prefecture, HostRole.PROXY)


@pytest.fixture
def proxy_url(prefecture: Prefecture, proxy: Host) -> str:
    port = prefecture.services["proxy"].ports[0]
    return f"http://{proxy.addresses[SharedNetwork.SECURITY_CLOUD.value]}:{port}"


@pytest.fixture
def sites(proxy: Host, prefecture: Prefecture,
          host_vars: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    """``allowed``: a static name on no list; ``denied``: one on the deny list; all lead to the
    lab's web server (the inventory's vendor_update_source on the internet)."""
    v = host_vars(proxy.name)
    static = v.get("proxy_static_hosts") or {}
    deny = list(v.get("proxy_deny_list") or [])
    web = str(_one(prefecture, HostRole.VENDOR_UPDATE_SOURCE).primary_address)
    approved = {n.lstrip(".") for m in prefecture.municipalities
                if m.model is GuidelineModel.ALPHA_PRIME
                for n in host_vars(m.hosts[0].name).get("proxy_approved_destinations") or []}
    on_web = [name for name, address in static.items() if address == web]
    allowed = [n for n in on_web if n not in deny and n not in approved]
    denied = [n for n in on_web if n in deny]
    if not allowed or not denied:
        pytest.skip(f"{proxy.name}: the inventory names no allowed and denied site on {web} "
                    "(proxy_static_hosts, proxy_deny_list): a lab-only test")
    return {"allowed": allowed[0], "denied": denied[0], "web": web}


def _get(host: testinfra.host.Host, url: str, proxy_url: str | None,
         insecure: bool = False) -> tuple[int, str, str]:
    """curl ``url`` from ``host`` (through ``proxy_url``, or directly): exit status, HTTP status
    and squid's X-Squid-Error header ("" when none). ``insecure``: the lab site's certificate is
    a self-signed one."""
    via = f"-x {shlex.quote(proxy_url)} " if proxy_url else ""
    via += "-k " if insecure else ""
    result = host.run(f"curl -sS -o /dev/null --max-time 8 {via}-w {shlex.quote(MARK)} "
                      f"{shlex.quote(url)}")
    status, _, error = result.stdout.strip().partition(" ")
    return result.rc, status, error


def _log_size(run_as_root: Run, proxy: Host) -> int:
    rc, out, err = run_as_root(proxy, f"stat -c %s {ACCESS_LOG}")
    assert rc == 0, err
    return int(out)


def _log_lines(run_as_root: Run, proxy: Host, since: int, *needles: str) -> list[str]:
    """The proxy's access log lines written after byte ``since`` that hold every needle;
    squid's log daemon writes them within seconds."""
    lines: list[str] = []
    for _ in range(30):
        rc, out, err = run_as_root(proxy, f"tail -c +{since + 1} {ACCESS_LOG}")
        assert rc == 0, err
        lines = [ln for ln in out.splitlines() if all(n in ln.split() for n in needles)]
        if lines:
            return lines
        time.sleep(0.5)
    return lines


@pytest.mark.clause("segments.internet.via-security-cloud")
@pytest.mark.roles("terminal")
@pytest.mark.segments("internet")
@pytest.mark.requires_roles("proxy", "vendor_update_source")
def test_internet_terminals_reach_the_web_only_through_the_proxy(
        host: testinfra.host.Host, lab_host: Host, prefecture: Prefecture, proxy: Host,
        proxy_url: str, sites: dict[str, str], run_as_root: Run) -> None:
    town = prefecture.municipality(str(lab_host.municipality))
    client = str(lab_host.primary_address)
    token = secrets.token_hex(4)
    since = _log_size(run_as_root, proxy)

    allowed = f"http://{sites['allowed']}/?{token}"
    rc, status, error = _get(host, allowed, proxy_url)
    assert (rc, status, error) == (0, "200", ""), f"{lab_host.name}: {allowed} via the proxy"

    denied = f"http://{sites['denied']}/"
    rc, status, error = _get(host, denied, proxy_url)
    assert (status, error) == ("403", "ERR_ACCESS_DENIED 0"), \
        f"{lab_host.name}: {denied} (deny list) via the proxy"

    # TLS goes through a CONNECT tunnel to 443 only
    rc, status, _ = _get(host, f"https://{sites['allowed']}/", proxy_url, insecure=True)
    assert (rc, status) == (0, "200"), f"{lab_host.name}: https through the proxy"

    # and nothing goes out directly, neither by name nor by address
    rc, status, _ = _get(host, f"http://{sites['web']}/", None)
    assert rc != 0 and status == "000", f"{lab_host.name} reached {sites['web']} directly"

    # the log line of each request names the terminal's municipality
    seen = _log_lines(run_as_root, proxy, since, f"client={client}",
                      f"http://{sites['denied']}/")
    assert seen, f"no log line for {lab_host.name}'s refused request"
    assert all(f"municipality={town.code}" in ln.split() for ln in seen), seen
    assert "TCP_DENIED/403" in seen[0].split()
    ok = _log_lines(run_as_root, proxy, since, f"client={client}", "GET")
    assert any(f"municipality={town.code}" in ln.split() and "TCP_MISS/200" in ln.split()
               and sites["allowed"] in ln for ln in ok), ok
    theirs = _log_lines(run_as_root, proxy, since, f"client={client}")
    assert all(ln.split()[-2:] == [f"municipality={town.code}", f"client={client}"]
               for ln in theirs), theirs


@pytest.mark.clause("segments.lgwan.approved-cloud")
@pytest.mark.roles("terminal")
@pytest.mark.segments("lgwan")
@pytest.mark.requires_roles("proxy")
def test_lgwan_terminals_reach_only_their_approved_cloud(
        host: testinfra.host.Host, lab_host: Host, prefecture: Prefecture, proxy: Host,
        proxy_url: str, run_as_root: Run, request: pytest.FixtureRequest,
        host_vars: Callable[[str], dict[str, Any]]) -> None:
    town = prefecture.municipality(str(lab_host.municipality))
    client = str(lab_host.primary_address)
    approved = list(host_vars(lab_host.name).get("proxy_approved_destinations") or [])
    if town.model is not GuidelineModel.ALPHA_PRIME:
        assert not approved
        # any site: refused by a firewall (no connection: curl's 000) or by squid (its 403)
        rc, status, error = _get(host, "http://www.example.invalid/", proxy_url)
        assert status == "000" or (status, error) == ("403", "ERR_ACCESS_DENIED 0"), \
            f"{lab_host.name} ({town.model.value}) used the proxy: {status} {error}"
        return
    sites: dict[str, str] = request.getfixturevalue("sites")
    since = _log_size(run_as_root, proxy)
    other = f"http://{sites['allowed']}/"
    rc, status, error = _get(host, other, proxy_url)
    # α': its approved cloud service, and nothing else
    assert (status, error) == ("403", "ERR_ACCESS_DENIED 0"), \
        f"{lab_host.name}: {other} is not approved for {town.name_romaji}"
    assert approved, f"{town.group}: α' with no proxy_approved_destinations"
    name = approved[0].lstrip(".")
    rc, status, error = _get(host, f"http://{name}/", proxy_url)
    assert (rc, status, error) == (0, "200", ""), f"{lab_host.name}: approved {name}"
    seen = _log_lines(run_as_root, proxy, since, f"client={client}")
    assert len(seen) >= 2
    assert all(ln.split()[-2] == f"municipality={town.code}" for ln in seen), seen
