"""AWX / Ansible Automation Platform readiness, checked without AWX and without building an image
(docs/awx.md).

* The execution environment (execution-environment.yml): the real ``ansible-builder create``,
  with every network connection refused, writes a build context whose Containerfile installs the
  collections of collections/requirements.yml, the Python requirements, the system packages and
  the municloud package from this checkout.
* Its Python requirements are pyproject.toml's, line for line, and they are enough: AWX's
  inventory import of both inventories, site.yml's first play and every filter of
  plugins/filter on AWX's copy of an inventory, and the ``municloud`` command all run with every
  other dependency of pyproject.toml unimportable; ansible.cfg's mitogen strategy loads (no
  fallback to linear).
* collections/requirements.yml names exactly the collections beyond ansible.builtin that the
  roles, playbooks, inventory sources, plugins and ansible.cfg reference (found by parsing their
  YAML, Jinja and Python), at the versions the installed ``ansible`` package ships.
* inventories/sample and inventories/okayama, as git has them (what an AWX project checks out),
  import with ``ansible-inventory --list --export`` (what AWX's inventory update runs): every
  host and group, no lab-only value. Inline-vaulted values import without a vault password, as
  ciphertext; a job needs the vault password to use them. A wholly encrypted vars file needs the
  password to import at all, and is then imported in plain text.
* Job slicing: AWX gives each slice of a job only its share of the hosts (ordered by name, every
  n-th). site.yml's first play refuses the slices of the sample; a slice the model accepts would
  get other rulesets than the whole inventory. A --limit of one municipality keeps every
  roll-out batch inside it, and so does a --limit of several.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
import hashlib
import importlib.metadata
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from jinja2 import nodes
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from sample_edit import REPO
from sample_edit import hosts as sample_hosts
from sample_edit import write as write_sample

from municloud import from_ansible, inventory, nftables
from municloud.inventory import InventoryError
from municloud.lab.commands import STATE_DIR

BIN = Path(sys.executable).parent
EE_FILE = REPO / "execution-environment.yml"
EE: dict[str, Any] = yaml.safe_load(EE_FILE.read_text(encoding="utf-8"))
COLLECTIONS_FILE = REPO / "collections" / "requirements.yml"
PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SITE: list[dict[str, Any]] = yaml.safe_load(
    (REPO / "playbooks" / "site.yml").read_text(encoding="utf-8"))
INVENTORIES = ["sample", "okayama"]
MANAGEMENT = ["198.18.17.254"]

# The `ansible` package of pyproject.toml is there for its collections; the image takes those
# from collections/requirements.yml instead (test_collections_*). Its top-level name,
# ansible_collections, is also ansible-core's namespace for every collection, so it is not made
# unimportable below.
ANSIBLE_BUNDLE = "ansible"
# Printed by plugins/strategy/mitogen_linear.py when it falls back to the linear strategy.
MITOGEN_MISSING = "mitogen is not installed"


# --- helpers -------------------------------------------------------------------------------------


def requirements(lines: Iterable[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, lines)}


def pyproject_requirements() -> dict[str, Requirement]:
    return requirements(PYPROJECT["project"]["dependencies"])


def image_requirements() -> dict[str, Requirement]:
    """What the image installs with pip: the python list and ansible-core."""
    deps = EE["dependencies"]
    return requirements([*deps["python"], deps["ansible_core"]["package_pip"]])


def left_out_of_the_image() -> dict[str, set[str]]:
    """pyproject.toml's dependencies that the image does not install -> their modules: the
    top-level ones, or, in a namespace other distributions share (``google``: protobuf and
    googleapis-common-protos), the distribution's own packages in it (``google.protobuf``)."""
    left_out = set(pyproject_requirements()) - set(image_requirements()) - {ANSIBLE_BUNDLE}
    modules: dict[str, set[str]] = {name: set() for name in left_out}
    for module, dists in importlib.metadata.packages_distributions().items():
        names = {canonicalize_name(d) for d in dists}
        for name in names & left_out:
            if names <= left_out:
                modules[name].add(module)
                continue
            for file in importlib.metadata.distribution(name).files or []:
                if len(file.parts) > 2 and file.parts[0] == module:
                    modules[name].add(f"{module}.{file.parts[1]}")
    return modules


# Runs a console script (argv[1]) with the modules in $MUNICLOUD_NOT_IN_EE (and their submodules)
# unimportable, in this process and in every worker it forks: what the image leaves out.
IN_THE_IMAGE = """
import importlib.abc, os, runpy, sys

LEFT_OUT = set(filter(None, os.environ["MUNICLOUD_NOT_IN_EE"].split(",")))


class LeftOut(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == m or fullname.startswith(m + ".") for m in LEFT_OUT):
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (not in the execution environment)", name=fullname)
        return None


sys.meta_path.insert(0, LeftOut())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def in_the_image(
    tmp_path: Path, tool: str, *args: str, left_out: Iterable[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``tool`` from the venv, with pyproject's dependencies that the image leaves out made
    unimportable; the project's ansible.cfg (AWX runs jobs from the project's directory), its
    strategy included; no vault password unless ``args`` give one."""
    if left_out is None:
        left_out = sorted(m for mods in left_out_of_the_image().values() for m in mods)
    wrapper = tmp_path / "in_the_image.py"
    wrapper.write_text(IN_THE_IMAGE, encoding="utf-8")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "MUNICLOUD_NOT_IN_EE": ",".join(left_out),
    }
    for name in ("ANSIBLE_STRATEGY", "ANSIBLE_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_IDENTITY_LIST"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, str(wrapper), str(BIN / tool), *args],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )


def checkout(name: str, dest: Path) -> Path:
    """inventories/<name> as an AWX project checks it out: the files git tracks (a lab's
    group_vars/all/lab.yml and its staff enrolment are not)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", f"inventories/{name}"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    for rel in filter(None, listed):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest / "inventories" / name


def export(tmp_path: Path, source: Path, *args: str) -> dict[str, Any]:
    """AWX's inventory update: ``ansible-inventory -i <source> --list --export``, in the image."""
    done = in_the_image(tmp_path, "ansible-inventory", "-i", str(source), "--list", "--export",
                        *args)
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def awx_copy(data: dict[str, Any], path: Path) -> Path:
    """What an AWX job runs against: the imported inventory, handed to ansible-playbook as an
    executable that prints it (hosts' variables under _meta.hostvars, groups' on the groups)."""
    stored = path.with_suffix(".json")
    stored.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    path.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"sys.stdout.write(open({str(stored)!r}, encoding='utf-8').read())\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def awx_slice(data: dict[str, Any], number: int, count: int) -> dict[str, Any]:
    """Slice ``number`` of ``count`` as AWX makes it (awx/main/models/inventory.py,
    Inventory.get_script_data): the hosts ordered by name, every ``count``-th from
    ``number - 1``; every group keeps its variables and children, and only the slice's hosts."""
    names = sorted(data["_meta"]["hostvars"])[number - 1::count]
    out: dict[str, Any] = {"_meta": {"hostvars": {h: data["_meta"]["hostvars"][h] for h in names}}}
    for group, body in data.items():
        if group == "_meta":
            continue
        out[group] = dict(body)
        if "hosts" in body:
            out[group]["hosts"] = [h for h in body["hosts"] if h in names]
    return out


def hosts_yml_groups(path: Path) -> dict[str, tuple[set[str], set[str]]]:
    """group -> (its own hosts, its children), from an inventory's hosts.yml."""
    out: dict[str, tuple[set[str], set[str]]] = {}

    def walk(name: str, body: dict[str, Any] | None) -> None:
        body = body or {}
        children = body.get("children") or {}
        out[name] = (set(body.get("hosts") or {}), set(children))
        for child, child_body in children.items():
            walk(child, child_body)

    walk("all", yaml.safe_load(path.read_text(encoding="utf-8"))["all"])
    return out


def first_play(tmp_path: Path, *extra: dict[str, Any]) -> Path:
    """site.yml's first play (the model check and the grouping), then ``extra`` plays."""
    playbook = tmp_path / "first_play.yml"
    playbook.write_text(yaml.safe_dump([SITE[0], *extra], allow_unicode=True, sort_keys=False),
                        encoding="utf-8")
    return playbook


def strings(value: Any) -> Iterator[tuple[str | None, str]]:
    """(the key it is under, string) for every string in a YAML document."""

    def walk(node: Any, key: str | None) -> Iterator[tuple[str | None, str]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, key)
        elif isinstance(node, str):
            yield key, node

    yield from walk(value, None)


# --- the build context ---------------------------------------------------------------------------

NO_NETWORK = """
import socket, sys


def refuse(*args, **kwargs):
    raise OSError("test_awx.py: ansible-builder create tried to use the network")


socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
from ansible_builder.cli import run

sys.argv = ["ansible-builder", *sys.argv[1:]]
sys.exit(run())
"""


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ansible-builder create`` of execution-environment.yml, with the network refused."""
    out = tmp_path_factory.mktemp("ee") / "context"
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, "create", "-f", str(EE_FILE), "-c", str(out),
         "--output-filename", "Containerfile"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_the_containerfile_installs_the_collections(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    carried = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert carried == yaml.safe_load(COLLECTIONS_FILE.read_text(encoding="utf-8"))
    assert re.search(r"^RUN .*ansible-galaxy collection install .*-r requirements\.yml",
                     containerfile, re.M)
    # ... into the final image
    assert re.search(r"^FROM base AS final$(.|\n)*^COPY --from=galaxy /usr/share/ansible ",
                     containerfile, re.M)


def test_the_containerfile_installs_the_python_and_system_requirements(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    build = context / "_build"
    carried = (build / "requirements.txt").read_text(encoding="utf-8").split("\n")
    wanted = requirements(EE["dependencies"]["python"])
    assert requirements(line for line in carried if line) == wanted
    # merged with the collections' own requirements, built, then installed in the final image
    assert "introspect.py introspect --user-pip=requirements.txt --user-bindep=bindep.txt" in (
        containerfile)
    assert "RUN /output/scripts/assemble" in containerfile
    assert "RUN /output/scripts/install-from-bindep" in containerfile
    # ansible-core and the interpreter of pyproject.toml
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', containerfile, re.M)
    assert refs and EE["dependencies"]["ansible_core"]["package_pip"] in refs.group(1).split()
    interpreter = EE["dependencies"]["python_interpreter"]
    assert f'ARG PYCMD="{interpreter["python_path"]}"' in containerfile
    version = re.fullmatch(r"/usr/bin/python(\d+\.\d+)", interpreter["python_path"])
    assert version and interpreter["package_system"] == f"python{version.group(1)}"
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(version.group(1))
    # the ssh client, for ansible.cfg's ssh connection (mitogen's too)
    system = (build / "bindep.txt").read_text(encoding="utf-8").splitlines()
    assert "openssh-clients [platform:rpm]" in system


def test_the_containerfile_installs_the_package_from_this_checkout(context: Path) -> None:
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    source = context / "_build" / "municloud"
    assert (source / "pyproject.toml").read_bytes() == (REPO / "pyproject.toml").read_bytes()
    readme = PYPROJECT["project"]["readme"]
    assert (source / readme).read_bytes() == (REPO / readme).read_bytes()
    modules = sorted(p.relative_to(REPO) for p in (REPO / "municloud").rglob("*.py"))
    assert modules
    for rel in modules:
        assert (source / rel).read_bytes() == (REPO / rel).read_bytes(), rel
    final = containerfile[containerfile.index("FROM base AS final"):]
    assert "COPY _build/municloud /tmp/municloud-src" in final
    assert re.search(r"^RUN \$PYCMD -m pip install --no-cache-dir --no-deps /tmp/municloud-src",
                     final, re.M)
    assert re.search(r"^RUN municloud --help", final, re.M)


# --- the image's Python requirements -------------------------------------------------------------


def test_every_python_requirement_of_the_image_is_pyprojects() -> None:
    pyproject = pyproject_requirements()
    for name, wanted in image_requirements().items():
        assert name in pyproject, f"{wanted} is in the image but not in pyproject.toml"
        mine = pyproject[name]
        assert (wanted.specifier, wanted.extras, wanted.marker) == (
            mine.specifier, mine.extras, mine.marker), f"image: {wanted}; pyproject.toml: {mine}"


def test_the_collections_python_needs_come_with_pyprojects_pins() -> None:
    """A collection's own requirements.txt (introspected at build time) that pyproject.toml also
    pins: the image installs pyproject's line, e.g. boto3 for amazon.aws."""
    root = Path(str(importlib.metadata.distribution(ANSIBLE_BUNDLE).locate_file(
        "ansible_collections")))
    pyproject, image = pyproject_requirements(), image_requirements()
    checked = 0
    for entry in yaml.safe_load(COLLECTIONS_FILE.read_text(encoding="utf-8"))["collections"]:
        needs = root.joinpath(*entry["name"].split(".")) / "requirements.txt"
        if not needs.is_file():
            continue
        lines = [re.sub(r"\s+#.*", "", line).strip() for line in needs.read_text().splitlines()]
        for name in requirements(line for line in lines if line and not line.startswith("#")):
            if name in pyproject:
                assert name in image, f"{entry['name']} needs {name}: add {pyproject[name]}"
                checked += 1
    assert checked


def test_what_the_image_leaves_out_is_unimportable_under_the_wrapper(tmp_path: Path) -> None:
    left_out = left_out_of_the_image()
    assert left_out and all(left_out.values()), left_out
    module = sorted(m for modules in left_out.values() for m in modules)[0]
    probe = tmp_path / "probe.py"
    probe.write_text(f"import {module}\n", encoding="utf-8")
    wrapper = tmp_path / "in_the_image.py"
    wrapper.write_text(IN_THE_IMAGE, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(wrapper), str(probe)], capture_output=True, text=True, check=False,
        env={**os.environ, "MUNICLOUD_NOT_IN_EE": module},
    )
    assert done.returncode != 0 and "not in the execution environment" in done.stderr


def filter_names() -> set[str]:
    """Every filter plugins/filter defines (the dicts its FilterModule.filters() return)."""
    names: set[str] = set()
    for path in (REPO / "plugins" / "filter").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                        names |= {k.value for k in ret.value.keys if isinstance(k, ast.Constant)}
    return names


def test_the_image_runs_the_playbooks_filters_and_the_cli(tmp_path: Path) -> None:
    """On AWX's copy of the sample: site.yml's first play, then every filter of plugins/filter
    (the cloud proxies' squid configuration too), with ansible.cfg's strategy; then ``municloud
    validate``; all with what the image leaves out unimportable."""
    source = checkout("sample", tmp_path)
    awx = awx_copy(export(tmp_path, source), tmp_path / "awx-inventory")
    code = yaml.safe_load((source / "hosts.yml").read_text(encoding="utf-8"))["all"]["vars"][
        "municloud_prefecture"]["code"]
    calls = {
        "municloud_problems": "hostvars | municloud_problems(groups) | length",
        "municloud_ruleset": (
            "hostvars | municloud_ruleset(groups, 'tottori-shi-gw') | hash('sha1')"),
        "municloud_services": "hostvars | municloud_services(groups, 'sc-proxy') | length",
        "municloud_host": "(hostvars | municloud_host(groups, 'tottori-shi-gw')).model",
        "municloud_peer_address": (
            "hostvars | municloud_peer_address(groups, 'tottori-shi-lgwan-term', 'update_relay')"),
        "municloud_rollout_batches": "groups | municloud_rollout_batches | join(',')",
        "municloud_converge_inputs": "hostvars | municloud_converge_inputs(groups) | length",
        "municloud_mfa_enrolled": "[] | municloud_mfa_enrolled({}) | length",
        "municloud_proxy_squid_conf": (
            "hostvars | municloud_proxy_squid_conf(groups, 'sc-proxy', {}) | length"),
        # a cloud proxy instance (pulumi/inventory/aws_ec2.yml): the fleet's policy
        "fleet": ("hostvars | municloud_proxy_squid_conf(groups, 'i-0123456789abcdef0', "
                  f"{{'prefecture': '{code}'}}) | length"),
    }
    assert filter_names() <= set(calls), "call every filter of plugins/filter here"
    play = {
        "name": "Every filter of plugins/filter",
        "hosts": "tottori-shi-gw",
        "gather_facts": False,
        "tasks": [{"ansible.builtin.debug": {"msg": f"CALL {name}={{{{ {expr} }}}}"}}
                  for name, expr in calls.items()],
    }
    done = in_the_image(tmp_path, "ansible-playbook", "-i", str(awx),
                        str(first_play(tmp_path, play)), "-e", "ansible_connection=local",
                        "-e", json.dumps({"municloud_management": MANAGEMENT}))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert MITOGEN_MISSING not in output
    got = dict(re.findall(r"CALL (\w+)=(.*)$", done.stdout, re.M))
    assert set(got) == set(calls), output
    loaded = dataclasses.replace(inventory.load(str(source)), management=tuple(
        ipaddress.IPv4Network(a) for a in MANAGEMENT))
    ruleset = nftables.ruleset(loaded, "tottori-shi-gw")
    assert got["municloud_ruleset"] == hashlib.sha1(ruleset.encode()).hexdigest()
    assert got["municloud_problems"] == "0" and got["municloud_host"] == "alpha"
    assert got["municloud_peer_address"] == "198.18.17.20"
    assert got["municloud_rollout_batches"] == "8,8,8"
    assert got["municloud_converge_inputs"] == "64"  # a SHA-256, in hex
    assert int(got["municloud_proxy_squid_conf"]) > 0 and int(got["fleet"]) > 0

    cli = in_the_image(tmp_path, "municloud", "validate", str(source))
    assert cli.returncode == 0 and cli.stdout.startswith("ok: "), cli.stdout + cli.stderr


def test_without_mitogen_the_strategy_falls_back_and_says_so(tmp_path: Path) -> None:
    """What the check above catches: an image without mitogen runs the linear strategy."""
    source = checkout("sample", tmp_path)
    done = in_the_image(tmp_path, "ansible-playbook", "-i", str(source), str(first_play(tmp_path)),
                        "-e", "ansible_connection=local", left_out=["ansible_mitogen", "mitogen"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert MITOGEN_MISSING in done.stdout + done.stderr


# --- the collections -----------------------------------------------------------------------------

FQCN = re.compile(r"([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_.]*")
BUILTIN = {"ansible.builtin", "ansible.legacy"}
CONDITIONALS = {"when", "changed_when", "failed_when", "until", "that"}
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCKS = ("block", "rescue", "always")
JINJA = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"])


class References:
    """Collections beyond ansible.builtin that the project references -> where."""

    def __init__(self) -> None:
        self.found: dict[str, set[str]] = {}

    def add(self, name: Any, where: str) -> None:
        match = FQCN.fullmatch(str(name))
        if match and f"{match[1]}.{match[2]}" not in BUILTIN:
            self.found.setdefault(f"{match[1]}.{match[2]}", set()).add(where)

    def jinja(self, source: str, where: str, expression: bool = False) -> None:
        with warnings.catch_warnings():  # Jinja warns of regex escapes such as '\S' in strings
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = JINJA.parse("{{ (" + source + ") }}" if expression else source)
        for node in tree.find_all((nodes.Filter, nodes.Test, nodes.Call)):
            if isinstance(node, nodes.Filter | nodes.Test):
                self.add(node.name, where)
            elif (isinstance(node.node, nodes.Name) and node.node.name in ("lookup", "query", "q")
                  and node.args and isinstance(node.args[0], nodes.Const)):
                self.add(node.args[0].value, where)

    def constants(self, source: str, where: str) -> None:
        """String constants of an expression that name a plugin (an inventory source's
        ``compose: {ansible_connection: "'ns.coll.plugin'"}``)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = JINJA.parse("{{ (" + source + ") }}")
        for node in tree.find_all(nodes.Const):
            if isinstance(node.value, str):
                self.add(node.value, where)

    def templated(self, document: Any, where: str) -> None:
        for key, text in strings(document):
            if key in CONDITIONALS and "{{" not in text:
                self.jinja(text, where, expression=True)
            elif "{{" in text or "{%" in text:
                self.jinja(text, where)

    def role(self, name: Any, where: str) -> None:
        self.add(name, where)

    def tasks(self, items: Any, where: str) -> None:
        for task in items or []:
            if not isinstance(task, dict):
                continue
            for key, value in task.items():
                if key in BLOCKS:
                    self.tasks(value, where)
                elif FQCN.fullmatch(str(key)):
                    self.add(key, where)
                    if str(key).endswith(("include_role", "import_role")) and isinstance(
                            value, dict):
                        self.role(value.get("name"), where)

    def plays(self, plays: Any, where: str) -> None:
        for play in plays or []:
            for key in TASK_LISTS:
                self.tasks(play.get(key), where)
            for role in play.get("roles") or []:
                self.role(role if isinstance(role, str) else role.get("role", role.get("name")),
                          where)
            for collection in play.get("collections") or []:
                self.add(f"{collection}.x", where)


def referenced_collections() -> dict[str, set[str]]:
    refs = References()
    for path in sorted((REPO / "roles").glob("*/*/**/*.yml")):
        rel = str(path.relative_to(REPO))
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        part = path.relative_to(REPO / "roles").parts[1]
        if part in ("tasks", "handlers"):
            refs.tasks(document, rel)
        if part == "meta" and isinstance(document, dict):
            for collection in document.get("collections") or []:
                refs.add(f"{collection}.x", rel)
            for dep in document.get("dependencies") or []:
                refs.role(dep if isinstance(dep, str) else dep.get("role", dep.get("name")), rel)
        refs.templated(document, rel)
    for path in sorted((REPO / "roles").glob("*/templates/**/*.j2")):
        refs.jinja(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    for path in sorted((REPO / "playbooks").glob("*.yml")):
        rel = str(path.relative_to(REPO))
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        refs.plays(document, rel)
        refs.templated(document, rel)
    # Inventories and inventory sources (a YAML file with `plugin:`), as git has them.
    tracked = subprocess.run(["git", "ls-files", "-z", "*.yml", "*.yaml"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, tracked):
        if rel.startswith(("roles/", "playbooks/", "tests/")):
            continue
        document = yaml.safe_load((REPO / rel).read_text(encoding="utf-8"))
        is_source = isinstance(document, dict) and "plugin" in document
        if not (is_source or rel.startswith("inventories/")):
            continue
        if is_source:
            refs.add(document["plugin"], rel)
            for key, expr in (document.get("compose") or {}).items():
                refs.jinja(str(expr), rel, expression=True)
                if str(key).startswith("ansible_"):
                    refs.constants(str(expr), rel)
        else:
            for key, text in strings(document):
                if key and key.startswith("ansible_"):
                    refs.add(text, rel)
            refs.templated(document, rel)
    # Python plugins and modules: imports from collections.
    for path in sorted([*(REPO / "plugins").rglob("*.py"), *(REPO / "modules").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "ansible_collections" and len(parts) >= 3:
                    refs.add(".".join([*parts[1:3], "x"]), str(path.relative_to(REPO)))
    # ansible.cfg: plugins named in its settings (callbacks, strategy, connection, ...).
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "ansible.cfg", encoding="utf-8")
    for section in config.sections():
        for option, value in config.items(section):
            for word in re.split(r"[,\s]+", value):
                refs.add(word, f"ansible.cfg [{section}] {option}")
    return refs.found


def test_the_collection_requirements_name_what_the_project_uses() -> None:
    listed = yaml.safe_load(COLLECTIONS_FILE.read_text(encoding="utf-8"))
    assert set(listed) == {"collections"}
    names = [entry["name"] for entry in listed["collections"]]
    assert all(set(entry) == {"name", "version"} for entry in listed["collections"])
    used = referenced_collections()
    assert used, "the scan found nothing: it is broken"
    assert {c: sorted(w) for c, w in used.items() if c not in names} == {}, "missing"
    assert sorted(set(names) - set(used)) == [], "listed but not used"
    assert len(names) == len(set(names))


def test_the_collection_versions_are_the_ansible_packages() -> None:
    """The versions the `ansible` package of pyproject.toml ships (the .venv's): what the lab and
    the unit tests ran with."""
    bundle = importlib.metadata.distribution(ANSIBLE_BUNDLE)
    assert pyproject_requirements()[ANSIBLE_BUNDLE].specifier.contains(bundle.version)
    root = Path(str(bundle.locate_file("ansible_collections")))
    for entry in yaml.safe_load(COLLECTIONS_FILE.read_text(encoding="utf-8"))["collections"]:
        manifest = root.joinpath(*entry["name"].split(".")) / "MANIFEST.json"
        shipped = json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]
        assert str(entry["version"]) == shipped, entry


def test_the_image_installs_the_projects_collection_requirements() -> None:
    assert (REPO / EE["dependencies"]["galaxy"]).resolve() == COLLECTIONS_FILE.resolve()


# --- the inventories as AWX project inventory sources --------------------------------------------


@pytest.mark.parametrize("name", INVENTORIES)
def test_the_inventory_imports_as_an_awx_source(tmp_path: Path, name: str) -> None:
    source = checkout(name, tmp_path)
    data = export(tmp_path, source)
    expected = hosts_yml_groups(source / "hosts.yml")
    assert set(data["_meta"]["hostvars"]) == set().union(*(h for h, _ in expected.values()))
    for group, (hosts, children) in expected.items():
        body = data.get(group, {})
        assert set(body.get("hosts", [])) == hosts, group
        assert children <= set(body.get("children", [])), group
    assert "municloud_prefecture" in data["all"]["vars"]
    # Nothing of a lab: no path into its state directory, no municloud_lab (which turns the
    # lab-only roles on).
    assert f"/{STATE_DIR.name}/" not in json.dumps(data)
    every_vars = [data["_meta"]["hostvars"][h] for h in data["_meta"]["hostvars"]]
    every_vars += [body.get("vars", {}) for g, body in data.items() if g != "_meta"]
    assert not any("municloud_lab" in v for v in every_vars)


def test_inline_vaulted_values_import_without_the_password_and_need_it_in_the_job(
    tmp_path: Path,
) -> None:
    source = checkout("sample", tmp_path)
    password = tmp_path / "vault-password"
    password.write_text("a test password\n", encoding="utf-8")
    enrol = subprocess.run(
        [str(BIN / "municloud"), "mfa", "enrol", "--inventory", str(source), "--group",
         "tottori_shi", "--vault-password-file", str(password), "--sheets",
         str(tmp_path / "sheets"), "sato.hanako"],
        cwd=REPO, capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items() if k != "ANSIBLE_VAULT_PASSWORD_FILE"},
    )
    assert enrol.returncode == 0, enrol.stdout + enrol.stderr
    for vault in ([], ["--vault-password-file", str(password)]):
        data = export(tmp_path, source, *vault)
        entry = data["tottori_shi"]["vars"]["mfa_enrolment"]["sato.hanako"]
        for key in ("totp_secret", "password"):
            assert set(entry[key]) == {"__ansible_vault"}, (vault, key)
            assert entry[key]["__ansible_vault"].startswith("$ANSIBLE_VAULT;1.1;AES256")
    awx = awx_copy(data, tmp_path / "awx-inventory")
    playbook = tmp_path / "use.yml"
    playbook.write_text(
        "- hosts: tottori-shi-gw\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"USED {{ mfa_enrolment['sato.hanako'].password | length }}\"\n",
        encoding="utf-8")
    run = ["-i", str(awx), str(playbook), "-e", "ansible_connection=local"]
    without = in_the_image(tmp_path, "ansible-playbook", *run)
    assert without.returncode != 0 and "no vault secrets" in without.stdout + without.stderr
    used = in_the_image(tmp_path, "ansible-playbook", *run, "--vault-password-file", str(password))
    assert used.returncode == 0 and "USED " in used.stdout, used.stdout + used.stderr


def test_a_wholly_encrypted_vars_file_needs_the_password_and_imports_in_plain_text(
    tmp_path: Path,
) -> None:
    source = checkout("sample", tmp_path)
    password = tmp_path / "vault-password"
    password.write_text("a test password\n", encoding="utf-8")
    secret = source / "group_vars" / "all" / "secret.yml"
    secret.write_text("---\nlog_collector_tls_key: not-a-real-key\n", encoding="utf-8")
    subprocess.run([str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password),
                    str(secret)], cwd=REPO, capture_output=True, text=True, check=True)
    without = in_the_image(tmp_path, "ansible-inventory", "-i", str(source), "--list", "--export")
    assert without.returncode != 0 and "no vault secrets" in without.stderr
    data = export(tmp_path, source, "--vault-password-file", str(password))
    assert data["all"]["vars"]["log_collector_tls_key"] == "not-a-real-key"


# --- job slicing ---------------------------------------------------------------------------------


def test_awx_slices_of_site_yml_are_refused_by_its_first_play(tmp_path: Path) -> None:
    """Slice 1 of 3 through ansible-playbook; the model's verdict on every slice of 2 and 3."""
    data = export(tmp_path, checkout("sample", tmp_path))
    awx = awx_copy(awx_slice(data, 1, 3), tmp_path / "slice-1-of-3")
    done = in_the_image(tmp_path, "ansible-playbook", "-i", str(awx), str(first_play(tmp_path)),
                        "-e", "ansible_connection=local")
    assert done.returncode != 0, done.stdout
    assert "The inventory is not valid; nothing was changed" in done.stdout
    assert "0 gateways" in done.stdout
    assert "TASK [Group the hosts" not in done.stdout and "UNREACHABLE" not in done.stdout
    hostvars, groups = resolved(tmp_path, "sample")
    for count in (2, 3):
        for number in range(1, count + 1):
            names = sorted(hostvars)[number - 1::count]
            part = {g: [h for h in hs if h in names] for g, hs in groups.items()}
            with pytest.raises(InventoryError, match="0 gateways"):
                from_ansible.prefecture({h: hostvars[h] for h in names}, part)


def resolved(tmp_path: Path, name: str) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(hostvars, groups) as a play sees them, from ``ansible-inventory --list`` of the
    checkout of inventories/<name>; every host with ``municloud_management``."""
    source = checkout(name, tmp_path / "resolved")
    listed = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(source), "--list"], cwd=REPO,
        capture_output=True, text=True, check=True,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    data = json.loads(listed.stdout)
    hostvars = {h: {**v, "municloud_management": MANAGEMENT}
                for h, v in data["_meta"]["hostvars"].items()}

    def members(group: str) -> list[str]:
        body = data.get(group, {})
        out = list(body.get("hosts", []))
        for child in body.get("children", []):
            out += [h for h in members(child) if h not in out]
        return out

    return hostvars, {g: members(g) for g in data if g != "_meta"}


def test_a_slice_the_model_accepts_would_get_other_rulesets(tmp_path: Path) -> None:
    hostvars, groups = resolved(tmp_path, "sample")
    whole = from_ansible.prefecture(hostvars, groups)
    accepted = []
    for count in range(2, len(hostvars) + 1):
        for number in range(1, count + 1):
            names = sorted(hostvars)[number - 1::count]
            part_groups = {g: [h for h in hs if h in names] for g, hs in groups.items()}
            try:
                part = from_ansible.prefecture({h: hostvars[h] for h in names}, part_groups)
            except InventoryError:
                continue
            accepted.append((count, number, names, part))
    assert accepted, "the model refuses every slice"
    for count, number, names, part in accepted:
        assert any(nftables.ruleset(part, h) != nftables.ruleset(whole, h) for h in names), (
            count, number, names)


def rollout_batches(tmp_path: Path, source: Path, limit: str) -> list[list[str]]:
    """The hosts of each batch of site.yml's roll-out play, under ``--limit``."""
    rollout = next(play for play in SITE if "serial" in play)
    probe = {key: value for key, value in rollout.items() if key not in ("tasks", "roles")}
    probe["become"] = False
    probe["tasks"] = [{"ansible.builtin.debug": {
        "msg": "BATCH {{ ansible_play_batch | join(',') }}"}, "run_once": True}]
    done = in_the_image(tmp_path, "ansible-playbook", "-i", str(source),
                        str(first_play(tmp_path, probe)), "--limit", limit,
                        "-e", "ansible_connection=local")
    assert done.returncode == 0, done.stdout + done.stderr
    return [b.split(",") for b in re.findall(r"BATCH (\S+)", done.stdout)]


def towns(source: Path) -> dict[str, str]:
    return {h: group for group, (hosts, _) in hosts_yml_groups(source / "hosts.yml").items()
            for h in hosts if group != "shared"}


def test_a_limit_of_one_municipality_keeps_every_batch_inside_it(tmp_path: Path) -> None:
    source = checkout("sample", tmp_path)
    batches = rollout_batches(tmp_path, source, "yonago_shi")
    town = towns(source)
    assert sorted(h for b in batches for h in b) == sorted(h for h in town if
                                                           town[h] == "yonago_shi")
    assert len(batches) == 1, batches  # the whole town at once, as without a limit


def test_a_limit_of_several_municipalities_keeps_every_batch_inside_one(tmp_path: Path) -> None:
    def fewer(data: dict[str, Any]) -> None:  # a town with fewer hosts, before the limited ones
        for host in ("kurayoshi-shi-screen", "kurayoshi-shi-internet-term",
                     "kurayoshi-shi-lgwan-term"):
            del sample_hosts(data, "kurayoshi_shi")[host]

    source = write_sample(tmp_path, fewer)
    town = towns(source)
    batches = rollout_batches(tmp_path, source, "tottori_shi:yonago_shi")
    assert sorted(h for b in batches for h in b) == sorted(
        h for h in town if town[h] in ("tottori_shi", "yonago_shi"))
    assert [sorted({town[h] for h in b}) for b in batches if len({town[h] for h in b}) > 1] == []
    assert [town[b[0]] for b in batches] == ["tottori_shi", "yonago_shi"], batches
