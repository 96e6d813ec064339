#!/usr/bin/env bash
# Install what municloud needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages: the Docker engine (docker.io), debootstrap for the lab's base image,
#     iptables for the lab's bridge rule, OpenSSH's client for Ansible, nftables (`nft -c`
#     checks every rendered ruleset in the unit tests), graphviz for `municloud diagram`, ping
#     for the acceptance tests' ICMP probes, zbarimg (zbar-tools) to read back enrolment QR codes;
#     gpg (gnupg) to make the lab update relay's vendor and platform keys; squid, whose
#     `squid -k parse` checks the proxies' rendered configuration and which the unit tests run
#     in the foreground on loopback (never as this machine's daemon: see below); libmagic1 for
#     the sanitiser's unit tests (python-magic), poppler-utils (pdftotext, pdfinfo) and qpdf to
#     read the PDFs it rebuilds (and the report's pages printed to PDF); chromium, headless, to
#     open, screenshot and print the report's pages in the unit tests, with a Japanese font
#     (fonts-ipafont-gothic), without which their Japanese prints as empty boxes;
#   - a virtual environment in .venv with the project and its dev tools (pyproject.toml).
# Run as root (the lab needs root for Docker and debootstrap). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(docker.io debootstrap iptables openssh-client python3-venv nftables graphviz iputils-ping zbar-tools gnupg squid libmagic1 poppler-utils qpdf chromium fonts-ipafont-gothic)

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
  # Debian's squid package starts a proxy on port 3128 of every address from its postinst
  # (through invoke-rc.d) and enables it at boot. This machine only needs the binary, so while
  # apt-get runs, a policy-rc.d denies squid's start (exit 101) and allows every other service
  # (docker.io's daemon still starts). Only if the machine has no policy-rc.d of its own (Docker
  # images ship one that denies everything); removed again on exit.
  policy=/usr/sbin/policy-rc.d
  if [[ " ${missing[*]} " == *" squid "* && ! -e $policy ]]; then
    trap 'rm -f "$policy"' EXIT
    cat >"$policy" <<'POLICY'
#!/bin/sh
# Written by municloud's scripts/install.sh while it runs apt-get; it removes it on exit.
# Arguments: [--quiet] <initscript id> <action> [<runlevel>]; 101: action not allowed.
for arg; do
  case $arg in
    --*) ;;
    squid) exit 101 ;;
    *) exit 0 ;;
  esac
done
exit 0
POLICY
    chmod 755 "$policy"
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" squid "* ]]; then
    update-rc.d squid disable >/dev/null  # not at boot either (its sysv links; systemd units)
    if pgrep -x squid >/dev/null; then
      echo "install.sh: a squid daemon is running after installing squid: stop it" \
           "(invoke-rc.d squid stop)" >&2
      exit 1
    fi
  fi
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
