"""The policy pack as the Pulumi engine runs it, without the Pulumi CLI.

``pulumi preview --policy-pack pulumi/policy`` starts the pack's own program (``pulumi/policy``,
whose ``PolicyPack(...)`` serves pulumi_policy's analyzer over gRPC on a port it prints), then
sends it, over that gRPC connection, one ``Analyze`` request per resource and one
``AnalyzeStack`` request with every resource. The properties travel as a protobuf ``Struct`` in
Pulumi's wire format: values a preview does not know yet are sentinel strings, which the analyzer
turns into its unknown-checking proxies; lists and maps arrive as pulumi_policy's own proxy
types, not ``list`` and ``dict``.

:class:`PolicyAnalyzer` does exactly that, as the engine's side of the conversation: it starts
the pack's program as a child process, reads the port, and sends the recorded graph of a mocked
run (:mod:`municloud.cloud.mockrun`). So what the unit tests and ``municloud cloud plan`` judge is
what the rules see under the real engine (its deserialisation, its proxies, its handling of
unknowns), not a copy of it. The CLI itself cannot be installed on the project's machines; the
requests it would send are built here from the same recorded graph.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi.runtime.proto import analyzer_pb2_grpc

PACK_DIR = Path(__file__).resolve().parents[2] / "pulumi" / "policy"
START_TIMEOUT = 60.0

_LEVELS = {proto.ADVISORY: "advisory", proto.MANDATORY: "mandatory",
           proto.REMEDIATE: "remediate", proto.DISABLED: "disabled"}


class AnalyzerError(RuntimeError):
    """The pack's program did not start or did not answer as an analyzer."""


@dataclass
class PolicyResult:
    """One policy's verdict over a graph, as the engine would print it."""

    name: str
    description: str
    enforcement: str
    violations: list[tuple[str, str | None]] = field(default_factory=list)
    # Advisory diagnostics; during a preview, "can't run policy ... during preview" lands here.
    advisories: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations


def _struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    json_format.ParseDict(_wire(props), out)
    return out


def _wire(value: Any) -> Any:
    """Plain recorded data as JSON for a Struct (tuples as lists; anything else as a string)."""
    if isinstance(value, Mapping):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class PolicyAnalyzer:
    """The pack's program, started and spoken to as the engine does (a context manager)."""

    def __init__(self, pack_dir: Path = PACK_DIR) -> None:
        self.pack_dir = pack_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._stderr: Any = None

    def __enter__(self) -> PolicyAnalyzer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        main = self.pack_dir / "__main__.py"
        if not main.is_file():
            raise AnalyzerError(f"{self.pack_dir}: no __main__.py, so no policy pack to run")
        # As the analyzer plugin runs a Python pack: its directory as the program, unbuffered.
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key in ("PULUMI_PROJECT", "PULUMI_STACK", "PULUMI_DRY_RUN", "PULUMI_CONFIG"):
            env.pop(key, None)
        # stderr to a file, not a pipe nobody drains (a full pipe would stall the analyzer).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - open while the pack runs
        self._process = subprocess.Popen([sys.executable, "-u", str(self.pack_dir)],
                                         stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        port = self._read_port()
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            grpc.channel_ready_future(self._channel).result(timeout=START_TIMEOUT)
        except grpc.FutureTimeoutError as e:
            self.close()
            raise AnalyzerError(f"{self.pack_dir}: the analyzer on port {port} did not answer "
                                f"within {START_TIMEOUT:.0f} s") from e
        self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self._process.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        first = line[0].decode().strip() if line else ""
        if not first.isdigit():
            self._process.kill()
            self._process.wait(timeout=10)
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")
            raise AnalyzerError(f"{self.pack_dir}: the policy pack did not start as an analyzer "
                                f"(printed {first!r}):\n{err[-2000:]}")
        return int(first)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.kill()
            self._process.communicate(timeout=10)
            self._process = None
            self._stderr.close()

    # --- what the engine asks ----------------------------------------------------------------

    def info(self) -> Any:
        """``GetAnalyzerInfo``: the pack's name and each policy with its enforcement level."""
        return self._stub.GetAnalyzerInfo(empty_pb2.Empty())

    def plugin_version(self) -> str:
        return str(self._stub.GetPluginInfo(empty_pb2.Empty()).version)

    def analyze(self, resources: Iterable[Any]) -> list[PolicyResult]:
        """Every policy's verdict over ``resources`` (mockrun ``Resource`` records): one
        ``Analyze`` per cloud resource, then one ``AnalyzeStack`` over all, as in a deployment."""
        recorded = list(resources)
        info = self.info()
        results = {p.name: PolicyResult(p.name, p.description,
                                        _LEVELS.get(p.enforcementLevel, "advisory"))
                   for p in info.policies}
        names = {r.urn: r.name for r in recorded}
        stack: list[Any] = []
        for r in recorded:
            options = proto.AnalyzerResourceOptions(parent=r.parent or "")
            props = _struct(r.props)
            stack.append(proto.AnalyzerResource(
                type=r.type, properties=props, urn=r.urn, name=r.name, options=options,
                parent=r.parent or "",
                propertyDependencies={k: proto.AnalyzerPropertyDependencies(urns=v)
                                      for k, v in r.property_dependencies.items()}))
            if r.type.startswith(("pulumi:", "municloud:")) or not getattr(r, "custom", True):
                continue  # the engine analyses resources; components and providers carry no rules
            response = self._stub.Analyze(proto.AnalyzeRequest(
                type=r.type, properties=props, urn=r.urn, name=r.name, options=options))
            self._collect(response, results, names, default_urn=r.urn)
        response = self._stub.AnalyzeStack(proto.AnalyzeStackRequest(resources=stack))
        self._collect(response, results, names, default_urn=None)
        return list(results.values())

    @staticmethod
    def _collect(response: Any, results: dict[str, PolicyResult], names: Mapping[str, str],
                 default_urn: str | None) -> None:
        for d in response.diagnostics:
            result = results.setdefault(d.policyName, PolicyResult(d.policyName, d.description,
                                                                   "advisory"))
            # The analyzer prefixes the policy's description; the rule's own words follow it.
            message = d.message.split("\n", 1)[1] if "\n" in d.message else d.message
            urn: str | None = d.urn or default_urn
            if default_urn is not None and urn is not None and urn in names:
                message = f"{names[urn]}: {message}"  # a resource policy: name the resource
            level = d.enforcementLevel
            (result.violations if level in (proto.MANDATORY, proto.REMEDIATE)
             else result.advisories).append((message, urn))


_shared: PolicyAnalyzer | None = None
_shared_lock = threading.Lock()


def shared_analyzer() -> PolicyAnalyzer:
    """One analyzer per process (starting the pack costs about a second); closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            import atexit

            _shared = PolicyAnalyzer()
            _shared.start()
            atexit.register(_shared.close)
        return _shared
