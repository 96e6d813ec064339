"""The model from what Ansible resolved: ``hostvars`` and ``groups``, as a play sees them.

The roles reach the segment policy through plugins/filter/municloud.py, which calls this. It works
on the variables Ansible has already resolved for every host, not on the inventory file, because
AWX and Ansible Automation Platform run jobs on their own copy of an inventory (imported into
their database, no file), and because group_vars and host_vars may add to what hosts.yml says.

The mapping built here has the shape of a hosts.yml, so :func:`municloud.inventory.parse` checks
it with the same rules, and the same messages, as ``municloud validate``.
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


def prefecture(hostvars: Mapping[str, Any], groups: Mapping[str, list[str]]) -> Prefecture:
    """The validated model; InventoryError with every problem otherwise."""
    data, file, directory = inventory_data(hostvars, groups)
    return inventory.parse(data, file, directory)
