"""What ansible.cfg adds for speed, checked through a real ansible-playbook run on localhost.

* The preload callback (plugins/callback/municloud_preload.py) loads the filter plugins once, in
  the controller's main process, so the per-task workers inherit them: a filter plugin that notes
  the process that imports it is imported once, by the parent, not by every worker.
* The same callback builds the segment policy's model once per play, in the main process: a
  filter plugin that counts the model's builds sees them made by the parent only, and made again
  by a worker once the play's groups changed (group_by), so no worker gets a stale model.
* The mitogen_linear wrapper (plugins/strategy/mitogen_linear.py) silences exactly ansible-core's
  deprecation of third-party strategies; any other deprecation still prints. It also turns off
  mitogen's CPU pinning: a filter templated by the per-task workers notes the CPUs each may run
  on, every CPU the run was given through the wrapper, one CPU each through mitogen's own plugin.
"""

from __future__ import annotations

import ipaddress
import json
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
    # the CPUs the process templating this (a per-task worker) may run on
    with open(os.environ["PROBE_CPUS"], "a", encoding="utf-8") as f:
        f.write(",".join(map(str, sorted(os.sched_getaffinity(0)))) + "\\n")
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
        "PROBE_CPUS": str(tmp_path / "cpus"),
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


@pytest.fixture
def mitogen_own_config(project_config: Path) -> Path:
    """The project's settings, but mitogen's own strategy plugin instead of the wrapper."""
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
    return project_config


def test_mitogen_without_the_wrapper_does_show_it(tmp_path: Path, mitogen_own_config: Path) -> None:
    """The control: mitogen's own strategy, not through plugins/strategy, prints the deprecation."""
    proc, _ = run_playbook(tmp_path, mitogen_own_config)
    assert "strategy plugins not included in ansible.builtin" in proc.stderr


def cpus_of_the_workers(tmp_path: Path) -> set[str]:
    return set((tmp_path / "cpus").read_text(encoding="utf-8").split())


GIVEN = ",".join(map(str, sorted(os.sched_getaffinity(0))))
needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="pinning shows only with two CPUs or more"
)


@needs_two_cpus
def test_the_workers_may_run_on_every_cpu_the_run_was_given(
    tmp_path: Path, project_config: Path
) -> None:
    """The wrapper turns mitogen's CPU pinning off: placement is the kernel's."""
    run_playbook(tmp_path, project_config)
    assert cpus_of_the_workers(tmp_path) == {GIVEN}


@needs_two_cpus
def test_mitogen_without_the_wrapper_pins_each_worker_to_one_cpu(
    tmp_path: Path, mitogen_own_config: Path
) -> None:
    """The control: mitogen's own policy (on 2 or 3 CPUs, every worker on the same one)."""
    run_playbook(tmp_path, mitogen_own_config)
    seen = cpus_of_the_workers(tmp_path)
    assert seen and all("," not in cpus for cpus in seen), seen


# A filter plugin that notes each build of the model (the process, the hosts of the groups it was
# built from), and gives the roles' filter its answer for a host.
MODEL_PROBE_FILTER = """
import ipaddress
import json
import os

from municloud import from_ansible

_parse = from_ansible._parse


def _counted(hostvars, groups):
    with open(os.environ["PROBE_BUILDS"], "a", encoding="utf-8") as f:
        f.write(json.dumps([os.getpid(), sorted(groups)]) + "\\n")
    return _parse(hostvars, groups)


from_ansible._parse = _counted


class FilterModule:
    def filters(self):
        return {}
"""

MODEL_PLAY = """
- name: Tasks that ask the model about the hosts
  hosts: all
  gather_facts: false
  tasks:
    - name: a
      ansible.builtin.debug: {msg: "{{ hostvars | municloud_host(groups, inventory_hostname) }}"}
    - name: b
      ansible.builtin.debug: {msg: "{{ hostvars | municloud_ruleset(groups, inventory_hostname) }}"}
    - {name: regroup, ansible.builtin.group_by: {key: "probe_{{ inventory_hostname }}"}}
    - name: c
      ansible.builtin.copy:
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        content: "{{ hostvars | municloud_host(groups, inventory_hostname) | to_json }}"
        mode: "0644"
"""


def run_model_playbook(
    tmp_path: Path, config: Path
) -> tuple[int, list[tuple[int, list[str]]]]:
    """(the controller's process id, each build of the model: (process id, its groups))."""
    filters = tmp_path / "filters"
    filters.mkdir(exist_ok=True)
    (filters / "model_probe.py").write_text(MODEL_PROBE_FILTER, encoding="utf-8")
    (tmp_path / "play.yml").write_text(MODEL_PLAY, encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    builds = tmp_path / "builds"
    builds.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_FILTER_PLUGINS": f"{REPO / 'plugins' / 'filter'}:{filters}",
        "PROBE_BUILDS": str(builds),
    }
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    with subprocess.Popen(
        [str(BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "sample"),
         "-l", "tottori-shi-gw,yonago-shi-screen,sc-proxy", "-e", "ansible_connection=local",
         "-e", json.dumps({"municloud_management": ["198.18.17.254"]}),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"out={out}",
         str(tmp_path / "play.yml")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as running:
        stdout, stderr = running.communicate(timeout=300)
    assert running.returncode == 0, stdout + stderr
    for host, code in (("tottori-shi-gw", "312011"), ("sc-proxy", "310000")):
        answer = json.loads((out / f"{host}.json").read_text(encoding="utf-8"))
        assert (answer["name"], answer["municipality_code"]) == (host, code)
    lines = builds.read_text(encoding="utf-8").splitlines()
    return running.pid, [(pid, groups) for pid, groups in map(json.loads, lines)]


def test_the_model_is_built_once_per_play_by_the_controller(
    tmp_path: Path, project_config: Path
) -> None:
    controller, builds = run_model_playbook(tmp_path, project_config)
    before = [(pid, g) for pid, g in builds if not any(x.startswith("probe_") for x in g)]
    assert [pid for pid, _ in before] == [controller], (
        f"the model of the play's groups was built {len(before)} times, by "
        f"{sorted({pid for pid, _ in before})} (the controller is {controller})")


def test_a_worker_builds_the_model_again_once_the_groups_changed(
    tmp_path: Path, project_config: Path
) -> None:
    controller, builds = run_model_playbook(tmp_path, project_config)
    after = [pid for pid, g in builds if any(x.startswith("probe_") for x in g)]
    assert after and controller not in after, builds


def test_without_the_preload_every_call_builds_the_model(
    tmp_path: Path, project_config: Path
) -> None:
    """The control: without the callback, the workers build the model, once per call."""
    lines = project_config.read_text(encoding="utf-8").splitlines()
    project_config.write_text(without(lines, "callback_plugins"), encoding="utf-8")
    controller, builds = run_model_playbook(tmp_path, project_config)
    assert controller not in [pid for pid, _ in builds]
    assert len(builds) >= 9, builds


def test_the_preloaded_model_is_only_for_the_inventory_it_was_built_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ansible's own objects, no playbook: the model preloaded from the sample's ``hostvars`` is
    returned for another HostVars of that inventory, never for other variables with the same
    groups (here one host's address moved)."""
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    from municloud import from_ansible

    monkeypatch.setattr(from_ansible, "_built", None)  # and back after the test
    loader = DataLoader()
    hosts = InventoryManager(loader=loader, sources=[str(REPO / "inventories" / "sample")])
    variables = VariableManager(loader=loader, inventory=hosts)
    for host in hosts.get_hosts():
        variables.set_host_variable(host.name, "municloud_management", ["198.18.17.254"])
    groups = hosts.get_groups_dict()
    from_ansible.preload(HostVars(hosts, variables, loader), groups)
    preloaded = from_ansible.prefecture(HostVars(hosts, variables, loader), groups)
    assert from_ansible.prefecture(HostVars(hosts, variables, loader), groups) is preloaded

    hostvars = HostVars(hosts, variables, loader)
    # only what the model reads: other variables may be vault-encrypted (a lab's enrolment)
    read = ("municloud_role", "municloud_addresses", "municloud_municipality",
            "municloud_prefecture", "municloud_management", "inventory_file", "inventory_dir")
    plain = {h: {k: from_ansible.plain(hostvars[h].get(k)) for k in read} for h in groups["all"]}
    gateway = plain["tottori-shi-gw"]
    leg = next(iter(gateway["municloud_addresses"]))
    moved = str(ipaddress.ip_address(gateway["municloud_addresses"][leg]) + 1)
    gateway["municloud_addresses"] = {**gateway["municloud_addresses"], leg: moved}
    other = from_ansible.prefecture(plain, groups)
    assert other is not preloaded
    found = next(h for h in other.hosts if h.name == "tottori-shi-gw")
    assert moved in {str(a) for a in found.addresses.values()}
