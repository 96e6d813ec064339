"""Acceptance of export control (roles/export_control) on the individual-number segment's hosts:
no data export from the terminals (データの持出し不可設定).

A lab host is a container: its kernel, the kernel's audit system and any USB device belong to
the machine the lab runs on, so a stick cannot be plugged in and no module can be loaded there.
What is proven instead is the configuration in force, through the real engines that read it,
and the test names say so (``..._container``):

* kmod: ``modprobe --showconfig`` (kmod's parsed view of every modprobe.d file) refuses each
  module; ``modprobe -n -v`` (a dry run) would run /bin/false; in a container a real
  ``modprobe usb-storage`` is refused by the install command before the kernel is asked;
* udev: the lab's containers have no udev (masked, not installed), so the rule file is parsed
  here, key by key, as udev would match it;
* audit: the kernel refuses a container the audit system (``auditctl -l``: "Operation not
  permitted"), so the rules file is parsed, and its syscall names are resolved by the audit
  tools' own table (``ausyscall --exact``); on a real host, ``auditctl -l`` must list the rules;
* systemd: udisks2 is masked; auditd runs on a real host, and in a container it is skipped by a
  condition rather than failed.

What a module must refuse is written here, from the clause, not read from the role: a role that
drops a module from its list fails these tests. A host's exceptions are read from the inventory
(``ansible-inventory --host``): only they may lift a block, and only with their reason written on
the host.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from municloud.inventory import Host

pytestmark = [
    pytest.mark.segments("individual_number"),
    pytest.mark.clause("export.removable-storage"),
]

REPO = Path(__file__).resolve().parents[2]
# What the guideline asks to refuse: USB mass storage (and its faster protocol), FireWire
# storage, Thunderbolt, SD/MMC cards.
MODULES = ["usb-storage", "uas", "firewire-sbp2", "thunderbolt", "mmc_block"]
MODPROBE_FILE = "/etc/modprobe.d/municloud-export-control.conf"
UDEV_FILE = "/etc/udev/rules.d/10-municloud-export-control.rules"
AUDIT_FILE = "/etc/audit/rules.d/60-municloud-export-control.rules"
AUDIT_KEY = "municloud-export"
USB_MASS_STORAGE_CLASS = "08"
# auditctl's arch= and the name ausyscall knows the same ABI by (amd64 hosts).
ARCHES = {"b64": "x86_64", "b32": "i386"}


def _kmod(name: str) -> str:
    """A module name as kmod compares and prints it ("-" and "_" alike)."""
    return name.replace("-", "_")


# --- what the inventory says about a host ------------------------------------------------------

@pytest.fixture
def exceptions(host_vars: Any, lab_host: Host) -> dict[str, dict[str, str]]:
    """This host's exceptions (export_control_exceptions), by kmod's name of the module."""
    entries = host_vars(lab_host.name).get("export_control_exceptions") or []
    return {_kmod(e["module"]): e for e in entries}


def _skip_if_excepted(module: str, exceptions: dict[str, dict[str, str]], name: str) -> None:
    if _kmod(module) in exceptions:
        pytest.skip(
            f"{module} is an exception on {name} (its reason is checked by "
            f"test_exceptions_are_written_on_the_host_with_their_reason)"
        )


_CONTAINER: dict[str, bool] = {}


def _in_container(host: Any, name: str) -> bool:
    if name not in _CONTAINER:
        _CONTAINER[name] = host.run("systemd-detect-virt --container").rc == 0
    return _CONTAINER[name]


def _rule_lines(host: Any, path: str) -> list[str]:
    """The lines of a rules file that are not comments or blank."""
    f = host.file(path)
    assert f.is_file, f"{path} is missing"
    return [
        line.strip()
        for line in f.content_string.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


# --- kmod: the modules may not load ------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES)
def test_kmod_refuses_module_in_force_config_container(
    host: Any, lab_host: Host, module: str, exceptions: dict[str, dict[str, str]]
) -> None:
    """`modprobe --showconfig`: kmod's own parsed view of every modprobe.d file, as it would act
    on it. `install <module> /bin/false` refuses an explicit modprobe; `blacklist` refuses
    loading by device alias. Both are needed."""
    _skip_if_excepted(module, exceptions, lab_host.name)
    config = host.check_output("modprobe --showconfig").splitlines()
    assert f"install {_kmod(module)} /bin/false" in config
    assert f"blacklist {_kmod(module)}" in config


@pytest.mark.parametrize("module", MODULES)
def test_modprobe_dry_run_would_run_bin_false_container(
    host: Any, lab_host: Host, module: str, exceptions: dict[str, dict[str, str]]
) -> None:
    """`modprobe -n -v`: kmod resolves the name as it would for a device and says what it would
    do, without doing it. Works in a container too: the install command is found in the
    configuration before the (absent) module directory is needed."""
    _skip_if_excepted(module, exceptions, lab_host.name)
    dry = host.run(f"modprobe -n -v {shlex.quote(module)}")
    assert dry.rc == 0, dry.stderr
    assert dry.stdout.split() == ["install", "/bin/false"]


def test_modprobe_usb_storage_is_refused_before_the_kernel_container(
    host: Any, lab_host: Host, exceptions: dict[str, dict[str, str]]
) -> None:
    """A real `modprobe usb-storage`, in a container only: kmod runs the install command
    (/bin/false) and gives up, so the kernel is never asked (and a container could not load a
    module anyway: it has no CAP_SYS_MODULE). On a real host the dry run above stands in: this
    would load the module for real on a host where the policy is broken."""
    if not _in_container(host, lab_host.name):
        pytest.skip("real host: not loading usb-storage to prove it is refused (see the dry run)")
    _skip_if_excepted("usb-storage", exceptions, lab_host.name)
    attempt = host.run("modprobe usb-storage")
    assert attempt.rc != 0
    assert "Error running install command '/bin/false' for module usb_storage" in attempt.stderr


# --- udev: USB mass-storage interfaces are de-authorised ---------------------------------------

_UDEV_KEY = re.compile(r'\s*([A-Z_]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(?:,|$)')


def _udev_rule(line: str) -> list[tuple[str, str, str]]:
    """A udev rule as (key, operator, value) triples, as udev reads it; fails on anything else."""
    triples, pos = [], 0
    while pos < len(line):
        m = _UDEV_KEY.match(line, pos)
        assert m, f"not a udev rule at {line[pos:]!r}"
        triples.append(m.groups())
        pos = m.end()
    return triples


def test_udev_rule_deauthorises_usb_mass_storage_parsed_container_has_no_udev(
    host: Any, exceptions: dict[str, dict[str, str]], lab_host: Host
) -> None:
    """The lab's containers have no udev (masked, and not installed), and no USB device to plug
    in, so the rule is parsed here as udev matches it: on every new USB interface of class 08
    (mass storage, whoever made the device), set the interface's `authorized` to 0. A rule that
    also matched a vendor, a product or a serial would let other sticks through."""
    _skip_if_excepted("usb-storage", exceptions, lab_host.name)
    assert UDEV_FILE.endswith(".rules")  # udev reads *.rules only
    rules = [_udev_rule(line) for line in _rule_lines(host, UDEV_FILE)]
    wanted_matches = {
        ("ACTION", "==", "add"),
        ("SUBSYSTEM", "==", "usb"),
        ("ENV{DEVTYPE}", "==", "usb_interface"),
        ("ATTR{bInterfaceClass}", "==", USB_MASS_STORAGE_CLASS),
    }
    deauthorising = [
        r
        for r in rules
        if ("ATTR{authorized}", "=", "0") in r
        and {t for t in r if t[1] in ("==", "!=")} == wanted_matches
    ]
    assert deauthorising, f"no rule in {UDEV_FILE} de-authorises every class-08 interface: {rules}"


@pytest.mark.parametrize("service", ["udisks2.service"])
def test_automount_service_is_masked(host: Any, service: str) -> None:
    """systemd itself says so: masked (even where udisks2 is not installed, the mask holds for
    the day it is), so no user can mount a medium through it."""
    assert host.run(f"systemctl is-enabled {service}").stdout.strip() == "masked"


# --- audit: attempts are recorded --------------------------------------------------------------


def _audit_rules(host: Any) -> list[list[str]]:
    return [shlex.split(line) for line in _rule_lines(host, AUDIT_FILE)]


def _syscall_rule(rule: list[str]) -> tuple[str, set[str], str] | None:
    """(arch, syscalls, key) of an `-a always,exit` rule, or None for another rule."""
    if rule[:2] not in (["-a", "always,exit"], ["-a", "exit,always"]):
        return None
    arch, syscalls, key = "", set(), ""
    for flag, value in zip(rule[2::2], rule[3::2], strict=False):
        if flag == "-S":
            syscalls |= set(value.split(","))
        elif flag == "-F" and value.startswith("arch="):
            arch = value.removeprefix("arch=")
        elif (flag == "-F" and value.startswith("key=")) or flag == "-k":
            key = value.removeprefix("key=")
    return arch, syscalls, key


@pytest.mark.parametrize(
    "syscalls",
    [
        pytest.param({"init_module", "finit_module"}, id="module-loads"),
        pytest.param({"mount"}, id="mounts"),
    ],
)
@pytest.mark.parametrize("arch", list(ARCHES))
def test_audit_rule_records_syscalls_file_container_cannot_load_it(
    host: Any, arch: str, syscalls: set[str]
) -> None:
    """The rules file (augenrules reads /etc/audit/rules.d/*.rules), parsed: a rule of this ABI
    records these syscalls with the key. A container cannot load it (the kernel's audit system
    refuses containers); test_audit_rules_are_loaded_real_host checks the kernel on real hosts."""
    covered: set[str] = set()
    for rule in _audit_rules(host):
        parsed = _syscall_rule(rule)
        if parsed and parsed[0] == arch and parsed[2] == AUDIT_KEY:
            covered |= parsed[1]
    assert syscalls <= covered, f"{AUDIT_FILE} records {sorted(covered)} for arch={arch}"


def test_audit_syscall_names_are_known_to_the_audit_tools(host: Any) -> None:
    """auditctl refuses a rule with a syscall name it does not know, and in a container it
    cannot be asked: ausyscall (same package, same table) resolves every name instead."""
    for rule in _audit_rules(host):
        parsed = _syscall_rule(rule)
        if parsed is None:
            continue
        arch, syscalls, _ = parsed
        for name in syscalls:
            found = host.run(f"ausyscall --exact {ARCHES[arch]} {shlex.quote(name)}")
            assert found.rc == 0 and found.stdout.strip().isdigit(), (arch, name, found.stderr)


@pytest.mark.parametrize("path", ["/etc/modprobe.d/", "/etc/udev/rules.d/"])
def test_audit_watches_changes_to_the_policy_file_container_cannot_load_it(
    host: Any, path: str
) -> None:
    """Writes to the policy's directories are recorded with the key (parsed, as above)."""
    watches = [r for r in _audit_rules(host) if r[:2] == ["-w", path]]
    assert any(
        "-p" in r and "w" in r[r.index("-p") + 1] and r[-2:] == ["-k", AUDIT_KEY] for r in watches
    ), f"{AUDIT_FILE} does not watch {path} for writes"


def test_audit_rules_are_loaded_real_host(host: Any, lab_host: Host) -> None:
    """On a real host the kernel holds the rules: `auditctl -l` lists them with the key."""
    if _in_container(host, lab_host.name):
        pytest.skip(
            "container: the kernel refuses it the audit system "
            "(auditctl -l: Operation not permitted), so no rules can be loaded here"
        )
    listed = host.check_output("auditctl -l")
    assert re.search(r"-S (\S*,)?init_module\b.*-F key=" + re.escape(AUDIT_KEY), listed)
    assert re.search(r"-S (\S*,)?mount\b.*-F key=" + re.escape(AUDIT_KEY), listed)


def test_auditd_runs_real_host(host: Any, lab_host: Host) -> None:
    if _in_container(host, lab_host.name):
        pytest.skip("container: auditd cannot run (see the next test)")
    assert host.service("auditd").is_running
    assert host.service("auditd").is_enabled


def test_auditd_is_skipped_not_failed_container(host: Any, lab_host: Host) -> None:
    """In a container auditd would fail at every start; the role makes systemd skip it by a
    condition (ConditionVirtualization=!container), so no failed unit is left behind."""
    if not _in_container(host, lab_host.name):
        pytest.skip("real host: auditd runs (test_auditd_runs_real_host)")
    assert host.run("systemctl is-failed auditd.service").stdout.strip() != "failed"
    state = host.check_output("systemctl show -p ActiveState auditd.service")
    assert state == "ActiveState=inactive"
    assert "ConditionVirtualization=!container" in host.check_output("systemctl cat auditd.service")


# --- exceptions: on their host only, with their reason -----------------------------------------

_EXCEPTION_LINE = re.compile(r"^#   - (\S+): (.+)$", re.M)


@pytest.mark.parametrize("path", [MODPROBE_FILE, UDEV_FILE, AUDIT_FILE])
def test_exceptions_are_written_on_the_host_with_their_reason(
    host: Any, lab_host: Host, path: str, exceptions: dict[str, dict[str, str]]
) -> None:
    """Each file names exactly this host's exceptions (none on most hosts), each with its
    reason, so that an auditor reading the host sees what is lifted and why."""
    text = host.file(path).content_string
    written = {_kmod(m): reason for m, reason in _EXCEPTION_LINE.findall(text)}
    wanted = {m: " ".join(e["reason"].split()) for m, e in exceptions.items()}
    assert written == wanted
    if not exceptions:
        assert f"No exceptions on {lab_host.name}" in text


def test_an_excepted_module_is_not_refused_on_its_host(
    host: Any, lab_host: Host, exceptions: dict[str, dict[str, str]]
) -> None:
    """An exception lifts its module's block on its host and nothing else: kmod no longer
    refuses that module (the other modules' tests still pass there), the file says so next to
    where its lines would be, and its loads are still recorded (the audit rules cover every
    module load)."""
    if not exceptions:
        pytest.skip(f"no exceptions on {lab_host.name}")
    config = host.check_output("modprobe --showconfig").splitlines()
    marked = {
        _kmod(m)
        for m in re.findall(
            r"^# (\S+): EXCEPTION, may load on this host",
            host.file(MODPROBE_FILE).content_string,
            re.M,
        )
    }
    for module in exceptions:
        assert f"install {module} /bin/false" not in config
        assert f"blacklist {module}" not in config
    assert marked == set(exceptions)
