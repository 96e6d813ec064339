"""The lab's base image: Debian bookworm from debootstrap, imported into Docker, cached by content.

No container registry is reachable, so the image is built from Debian packages. Its package list is
the lab's own (systemd, sshd, python3 for Ansible) plus what the roles declare in
``roles/<role>/vars/main.yml`` as ``__<role>_packages``: the same list the role installs from, so
lab hosts have every package a role needs, with no mirror. The image tag is a hash of that list and
of this file's build recipe, so it is rebuilt exactly when either changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from municloud.lab.engine import LabError, docker, run

SUITE = "bookworm"
IMAGE_REPO = "municloud-lab-base"
ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"

# What every lab host needs to be a host at all: to boot, to be reached and to run Ansible.
# python3-apt: without it Ansible's apt module tries to install it from the network and hangs.
LAB_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "iputils-ping",
    "netcat-openbsd",
    "curl",
    "ca-certificates",
    "tzdata",
    "procps",
    "less",
)

# Steps run inside the new root file system. Host keys are made at first boot, not baked in, so
# no two lab hosts share one; units that make no sense in a container are masked.
CUSTOMISE = r"""
set -eu
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/municloud-ssh-hostkeys.service <<'EOF'
[Unit]
Description=Generate this host's SSH host keys (lab image: none are baked in)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
EOF
systemctl enable municloud-ssh-hostkeys.service ssh.service >/dev/null
# auditd (roles/export_control) cannot run in a container: the kernel's audit system is the lab
# machine's. Without this it fails at every boot and leaves the host "degraded".
mkdir -p /etc/systemd/system/auditd.service.d
printf '[Unit]\nConditionVirtualization=!container\n' \
  > /etc/systemd/system/auditd.service.d/municloud-container.conf
# The roles' daemons are in the image for every host; only the roles that serve them start them:
# nginx (update_relay, lab_vendor), squid (proxy), xrdp (screen_transfer), ulogd2 (the gateways'
# drop log, log_forwarding). Left enabled, every host would listen on 3128 and 3389.
systemctl disable nginx.service squid.service xrdp.service xrdp-sesman.service ulogd2.service \
  >/dev/null 2>&1 || true
systemctl mask getty@tty1.service console-getty.service systemd-udevd.service \
  systemd-udev-trigger.service systemd-modules-load.service sys-kernel-debug.mount \
  sys-kernel-tracing.mount systemd-remount-fs.service >/dev/null 2>&1 || true
mkdir -p /root/.ssh && chmod 0700 /root/.ssh
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/*
"""


def role_packages(roles_dir: Path = ROLES_DIR) -> list[str]:
    """The Debian packages the roles declare (``__<role>_packages`` in vars/main.yml)."""
    found: set[str] = set()
    for vars_file in sorted(roles_dir.glob("*/vars/main.yml")):
        role = vars_file.parent.parent.name
        data = yaml.safe_load(vars_file.read_text(encoding="utf-8")) or {}
        value = data.get(f"__{role}_packages", [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise LabError(f"{vars_file}: __{role}_packages must be a list of Debian package names")
        found.update(value)
    return sorted(found)


def packages(roles_dir: Path = ROLES_DIR) -> list[str]:
    return sorted({*LAB_PACKAGES, *role_packages(roles_dir)})


def image_tag(pkgs: list[str]) -> str:
    digest = hashlib.sha256("\n".join([SUITE, CUSTOMISE, *pkgs]).encode()).hexdigest()[:12]
    return f"{IMAGE_REPO}:{digest}"


def mirror() -> str:
    """The Debian mirror to bootstrap from: $MUNICLOUD_DEBIAN_MIRROR, else this machine's own."""
    if os.environ.get("MUNICLOUD_DEBIAN_MIRROR"):
        return os.environ["MUNICLOUD_DEBIAN_MIRROR"]
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def image_exists(tag: str) -> bool:
    return docker("image", "inspect", tag, check=False).returncode == 0


def _run_with_progress(
    cmd: list[str], say: Callable[[str], None], every: float = 10.0
) -> tuple[int, str]:
    """Run a long command, saying its latest "I: ..." line (debootstrap's stage) now and then."""
    lines: list[str] = []
    started = last = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            now = time.monotonic()
            if line.startswith("I: ") and now - last >= every:
                say(f"  {now - started:3.0f} s  {line[3:].strip()}")
                last = now
    return proc.returncode, "".join(lines)


def ensure_image(say: Callable[[str], None] = print) -> str:
    """The tag of a base image with today's package list, built if it is not cached."""
    pkgs = packages()
    tag = image_tag(pkgs)
    if image_exists(tag):
        say(f"base image {tag} is cached")
        return tag
    if shutil.which("debootstrap") is None:
        say("installing Debian's debootstrap ...")
        run(["apt-get", "install", "-y", "-qq", "debootstrap"])
    say(
        f"building base image {tag}: debootstrap {SUITE} with {len(pkgs)} packages "
        f"from {mirror()} (a minute or two) ..."
    )
    with tempfile.TemporaryDirectory(prefix="municloud-image-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(pkgs)}", SUITE,
               str(rootfs), mirror()]  # fmt: skip
        returncode, output = _run_with_progress(cmd, say)
        if returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            tail = log.read_text()[-1500:] if log.is_file() else output[-1500:]
            raise LabError(f"debootstrap failed ({returncode}); nothing was imported.\n{tail}")
        say("customising the root file system ...")
        run(["chroot", str(rootfs), "/bin/sh", "-c", CUSTOMISE])
        say(f"importing {tag} into Docker ...")
        archive = Path(tmp) / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "-cf", str(archive), "."])
        run(
            [
                "docker",
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "ENV container=docker",
                "--change",
                f"LABEL municloud.packages={','.join(pkgs)}",
                str(archive),
                tag,
            ]
        )
    say(f"base image {tag} built")
    return tag
