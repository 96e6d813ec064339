"""The roles reach the model through the filter plugin, in a real ansible-playbook run (no lab:
the tasks here run on the controller and touch no host).

* the plugin gives the same ruleset as the package, from hosts.yml and from an inventory with no
  such file (AWX imports inventories into its database; ``ansible-inventory --list`` stands in);
* site.yml refuses an inventory the model rejects before any host is touched;
* the roll-out batches of site.yml are one municipality each.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from sample_edit import REPO, SAMPLE, municipality, write

from municloud import inventory, nftables

BIN = Path(sys.executable).parent
MANAGEMENT = ["198.18.17.254", "198.18.1.254"]


def ansible(tool: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STRATEGY": "linear",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    }
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def rendered(inventory_source: Path, host: str, tmp_path: Path) -> str:
    playbook = tmp_path / "render.yml"
    out = tmp_path / f"{host}.nft"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        f"        dest: {out}\n"
        '        content: "{{ hostvars | municloud_ruleset(groups, inventory_hostname) }}"\n'
        "        mode: '0644'\n"
        "      delegate_to: localhost\n"
    )
    done = ansible(
        "ansible-playbook",
        "-i",
        str(inventory_source),
        str(playbook),
        "-l",
        host,
        "-e",
        json.dumps({"municloud_management": MANAGEMENT}),
        "-e",
        "ansible_connection=local",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()


def expected(host: str) -> str:
    loaded = inventory.load(SAMPLE)
    loaded = dataclasses.replace(
        loaded, management=tuple(ipaddress.IPv4Network(a) for a in MANAGEMENT)
    )
    return nftables.ruleset(loaded, host)


@pytest.mark.parametrize("host", ["tottori-shi-gw", "yonago-shi-screen", "sc-proxy"])
def test_the_filter_renders_what_the_package_renders(tmp_path: Path, host: str) -> None:
    assert rendered(SAMPLE, host, tmp_path) == expected(host)


def test_the_filter_works_without_the_inventory_file(tmp_path: Path) -> None:
    """As on AWX: only what Ansible resolved, every variable on its host, no hosts.yml behind it
    and no group_vars (``ansible-inventory --list`` without --export flattens them)."""
    listed = ansible("ansible-inventory", "-i", str(SAMPLE), "--list", "--yaml")
    assert listed.returncode == 0, listed.stderr
    # A lab's staff enrolment (vault-encrypted) may be in group_vars: read its tag as text.
    loader = type("VaultTolerant", (yaml.SafeLoader,), {})
    loader.add_constructor("!vault", lambda loader_, node: loader_.construct_scalar(node))
    data = yaml.load(listed.stdout, Loader=loader)  # a SafeLoader, with one more tag

    def strip(group: dict[str, Any]) -> None:
        for host_vars in (group.get("hosts") or {}).values():
            for key in [k for k in host_vars if not k.startswith("municloud_")]:
                del host_vars[key]  # keep the model only: no lab connection settings
            host_vars.pop("municloud_management", None)
        for child in (group.get("children") or {}).values():
            strip(child)

    strip(data["all"])
    copy = tmp_path / "awx" / "inventory.yml"
    copy.parent.mkdir()
    copy.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert "municloud_municipality" not in json.dumps(data["all"].get("vars", {}))
    assert rendered(copy, "tottori-shi-gw", tmp_path) == expected("tottori-shi-gw")


def test_site_yml_refuses_a_bad_inventory_before_touching_any_host(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        municipality(d)["flows"] = [
            {"name": "mynumber-web", "from": "individual_number", "to": "proxy", "reason": "a wish"}
        ]

    inv = write(tmp_path, edit)
    run = ansible("ansible-playbook", "-i", str(inv), str(REPO / "playbooks" / "site.yml"))
    assert run.returncode != 0
    assert "The inventory is not valid; nothing was changed" in run.stdout
    assert "the flow 'mynumber-web'" in run.stdout and "individual-number-no-internet" in run.stdout
    assert "PLAY [Baseline" not in run.stdout  # no later play started
    assert "UNREACHABLE" not in run.stdout  # and no host was even connected to


def test_rollout_batches_are_one_municipality_each(tmp_path: Path) -> None:
    """site.yml's first play groups the hosts by municipality; its roll-out play takes one
    group at a time. The same two plays, with a task that says which towns each batch holds."""
    site = yaml.safe_load((REPO / "playbooks" / "site.yml").read_text(encoding="utf-8"))
    check, rollout = site[0], next(play for play in site if "serial" in play)
    assert rollout["serial"] == "{{ groups | municloud_rollout_batches }}"
    rollout = {**rollout, "become": False, "tasks": [{
        "ansible.builtin.debug": {"msg": "BATCH {{ ansible_play_batch | map('extract', hostvars, "
                                         "['municloud_municipality', 'code']) | unique "
                                         "| join(',') }}"},
        "run_once": True}]}
    rollout.pop("roles", None)  # the debug task above replaces what the play does
    playbook = tmp_path / "batches.yml"
    playbook.write_text(yaml.safe_dump([check, rollout], allow_unicode=True))
    run = ansible("ansible-playbook", "-i", str(SAMPLE), str(playbook),
                  "-e", "ansible_connection=local")
    assert run.returncode == 0, run.stdout
    batches = [line.split("BATCH ", 1)[1].strip().strip("'\"") for line in run.stdout.splitlines()
               if "BATCH " in line]
    assert batches == ["312011", "312029", "312037"]


def _log_senders(inventory_dir: Path, tmp_path: Path) -> set[str]:
    """The hosts site.yml's first play puts in municloud_log_forwarding, and the collector the
    log_forwarding role sends to (``collector=<name>``), as a real run of that play says."""
    site = yaml.safe_load((REPO / "playbooks" / "site.yml").read_text(encoding="utf-8"))
    out = tmp_path / f"senders-{inventory_dir.name}.json"
    said = ("{{ {'senders': groups['municloud_log_forwarding'] | default([]) | sort, "
            "'collector': municloud_log_collectors | first | default('none')} | to_json }}")
    show = {"name": "show", "hosts": "all", "gather_facts": False, "tasks": [
        {"ansible.builtin.copy": {"dest": str(out), "content": said, "mode": "0644"},
         "run_once": True, "delegate_to": "localhost"}]}
    playbook = tmp_path / "senders.yml"
    playbook.write_text(yaml.safe_dump([site[0], show], allow_unicode=True, sort_keys=False))
    run = ansible("ansible-playbook", "-i", str(inventory_dir), str(playbook),
                  "-e", "ansible_connection=local")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    return set(result["senders"]) | {f"collector={result['collector']}"}


def test_the_first_play_groups_the_hosts_that_send_logs_to_the_collector(tmp_path: Path) -> None:
    """site.yml's first play names the inventory's log collector once for every host; the hosts
    that send it their logs are the gateways, the proxy and the towns' hosts with a leg on the
    LGWAN or internet segment. With no collector in the inventory, no host is grouped to send
    logs."""
    data = yaml.safe_load((SAMPLE / "hosts.yml").read_text(encoding="utf-8"))
    expected = {"collector=log-collector"}
    for name, host in data["all"]["children"]["shared"]["hosts"].items():
        if host["municloud_role"] == "proxy":
            expected.add(name)
    for town in data["all"]["children"]["municipalities"]["children"].values():
        for name, host in town["hosts"].items():
            legs = set(host["municloud_addresses"])
            if host["municloud_role"] == "gateway" or legs & {"lgwan", "internet"}:
                expected.add(name)
    assert _log_senders(SAMPLE, tmp_path) == expected

    def no_collector(d: dict[str, Any]) -> None:
        del d["all"]["children"]["shared"]["hosts"]["log-collector"]

    assert _log_senders(write(tmp_path, no_collector), tmp_path) == {"collector=none"}


# --- the update relay: what Ansible renders for a terminal, and what it refuses ------------------

SOURCE = {"name": "lab-vendor", "type": "debian", "url": "http://198.18.0.20/debian",
          "suites": ["bookworm"], "components": ["main"], "architectures": ["amd64"],
          "key": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ\n"
                 "-----END PGP PUBLIC KEY BLOCK-----"}


def _render_client_sources(tmp_path: Path, host: str, sources: list[dict[str, Any]]) -> str:
    out = tmp_path / f"{host}.sources"
    playbook = tmp_path / "client.yml"
    roles = REPO / "roles"
    includes = "".join(f"    - ansible.builtin.include_vars: {{file: {roles / f}}}\n" for f in (
        "updates/vars/main.yml", "update_client/vars/main.yml", "update_client/defaults/main.yml"))
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n" + includes
        + "    - ansible.builtin.template:\n"
        f"        src: {roles / 'update_client/templates/municloud-updates.sources.j2'}\n"
        f"        dest: {out}\n"
        "        mode: '0644'\n"
        "      delegate_to: localhost\n"
    )
    done = ansible("ansible-playbook", "-i", str(SAMPLE), str(playbook), "-l", host,
                   "-e", json.dumps({"updates_sources": sources}),
                   "-e", "ansible_connection=local")
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_text()


@pytest.mark.parametrize(("host", "relay"), [("tottori-shi-lgwan-term", "198.18.17.20"),
                                             ("kurayoshi-shi-lgwan-term", "198.18.25.20")])
def test_a_terminal_takes_packages_from_its_own_towns_relay_only(
        tmp_path: Path, host: str, relay: str) -> None:
    text = _render_client_sources(tmp_path, host, [SOURCE])
    stanzas = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert f"URIs: http://{relay}/lab-vendor" in stanzas
    assert "Signed-By: /usr/share/keyrings/municloud-lab-vendor.asc" in stanzas
    assert [line for line in stanzas if line.startswith("URIs:")] == [
        f"URIs: http://{relay}/lab-vendor"]


@pytest.mark.parametrize(
    ("bad", "says"),
    [({"name": "Lab Vendor"}, "name of\nlower-case letters"),
     ({"type": "rsync"}, "type one of debian, files"),
     ({"url": "ftp://198.18.0.20/debian"}, "url http:// or https://"),
     ({"key": "not a key"}, "ASCII-armored")],
)
def test_a_bad_update_source_fails_before_any_change(tmp_path: Path, bad: dict[str, str],
                                                     says: str) -> None:
    playbook = tmp_path / "updates.yml"
    playbook.write_text("- hosts: all\n  gather_facts: false\n  roles: [updates]\n")
    done = ansible("ansible-playbook", "-i", str(SAMPLE), str(playbook), "-l",
                   "tottori-shi-update-relay", "--check", "-e",
                   json.dumps({"updates_sources": [SOURCE | bad]}), "-e",
                   "ansible_connection=local")
    assert done.returncode != 0
    assert "updates_sources must be a list of {name, type, url, key}" in done.stdout
    assert " ".join(says.split()) in " ".join(done.stdout.split())
    assert "Install the packages" not in done.stdout  # failed at the check, nothing after it


def test_a_terminal_without_a_delivery_server_is_named(tmp_path: Path) -> None:
    """The address update_client takes from the model, and the error when there is none."""
    def edit(d: dict[str, Any]) -> None:
        del d["all"]["children"]["municipalities"]["children"]["tottori_shi"]["hosts"][
            "tottori-shi-update-relay"]

    playbook = tmp_path / "peer.yml"
    playbook.write_text(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n"
        "        msg: \"relay={{ hostvars | municloud_peer_address(groups, inventory_hostname, "
        "'update_relay') }}\"\n")
    found = ansible("ansible-playbook", "-i", str(SAMPLE), str(playbook), "-l",
                    "yonago-shi-lgwan-term", "-e", "ansible_connection=local")
    assert found.returncode == 0 and "relay=198.18.21.20" in found.stdout, found.stdout
    broken = ansible("ansible-playbook", "-i", str(write(tmp_path, edit)), str(playbook), "-l",
                     "tottori-shi-lgwan-term", "-e", "ansible_connection=local")
    said = " ".join((broken.stdout + broken.stderr).split())
    assert broken.returncode != 0
    assert "tottori-shi-lgwan-term: the inventory has no host of municloud_role update_relay" \
        in said, said
