"""The ``mitogen_linear`` strategy, found wherever the ``mitogen`` package is installed.

ansible.cfg names this directory in ``strategy_plugins``, so the project does not depend on where
the virtual environment lives. Where mitogen is not installed (e.g. an execution environment
built without it) the ordinary ``linear`` strategy runs instead, with a warning: slower, same
result.
"""

from __future__ import annotations

from ansible.utils.display import Display

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as exc:  # mitogen is optional: fall back to what ansible-core ships
    from ansible.plugins.strategy.linear import StrategyModule

    Display().warning(
        f"mitogen is not installed ({exc}); running with the linear strategy instead. "
        "Install it with `pip install 'mitogen>=0.3.54,<0.4'` for faster runs."
    )

__all__ = ["StrategyModule"]
