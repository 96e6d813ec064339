#!/usr/bin/env bash
# Install what municloud needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages: the Docker engine (docker.io), debootstrap for the lab's base image,
#     iptables for the lab's bridge rule, OpenSSH's client for Ansible, nftables (`nft -c`
#     checks every rendered ruleset in the unit tests), graphviz for `municloud diagram`, ping
#     for the acceptance tests' ICMP probes, zbarimg (zbar-tools) to read back enrolment QR codes;
#     gpg (gnupg) to make the lab update relay's vendor and platform keys;
#   - a virtual environment in .venv with the project and its dev tools (pyproject.toml).
# Run as root (the lab needs root for Docker and debootstrap). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(docker.io debootstrap iptables openssh-client python3-venv nftables graphviz iputils-ping zbar-tools gnupg)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "install.sh: need root to install ${missing[*]} (apt-get); run it as root" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [[ ! -x .venv/bin/python ]]; then
  echo "==> creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.municloud-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "==> installing municloud and its dependencies into .venv (pip, a few minutes the first time)"
  log=.venv/install.log
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e '.[dev]'; } >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "install.sh: pip failed; the whole log is in $log" >&2
    exit 1
  fi
  touch "$stamp"
fi
echo "==> installed: $(.venv/bin/python -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("ansible-core", "pulumi", "pulumi-aws", "pytest-testinfra")))')"
