"""The ``mitogen_linear`` strategy, found wherever the ``mitogen`` package is installed.

ansible.cfg names this directory in ``strategy_plugins``, so the project does not depend on where
the virtual environment lives. Where mitogen is not installed (e.g. an execution environment
built without it) the ordinary ``linear`` strategy runs instead, with a warning: slower, same
result.

Why keep a third-party strategy: on the sample lab (31 hosts, 2 cores) it halves the idempotent
rerun of site.yml against ansible-core's linear strategy over OpenSSH with pipelining
(benchmarks/converge.figures.md): mitogen keeps one Python interpreter per host for the whole run,
where OpenSSH starts one per task.

mitogen also pins processes to CPUs (ansible_mitogen/affinity.py): its connection multiplexer to
CPU 0, and on a machine of fewer than 4 CPUs the top-level process and every worker to one other
CPU, so all of Ansible's own work shares a single core however many the machine has. This module
replaces that policy with mitogen's do-nothing one and leaves placement to the kernel. On the
sample lab (31 hosts, 2 cores, 2026-12-02) the idempotent rerun of site.yml took 63-73 s unpinned
against 95-98 s pinned, and 15 `debug` tasks on every host 9.5-11.5 s against 17-20 s
(benchmarks/converge.figures.md has the figures of record). Only a 2-core machine was measured;
mitogen's placement assumes an otherwise idle machine, which a controller sharing its cores with
SSH, other jobs or the lab is not.

ansible-core 2.19 prints a deprecation for every strategy outside ansible.builtin, on every run:
"no alternative ... is currently planned", with no version or date of removal. Printed on every
run it teaches people to skip the deprecations that matter, so this plugin marks exactly that
message (and the generic hint that comes with the first deprecation) as already shown; every
other deprecation still prints. Both use the private state of ansible-core's Display, so where
that changes the message simply shows again. When ansible-core does remove third-party
strategies, set ``strategy = linear`` in ansible.cfg (or ANSIBLE_STRATEGY=linear): same result,
slower (the figures say how much).
"""

from __future__ import annotations

from ansible.utils.display import Display

_STRATEGY_DEPRECATION = (
    "[DEPRECATION WARNING]: Use of strategy plugins not included in ansible.builtin are "
    "deprecated and do not carry any backwards compatibility guarantees. No alternative for "
    "third party strategy plugins is currently planned. This feature will be removed from "
    "ansible-core in a future release.\n"
)
_DEPRECATION_HINT = (
    "[WARNING]: Deprecation warnings can be disabled by setting `deprecation_warnings=False` "
    "in ansible.cfg.\n"
)

try:
    import ansible_mitogen.affinity
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

    # No CPU pinning: the base Policy's assign_* do nothing (see the module docstring).
    ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()
except ImportError as exc:  # mitogen is optional: fall back to what ansible-core ships
    from ansible.plugins.strategy.linear import StrategyModule

    Display().warning(
        f"mitogen is not installed ({exc}); running with the linear strategy instead. "
        "Install it with `pip install 'mitogen>=0.3.54,<0.4'` for faster runs."
    )

_display = Display()
if isinstance(getattr(_display, "_deprecations", None), set):
    _display._deprecations.add(_STRATEGY_DEPRECATION)
if isinstance(getattr(_display, "_warns", None), set):
    _display._warns.add(_DEPRECATION_HINT)

__all__ = ["StrategyModule"]
