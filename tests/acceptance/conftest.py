"""The acceptance harness: the inventory's hosts, reached over SSH the way a person would.

* ``--inventory`` names the inventory (default inventories/sample); it is loaded with
  :func:`municloud.inventory.load`, and every test that asks for ``lab_host`` runs once per host
  (test ids are the host names), or once per host of the roles named by
  ``@pytest.mark.roles("gateway", ...)`` / of the segments named by
  ``@pytest.mark.segments("individual_number", ...)``; a test marked
  ``@pytest.mark.requires_roles("log_collector", ...)`` runs on no host of an inventory without
  a host of each of those roles (it is left out, like a test of a role the inventory lacks).
* Every test that asks for ``probe`` runs once per pair of the reachability matrix
  (:func:`municloud.policy.matrix`: one test id per source, destination, service and expected
  outcome), with its clause.
* ``host`` is a testinfra host for that host, logged in as root by key over paramiko, with the
  host's key checked against known_hosts (the lab's, .lab/<name>/known_hosts, by default).
  ``ssh_login(user)`` gives a paramiko client for any user, for tests about logins themselves;
  ``interactive_login(user, password, code)`` logs in as staff do on multi-factor hosts.
* Every test here is marked ``lab`` and must carry ``@pytest.mark.clause("<id>")`` with an id from
  :mod:`municloud.clauses`; collection stops on a missing or unknown one.
* With ``--junitxml``, each test case records its host, municipality and clause as JUnit
  properties; ``municloud report`` turns them into a summary per municipality and clause, and
  with ``--out`` into pages per municipality (docs/report.md).
* ``evidence(probed, got, on=None)`` records what a test probed, on which host (the test's own
  by default) and what came back, as a JUnit property ``evidence`` (JSON), shown in the report
  under the test case; a failure's message is shown there too.

The key is testinfra's ``--ssh-identity-file``, by default the lab's .lab/<name>/id_ed25519.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import testinfra.host
import yaml
from testinfra.backend.paramiko import ParamikoBackend

from municloud import clauses, policy
from municloud import probe as municloud_probe
from municloud.inventory import Host, InventoryError, Prefecture, load

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BASELINE_DEFAULTS = REPO / "roles" / "baseline" / "defaults" / "main.yml"
SSH_TIMEOUT = 10

_PREFECTURE = pytest.StashKey[Prefecture]()


# --- the inventory and its hosts ---------------------------------------------------------------


def _inventory_path(config: pytest.Config) -> Path:
    path = Path(config.getoption("inventory"))
    return path if path.is_absolute() else (Path(config.invocation_params.dir) / path)


def _prefecture(config: pytest.Config) -> Prefecture:
    if _PREFECTURE not in config.stash:
        try:
            config.stash[_PREFECTURE] = load(_inventory_path(config))
        except InventoryError as exc:
            raise pytest.UsageError(f"--inventory: the inventory is not valid:\n{exc}") from None
    return config.stash[_PREFECTURE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lab_host" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("roles")
        segments = metafunc.definition.get_closest_marker("segments")
        required = metafunc.definition.get_closest_marker("requires_roles")
        prefecture = _prefecture(metafunc.config)
        present = {h.role.value for h in prefecture.hosts}
        hosts = [h for h in prefecture.hosts
                 if (marker is None or h.role.value in marker.args)
                 and (segments is None or (h.segment is not None
                                           and h.segment.value in segments.args))
                 and (required is None or set(required.args) <= present)]
        metafunc.parametrize("lab_host", hosts, ids=[h.name for h in hosts], scope="session")
    if "probe" in metafunc.fixturenames:
        probes = policy.matrix(_prefecture(metafunc.config))
        metafunc.parametrize("probe", [
            pytest.param(p, id=p.id, marks=pytest.mark.clause(p.clause))
            for p in probes
        ])


@pytest.fixture(scope="session")
def prefecture(request: pytest.FixtureRequest) -> Prefecture:
    return _prefecture(request.config)


@pytest.fixture(scope="session")
def inventory_path(request: pytest.FixtureRequest) -> Path:
    """The inventory directory (or file) as --inventory names it, made absolute."""
    return _inventory_path(request.config)


@pytest.fixture(scope="session")
def host_vars(inventory_path: Path) -> Callable[[str], dict[str, Any]]:
    """``host_vars(name)``: the host's variables as Ansible resolves them from the inventory
    (hosts.yml, group_vars, host_vars), with ``ansible-inventory --host``; read once per host."""

    @functools.cache
    def read(name: str) -> dict[str, Any]:
        tool = Path(sys.executable).with_name("ansible-inventory")
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
        listed = subprocess.run([str(tool), "-i", str(inventory_path), "--host", name], cwd=REPO,
                                env=env, capture_output=True, text=True, check=True)
        return dict(json.loads(listed.stdout))

    return read


@pytest.fixture(scope="session")
def admin_user(request: pytest.FixtureRequest) -> str:
    """The management account: --admin-user, else the baseline role's default."""
    user = request.config.getoption("admin_user")
    if user:
        return str(user)
    defaults = yaml.safe_load(BASELINE_DEFAULTS.read_text(encoding="utf-8"))
    return str(defaults["baseline_admin_user"])


# --- marks: every test is a lab test and names its clause ---------------------------------------


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so `-m "not lab"` sees the mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = []
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.lab)
        marker = item.get_closest_marker("clause")
        if marker is None or len(marker.args) != 1:
            problems.append(f"{item.nodeid}: no @pytest.mark.clause(\"<id>\"); every acceptance "
                            "test names the clause it proves (ids: municloud/clauses.py)")
            continue
        try:
            clauses.get(marker.args[0])
        except KeyError as exc:
            problems.append(f"{item.nodeid}: {exc.args[0]}")
    if problems:
        raise pytest.UsageError("\n".join(sorted(set(problems))))
    # A test of a role the inventory has no host of (e.g. the update relay's, on a prefecture
    # without delivery servers) has nothing to prove there: it is left out, not reported as a
    # skip that would read as a gap in the evidence.
    empty = [item for item in items if HERE in item.path.parents
             and any(str(m.kwargs.get("reason", "")).startswith("got empty parameter set")
                     for m in item.iter_markers("skip"))]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [item for item in items if item not in empty]


@pytest.fixture(autouse=True)
def _evidence(request: pytest.FixtureRequest,
              record_property: Callable[[str, object], None]) -> None:
    """Record host, municipality and clause of this test case (JUnit properties)."""
    node = request.node
    marker = node.get_closest_marker("clause")
    if marker is not None:
        clause = clauses.get(marker.args[0])
        record_property("clause", clause.id)
        record_property("clause_title", clause.title)
    callspec = getattr(node, "callspec", None)
    lab_host = callspec.params.get("lab_host") if callspec else None
    probe = callspec.params.get("probe") if callspec else None
    pref = _prefecture(request.config)
    if isinstance(probe, policy.Probe):
        # A probe is evidence for the municipality whose matrix it belongs to, made on its source.
        record_property("inventory", pref.name)
        record_property("host", probe.source.name)
        record_property("address", str(probe.source.primary_address))
        record_property("probe_group", probe.group)
        record_property("probe_expected", "allow" if probe.expected else "deny")
        record_property("probe", f"{probe.source.name} -> {probe.address}"
                                 f"{':' + str(probe.port) if probe.port else ' (ping)'}")
        if probe.group == policy.SHARED_GROUP:
            record_property("municipality_code", pref.code)
            record_property("municipality_name", pref.name_ja)
        else:
            m = pref.municipality(probe.group)
            record_property("municipality_code", m.code)
            record_property("municipality_name", m.name_ja)
            record_property("municipality_model", m.model.value)
        return
    if not isinstance(lab_host, Host):
        return
    record_property("inventory", pref.name)
    record_property("host", lab_host.name)
    record_property("address", str(lab_host.primary_address))
    if lab_host.municipality is None:  # a shared host of the prefecture (security cloud, ...)
        record_property("municipality_code", pref.code)
        record_property("municipality_name", pref.name_ja)
        return
    municipality = next(m for m in pref.municipalities if m.group == lab_host.municipality)
    record_property("municipality_code", municipality.code)
    record_property("municipality_name", municipality.name_ja)
    record_property("municipality_model", municipality.model.value)


class Evidence:
    """``evidence(probed, got, on=None)``: record what the test probed, on which host (a Host,
    a name, ``evidence.runner`` for the machine running the tests, or by default the test's own
    host: its ``lab_host``, a probe's source) and what came back, as one JUnit property
    ``evidence`` (JSON). Call it before the assertion, so that a failure keeps it; never record
    secrets."""

    runner = "test runner (management address)"
    limit = 2000  # characters of one ``got`` kept in the JUnit XML

    def __init__(self, record_property: Callable[[str, object], None], own: str) -> None:
        self._record = record_property
        self._own = own

    def __call__(self, probed: str, got: object, on: Host | str | None = None) -> None:
        where = on.name if isinstance(on, Host) else (on or self._own)
        text = got if isinstance(got, str) else json.dumps(got, ensure_ascii=False, default=str)
        if len(text) > self.limit:
            text = f"{text[:self.limit]} [... {len(text) - self.limit} more characters]"
        self._record("evidence", json.dumps({"probed": probed, "on": where, "got": text},
                                            ensure_ascii=False))


@pytest.fixture
def evidence(request: pytest.FixtureRequest,
             record_property: Callable[[str, object], None]) -> Evidence:
    """An :class:`Evidence` for this test case."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    own = params.get("lab_host")
    if isinstance(params.get("probe"), policy.Probe):
        own = params["probe"].source
    return Evidence(record_property, own.name if isinstance(own, Host) else Evidence.runner)


# --- SSH: keys, host keys, logins ----------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_identity_file(request: pytest.FixtureRequest) -> Path:
    given = request.config.getoption("ssh_identity_file")  # testinfra's own option
    lab = REPO / ".lab" / _prefecture(request.config).name
    path = Path(given) if given else lab / "id_ed25519"
    if not path.is_file():
        pytest.fail(f"no SSH key at {path}: start the lab (municloud lab up --inventory ...) or "
                    "pass --ssh-identity-file", pytrace=False)
    return path


@pytest.fixture(scope="session")
def known_hosts(request: pytest.FixtureRequest) -> Path:
    given = request.config.getoption("known_hosts")
    lab = REPO / ".lab" / _prefecture(request.config).name
    path = Path(given) if given else lab / "known_hosts"
    if not path.is_file():
        pytest.fail(f"no known_hosts at {path}: `municloud lab up` records the lab hosts' keys "
                    "there; for real hosts pass --known-hosts", pytrace=False)
    return path


def ssh_client(known_hosts: Path) -> paramiko.SSHClient:
    """A paramiko client that trusts only the host keys in ``known_hosts`` (nothing else)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def key_login(address: str, user: str, key: Path, known_hosts: Path) -> paramiko.SSHClient:
    """Log in as ``user`` with ``key`` only (no agent, no other keys, no password)."""
    client = ssh_client(known_hosts)
    client.connect(address, username=user, key_filename=str(key), look_for_keys=False,
                   allow_agent=False, timeout=SSH_TIMEOUT, banner_timeout=SSH_TIMEOUT,
                   auth_timeout=SSH_TIMEOUT)
    return client


class _VerifiedParamikoBackend(ParamikoBackend):  # type: ignore[misc]
    """testinfra's paramiko backend, but checking the host key against a known_hosts file
    (testinfra's own accepts any host key with a warning) and using one key only."""

    def __init__(self, hostspec: str, known_hosts: Path, key: Path) -> None:
        super().__init__(hostspec, ssh_identity_file=str(key), timeout=SSH_TIMEOUT)
        self._known_hosts = known_hosts
        self._key = key

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        return key_login(self.host.name, self.host.user, self._key, self._known_hosts)


_TESTINFRA_HOSTS: dict[str, testinfra.host.Host] = {}


@pytest.fixture
def host(lab_host: Host, ssh_identity_file: Path, known_hosts: Path) -> testinfra.host.Host:
    """A testinfra host for ``lab_host``, as root (inspection), one connection per host."""
    if lab_host.name not in _TESTINFRA_HOSTS:
        address = str(lab_host.primary_address)
        backend = _VerifiedParamikoBackend(f"root@{address}", known_hosts,
                                           ssh_identity_file)
        try:
            backend.client  # noqa: B018 - connect now, to fail with a message for people
        except (OSError, paramiko.SSHException) as exc:
            pytest.fail(f"{lab_host.name}: cannot log in as root at {address} with "
                        f"{ssh_identity_file}: {exc!r}. Is the lab up? "
                        "(municloud lab status --inventory ...)", pytrace=False)
        _TESTINFRA_HOSTS[lab_host.name] = testinfra.host.Host(backend)
    return _TESTINFRA_HOSTS[lab_host.name]


@pytest.fixture(scope="session")
def run_as_root(ssh_identity_file: Path,
                known_hosts: Path) -> Callable[..., tuple[int, str, str]]:
    """``run_as_root(host, command, stdin=None, timeout=60)``: run ``command`` on any host of the
    inventory over a new SSH login as root (key, host key checked): (status, stdout, stderr)."""

    def run(target: Host, command: str, stdin: str | None = None,
            timeout: float = 60) -> tuple[int, str, str]:
        client = key_login(str(target.primary_address), "root", ssh_identity_file, known_hosts)
        try:
            channel_in, out, err = client.exec_command(command, timeout=timeout)
            if stdin is not None:
                channel_in.write(stdin)
            channel_in.channel.shutdown_write()
            text, errors = out.read().decode(), err.read().decode()
            return out.channel.recv_exit_status(), text, errors
        finally:
            client.close()

    return run


class Login:
    """A logged-in paramiko client; ``run(command)`` gives exit status, stdout and stderr."""

    def __init__(self, client: paramiko.SSHClient) -> None:
        self.client = client

    def run(self, command: str) -> tuple[int, str, str]:
        _, stdout, stderr = self.client.exec_command(command, timeout=SSH_TIMEOUT)
        status = stdout.channel.recv_exit_status()
        return status, stdout.read().decode(), stderr.read().decode()


@pytest.fixture
def ssh_connect(lab_host: Host, known_hosts: Path) -> Iterator[Callable[..., Login]]:
    """``ssh_connect(user, **kwargs)``: a new SSH login to ``lab_host`` as ``user``, with the host
    key checked and only the credentials in ``kwargs`` (paramiko's ``connect`` arguments, e.g.
    ``key_filename`` or ``password``): no agent, no keys from ~/.ssh. Raises what paramiko
    raises when the login is refused. Closed after the test."""
    opened: list[paramiko.SSHClient] = []

    def connect(user: str, **kwargs: Any) -> Login:
        client = ssh_client(known_hosts)
        opened.append(client)
        client.connect(str(lab_host.primary_address), username=user, look_for_keys=False,
                       allow_agent=False, timeout=SSH_TIMEOUT, banner_timeout=SSH_TIMEOUT,
                       auth_timeout=SSH_TIMEOUT, **kwargs)
        return Login(client)

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def ssh_login(ssh_connect: Callable[..., Login], ssh_identity_file: Path) -> Callable[[str], Login]:
    """``ssh_login(user)``: a key login as ``user`` with the automation key."""
    return functools.partial(ssh_connect, key_filename=str(ssh_identity_file))


@pytest.fixture
def interactive_login(lab_host: Host, known_hosts: Path) -> Iterator[Callable[..., Any]]:
    """``interactive_login(user, password, code)``: a keyboard-interactive SSH login to
    ``lab_host``, as staff log in to a host with multi-factor login: ``password`` answers the
    password prompt, ``code`` the one-time password prompt (pam_oath's). Returns (Login, or
    None when refused; the prompts the server asked). Closed after the test."""
    opened: list[paramiko.Transport] = []

    def login(user: str, password: str, code: str) -> tuple[Login | None, list[str]]:
        address = str(lab_host.primary_address)
        prompts: list[str] = []

        def answer(title: str, instructions: str, asked: list[tuple[str, bool]]) -> list[str]:
            prompts.extend(p for p, _ in asked)
            return [code if "One-time" in p else password for p, _ in asked]

        transport = paramiko.Transport((address, 22))
        opened.append(transport)
        transport.start_client(timeout=SSH_TIMEOUT)
        _check_host_key(address, transport.get_remote_server_key(), known_hosts)
        try:
            transport.auth_interactive(user, answer)
        except paramiko.AuthenticationException:
            return None, prompts
        client = paramiko.SSHClient()
        client._transport = transport  # an SSHClient over the transport just authenticated
        return Login(client), prompts

    yield login
    for transport in opened:
        transport.close()


@pytest.fixture
def auth_methods(lab_host: Host, known_hosts: Path) -> Callable[[str], list[str]]:
    """``auth_methods(user)``: the authentication methods the server offers ``user``, as the
    server says in answer to an SSH "none" authentication request (RFC 4252, 5.2)."""

    def ask(user: str) -> list[str]:
        address = str(lab_host.primary_address)
        transport = paramiko.Transport((address, 22))
        try:
            transport.start_client(timeout=SSH_TIMEOUT)
            _check_host_key(address, transport.get_remote_server_key(), known_hosts)
            try:
                transport.auth_none(user)
            except paramiko.BadAuthenticationType as exc:
                return list(exc.allowed_types)
            return ["none"]  # the server let us in with no authentication at all
        finally:
            transport.close()

    return ask


def _check_host_key(address: str, key: paramiko.PKey, known_hosts: Path) -> None:
    known = paramiko.HostKeys(str(known_hosts)).lookup(address) or {}
    if known.get(key.get_name()) != key:
        raise paramiko.SSHException(f"{address}: host key {key.get_name()} "
                                    f"{key.fingerprint} is not the one in {known_hosts}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The size of the reachability matrix per municipality: allowed and denied pairs probed."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call":
                continue
            props = dict(getattr(report, "user_properties", []))
            group = props.get("probe_group")
            if group is None:
                continue
            row = counts.setdefault(str(group), {})
            key = f"{props['probe_expected']} {outcome}"
            row[key] = row.get(key, 0) + 1
    if not counts:
        return
    terminalreporter.section("reachability matrix: pairs probed per municipality")
    for group, row in counts.items():
        allowed = row.get("allow passed", 0) + row.get("allow failed", 0)
        denied = row.get("deny passed", 0) + row.get("deny failed", 0)
        failed = row.get("allow failed", 0) + row.get("deny failed", 0)
        terminalreporter.write_line(
            f"{group}: {allowed + denied} probed, {allowed} allowed, {denied} denied"
            + (f", {failed} NOT AS THE POLICY SAYS" if failed else ", all as the policy says"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    for h in _TESTINFRA_HOSTS.values():
        h.backend.client.close()
    _TESTINFRA_HOSTS.clear()


# --- the reachability matrix (tests/acceptance/test_segmentation.py) ---------------------------


@pytest.fixture(scope="session")
def matrix(prefecture: Prefecture) -> list[policy.Probe]:
    return policy.matrix(prefecture)


@pytest.fixture(scope="session")
def probe_results(
    matrix: list[policy.Probe],
    run_as_root: Callable[..., tuple[int, str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, str]]:
    """The whole matrix probed once per test run, whatever the number of xdist workers: the
    first worker to ask probes (under a lock) and writes the results where the others read.

    A test that stops a service the matrix probes (e.g. the log collector's restart test) asks
    for this fixture first, so the matrix is complete before the service goes away."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "reachability.json"
    with (shared / "reachability.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            path.write_text(json.dumps(municloud_probe.probe_all(matrix, run_as_root)))
    return dict(json.loads(path.read_text()))
