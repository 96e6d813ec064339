"""Load the filter and test plugins once, in the controller's main process, before any task runs.

Ansible runs each task for each host in a worker process forked from the main process. A worker
that templates anything with a filter loads the filter plugins it finds (here
``plugins/filter``, which import the ``municloud`` package) unless its parent already had them;
it then throws them away when the task ends. On the sample lab (31 hosts, 2 cores) that import
was most of the controller's time: four ``debug`` tasks took 20.1 s, and 3.7 s with this plugin
(benchmarks/converge.figures.md). Loaded here, the plugins are inherited by every fork.

At the start of each play it also builds the segment policy's model of the inventory once
(:func:`municloud.from_ansible.preload`), which the filters would otherwise build from
``hostvars`` in every worker, per call: a cost that grew with hosts × hosts.

Nothing to enable: a callback that does not need enabling is loaded by every run that has
``plugins/callback`` in ``callback_plugins`` (ansible.cfg), whatever ``callbacks_enabled`` says.
It prints nothing and changes no result.
"""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase
from ansible.plugins.loader import filter_loader, lookup_loader, test_loader
from ansible.vars.hostvars import HostVars

DOCUMENTATION = """
name: municloud_preload
type: aggregate
short_description: load the filter and test plugins once, before the workers fork
description:
  - Loads every filter and test plugin (and the file lookup) in the controller's main process, so
    the worker processes Ansible forks per task inherit them instead of importing them again.
  - At each play's start, builds the model of the inventory that the filters use, so the workers
    inherit it instead of building it per call.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "municloud_preload"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for loader in (filter_loader, test_loader):
            for _plugin in loader.all():
                pass
        lookup_loader.get("ansible.builtin.file")

    def v2_playbook_on_play_start(self, play) -> None:  # type: ignore[no-untyped-def]
        # The filters (loaded above) made ``municloud`` importable, from a checkout if need be.
        from municloud import from_ansible

        variables = play.get_variable_manager()
        hosts = variables._inventory
        from_ansible.preload(
            HostVars(inventory=hosts, variable_manager=variables, loader=play._loader),
            hosts.get_groups_dict(),
        )
