"""The web proxy's squid.conf for roles/proxy, rendered by the package (municloud/cloud/squid.py).

One renderer for the cloud's user data and for the role: this filter builds the policy from what
Ansible resolved (``hostvars``, ``groups``; see plugins/filter/municloud.py) and hands it to
:func:`municloud.cloud.squid.render`.

* ``hostvars | municloud_proxy_squid_conf(groups, inventory_hostname, options)``: the squid.conf
  of the proxy ``inventory_hostname``. ``options`` is a mapping:

  - ``deny_list``, ``allow_list``: the prefecture's lists (``proxy_deny_list``,
    ``proxy_allow_list``);
  - ``denied_networks``: further destinations denied to everyone (``proxy_denied_networks``);
  - ``hosts_file``: squid's own hosts file, or empty for /etc/hosts;
  - ``prefecture``: for a host outside the inventory's model (a cloud instance found by the
    ``amazon.aws.aws_ec2`` source), the prefecture code its tags give (``proxy_prefecture``).

  Each α' municipality's approved destinations are read from its hosts'
  ``proxy_approved_destinations`` (its group_vars). A host of the model (``shared``, e.g. the
  lab's ``sc-proxy``) gets :func:`~municloud.cloud.squid.host_policy`; any other host gets the
  fleet's policy (:func:`~municloud.cloud.squid.fleet_policy`, as the launch template's user
  data). Both listen on every address: the host's firewall decides who reaches the port (the
  reachability matrix proves each denial against a listening port).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    import municloud  # noqa: F401 - installed (the venv, an execution environment)
except ImportError:  # a checkout used with an Ansible that lacks the package: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from municloud import from_ansible
from municloud.cloud import squid
from municloud.cloud.config import ConfigError
from municloud.inventory import InventoryError, Prefecture

APPROVED_VAR = "proxy_approved_destinations"


def _model(hostvars: Any, groups: Any) -> Prefecture:
    try:
        return from_ansible.prefecture(hostvars, groups)
    except InventoryError as exc:
        raise AnsibleFilterError(
            "the inventory is not valid for the segment policy (municloud validate says the "
            f"same):\n{exc}") from None


def _strings(name: str, value: Any) -> list[str]:
    value = from_ansible.plain(value)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnsibleFilterError(f"{name} must be a list of strings (got {value!r})")
    return list(value)


def approved_destinations(hostvars: Any, prefecture: Prefecture) -> dict[str, list[str]]:
    """Municipality code -> its ``proxy_approved_destinations``, which every host of the
    municipality must agree on (a group_vars file, not host_vars)."""
    out: dict[str, list[str]] = {}
    for m in prefecture.municipalities:
        seen = {h.name: _strings(f"{h.name}: {APPROVED_VAR}", hostvars[h.name].get(APPROVED_VAR))
                for h in m.hosts}
        values = {tuple(v) for v in seen.values()}
        if len(values) > 1:
            raise AnsibleFilterError(
                f"{APPROVED_VAR} differs between the hosts of {m.group} ({m.code}): set it once, "
                f"in group_vars/{m.group}/proxy.yml, not per host")
        if values:
            out[m.code] = list(values.pop())
    return out


def municloud_proxy_squid_conf(hostvars: Any, groups: Any, host: str,
                               options: Mapping[str, Any]) -> str:
    prefecture = _model(hostvars, groups)
    p = prefecture
    host = str(host)
    options = from_ansible.plain(options)
    try:
        extra = [ipaddress.IPv4Network(n, strict=True)
                 for n in _strings("proxy_denied_networks", options.get("denied_networks"))]
    except ValueError as exc:
        raise AnsibleFilterError(f"{host}: proxy_denied_networks: {exc} (give IPv4 ranges "
                                 "such as 198.51.100.0/24)") from None
    port = p.services["proxy"].ports[0]
    me = next((h for h in p.hosts if h.name == host), None)
    try:
        if me is not None:
            policy = squid.host_policy(p, host, port, extra)
        else:
            tagged = str(options.get("prefecture") or "")
            if tagged != p.code:
                raise AnsibleFilterError(
                    f"{host} is not a host of the inventory's model and serves prefecture "
                    f"{tagged or '(none: no proxy_prefecture)'}, not {p.name_romaji} ({p.code}): "
                    "a cloud proxy takes the inventory of the prefecture its tag "
                    "municloud:prefecture names (limit the run to municloud_prefecture_"
                    f"{p.code})")
            policy = squid.fleet_policy(p, [p], port)
            if extra:
                policy = replace(policy, denied=(*policy.denied, squid.Denied(
                    "to_extra", "further ranges the inventory denies (proxy_denied_networks)",
                    tuple(squid.Range(n, "proxy_denied_networks") for n in extra))))
        policy = squid.with_sites(
            policy, p, approved_destinations(hostvars, p),
            _strings("proxy_deny_list", options.get("deny_list")),
            _strings("proxy_allow_list", options.get("allow_list")))
        hosts_file = str(options.get("hosts_file") or "") or None
        files = replace(squid.DEBIAN, hosts_file=hosts_file)
        return squid.render(policy, None, files)
    except (ConfigError, ValueError) as exc:
        raise AnsibleFilterError(f"{host}: {exc}") from None


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"municloud_proxy_squid_conf": municloud_proxy_squid_conf}
