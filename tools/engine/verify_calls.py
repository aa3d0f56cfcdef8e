"""What tools.verify checks against: the stack's declared intent, and how it calls a gateway (see verify.py)."""

from __future__ import annotations

import base64
import http.client
import json
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from components.config import RateLimitSettings, load_settings
from components.documents import Document
from components.governance.access import Access, Consumer, is_undecrypted, stack_access
from components.governance.global_limits import ENFORCED_RUNTIME_KEY as GLOBAL_ENFORCED_RUNTIME_KEY
from components.products.declarations import Product, load_products
from components.ratelimit import RateLimit
from tools.engine.envoy_proc import LOOPBACK
from tools.engine.mesh_harness import GatewayEnvoy, MeshHarness
from tools.engine.stackconfig import load_stack_config

CONSUMER_HEADER = "x-datamesh-consumer"
RATE_LIMITED_HEADER = "x-datamesh-rate-limited"
WRONG_KEY = "not-a-key-of-this-stack"
ENFORCED_RUNTIME_KEY = "local_rate_limit_enforced"
DEFAULT_SAMPLES = 400
SIGMAS = 4
HOSTILE_BUDGET_MS = 50
HOSTILE_BYTES = 60_000  # under Envoy's default 60 KiB request-header limit: it reaches the key filter
# istiod sets include_request_attempt_count on every virtual host, and an EnvoyFilter MERGE cannot turn a
# proto3 boolean off: the backend sees x-envoy-attempt-count (the retry number, nothing about client or mesh).
ALLOWED_AT_BACKEND = frozenset({"x-envoy-attempt-count"})
SPOOFED = {"forwarded": "for=203.0.113.9", "x-real-ip": "203.0.113.9", "x-forwarded-for": "203.0.113.9",
           "x-envoy-peer-metadata": "Cg==", "x-envoy-peer-metadata-id": "sidecar~1.2.3.4~x.y~y.svc.cluster.local",
           "x-envoy-external-address": "203.0.113.9"}


@dataclass(frozen=True)
class Intent:
    """What the stack declares: products (validated, with overrides) and consumers with keys and tiers."""

    stack: str
    products: tuple[Product, ...]
    access: Access
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)

    @property
    def callers(self) -> list[Consumer]:
        """Consumers whose key can open anything: decrypted, or a test key (an undecrypted one opens nothing)."""
        return [c for c in self.access.consumers if c.keys and not is_undecrypted(c.keys[0])]

    def consumers_of(self, product: str) -> list[Consumer]:
        """The callers that may call ``product``."""
        return [c for c in self.callers if product in c.products]


def intent(project: Path, stack: str, stack_file: Path | None = None, keys: Mapping[str, list[str]] | None = None) -> Intent:
    """The stack's declared intent, read with the program's own parsers (raises their errors on bad input).

    ``keys``: the test keys the render was made with (``tools.render --test-keys``), in place of the
    stack file's undecrypted placeholders.
    """
    config = load_stack_config(project, stack, stack_file)
    prefix = "datamesh:"
    raw = {k[len(prefix):]: v for k, v in config.values.items() if k.startswith(prefix)}
    secret = frozenset(k[len(prefix):] for k in config.secret_keys if k.startswith(prefix))
    if keys is not None:
        raw["apiKeys"] = json.dumps(keys)
    settings = load_settings(raw, stack, config.values.get("aws:region"), secret)
    products = load_products(project / "products", settings.products, settings.product_overrides,
                             allow_wildcard_iam=settings.allow_wildcard_iam)
    return Intent(stack, products, stack_access(settings, products), settings.governance.rate_limits)


@dataclass
class Case:
    kind: str
    consumer: str | None
    product: str
    via: str | None
    release: str | None
    expect: str
    got: str = ""
    ok: bool | None = None
    fault: str | None = None  # what was broken while the case ran (global mode: "redis-stopped")

    def report(self) -> Document:
        out = {"case": self.kind, "consumer": self.consumer, "product": self.product, "via": self.via,
               "release": self.release, "expect": self.expect, "got": self.got, "ok": self.ok}
        return out if self.fault is None else {**out, "fault": self.fault}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    echo: Document | None
    body_size: int = 0


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def call(gateway: GatewayEnvoy, path: str, key: str | None, extra: dict[str, str] | None = None,
         authorization: str | None = None) -> Reply:
    connection = http.client.HTTPConnection(LOOPBACK, gateway.port, timeout=15)
    try:
        headers = {"content-type": "application/json", **(extra or {})}
        if key is not None:
            headers["authorization"] = basic(key)
        if authorization is not None:
            headers["authorization"] = authorization
        connection.request("POST", path, body=b"{}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        echo = None
        if response.status == 200 and response.getheader("content-type") == "application/json":
            try:
                echo = json.loads(body)
            except json.JSONDecodeError:
                echo = None
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, echo, len(body))
    finally:
        connection.close()


def probe_path(product: Product) -> str:
    return f"{product.route_prefix}datamesh-verify"


def key_of(consumer: Consumer) -> str:
    return consumer.keys[0]


def _switch_limits_off(gateway: GatewayEnvoy) -> None:
    gateway.runtime(ENFORCED_RUNTIME_KEY, "0")
    gateway.runtime(GLOBAL_ENFORCED_RUNTIME_KEY, "0")  # the global filter's switch (global mode)


@contextmanager
def unenforced(harness: MeshHarness) -> Iterator[GatewayEnvoy]:
    """A gateway whose limits (and its sidecars') are switched off; one for every such case of a harness."""
    yield harness.kept_gateway("unenforced", _switch_limits_off)


def effective_limit(product: Product, consumer: Consumer, tiers: dict[str, RateLimit]) -> RateLimit | None:
    """The tighter of the product's own limit and the consumer's tier, by sustained rate."""
    limits = [limit for limit in (product.rate_limit, tiers.get(consumer.tier) if consumer.tier else None) if limit]
    if not limits:
        return None
    return min(limits, key=lambda limit: (limit.requests / limit.period_seconds, limit.requests))


def spend(gateway: GatewayEnvoy, path: str, key: str, limit: RateLimit) -> tuple[int, Reply, float]:
    """Requests until the first non-2xx (at most twice the limit plus one); how many passed, that reply, seconds."""
    started = time.monotonic()
    admitted = 0
    reply = Reply(0, {}, None)
    for _ in range(2 * limit.requests + 1):
        reply = call(gateway, path, key)
        if not 200 <= reply.status < 300:
            break
        admitted += 1
    return admitted, reply, time.monotonic() - started


def refill(limit: RateLimit, seconds: float) -> int:
    return math.floor(seconds * limit.requests / limit.period_seconds)


