"""The model from what Ansible resolved: ``hostvars`` and ``groups``, as a play sees them.

The roles reach the segment policy through plugins/filter/municloud.py, which calls this. It works
on the variables Ansible has already resolved for every host, not on the inventory file, because
AWX and Ansible Automation Platform run jobs on their own copy of an inventory (imported into
their database, no file), and because group_vars and host_vars may add to what hosts.yml says.

The mapping built here has the shape of a hosts.yml, so :func:`municloud.inventory.parse` checks
it with the same rules, and the same messages, as ``municloud validate``.

Building it reads every host's variables through ``hostvars``, which resolves each host's vars
anew: 36 ms for the sample's 31 hosts and 180 ms for a generated 103-host lab, per call
(2026-12-01, a loop of ``municloud_host`` calls on localhost). The filters are called per host
and per task, so that cost grew with hosts × hosts. :func:`preload` builds the model once per
play in the controller's main process (plugins/callback/municloud_preload.py), before Ansible
forks the worker that runs each task on each host; the workers inherit it, and
:func:`prefecture` returns it while the inventory's groups are the ones it was built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from municloud import inventory
from municloud.inventory import MANAGEMENT_VAR, Prefecture

# Groups Ansible makes itself, and the project's two top groups.
_NOT_MUNICIPALITIES = {"all", "ungrouped", "municipalities", "shared"}


def plain(value: Any) -> Any:
    """``value`` as plain dicts, lists and scalars (Ansible hands out its own tagged types)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _get(hostvars: Mapping[str, Any], host: str, name: str) -> Any:
    return plain(hostvars[host].get(name))


def inventory_data(
    hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]
) -> tuple[dict[str, Any], str, Path | None]:
    """(a mapping shaped like hosts.yml, the file to name in problems, the inventory directory).

    A municipality's group is the group, under ``municipalities``, that holds exactly the hosts
    whose ``municloud_municipality`` has its code; Ansible's ``groups`` does not say which group
    is a child of which, so this is how the group is told apart from any other the site may add.
    """
    names = list(groups.get("all", []))
    first = names[0] if names else None
    file = str(_get(hostvars, first, "inventory_file") or "the inventory") if first else "-"
    directory = Path(str(_get(hostvars, first, "inventory_dir"))) if first else None
    if directory is not None and str(directory) in ("", "None"):
        directory = None
    all_vars: dict[str, Any] = {}
    if first:
        for name in ("municloud_prefecture", MANAGEMENT_VAR):
            value = _get(hostvars, first, name)
            if value is not None:
                all_vars[name] = value

    def host_entry(h: str) -> dict[str, Any]:
        return {
            "municloud_role": _get(hostvars, h, "municloud_role"),
            "municloud_addresses": _get(hostvars, h, "municloud_addresses"),
        }

    shared = {h: host_entry(h) for h in groups.get("shared", [])}
    members = list(groups.get("municipalities", []))
    code_of = {h: (_get(hostvars, h, "municloud_municipality") or {}).get("code") for h in members}
    by_code: dict[object, list[str]] = {}
    for h in members:
        by_code.setdefault(code_of[h], []).append(h)
    children: dict[str, Any] = {}
    for code, hosts in by_code.items():
        candidates = sorted(
            g
            for g, gm in groups.items()
            if g not in _NOT_MUNICIPALITIES and gm and set(gm) == set(hosts)
        )
        group = candidates[0] if candidates else f"municipality_{code}"
        children[group] = {
            "vars": {"municloud_municipality": _get(hostvars, hosts[0], "municloud_municipality")},
            "hosts": {h: host_entry(h) for h in hosts},
        }
    data = {
        "all": {
            "vars": all_vars,
            "children": {"shared": {"hosts": shared}, "municipalities": {"children": children}},
        }
    }
    return data, file, directory


def _parse(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> Prefecture:
    data, file, directory = inventory_data(hostvars, groups)
    return inventory.parse(data, file, directory)


# The model of the run's inventory, as (inventory, groups, model): Ansible's own ``hostvars``
# (a HostVars) names the inventory it reads, and ``groups`` who is in which group. Plain
# mappings (the unit tests, a caller of its own) carry no inventory and are never cached.
_built: tuple[object, tuple[tuple[str, tuple[str, ...]], ...], Prefecture] | None = None


def _groups_key(groups: Mapping[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((str(g), tuple(str(h) for h in hosts)) for g, hosts in groups.items())


def preload(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> None:
    """Build the model of Ansible's ``hostvars`` now, for :func:`prefecture` to return later.

    The variables the model reads (``municloud_role``, ``municloud_addresses``,
    ``municloud_municipality``, ``municloud_prefecture``, the management network) come from the
    inventory; a task that changes one with ``set_fact`` is not seen until the next play. A
    change of groups (``group_by``, ``add_host``) is: the model is then built again per call.
    An inventory the policy refuses is not kept, so each call reports its problems.
    """
    global _built
    source = getattr(hostvars, "_inventory", None)
    if source is None:
        return
    try:
        model = _parse(hostvars, groups)
    except inventory.InventoryError:
        _built = None
        return
    _built = (source, _groups_key(groups), model)


def prefecture(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> Prefecture:
    """The validated model; InventoryError with every problem otherwise."""
    if _built is not None:
        source, key, model = _built
        if getattr(hostvars, "_inventory", None) is source and _groups_key(groups) == key:
            return model
    return _parse(hostvars, groups)
