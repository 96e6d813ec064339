"""What ansible.cfg adds for speed, checked through a real ansible-playbook run on localhost.

* The preload callback (plugins/callback/municloud_preload.py) loads the filter plugins once, in
  the controller's main process, so the per-task workers inherit them: a filter plugin that notes
  the process that imports it is imported once, by the parent, not by every worker.
* The mitogen_linear wrapper (plugins/strategy/mitogen_linear.py) silences exactly ansible-core's
  deprecation of third-party strategies; any other deprecation still prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# A filter plugin that writes down the process importing it, and raises a deprecation when used.
PROBE_FILTER = """
import os
from ansible.utils.display import Display

with open(os.environ["PROBE_IMPORTS"], "a", encoding="utf-8") as f:
    f.write(f"{os.getpid()}\\n")


def probe(value):
    Display().deprecated("municloud probe: a deprecation that must still be shown", version="9.99")
    return value


class FilterModule:
    def filters(self):
        return {"municloud_probe": probe}
"""

PLAY = """
- name: Tasks that template a filter
  hosts: all
  gather_facts: false
  tasks:
    - {name: a, ansible.builtin.debug: {msg: "{{ 'a' | municloud_probe }}"}}
    - {name: b, ansible.builtin.debug: {msg: "{{ 'b' | municloud_probe }}"}}
"""


def run_playbook(
    tmp_path: Path, config: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    filters = tmp_path / "filters"
    filters.mkdir(exist_ok=True)
    (filters / "probe.py").write_text(PROBE_FILTER, encoding="utf-8")
    (tmp_path / "play.yml").write_text(PLAY, encoding="utf-8")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        + "".join(
            f"    h{i}: {{ansible_connection: local, ansible_python_interpreter: "
            f"{sys.executable}}}\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    imports = tmp_path / "imports"
    imports.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        # the project's filters and the probe, as ansible.cfg's filter_plugins would name them
        "ANSIBLE_FILTER_PLUGINS": f"{REPO / 'plugins' / 'filter'}:{filters}",
        "PROBE_IMPORTS": str(imports),
    }
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(tmp_path / "play.yml")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, imports.read_text(encoding="utf-8").split()


def without(config_lines: list[str], *keys: str) -> str:
    return (
        "\n".join(line for line in config_lines if line.split("=", 1)[0].strip() not in keys) + "\n"
    )


@pytest.fixture
def project_config(tmp_path: Path) -> Path:
    """The project's ansible.cfg with absolute paths (it is read from tmp_path)."""
    lines = []
    for line in (REPO / "ansible.cfg").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in (
            "roles_path",
            "library",
            "module_utils",
            "filter_plugins",
            "callback_plugins",
            "strategy_plugins",
        ):
            line = f"{key.strip()} = {REPO / value.strip()}"
        lines.append(line)
    path = tmp_path / "ansible.cfg"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_filters_are_imported_once_by_the_controller(
    tmp_path: Path, project_config: Path
) -> None:
    _, imports = run_playbook(tmp_path, project_config)
    assert len(imports) == 1, f"the probe filter was imported by {len(imports)} processes"


def test_without_the_preload_every_worker_imports_them(
    tmp_path: Path, project_config: Path
) -> None:
    """The control: the same run without callback_plugins imports the probe in the workers."""
    lines = project_config.read_text(encoding="utf-8").splitlines()
    project_config.write_text(without(lines, "callback_plugins"), encoding="utf-8")
    _, imports = run_playbook(tmp_path, project_config)
    assert len(set(imports)) > 1


def test_only_the_strategy_deprecation_is_silenced(tmp_path: Path, project_config: Path) -> None:
    proc, _ = run_playbook(tmp_path, project_config)
    assert "strategy plugins not included in ansible.builtin" not in proc.stderr
    assert "municloud probe: a deprecation that must still be shown" in proc.stderr


def test_mitogen_without_the_wrapper_does_show_it(tmp_path: Path, project_config: Path) -> None:
    """The control: mitogen's own strategy, not through plugins/strategy, prints the deprecation."""
    import ansible_mitogen

    mitogen_strategies = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    lines = project_config.read_text(encoding="utf-8").splitlines()
    project_config.write_text(
        "\n".join(
            f"strategy_plugins = {mitogen_strategies}"
            if line.startswith("strategy_plugins")
            else line
            for line in lines
        )
        + "\n",
        encoding="utf-8",
    )
    proc, _ = run_playbook(tmp_path, project_config)
    assert "strategy plugins not included in ansible.builtin" in proc.stderr
