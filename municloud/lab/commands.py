"""``municloud lab up|status|down``: a whole virtual prefecture in containers on this machine.

``up`` turns an inventory into Docker networks and systemd containers (see topology.py for what,
docs/architecture.md for why), makes the engine match it, and writes the connection facts
Ansible needs into ``inventories/<name>/group_vars/all/lab.yml``. A second ``up`` changes nothing.
``down`` removes the containers and networks labelled with the lab's name, and nothing else.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from municloud import inventory, mfa
from municloud.lab import engine, image, topology
from municloud.lab import logs as lab_logs
from municloud.lab import sanitiser as lab_sanitiser
from municloud.lab import updates as lab_updates
from municloud.lab.engine import LabError, docker, docker_json
from municloud.lab.topology import LABEL, LabContainer, Topology

REPO = Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".lab"  # per-lab SSH key and known_hosts; gitignored
SSH_WAIT_SECONDS = 90
SPEC_LABEL = "municloud.spec"  # see container_spec()


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument(
        "--inventory",
        "-i",
        default="inventories/sample",
        help="inventory directory (default: inventories/sample)",
    )
    if name == "up":
        parser.add_argument(
            "--no-wait", action="store_true", help="do not wait for every host's sshd to answer"
        )


def say(message: str) -> None:
    print(message, flush=True)


def state_dir(lab: str) -> Path:
    return STATE_DIR / lab


def key_file(lab: str) -> Path:
    return state_dir(lab) / "id_ed25519"


def lab_vars_file(prefecture: inventory.Prefecture) -> Path:
    return prefecture.path / "group_vars" / "all" / "lab.yml"


def load_topology(path: str) -> tuple[inventory.Prefecture, Topology]:
    """The validated inventory and its lab; raises InventoryError with every problem."""
    prefecture = inventory.load(path)
    problems = topology.problems(prefecture)
    if problems:
        raise inventory.InventoryError(problems)
    return prefecture, topology.build(prefecture)


def main(args: argparse.Namespace) -> int:
    try:
        prefecture, topo = load_topology(args.inventory)
        action = {"up": up, "status": status, "down": down}[args._name]
        return action(prefecture, topo, args)
    except inventory.InventoryError as exc:
        exc.print()
        print(
            f"the lab was not changed: fix the {len(exc.problems)} problem(s) above",
            file=sys.stderr,
        )
        return 1
    except LabError as exc:
        print(f"municloud lab {args._name}: {exc}", file=sys.stderr)
        return 1


# --- up ------------------------------------------------------------------------------------------


def up(prefecture: inventory.Prefecture, topo: Topology, args: argparse.Namespace) -> int:
    started = time.monotonic()
    with engine.machine_lock(say):
        engine.ensure_engine(say)
        engine.ensure_host_limits(say)
        engine.ensure_bridged_accept()
        tag = image.ensure_image(say)
    ensure_key(topo.lab)
    changed = ensure_networks(topo)
    for i, container in enumerate(topo.containers, 1):
        progress = f"[{i}/{len(topo.containers)}] {container.host.name}"
        if ensure_container(container, tag, topo.lab, progress):
            changed += 1
    for container in topo.containers:
        changed += ensure_routes(container)
    write_lab_vars(prefecture, topo)
    vault_password = enrol_staff(prefecture, topo)
    if not getattr(args, "no_wait", False):
        wait_for_ssh(topo.containers)
        record_host_keys(topo)
    elapsed = time.monotonic() - started
    verdict = f"{changed} change(s)" if changed else "no changes: the lab was already up"
    say(
        f"lab {topo.lab} is up: {len(topo.containers)} hosts on {len(topo.networks)} networks, "
        f"{verdict} ({elapsed:.0f} s)"
    )
    say(
        f"next: ANSIBLE_VAULT_PASSWORD_FILE={rel(vault_password)} "
        f"ansible-playbook -i {rel(prefecture.path)} playbooks/site.yml"
    )
    return 0


def lab_vault_password() -> Path:
    """The labs' vault password (one per checkout, made on first use, owner-only)."""
    path = STATE_DIR / "vault-password"
    if not path.is_file():
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: labs brought up at once
        # all end with the one password that won, and none reads a half-written file.
        fd, tmp = tempfile.mkstemp(dir=STATE_DIR, prefix=".vault-password.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            os.link(tmp, path)
        except FileExistsError:
            pass  # another `lab up` made it first: use theirs
        finally:
            os.unlink(tmp)
    return path


def enrol_staff(prefecture: inventory.Prefecture, topo: Topology) -> Path:
    """Enrol, for multi-factor login, every staff member the inventory lists (``mfa_users``) who
    is not enrolled yet, with $ANSIBLE_VAULT_PASSWORD_FILE or else the labs' own vault password;
    their sheets go to .lab/<name>/mfa-sheets. Returns the vault password file used."""
    given = os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE")
    password = Path(given) if given else lab_vault_password()
    try:
        done = mfa.enrol_missing(prefecture.path, vault_password_file=str(password),
                                 sheets=state_dir(topo.lab) / "mfa-sheets")
    except mfa.MfaError as exc:
        raise LabError(f"enrolling the staff for multi-factor login: {exc}") from exc
    if done:
        say(f"enrolled {len(done)} staff member(s) for multi-factor login (secrets vault-encrypted "
            f"in group_vars/<group>/mfa_enrolment.yml; sheets in "
            f"{rel(state_dir(topo.lab) / 'mfa-sheets')})")
    return password


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def ensure_key(lab: str) -> None:
    key = key_file(lab)
    if key.is_file():
        return
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    engine.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"municloud-lab-{lab}",
            "-f",
            str(key),
        ]
    )


def ensure_networks(topo: Topology) -> int:
    existing = {
        n["Name"]: n
        for n in docker_json("network", "inspect", *[n.docker_name for n in topo.networks])
    }
    made = 0
    for net in topo.networks:
        found = existing.get(net.docker_name)
        if found:
            configs = (found.get("IPAM") or {}).get("Config") or [{}]
            if configs[0].get("Subnet") != str(net.subnet) or not found.get("Internal"):
                raise LabError(
                    f"network {net.docker_name} exists with subnet {configs[0].get('Subnet')} "
                    f"(internal: {found.get('Internal')}), not {net.subnet}; run "
                    "`municloud lab down` for this inventory first"
                )
            continue
        say(f"creating network {net.docker_name} {net.subnet}")
        proc = docker(
            "network",
            "create",
            "--internal",
            "--driver",
            "bridge",
            f"--subnet={net.subnet}",
            f"--gateway={net.host_address}",
            f"--label={LABEL}={topo.lab}",
            f"--label=municloud.network={net.network_id}",
            net.docker_name,
            check=False,
        )
        if proc.returncode != 0:
            raise LabError(
                f"could not create network {net.docker_name} ({net.subnet}): "
                f"{proc.stderr.strip()}; another Docker network may use this range "
                "(`docker network ls`), or renumber the inventory"
            )
        made += 1
    return made


def container_state(name: str) -> dict[str, Any] | None:
    found = docker_json("container", "inspect", name)
    return found[0] if found else None


def is_running(state: dict[str, Any] | None) -> bool:
    return bool(state and (state.get("State") or {}).get("Running"))


def container_spec(c: LabContainer, tag: str, lab: str) -> str:
    """A digest of everything a host's container is made from: image, lab key, networks, rights.

    Kept as a label; a container whose digest differs (the roles' packages changed the image, the
    inventory moved an address, another clone of the repository made the lab with its own key)
    is made again, so ``lab up`` always leaves the lab the inventory describes.
    """
    public_key = key_file(lab).with_suffix(".pub").read_text()
    parts = [tag, public_key, c.host.name, repr(c.networks), repr(c.capabilities), repr(c.sysctls)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def ensure_container(c: LabContainer, tag: str, lab: str, progress: str) -> bool:
    """Create and start the container of one host; False if it was already as wanted."""
    spec = container_spec(c, tag, lab)
    state = container_state(c.docker_name)
    if state is not None:
        labels = (state.get("Config") or {}).get("Labels") or {}
        if labels.get(SPEC_LABEL) != spec:
            say(f"{progress}: made from another image, key or inventory; making it again")
            docker("rm", "-f", c.docker_name)
        elif is_running(state):
            return False
        else:
            say(f"{progress}: starting")
            docker("start", c.docker_name)
            return True
    say(f"{progress}: creating {c.docker_name}")
    (first_net, first_addr), *more = c.networks
    # --stop-signal: systemd shuts down cleanly on SIGRTMIN+3 (docker import cannot set it).
    create = ["create", "--name", c.docker_name, "--hostname", c.host.name,
              f"--label={LABEL}={lab}", f"--label=municloud.host={c.host.name}",
              f"--label={SPEC_LABEL}={spec}",
              "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
              "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
              "--network", first_net, "--ip", str(first_addr),
              "--memory", "512m", "--restart", "no", "--stop-signal", "SIGRTMIN+3"]  # fmt: skip
    for cap in c.capabilities:
        create += ["--cap-add", cap]
    for key, value in c.sysctls:
        create += ["--sysctl", f"{key}={value}"]
    try:
        docker(*create, tag)
        for net, addr in more:
            docker("network", "connect", "--ip", str(addr), net, c.docker_name)
        pub = key_file(lab).with_suffix(".pub")
        docker("cp", str(pub), f"{c.docker_name}:/root/.ssh/authorized_keys")
        docker("start", c.docker_name)
    except LabError:
        # Nothing half-made is left behind: a later `up` starts this host from scratch.
        docker("rm", "-f", c.docker_name, check=False)
        raise
    return True


def ensure_routes(c: LabContainer) -> int:
    """Replace Docker's default route with the lab's routes; 1 if anything changed."""
    current = engine.in_netns(c.docker_name, "ip", "-4", "route", "show").stdout
    lines = {" ".join(line.split()[:3]) for line in current.splitlines()}
    wanted = {f"{r.destination} via {r.via}" for r in c.routes}
    changed = 0
    for line in current.splitlines():
        if line.startswith("default") and " ".join(line.split()[:3]) not in wanted:
            engine.in_netns(c.docker_name, "ip", "route", "del", "default")
            changed = 1
    for route in c.routes:
        if f"{route.destination} via {route.via}" not in lines:
            engine.in_netns(
                c.docker_name, "ip", "route", "replace", route.destination, "via", str(route.via)
            )
            changed = 1
    return changed


def write_lab_vars(prefecture: inventory.Prefecture, topo: Topology) -> None:
    """Connection facts for ``ansible-playbook -i inventories/<name>``; rewritten if changed."""
    key = key_file(topo.lab)
    known_hosts = state_dir(topo.lab) / "known_hosts"
    text = (
        "---\n"
        "# Written by `municloud lab up` and removed by `municloud lab down`: how Ansible and the\n"
        "# acceptance tests reach this inventory's lab hosts. Not for a real prefecture.\n"
        "ansible_user: root\n"
        'ansible_host: "{{ municloud_addresses.values() | first }}"\n'
        f"ansible_ssh_private_key_file: {key}\n"
        "ansible_ssh_common_args: >-\n"
        f"  -o UserKnownHostsFile={known_hosts}\n"
        "  -o StrictHostKeyChecking=yes\n"
        f"municloud_lab: {topo.lab}\n"
        "# The lab machine's own address on each lab network: where automation and the\n"
        "# acceptance tests come from, so the firewalls let them in (and only them) for SSH.\n"
        "municloud_management:\n"
        + "".join(f"  - {a}\n" for a in topology.management_addresses(topo))
        + lab_updates.prepare(prefecture, state_dir(topo.lab))
        + lab_sanitiser.prepare(prefecture, state_dir(topo.lab))
        + lab_logs.prepare(prefecture, state_dir(topo.lab))
    )
    path = lab_vars_file(prefecture)
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def wait_for_ssh(containers: Iterable[LabContainer]) -> None:
    pending = {c.host.name: c.host.primary_address for c in containers}
    deadline = time.monotonic() + SSH_WAIT_SECONDS
    say(f"waiting for sshd on {len(pending)} hosts ...")
    while pending and time.monotonic() < deadline:
        for name, address in list(pending.items()):
            try:
                with socket.create_connection((str(address), 22), timeout=2) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        del pending[name]
            except OSError:
                pass
        if pending:
            time.sleep(1)
    if pending:
        raise LabError(
            f"sshd did not answer within {SSH_WAIT_SECONDS} s on: "
            f"{', '.join(sorted(pending))}; look with `docker logs mc-<lab>-<host>` "
            "or `docker exec -it <container> journalctl -b`"
        )


def record_host_keys(topo: Topology) -> None:
    """Write the hosts' SSH host keys to the lab's known_hosts, so host keys stay checked.

    The keys are made at each host's first boot (no two lab hosts share one); they are read here
    over the lab's own networks, right after the lab made the hosts.
    """
    addresses = sorted({str(a) for c in topo.containers for a in c.host.addresses.values()})
    scan = engine.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", *addresses], check=False)
    lines = sorted(line for line in scan.stdout.splitlines() if line and not line.startswith("#"))
    missing = set(addresses) - {line.split()[0] for line in lines}
    if missing:
        raise LabError(f"could not read the SSH host key of {', '.join(sorted(missing))}")
    path = state_dir(topo.lab) / "known_hosts"
    text = "\n".join(lines) + "\n"
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


# --- status and down -----------------------------------------------------------------------------


def status(prefecture: inventory.Prefecture, topo: Topology, args: argparse.Namespace) -> int:
    if not engine.engine_running():
        print("the Docker engine is not running: no lab is up", file=sys.stderr)
        return 1
    rows = []
    up_count = 0
    for c in topo.containers:
        state = container_state(c.docker_name)
        running = is_running(state)
        up_count += running
        where = c.host.municipality or "shared"
        addresses = ", ".join(f"{n.split('.')[-1]}={a}" for n, a in c.host.addresses.items())
        rows.append(
            (
                c.host.name,
                where,
                c.host.role.value,
                "running" if running else ("stopped" if state else "absent"),
                addresses,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    say(f"lab {topo.lab} ({prefecture.name_ja}): {up_count}/{len(rows)} hosts running")
    for row in rows:
        say(
            "  "
            + "  ".join(v.ljust(w) for v, w in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    return 0 if up_count == len(rows) else 1


def down(prefecture: inventory.Prefecture, topo: Topology, args: argparse.Namespace) -> int:
    if not engine.engine_running():
        say("the Docker engine is not running: nothing to remove")
        return 0
    selector = f"label={LABEL}={topo.lab}"
    containers = docker("ps", "-aq", "--filter", selector).stdout.split()
    if containers:
        say(f"removing {len(containers)} containers of lab {topo.lab} ...")
        engine.remove_containers(containers, say)
    networks = docker("network", "ls", "-q", "--filter", selector).stdout.split()
    if networks:
        say(f"removing {len(networks)} networks of lab {topo.lab} ...")
        docker("network", "rm", *networks)
    lab_vars_file(prefecture).unlink(missing_ok=True)
    known_hosts = state_dir(topo.lab) / "known_hosts"
    known_hosts.unlink(missing_ok=True)  # the next lab's hosts have new host keys
    say(f"lab {topo.lab} is down" if containers or networks else f"no lab {topo.lab} was up")
    return 0
