"""Run the Pulumi program under the SDK's mock runtime and record what it registers.

This is how the program runs without the Pulumi CLI, a cloud account or a
network: the offline render and the tests both go through ``run_program``.
A recording monitor keeps every registration request as the engine would see
it: parent, provider, dependencies (explicit and through inputs) and the
inputs with secrets still marked, so the render can mask them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import inspect
import logging
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as sdk_resource
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import provider_pb2, resource_pb2, source_pb2
from pulumi.runtime.settings import get_root_resource, reset_options
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from components.documents import Document, DocumentView
from tools.engine.placeholders import PlaceholderMocks

SECRET = "[secret]"
UNKNOWN = "[unknown]"
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


class _InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each call at once, on the calling thread (the event loop's), and hands back a finished future.

    The SDK sends every RPC to the loop's default executor so a real monitor's network wait does not block the
    loop. The recording monitor waits for nothing (below), so the hand-off to a worker thread and back, two
    thread switches per call under the GIL, is pure cost: about a tenth of a 200-product render."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # the SDK reads it from the future, as from a worker thread's
            future.set_exception(exc)
        return future


_INLINE = _InlineExecutor(max_workers=1)
_THREADS = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="mockrun")  # starts threads only when used


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also keeps each request's parent, provider and dependencies.

    It answers registrations and invokes without awaiting anything (the SDK's MockMonitor runs a coroutine on the
    caller's event loop for each), so the SDK may call it on the event loop's own thread (``inline``). A monitor
    whose answers await, the SDK's own, must run with ``inline`` False: a nested pump of the loop from inside a
    task deadlocks once two nested calls wait on each other."""

    inline = True

    def __init__(self, mocks: PlaceholderMocks) -> None:
        super().__init__(mocks)
        self.mocks: PlaceholderMocks = mocks
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
        placeholders the mocks add, which must be plain JSON values; the mocks read only the inputs they need."""
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_event_loop()  # resource references deserialise into objects bound to a loop
        id_, added = self.mocks.placeholders(request.type, request.name, bool(request.custom), _WireInputs(request.object))
        if not _is_json(added):
            raise TypeError(f"{request.type} {request.name}: PlaceholderMocks.placeholders must add only JSON values "
                            "(the recording monitor copies the request and adds those)")
        answer = struct_pb2.Struct()
        answer.CopyFrom(request.object)
        answer.update(added)
        resource_id = id_ or ""  # none (a component's) is proto3's empty string
        # The SDK reads a registration's state only to answer pulumi:pulumi:getResource, which Invoke refuses.
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, {})
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=answer)

    def Invoke(self, request: resource_pb2.ResourceInvokeRequest) -> resource_pb2.ResourceInvokeResponse:  # noqa: N802 (gRPC name)
        """The SDK's MockMonitor answer, without its coroutine: the mocks' JSON result as a Struct (a top-level None
        left out, as the SDK's serialiser leaves it)."""
        if not self.inline:
            return super().Invoke(request)
        if request.tok == "pulumi:pulumi:getResource":
            raise NotImplementedError("offline render has no answer for invoke pulumi:pulumi:getResource")
        args = rpc.deserialize_properties(request.args)
        ret, failures = self.mocks.call(pulumi_mocks.MockCallArgs(token=request.tok, args=args, provider=request.provider))
        if not _is_json(ret):
            raise TypeError(f"invoke {request.tok}: PlaceholderMocks.call must answer with JSON values")
        answer = struct_pb2.Struct()
        answer.update({k: v for k, v in ret.items() if v is not None})
        return resource_pb2.ResourceInvokeResponse(
            failures=[provider_pb2.CheckFailure(property=p, reason=r) for p, r in failures or []], **{"return": answer})


class _WireInputs(Mapping[str, object]):
    """A request's inputs, each deserialised by the SDK only when read."""

    def __init__(self, struct: struct_pb2.Struct) -> None:
        self._struct = struct

    def __getitem__(self, key: str) -> object:
        if key not in self._struct.fields:
            raise KeyError(key)
        return rpc.deserialize_property(self._struct[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._struct.fields)

    def __len__(self) -> int:
        return len(self._struct.fields)


def _is_json(value: object) -> bool:
    """A plain JSON value (what ``Struct.update`` writes as the SDK's serialiser would)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    return value is None or (isinstance(value, (str, bool, int, float)) and value != rpc.UNKNOWN)


async def _resolve_outputs(exports: Document) -> Document:
    """The stack's exports as the engine shows them: a secret anywhere masks an export, an unknown marks it."""
    result: Document = {}
    for key, value in exports.items():
        found, secret, known = await _settled(value)
        result[key] = SECRET if secret else plain(found) if known else UNKNOWN
    return result


async def _settled(value: object) -> tuple[object, bool, bool]:
    """``value`` with every Output and awaitable in it awaited: (the value, a secret anywhere in it, known throughout).

    What ``Output.from_input`` would give, without its cost: it lifts every dict, list and string inside an Output's
    value into Outputs of their own (a 200-product catalog export is some 25,000 of them)."""
    if isinstance(value, pulumi.Output):
        secret, known = await value.is_secret(), await value.is_known()
        if not known:
            return None, secret, False
        inner, inner_secret, inner_known = await _settled(await value.future())
        return inner, secret or inner_secret, inner_known
    if inspect.isawaitable(value):
        return await _settled(await value)
    if isinstance(value, dict):
        items = [(k, await _settled(v)) for k, v in value.items()]
        return ({k: v for k, (v, _, _) in items}, any(s for _, (_, s, _) in items), all(k for _, (_, _, k) in items))
    if isinstance(value, (list, tuple)):
        elements = [await _settled(v) for v in value]
        return [v for v, _, _ in elements], any(s for _, s, _ in elements), all(k for _, _, k in elements)
    return value, False, True


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


# The cyclic collector's thresholds during a run (CPython's defaults: 700, 10, 10). A run allocates millions of
# short-lived objects (Outputs, futures, protobuf values) while everything it registered stays alive, so under
# the defaults full collections re-walk an ever larger heap: half of a 200-product render, growing with the
# square of its size. These keep collections to the young generations; garbage with cycles waits for the end.
_RUN_GC_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*_RUN_GC_THRESHOLDS)
    try:
        yield
    except BaseException:
        # A failed run leaves tasks and futures holding its exception in cycles; finalised at some later,
        # arbitrary collection they run code mid-way through whatever is running then (on CPython 3.11, an
        # ast.parse of pytest's import hook fails with "AST constructor recursion depth mismatch"). Here instead.
        gc.collect(1)
        raise
    finally:
        gc.set_threshold(*before)


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

    _ensure_event_loop().set_default_executor(_INLINE if monitor.inline else _THREADS)
    with _without_stack_traces(), _fewer_collections():
        _sync_await(run_pulumi_func(program_then_outputs))
    logger.removeHandler(warnings)
    seen: set[str] = set()
    for reg in monitor.registrations:
        if reg.urn in seen:  # the engine refuses a second resource with one URN; the mocks would not
            raise DuplicateResourceError(f"two resources share the URN {reg.urn}: a real pulumi preview refuses this")
        seen.add(reg.urn)
    return RunResult(resources=list(monitor.registrations), outputs=outputs, invokes=list(mocks.invokes),
                     warnings=[r.getMessage() for r in warnings.records])
