"""Record what a check-mode run would change, per host and task, as JSON lines for
``municloud audit`` (municloud/audit.py).

Enabled only by ``municloud audit``, which names it in ``ANSIBLE_CALLBACKS_ENABLED`` and gives the
file to write in ``MUNICLOUD_AUDIT_EVENTS``; an ordinary run imports it but leaves it off (it
needs enabling), and enabled without that variable it writes nothing. It prints nothing and
changes no result: the human output stays the stdout callback's.

One JSON object a line, flushed as it is written (so a run that dies keeps what it saw):

* ``playbook_start``: the playbook, whether the run is in check mode, and the names of its plays;
* ``play_start``: the play's name and the hosts it runs on (after ``--limit``);
* ``result``: a task on a host that changed (would change, in check mode), failed or was
  unreachable: the task's name, role, file and line, the play, and the ``diff`` the module
  returned, bounded in size. Ansible hands callbacks the result of a ``no_log`` task censored
  (no diff, no message; ``ansible.executor.task_result.censor_result``); it is written as it
  came, marked ``censored``. Unchanged results are not written;
* ``stats``: the recap per host (ok, changed, failures, unreachable, skipped, rescued, ignored).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ansible import context
from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: municloud_audit
type: aggregate
short_description: what a check-mode run would change, as JSON lines, for municloud audit
description:
  - Writes one JSON object a line to the file named by the MUNICLOUD_AUDIT_EVENTS environment
    variable; the plays, the results that changed, failed or were unreachable (with their diff),
    and the recap. No_log results stay censored as Ansible hands them to callbacks.
  - Enabled by municloud audit only (ANSIBLE_CALLBACKS_ENABLED).
requirements:
  - MUNICLOUD_AUDIT_EVENTS set to a file to write
"""

EVENTS_VARIABLE = "MUNICLOUD_AUDIT_EVENTS"
TEXT_LIMIT = 65536  # characters kept of each before/after text of a diff
MESSAGE_LIMIT = 2000  # characters kept of a failure's or unreachable host's message


def _bounded(value: Any, limit: int = TEXT_LIMIT) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "\n[... cut by municloud_audit]"
    if isinstance(value, dict):
        return {str(k): _bounded(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_bounded(v, limit) for v in value]
    return value


def _diffs(result: dict[str, Any]) -> list[dict[str, Any]]:
    diff = result.get("diff")
    found = diff if isinstance(diff, list) else [diff] if isinstance(diff, dict) else []
    return [_bounded(d) for d in found if isinstance(d, dict) and d]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "municloud_audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        path = os.environ.get(EVENTS_VARIABLE)
        self._out = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._play = ""

    def _write(self, event: str, **fields: Any) -> None:
        if self._out is None:
            return
        self._out.write(json.dumps({"event": event, **fields}, default=str) + "\n")
        self._out.flush()

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._write(
            "playbook_start",
            playbook=str(playbook._file_name),
            check_mode=bool(context.CLIARGS.get("check")),
            diff=bool(context.CLIARGS.get("diff")),
            plays=[str(p.get_name()) for p in playbook.get_plays()],
        )

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = str(play.get_name())
        hosts = play.get_variable_manager()._inventory.get_hosts(play.hosts)
        self._write("play_start", play=self._play, hosts=[h.name for h in hosts])

    def _result(self, status: str, result: Any, ignored: bool = False) -> None:
        task, data = result.task, dict(result.result)
        role = task._role.get_name(include_role_fqcn=False) if task._role else None
        fields: dict[str, Any] = {
            "host": result.host.get_name(),
            "task": str(task.name or task.action),
            "role": role,
            "play": self._play,
            "path": task.get_path() or None,
            "action": str(task.action),
            "handler": isinstance(task, Handler),
            "status": status,
            "changed": bool(result.is_changed()),
            "censored": "censored" in data,
            "diff": _diffs(data),
            "items": [],
        }
        for item in data.get("results") or []:
            if not isinstance(item, dict) or not item.get("changed"):
                continue
            fields["items"].append({
                "item": _bounded(str(item.get("_ansible_item_label", item.get("item", ""))),
                                 200),
                "censored": "censored" in item,
                "diff": _diffs(item),
            })
        if status != "changed":
            message = data.get("msg") or data.get("stderr") or data.get("censored") or ""
            fields["message"] = _bounded(str(message), MESSAGE_LIMIT)
            fields["ignored"] = ignored
        self._write("result", **fields)

    def v2_runner_on_ok(self, result: Any) -> None:
        if result.is_changed():
            self._result("changed", result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result("failed", result, ignored=ignore_errors)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result("unreachable", result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {
            host: {
                key: getattr(stats, key).get(host, 0)
                for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")
            }
            for host in sorted(stats.processed)
        }
        self._write("stats", hosts=hosts)
        if self._out is not None:
            self._out.close()
            self._out = None
