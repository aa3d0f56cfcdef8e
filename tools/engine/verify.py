"""The access matrix a stack declares, run through Istio's translation of its render in real Envoy.

``intent(...)`` reads what the stack declares (its consumers, their products and
tiers, the products' limits, releases and upstreams) with the program's own
validating parsers: the expectations come from the declarations, never from the
render under test. ``run_cases(harness, intent)`` derives every case from that
intent and runs it through gateways the harness starts (``mesh_harness``).

Cases (each: consumer, product, via, release, expect, got, ok):

- ``access``: every consumer x every product. Allowed: 2xx, answered by one of the
  product's workloads, which saw the consumer's name in ``x-datamesh-consumer``
  and no ``authorization`` header. Not allowed: 403, and no workload reached.
- ``no-key`` and ``wrong-key`` per product: 401.
- ``limit``: per allowed (consumer, product) pair with a limit (the product's
  own, the consumer's tier, or both): a fresh gateway admits exactly the
  smaller limit (plus what the bucket refills while the requests run), then
  answers 429 with ``x-datamesh-rate-limited: true``.
- ``shared-limit``: a product's own limit is shared by its consumers: after one
  consumer spends it, the next consumer gets 429.
- ``canary``: each release of a product with several releases gets its weight's
  share of ``samples`` requests, within 4 binomial standard deviations; a
  mirrored release receives its percentage of copies, within the same bound.
- ``composite``: consumer -> composite -> upstream. Expected: the consumer
  reaches through a composite what it may reach directly and nothing more. The
  gateway cannot observe the composite's own calls; these cases are listed with
  ``ok: null`` (not proven here) until sidecar enforcement lands.

Access and canary cases run with the limiter's own runtime switch
(``local_rate_limit_enforced``, a key the generated config declares) at 0, so
that spending tokens there cannot turn an access answer into a 429; limit cases
run on fresh gateways with the switch as configured.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import load_settings
from components.governance.access import Access, Consumer, load_access
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


@dataclass(frozen=True)
class Intent:
    """What the stack declares: products (validated, with overrides) and consumers with keys and tiers."""

    stack: str
    products: tuple[Product, ...]
    access: Access

    def consumers_of(self, product: str) -> list[Consumer]:
        return [c for c in self.access.consumers if product in c.products]


def intent(project: Path, stack: str, stack_file: Path | None = None) -> Intent:
    """The stack's declared intent, read with the program's own parsers (raises their errors on bad input)."""
    config = load_stack_config(project, stack, stack_file)
    prefix = "datamesh:"
    raw = {k[len(prefix):]: v for k, v in config.values.items() if k.startswith(prefix)}
    secret = frozenset(k[len(prefix):] for k in config.secret_keys if k.startswith(prefix))
    settings = load_settings(raw, stack, config.values.get("aws:region"), secret)
    products = load_products(project / "products", settings.products, settings.product_overrides,
                             allow_wildcard_iam=settings.allow_wildcard_iam)
    access = load_access(settings.consumers, settings.api_keys or {}, settings.rate_limit_tiers,
                         {p.name for p in products})
    return Intent(stack, products, access)


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

    def report(self) -> dict[str, Any]:
        return {"case": self.kind, "consumer": self.consumer, "product": self.product, "via": self.via,
                "release": self.release, "expect": self.expect, "got": self.got, "ok": self.ok}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    echo: dict[str, Any] | None


def basic(key: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def call(gateway: GatewayEnvoy, path: str, key: str | None) -> Reply:
    connection = http.client.HTTPConnection(LOOPBACK, gateway.port, timeout=15)
    try:
        headers = {"content-type": "application/json"}
        if key is not None:
            headers["authorization"] = basic(key)
        connection.request("POST", path, body=b"{}", headers=headers)
        response = connection.getresponse()
        body = response.read()
        echo = None
        if response.status == 200 and response.getheader("content-type") == "application/json":
            try:
                echo = json.loads(body)
            except json.JSONDecodeError:
                echo = None
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, echo)
    finally:
        connection.close()


def probe_path(product: Product) -> str:
    return f"{product.route_prefix}datamesh-verify"


def _key(consumer: Consumer) -> str:
    return consumer.keys[0]


@contextmanager
def _unenforced(harness: MeshHarness) -> Iterator[GatewayEnvoy]:
    with harness.gateway() as gateway:
        gateway.envoy.post(f"/runtime_modify?{ENFORCED_RUNTIME_KEY}=0")
        yield gateway


def _access_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    with _unenforced(harness) as gateway:
        for product in want.products:
            path = probe_path(product)
            for consumer in want.access.consumers:
                allowed = product.name in consumer.products
                case = Case("access", consumer.name, product.name, None, None,
                            f"2xx at {product.name} as {consumer.name}, no key" if allowed else "403, no backend")
                harness.clear_seen()
                reply = call(gateway, path, _key(consumer))
                seen = harness.seen()
                if allowed:
                    echo = reply.echo or {}
                    headers = echo.get("headers") or {}
                    identity = headers.get(CONSUMER_HEADER, [])
                    case.got = f"{reply.status} at {echo.get('app') or '-'} as {','.join(identity) or '-'}" + \
                        (", key forwarded" if "authorization" in headers else "")
                    case.ok = (200 <= reply.status < 300 and echo.get("app") == product.name
                               and identity == [consumer.name] and "authorization" not in headers)
                else:
                    case.got = f"{reply.status}" + (f", {len(seen)} backend hit(s)" if seen else ", no backend")
                    case.ok = reply.status == 403 and not seen
                cases.append(case)
            for kind, key in (("no-key", None), ("wrong-key", WRONG_KEY)):
                harness.clear_seen()
                reply = call(gateway, path, key)
                seen = harness.seen()
                cases.append(Case(kind, None, product.name, None, None, "401, no backend",
                                  f"{reply.status}" + (f", {len(seen)} backend hit(s)" if seen else ", no backend"),
                                  reply.status == 401 and not seen))
    return cases


def effective_limit(product: Product, consumer: Consumer, tiers: dict[str, RateLimit]) -> RateLimit | None:
    """The tighter of the product's own limit and the consumer's tier, by sustained rate."""
    limits = [limit for limit in (product.rate_limit, tiers.get(consumer.tier) if consumer.tier else None) if limit]
    if not limits:
        return None
    return min(limits, key=lambda limit: (limit.requests / limit.period_seconds, limit.requests))


def _spend(gateway: GatewayEnvoy, path: str, key: str, limit: RateLimit) -> tuple[int, Reply, float]:
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


def _refill(limit: RateLimit, seconds: float) -> int:
    return math.floor(seconds * limit.requests / limit.period_seconds)


def _limit_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    for product in want.products:
        for consumer in want.consumers_of(product.name):
            limit = effective_limit(product, consumer, want.access.tiers)
            if limit is None:
                continue
            case = Case("limit", consumer.name, product.name, None, None,
                        f"{limit.requests} per {limit.period_seconds}s, then 429 with {RATE_LIMITED_HEADER}")
            with harness.gateway() as gateway:
                admitted, reply, seconds = _spend(gateway, probe_path(product), _key(consumer), limit)
            slack = _refill(limit, seconds)
            case.got = f"{admitted} admitted in {seconds:.2f}s, then {reply.status}" + \
                (f" with {RATE_LIMITED_HEADER}" if reply.headers.get(RATE_LIMITED_HEADER) == "true" else "")
            case.ok = (limit.requests <= admitted <= limit.requests + slack and reply.status == 429
                       and reply.headers.get(RATE_LIMITED_HEADER) == "true")
            cases.append(case)
        consumers = want.consumers_of(product.name)
        if product.rate_limit is None or len(consumers) < 2:
            continue
        first, second = consumers[0], consumers[1]
        case = Case("shared-limit", second.name, product.name, None, None,
                    f"429 after {first.name} spent the product's {product.rate_limit.requests}")
        with harness.gateway() as gateway:
            own = effective_limit(product, first, want.access.tiers) or product.rate_limit
            admitted, _, seconds = _spend(gateway, probe_path(product), _key(first), own)
            reply = call(gateway, probe_path(product), _key(second))
        case.got = f"{first.name}: {admitted} admitted; {second.name}: {reply.status}"
        spent_all = own.requests >= product.rate_limit.requests
        case.ok = reply.status == 429 if spent_all and _refill(product.rate_limit, seconds) == 0 else None
        if case.ok is None:
            case.got += " (not provable: the first consumer's own limit is tighter, or the bucket refilled)"
        cases.append(case)
    return cases


def _within(observed: int, samples: int, share: float) -> tuple[bool, str]:
    expected = samples * share
    bound = SIGMAS * math.sqrt(samples * share * (1 - share)) if 0 < share < 1 else 0
    return abs(observed - expected) <= bound, f"{expected:.0f} ± {bound:.0f}"


def _canary_cases(harness: MeshHarness, want: Intent, samples: int) -> list[Case]:
    cases = []
    for product in want.products:
        if len(product.releases) < 2 and product.mirror is None:
            continue
        consumers = want.consumers_of(product.name)
        if not consumers:
            cases.append(Case("canary", None, product.name, None, None, "weights per release",
                              "no consumer may call it: not measurable through the gateway", None))
            continue
        with _unenforced(harness) as gateway:
            harness.clear_seen()
            for _ in range(samples):
                call(gateway, probe_path(product), _key(consumers[0]))
            seen = [s for s in harness.seen() if s.workload.startswith(f"{product.name}-")]
        served = [s for s in seen if not any(h.endswith("-shadow") for h in s.headers.get("host", []))]
        shadows = [s for s in seen if any(h.endswith("-shadow") for h in s.headers.get("host", []))]
        versions = {w.name: w.labels.get("version", "") for w in harness.mesh.workloads}
        for release in product.releases:
            got = sum(1 for s in served if versions.get(s.workload) == release.version)
            ok, expected = _within(got, samples, release.weight / 100)
            cases.append(Case("canary", consumers[0].name, product.name, None, release.version,
                              f"{release.weight}% of {samples}: {expected}", f"{got}", ok))
        if product.mirror is not None:
            got = sum(1 for s in shadows if versions.get(s.workload) == product.mirror.version)
            ok, expected = _within(got, samples, product.mirror.percent / 100)
            cases.append(Case("mirror", consumers[0].name, product.name, None, product.mirror.version,
                              f"copies of {product.mirror.percent}% of {samples}: {expected}", f"{got}", ok))
    return cases


def _composite_cases(want: Intent) -> list[Case]:
    by_name = {p.name: p for p in want.products}
    cases = []
    for composite in want.products:
        for consumer in want.consumers_of(composite.name):
            for upstream in composite.consumes:
                if upstream not in by_name:
                    continue
                reach = upstream in consumer.products
                cases.append(Case("composite", consumer.name, upstream, composite.name, None,
                                  "2xx (it may call the upstream directly)" if reach else "403 (it may not call the upstream)",
                                  "not observable at the gateway: needs the upstream's sidecar", None))
    return cases


def run_cases(harness: MeshHarness, want: Intent, samples: int = DEFAULT_SAMPLES) -> list[Case]:
    return [*_access_cases(harness, want), *_limit_cases(harness, want), *_canary_cases(harness, want, samples),
            *_composite_cases(want)]


def table(cases: list[Case]) -> str:
    rows = [("case", "consumer", "product", "via", "release", "expect", "got", "ok")]
    for c in cases:
        rows.append((c.kind, c.consumer or "-", c.product, c.via or "-", c.release or "-", c.expect, c.got,
                     {True: "ok", False: "FAIL", None: "n/a"}[c.ok]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
