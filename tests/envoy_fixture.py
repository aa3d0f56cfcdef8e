"""A real Envoy running the dev stack's gateway configuration, with the demo products as upstreams, on loopback.

Shared by tests/test_envoy_gateway.py, tests/test_smoke.py and the governance benchmark.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tools.engine.envoy_gateway import LOOPBACK, Envoy, gateway_bootstrap, routes_from_virtual_services
from tools.engine.mockrun import RunResult
from tools.engine.render import is_manifest, manifest
from tools.engine.stackconfig import load_stack_config

ROOT = Path(__file__).resolve().parent.parent
DEMO_SERVER = ROOT / "products" / "demo" / "server.py"
# The demo server's role per product, and the body each role answers.
ROLES = {"customer-features": "features", "revenue-predictor": "predictor", "customer-revenue": "process"}
PATHS = {
    "features": "/public/api/v1/customer-features/features/lookup",
    "predictor": "/public/api/v1/revenue-predictor/revenue/predict",
    "process": "/public/api/v1/customer-revenue/revenue/predict",
}
BODIES = {
    "features": {"data": {"customerId": "42"}},
    "predictor": {"features": {"tenureMonths": 12, "ordersLastYear": 5, "avgBasket": 40.0}},
    "process": {"customerId": "42"},
}


def stack_keys(stack_file: Path | None = None, stack: str = "dev") -> dict[str, list[str]]:
    """The keys the render saw for each consumer: the stack file's secure values as the render unseals them."""
    cfg = load_stack_config(ROOT, stack, stack_file)
    return json.loads(cfg.values["datamesh:apiKeys"])


def basic(key: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


@dataclass
class Upstream:
    """One demo product server in this process, remembering the headers of every request it served."""

    role: str
    server: ThreadingHTTPServer
    seen: list[dict[str, list[str]]] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_port}"


def _demo_module(role: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"demo_server_{role}", DEMO_SERVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROLE = role
    return module


def _start(role: str, env: dict[str, str]) -> Upstream:
    module = _demo_module(role)
    seen: list[dict[str, list[str]]] = []

    class Recording(module.Handler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's handler name)
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            seen.append(headers)
            super().do_POST()

        def log_message(self, *args: object) -> None:
            pass

    # The process role reads its upstreams' URLs from os.environ, as in a pod; this copy's environment is its own.
    module.os = types.SimpleNamespace(environ=dict(env))
    server = ThreadingHTTPServer((LOOPBACK, 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Upstream(role, server, seen)


@contextmanager
def demo_upstreams() -> Iterator[dict[str, Upstream]]:
    """The three demo products on loopback; the process API calls the other two directly."""
    started: dict[str, Upstream] = {}
    try:
        started["features"] = _start("features", {})
        started["predictor"] = _start("predictor", {})
        urls = {"UPSTREAM_CUSTOMER_FEATURES_URL": started["features"].url,
                "UPSTREAM_REVENUE_PREDICTOR_URL": started["predictor"].url}
        started["process"] = _start("process", urls)
        yield started
    finally:
        for upstream in started.values():
            upstream.server.shutdown()
            upstream.server.server_close()


def gateway_objects(result: RunResult) -> list[dict[str, Any]]:
    """The Kubernetes objects of a render, from the inputs as registered (only secret-marked values are masked)."""
    return [manifest(r) for r in result.resources if is_manifest(r)]


def cluster_addresses(objects: list[dict[str, Any]], upstreams: dict[str, Upstream]) -> dict[str, tuple[str, int]]:
    """Each routed product's cluster, pointed at its demo server."""
    addresses = {}
    for route in routes_from_virtual_services(objects):
        addresses[route["route"]["cluster"]] = upstreams[ROLES[route["name"]]].address
    return addresses


@contextmanager
def running_gateway(result: RunResult, upstreams: dict[str, Upstream], **options: Any) -> Iterator[Envoy]:
    objects = gateway_objects(result)
    with Envoy(gateway_bootstrap(objects, cluster_addresses(objects, upstreams), **options)) as envoy:
        yield envoy


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def call(port: int, product: str, headers: list[tuple[str, str]] | None = None, path: str | None = None) -> Reply:
    """POST the demo body for ``product`` through the gateway on ``port``, on a new connection.

    ``headers`` is a list of pairs, so a header can be sent twice.
    """
    body = json.dumps(BODIES[ROLES[product]]).encode()
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        connection.putrequest("POST", path or PATHS[ROLES[product]])
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
