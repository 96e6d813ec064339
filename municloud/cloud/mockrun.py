"""Run a Pulumi program in-process under ``pulumi.runtime.set_mocks`` and record its whole graph.

This is how the cloud programs are proven on machines where neither the Pulumi engine nor the AWS
provider plugin can be installed (docs/architecture.md, "The clouds"). It is used by the tests, by
``municloud cloud plan`` and by ``benchmarks/cloud_plan.py``: one harness, so that what the tests
prove is what the plan prints.

The known traps of mock testing are handled here, once:

- nothing registers without ``set_mocks``, and nothing is recorded unless the program runs inside
  ``run_pulumi_func`` (what ``@pulumi.runtime.test`` does): :func:`run_program` does both;
- mock inputs are camelCase (the provider's wire names), so the recorded ``props`` are too, which
  is also what the CrossGuard policy pack sees;
- outputs the mock does not return become None: :class:`RecordingMocks` returns the inputs plus
  the outputs the programs read (ids, ARNs, the VPN's transit gateway attachment id, the
  firewall's endpoints), each derived from the resource's name so runs are deterministic.

A caller should still assert that the graph is not empty: an empty graph proves nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

ACCOUNT_ID = "123456789012"  # a documentation account id; no account is consulted
DEFAULT_REGION = "ap-northeast-1"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"
UNKNOWN = rpc.UNKNOWN  # what the wire format carries for a value a preview does not know yet


@dataclass
class Resource:
    """One registered resource: custom (a cloud resource), provider, or component."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None  # parent URN; None for children of the stack
    props: dict[str, Any]  # inputs and the mock's outputs, camelCase as on the wire
    provider: str | None = None  # provider reference (URN::id), if any
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)

    @property
    def id(self) -> str | None:
        value = self.props.get("id")
        return value if isinstance(value, str) else None

    @property
    def tags(self) -> dict[str, str]:
        """The resource's tags; an auto scaling group's tag list is read as a mapping."""
        tags = self.props.get("tags")
        if isinstance(tags, Mapping):
            return {str(k): str(v) for k, v in tags.items()}
        if isinstance(tags, list):
            return {str(t.get("key")): str(t.get("value")) for t in tags if isinstance(t, Mapping)}
        return {}

    @property
    def is_provider(self) -> bool:
        return self.type.startswith(PROVIDER_TYPE_PREFIX)


@dataclass
class Graph:
    """The recorded resources of one program run, in registration order."""

    project: str
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Resource]:
        return {r.urn: r for r in self.resources}

    def children(self, urn: str | None) -> list[Resource]:
        return [r for r in self.resources if r.parent == urn]

    def ancestors(self, resource: Resource) -> list[Resource]:
        index = self.by_urn()
        out: list[Resource] = []
        parent = resource.parent
        while parent and parent in index:
            out.append(index[parent])
            parent = index[parent].parent
        return out

    @property
    def cloud_resources(self) -> list[Resource]:
        """Custom resources that a provider creates in the cloud (no providers, no components)."""
        return [r for r in self.resources if r.custom and not r.is_provider]


_SERVICE_RE = re.compile(r"^aws:([a-z0-9]+)/")


def _arn(type_: str, name: str, region: str) -> str:
    match = _SERVICE_RE.match(type_)
    service = match.group(1) if match else "unknown"
    kind = type_.rsplit(":", 1)[-1].lower()
    if service == "s3":
        return f"arn:aws:s3:::{name}"
    if service == "iam":
        return f"arn:aws:iam::{ACCOUNT_ID}:{kind}/{name}"
    return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{kind}/{name}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks with deterministic outputs derived from names; they answer the few invokes used.

    With ``preview``, they answer as a first ``pulumi preview`` of a new stack does: a resource
    to be created has no id and no computed outputs yet, only its inputs, so everything derived
    from an id or an ARN is unknown (and what a program builds inside ``apply`` on one is not
    registered at all, as in a real preview)."""

    def __init__(self, default_region: str = DEFAULT_REGION, preview: bool = False) -> None:
        self.default_region = default_region
        self.preview = preview
        self.provider_regions: dict[str, str] = {}  # provider id -> region

    def _region(self, args: _mocks.MockResourceArgs) -> str:
        if isinstance(args.inputs.get("region"), str):
            return str(args.inputs["region"])
        if args.provider:  # a reference is "<provider urn>::<provider id>"
            return self.provider_regions.get(args.provider.rsplit("::", 1)[-1],
                                             self.default_region)
        return self.default_region

    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        name, type_ = args.name, args.typ
        outputs: dict[str, Any] = dict(args.inputs)
        if type_.startswith(PROVIDER_TYPE_PREFIX):
            self.provider_regions[f"{name}-id"] = str(args.inputs.get("region",
                                                                      self.default_region))
            return f"{name}-id", outputs
        resource_id = f"{name}-id"
        if not args.custom:  # a component: nothing to invent
            return resource_id, outputs
        if self.preview:  # to be created: no id, nothing computed yet
            return "", outputs
        region = self._region(args)
        outputs.setdefault("arn", _arn(type_, name, region))
        outputs.setdefault("region", region)
        if type_ == "aws:ec2/vpnConnection:VpnConnection":
            outputs["transitGatewayAttachmentId"] = f"tgw-attach-{name}"
        elif type_ == "aws:networkfirewall/firewall:Firewall":
            mappings = args.inputs.get("subnetMappings") or []
            outputs["firewallStatuses"] = [{
                "syncStates": [
                    {"availabilityZone": f"az-of-{m.get('subnetId')}",
                     "attachments": [{"endpointId": f"vpce-{name}-{i}",
                                      "subnetId": m.get("subnetId")}]}
                    for i, m in enumerate(mappings)
                ],
            }]
        elif type_ == "aws:s3/bucket:Bucket":
            outputs.setdefault("bucket", name)
        elif type_ == "aws:kms/key:Key":
            outputs["keyId"] = resource_id
        return resource_id, outputs

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT_ID, "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/mock",
                    "userId": "mock", "id": ACCOUNT_ID}, []
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.default_region, "region": self.default_region,
                    "id": self.default_region}, []
        if token == "aws:ec2/getAmi:getAmi":
            return {"id": "ami-0mockdebian12", "imageId": "ami-0mockdebian12",
                    "architecture": "arm64"}, []
        return {}, []


class RecordingMonitor(_mocks.MockMonitor):
    """The mock monitor, also recording each registration's parent and property dependencies."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:
        # pulumi's MockMonitor is untyped
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        if request.type == "pulumi:pulumi:Stack":
            return response
        registration = self.resources[response.urn]
        props = _plain(registration.state)
        if request.custom:
            props.setdefault("id", registration.id or UNKNOWN)
        self.recorded.append(Resource(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            props=props,
            provider=request.provider or None,
            property_dependencies={k: list(v.urns)
                                   for k, v in request.propertyDependencies.items()},
        ))
        return response


def _plain(value: Any) -> Any:
    """Inputs as plain data: secrets unwrapped (their values are placeholders offline), values
    not known yet (a preview) as the wire format's unknown string."""
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _plain(value.get("value"))
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def config_value(value: Any) -> str:
    """A stack file's config value as the runtime holds it: strings as-is, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def run_program(
    program: Callable[[], Any],
    *,
    config: Mapping[str, Any],
    project: str,
    stack: str,
    secret_keys: list[str] | None = None,
    default_region: str | None = None,
    preview: bool = False,
) -> Graph:
    """Run ``program`` under mocks with ``config`` (``namespace:key`` -> value) and record it.

    Nothing here contacts a provider, an engine or a cloud account. Each call starts from a fresh
    root stack, so several programs can be run one after another in one process. ``preview``
    records what a first ``pulumi preview`` would send (see :class:`RecordingMocks`).
    """
    import time

    region = default_region or str(config.get("aws:region", DEFAULT_REGION))
    mocks = RecordingMocks(region, preview=preview)
    monitor = RecordingMonitor(mocks)
    ROOT.set(None)  # a fresh root stack for every run
    set_all_config({k: config_value(v) for k, v in config.items()}, secret_keys or [])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                             monitor=monitor)
    outputs: dict[str, Any] = {}

    def body() -> Any:
        result = program()
        return result if result is not None else {}

    settings = pulumi.runtime.settings.SETTINGS
    settings.rpc_manager.clear()
    settings.outputs.clear()
    started = time.perf_counter()
    _sync_await(run_pulumi_func(
        lambda: _sync_await(pulumi.Output.from_input(body()).future())))
    seconds = time.perf_counter() - started
    return Graph(project, stack, monitor.recorded, outputs, seconds)
