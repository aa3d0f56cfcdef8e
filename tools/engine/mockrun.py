"""Run the Pulumi program under the SDK's mock runtime and record what it registers.

This is how the program runs without the Pulumi CLI, a cloud account or a
network: the offline render and the tests both go through ``run_program``.
A recording monitor keeps every registration request as the engine would see
it: parent, provider, dependencies (explicit and through inputs) and the
inputs with secrets still marked, so the render can mask them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import runpy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2, source_pb2
from pulumi.runtime.settings import get_root_resource, reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from components.documents import Document, DocumentView

SECRET = "[secret]"
UNKNOWN = "[unknown]"
PLACEHOLDER_ACCOUNT = "000000000000"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Registration:
    """One RegisterResource request, as the engine would receive it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None
    dependencies: list[str]
    inputs: Document
    # Components (remote ones like eks:index:Cluster among them) get a map of providers instead.
    providers: dict[str, str] = field(default_factory=dict)
    deleted_with: str | None = None
    # Lifecycle options, as the engine receives them (protect is inherited from the parent by the SDK).
    protect: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    retain_on_delete: bool = False
    # Input paths whose changes the engine ignores on an existing resource (they apply at creation only).
    ignore_changes: list[str] = field(default_factory=list)
    # Each alias as sent: {"urn": ...} or the spec's fields ({"type": ...}, {"name": ...}, {"parentUrn": ...}).
    aliases: list[Document] = field(default_factory=list)

    def as_json(self) -> Document:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "custom": self.custom,
            "parent": self.parent,
            "provider": self.provider,
            "providers": self.providers,
            "dependencies": self.dependencies,
            "inputs": self.inputs,
            "deletedWith": self.deleted_with,
            "protect": self.protect,
            "replaceOnChanges": self.replace_on_changes,
            "deleteBeforeReplace": self.delete_before_replace,
            "ignoreChanges": self.ignore_changes,
            "retainOnDelete": self.retain_on_delete,
            "aliases": self.aliases,
        }


@dataclass
class RunResult:
    """Everything one mock run registered, in registration order, and the stack outputs."""

    resources: list[Registration]
    outputs: Document = field(default_factory=dict)
    # (token, arguments) of every invoke the program made, as the mocks answered them.
    invokes: list[tuple[str, Document]] = field(default_factory=list)
    # What the program logged with pulumi.log.warn, in order (the CLI shows these as warnings).
    warnings: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registration:
        found = [r for r in self.resources if r.type == type_ and r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} named {name}, found {len(found)}")
        return found[0]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.resources}


def plain(value: object) -> object:
    """A wire value as plain JSON: secrets masked, unknowns marked, resource references as URNs."""
    if isinstance(value, dict):
        sig = value.get(rpc._special_sig_key)
        if sig == rpc._special_secret_sig:
            return SECRET
        if sig == rpc._special_resource_sig:
            return {"$resource": value.get("urn")}
        if sig == rpc._special_output_value_sig:
            if value.get("secret"):
                return SECRET
            return plain(value["value"]) if "value" in value else UNKNOWN
        if sig in (rpc._special_asset_sig, rpc._special_archive_sig):
            return {"$asset": value.get("path") or value.get("uri") or "[inline]"}
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a double
    if value == rpc.UNKNOWN:
        return UNKNOWN
    return value


def plain_map(value: DocumentView) -> Document:
    """A resource's input properties as plain JSON (``plain`` of a map of properties is a map)."""
    found = plain(value)
    assert isinstance(found, dict)
    return found


def _alias(alias: Any) -> Document:
    """One alias of a RegisterResource request as JSON: its URN, or its spec's fields."""
    found = json_format.MessageToDict(alias)
    spec: Document = found.get("spec", found)
    return {key: value for key, value in spec.items() if value != ""}  # parentUrn "": the resource's own parent


class DuplicateResourceError(Exception):
    """The program registered two resources with one URN, or declared one Kubernetes object twice."""


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also keeps each request's parent, provider and dependencies."""

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: resource_pb2.RegisterResourceRequest) -> resource_pb2.RegisterResourceResponse:  # noqa: N802 (gRPC name)
        response = self._answer(request)
        deps = set(request.dependencies)
        for prop in request.propertyDependencies.values():
            deps.update(prop.urns)
        self.registrations.append(Registration(
            urn=response.urn,
            type=request.type,
            name=request.name,
            custom=bool(request.custom),
            parent=request.parent or None,
            provider=request.provider or None,
            dependencies=sorted(deps),
            inputs=plain_map(json_format.MessageToDict(request.object)),
            providers=dict(request.providers),
            deleted_with=request.deletedWith or None,
            protect=bool(request.protect),
            replace_on_changes=list(request.replaceOnChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
            retain_on_delete=bool(request.retainOnDelete),
            ignore_changes=list(request.ignoreChanges),
            aliases=[_alias(a) for a in request.aliases],
        ))
        return response


    def _answer(self, request: resource_pb2.RegisterResourceRequest) -> resource_pb2.RegisterResourceResponse:
        """The SDK's MockMonitor answer, built faster. The mocks echo a resource's inputs as its state and add a few
        placeholders; the SDK serialises that whole state again, through a coroutine run on an event loop of its
        own (a sixth of a 200-product render, sampled). Here the request's own wire object is the answer, plus the
        placeholders the mocks added or changed, when they are plain JSON values; otherwise the SDK answers."""
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_event_loop()  # resource references deserialise into objects bound to a loop
        inputs = rpc.deserialize_properties(request.object)
        id_, state = self.mocks.new_resource(pulumi_mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False,
            transforms=pulumi_mocks._resolve_callbacks(request.transforms)))
        changed = {k: v for k, v in state.items() if k not in inputs or v is not inputs[k]}
        if set(inputs) <= set(state) and all(_is_json(v) for v in changed.values()):
            answer = struct_pb2.Struct()
            answer.CopyFrom(request.object)
            answer.update(changed)
        else:
            answer = _sync_await(rpc.serialize_properties(state, {}))
        resource_id = id_ or ""  # none (a component's) is proto3's empty string
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=answer)


def _is_json(value: object) -> bool:
    """A plain JSON value (what ``Struct.update`` writes as the SDK's serialiser would)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    return value is None or (isinstance(value, (str, bool, int, float)) and value != rpc.UNKNOWN)


class PlaceholderMocks(pulumi_mocks.Mocks):
    """Answers for what only the cloud would know: visibly placeholders, never real-looking secrets."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.invokes: list[tuple[str, Document]] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, Document]:
        name, state = args.name, dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            return f"{name}-provider-id", state
        if args.typ == "eks:index:Cluster":
            issuer = f"oidc.eks.{self.region}.amazonaws.com/id/PLACEHOLDER"
            cluster = args.inputs.get("name", name)
            state.update({
                "kubeconfigJson": json.dumps({
                    "apiVersion": "v1", "kind": "Config",
                    "clusters": [{"name": cluster, "cluster": {"server": f"https://PLACEHOLDER.{self.region}.eks.amazonaws.com"}}],
                }),
                "oidcIssuer": issuer,
                "oidcProviderUrl": f"https://{issuer}",
                "oidcProviderArn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:oidc-provider/{issuer}",
                "clusterSecurityGroupId": "sg-PLACEHOLDER-cluster",
                "nodeSecurityGroupId": "sg-PLACEHOLDER-cluster",
            })
            return None, state
        if not args.custom:
            return None, state
        if args.typ.startswith("aws:"):
            service = args.typ.split(":")[1].split("/")[0]
            state.setdefault("arn", f"arn:aws:{service}:{self.region}:{PLACEHOLDER_ACCOUNT}:{name}")
            if args.typ in ("aws:iam/role:Role", "aws:iam/policy:Policy"):
                state.setdefault("name", f"{name}-PLACEHOLDER")
            if args.typ == "aws:ec2/launchTemplate:LaunchTemplate":
                state["latestVersion"] = 1
            if args.typ == "aws:kms/key:Key":
                state["keyId"] = f"{name}-PLACEHOLDER-key-id"
            if args.typ == "aws:ec2/instance:Instance":
                state["primaryNetworkInterfaceId"] = f"eni-{name}-PLACEHOLDER"
            if args.typ == "aws:eks/nodeGroup:NodeGroup":
                state.setdefault("nodeGroupName", f"{name}-PLACEHOLDER")
            if args.typ == "aws:acm/certificate:Certificate":
                state["domainValidationOptions"] = [{
                    "domainName": args.inputs.get("domainName"), "resourceRecordType": "CNAME",
                    "resourceRecordName": f"_PLACEHOLDER.{args.inputs.get('domainName')}.",
                    "resourceRecordValue": "_PLACEHOLDER.acm-validations.aws.",
                }]
            if args.typ == "aws:route53/record:Record":
                state["fqdn"] = args.inputs.get("name")
            if args.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
                state["primaryEndpointAddress"] = f"master.{name}-PLACEHOLDER.cache.amazonaws.com"
        if args.typ == "kubernetes:core/v1:Service" and state.get("spec", {}).get("type") == "LoadBalancer":
            state["status"] = {"loadBalancer": {"ingress": [
                {"hostname": f"PLACEHOLDER-{name}.elb.{self.region}.amazonaws.com"}
            ]}}
        return f"{name}-PLACEHOLDER-id", state

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[Document, list[tuple[str, str]] | None]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            # EKS answers with the default (or, with mostRecent, the newest) build for that Kubernetes version.
            addon, k8s = args.args["addonName"], args.args["kubernetesVersion"]
            return {"addonName": addon, "kubernetesVersion": k8s, "mostRecent": args.args.get("mostRecent"),
                    "version": f"v0.0.0-PLACEHOLDER-for-{k8s}", "id": f"{addon}-PLACEHOLDER-id"}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            # AWS's public parameters (the current Amazon Linux image): a placeholder value of the right kind.
            name = args.args["name"]
            return {"name": name, "type": "String", "value": "ami-0PLACEHOLDER0", "id": name, "arn": name,
                    "insecureValue": "ami-0PLACEHOLDER0", "version": 1}, []
        # Any other invoke is a new cloud lookup the render must learn to fake.
        raise NotImplementedError(f"offline render has no answer for invoke {args.token}")


def _resolve_outputs(exports: Document) -> Any:
    async def resolve() -> Document:
        result: Document = {}
        for key, value in exports.items():
            out = pulumi.Output.from_input(value)
            if await out.is_secret():
                result[key] = SECRET
            else:
                result[key] = plain(await out.future()) if await out.is_known() else UNKNOWN
        return result
    return resolve()


class _WarningCollector(logging.Handler):
    """Keeps the warnings the mock engine receives (pulumi.log.warn) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.WARNING:
            self.records.append(record)


@contextlib.contextmanager
def _without_stack_traces() -> Iterator[None]:
    """The SDK walks the Python stack at every registration to send the engine each resource's source position;
    no mock monitor reads them, and the walk was an eighth of a render's time (measured). Empty traces, for
    one run; the engine's own runs (tools.local_engine) keep them."""
    original = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = source_pb2.StackTrace
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original


def run_program(
    config: dict[str, str],
    secret_keys: list[str],
    stack: str,
    project: str = "datamesh",
    program: Path = PROJECT_ROOT / "__main__.py",
) -> RunResult:
    """Run ``program`` under mocks with ``config`` (full ``ns:key`` names, string values).

    Not a preview: with ``preview=False`` every apply runs, so nothing the
    program computes is left unknown. Exceptions the program raises
    (``ConfigError`` first among them) propagate after pending work settles.
    """
    reset_options(project=project, stack=stack, preview=False)
    set_all_config(dict(config), list(secret_keys))
    region = config.get("aws:region", "us-east-1")
    mocks = PlaceholderMocks(region)
    monitor = RecordingMonitor(mocks)
    warnings = _WarningCollector()
    logger = logging.getLogger(f"datamesh.mockrun.{id(warnings)}")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    logger.addHandler(warnings)
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor, logger=logger)
    outputs: Document = {}

    async def program_then_outputs() -> None:
        runpy.run_path(str(program), run_name="__main__")
        root = get_root_resource()
        outputs.update(await _resolve_outputs(dict(getattr(root, "outputs", {}))))

    with _without_stack_traces():
        _sync_await(run_pulumi_func(program_then_outputs))
    logger.removeHandler(warnings)
    seen: set[str] = set()
    for reg in monitor.registrations:
        if reg.urn in seen:  # the engine refuses a second resource with one URN; the mocks would not
            raise DuplicateResourceError(f"two resources share the URN {reg.urn}: a real pulumi preview refuses this")
        seen.add(reg.urn)
    return RunResult(resources=list(monitor.registrations), outputs=outputs, invokes=list(mocks.invokes),
                     warnings=[r.getMessage() for r in warnings.records])
