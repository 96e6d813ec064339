"""Filters that give the roles what the segment policy computes, from the one model.

ansible.cfg names this directory in ``filter_plugins``. Each filter takes ``hostvars`` and
``groups`` (what Ansible resolved, so it works the same from AWX's copy of an inventory) and
imports the ``municloud`` package: the installed one, or else the one in this checkout (what
these filters import needs only PyYAML beyond the standard library, and ansible-core brings
PyYAML), so a plain ansible-playbook or an execution environment with ansible-core alone works.

* ``hostvars | municloud_problems(groups)``: every problem ``municloud validate`` would report
  (list of strings; empty when the inventory is valid).
* ``hostvars | municloud_ruleset(groups, inventory_hostname, log_limit)``: the host's nftables
  ruleset (a gateway's or any other host's).
* ``hostvars | municloud_services(groups, inventory_hostname)``: the services the host offers,
  as ``[{name, port}]``.
* ``hostvars | municloud_host(groups, inventory_hostname)``: who the host is, for messages and
  checks: ``{name, role, municipality_code, municipality_name, model, legs}``, each leg
  ``{network, address, cidr, probe}`` (probe: another address of that network).
* ``hostvars | municloud_peer_address(groups, inventory_hostname, role)``: the address by which
  the host reaches its peer of ``role`` (e.g. ``update_relay``): the one in its own municipality,
  else the shared one; the address it would use, as the reachability matrix computes it.
* ``groups | municloud_rollout_batches``: batch sizes for ``serial`` that take the hosts under
  ``municipalities`` one municipality at a time (from the groups site.yml's first play makes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

try:
    import municloud  # noqa: F401 - installed (the venv, an execution environment)
except ImportError:  # a checkout used with an Ansible that lacks the package: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from municloud import from_ansible, nftables, policy
from municloud.inventory import InventoryError, Prefecture

# The groups site.yml's first play makes, one per municipality (group_by on its code).
BATCH_GROUP = "municloud_municipality_"


def _model(hostvars: Any, groups: Any) -> Prefecture:
    try:
        return from_ansible.prefecture(hostvars, groups)
    except InventoryError as exc:
        raise AnsibleFilterError(
            "the inventory is not valid for the segment policy (municloud validate says the "
            f"same):\n{exc}"
        ) from None


def municloud_problems(hostvars: Any, groups: Any) -> list[str]:
    try:
        from_ansible.prefecture(hostvars, groups)
    except InventoryError as exc:
        return [str(p) for p in exc.problems]
    return []


def municloud_ruleset(
    hostvars: Any, groups: Any, host: str, log_limit: str = nftables.DEFAULT_LOG_LIMIT
) -> str:
    try:
        return nftables.ruleset(_model(hostvars, groups), str(host), str(log_limit))
    except nftables.RulesetError as exc:
        raise AnsibleFilterError(f"{host}: {exc}") from None


def municloud_services(hostvars: Any, groups: Any, host: str) -> list[dict[str, Any]]:
    prefecture = _model(hostvars, groups)
    found = next(h for h in prefecture.hosts if h.name == host)
    return [
        {"name": s.name, "port": port}
        for s in policy.services_on(prefecture, found)
        for port in s.ports
    ]


def municloud_host(hostvars: Any, groups: Any, host: str) -> dict[str, Any]:
    prefecture = _model(hostvars, groups)
    found = next(h for h in prefecture.hosts if h.name == host)
    networks = {n.id: n.cidr for n in prefecture.networks}
    legs = []
    for net_id, address in found.addresses.items():
        cidr = networks[net_id]
        # Another address of the network, to ask the kernel which way it routes there.
        other = next(a for a in cidr.hosts() if a != address)
        legs.append(
            {"network": net_id, "address": str(address), "cidr": str(cidr), "probe": str(other)}
        )
    who = {"name": found.name, "role": found.role.value, "legs": legs}
    if found.municipality is None:
        return {
            **who,
            "municipality_code": prefecture.code,
            "municipality_name": prefecture.name_ja,
            "model": None,
        }
    m = prefecture.municipality(found.municipality)
    return {
        **who,
        "municipality_code": m.code,
        "municipality_name": m.name_ja,
        "model": m.model.value,
    }


def municloud_peer_address(hostvars: Any, groups: Any, host: str, role: str) -> str:
    prefecture = _model(hostvars, groups)
    me = next(h for h in prefecture.hosts if h.name == host)
    peers = [h for h in prefecture.hosts if h.role.value == role and h is not me]
    mine = [h for h in peers if h.municipality == me.municipality] or [
        h for h in peers if h.municipality is None]
    if not mine:
        raise AnsibleFilterError(
            f"{host}: the inventory has no host of municloud_role {role} in its municipality "
            f"nor among the shared hosts; add one (municloud validate lists the roles)")
    return str(policy.destination_address(prefecture, me, mine[0]))


def municloud_rollout_batches(groups: Any) -> list[int]:
    """Batch sizes for ``serial``: the hosts under ``municipalities``, one municipality at a time.

    Reads the groups ``municloud_municipality_<code>`` that site.yml's first play makes with
    group_by (play keywords see ``groups`` but, in the first play and in a syntax check, not
    ``hostvars``). Without them it falls back to one host at a time: slower, never two towns.

    Only the hosts that ran the first play are in those groups: with ``--limit`` the others are
    not in the play either, so they take no place in a batch (counted as batches of one, they
    shifted the batches of a limit of several towns across two towns).
    """
    town_of = {h: g for g, hosts in groups.items() if g.startswith(BATCH_GROUP) for h in hosts}
    members = [h for h in groups.get("municipalities", []) if h in town_of]
    if not members:
        return [1]
    batches: list[int] = []
    last: object = object()
    for h in members:
        town = town_of.get(h, h)
        if town == last:
            batches[-1] += 1
        else:
            batches.append(1)
            last = town
    return batches


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "municloud_problems": municloud_problems,
            "municloud_ruleset": municloud_ruleset,
            "municloud_services": municloud_services,
            "municloud_host": municloud_host,
            "municloud_peer_address": municloud_peer_address,
            "municloud_rollout_batches": municloud_rollout_batches,
        }
