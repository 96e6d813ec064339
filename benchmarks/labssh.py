"""What the lab benchmarks share: a root login to a lab host by the lab's key, with its recorded
host key checked, and a command run over it (the same way the acceptance tests reach hosts)."""

from __future__ import annotations

from pathlib import Path

import paramiko

from municloud.inventory import Host


def ssh(host: Host, key: Path, known_hosts: Path) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(str(host.primary_address), username="root", key_filename=str(key),
                   look_for_keys=False, allow_agent=False, timeout=10)
    return client


def run(client: paramiko.SSHClient, command: str, stdin: str | None = None,
        timeout: float = 1800) -> str:
    """``command``'s standard output; exits the benchmark with its error if it fails."""
    channel_in, out, err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        channel_in.write(stdin)
    channel_in.channel.shutdown_write()
    text, errors = out.read().decode(), err.read().decode()
    if out.channel.recv_exit_status() != 0:
        raise SystemExit(f"{command[:80]}...: {errors or text}")
    return text
