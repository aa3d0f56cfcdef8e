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
- ``hostile-header``: a ~60 KB ``Authorization`` header of padding (the shape that was
  quadratic) is answered within ``HOSTILE_BUDGET_MS`` while a valid request sent at
  the same moment to the same single-worker gateway is answered within the same budget.
- ``hygiene`` per product: an allowed call carrying spoofed forwarding and mesh identity
  headers reaches the backend without them; answers carry no ``server`` or ``x-envoy-*``.
- ``generic-error`` per status: the gateway's own 401, 403 (also for a path no product
  serves: the key policy refuses it before routing), 429 and 503 have a short
  JSON body and no ``server`` or ``x-envoy-*`` header; a 429 carries ``retry-after``.
- ``composite``: consumer -> composite -> upstream. Expected: the consumer
  reaches through a composite what it may reach directly and nothing more: the
  composite's call reaches the upstream as that consumer, or the upstream's own
  sidecar answers 403. ``composite-limit``: the upstream's limit holds across
  direct and composite calls together. Both need every workload's sidecar
  (``MeshHarness(sidecars=True)``: root and iptables, in a network namespace
  ``tools.verify`` makes); without them they are listed with ``ok: null``.

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
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config import load_settings
from components.governance.access import Access, Consumer, is_undecrypted, load_access
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
    gov = settings.governance
    access = load_access(gov.consumers, gov.api_keys or {}, gov.rate_limit_tiers, {p.name for p in products})
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


def _key(consumer: Consumer) -> str:
    return consumer.keys[0]


@contextmanager
def _unenforced(harness: MeshHarness) -> Iterator[GatewayEnvoy]:
    with harness.gateway() as gateway:
        gateway.runtime(ENFORCED_RUNTIME_KEY, "0")
        yield gateway


def _access_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    with _unenforced(harness) as gateway:
        for product in want.products:
            path = probe_path(product)
            for consumer in want.access.consumers:
                allowed = product.name in consumer.products
                placeholder = is_undecrypted(_key(consumer))
                case = Case("placeholder-key" if placeholder else "access", consumer.name, product.name, None, None,
                            "401: an undecrypted key opens nothing" if placeholder else
                            f"2xx at {product.name} as {consumer.name}, no key" if allowed else "403, no backend")
                harness.clear_seen()
                reply = call(gateway, path, _key(consumer))
                seen = harness.seen()
                if placeholder:
                    case.got = f"{reply.status}" + (f", {len(seen)} backend hit(s)" if seen else ", no backend")
                    case.ok = reply.status == 401 and not seen
                elif allowed:
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


def _composite_paths(want: Intent) -> list[tuple[Product, Product]]:
    by_name = {p.name: p for p in want.products}
    return [(composite, by_name[u]) for composite in want.products for u in composite.consumes if u in by_name]


def _composite_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    """consumer -> composite -> upstream: what reaches the upstream is what the consumer may reach directly."""
    cases = []
    with _unenforced(harness) as gateway:
        for composite, upstream in _composite_paths(want):
            url_host = upstream.service_host
            for consumer in (c for c in want.access.consumers if composite.name in c.products):
                reach = upstream.name in consumer.products
                case = Case("composite", consumer.name, upstream.name, composite.name, None,
                            "2xx at the upstream, as the consumer" if reach else "403 from the upstream's sidecar, no backend")
                if not harness.sidecars:
                    case.got = "not observable without the upstream's sidecar (verify runs them as root with iptables)"
                    cases.append(case)
                    continue
                if consumer not in want.callers:
                    case.got = "not provable: the consumer's key is undecrypted"
                    cases.append(case)
                    continue
                harness.clear_seen()
                reply = call(gateway, probe_path(composite), _key(consumer))
                statuses = {u: st for u, st in ((reply.echo or {}).get("upstreams") or {}).items() if f"//{url_host}:" in u}
                status = next(iter(statuses.values()), 0)
                at_upstream = [s for s in harness.seen() if s.workload.startswith(f"{upstream.name}-")]
                as_consumer = all(s.headers.get(CONSUMER_HEADER) == [consumer.name] for s in at_upstream)
                case.got = f"composite {reply.status}; upstream {status}, {len(at_upstream)} backend hit(s)"
                case.ok = (reply.status == 200 and ((status == 200 and len(at_upstream) == 1 and as_consumer) if reach
                                                    else (status == 403 and not at_upstream)))
                cases.append(case)
    return cases


def _composite_limit_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    """A product's limit holds across direct and composite calls together: direct calls spend it, then the
    composite's call on the same consumer's behalf is refused by the upstream's own sidecar."""
    cases = []
    if not harness.sidecars:
        return cases
    for composite, upstream in _composite_paths(want):
        for consumer in want.consumers_of(upstream.name):
            limit = effective_limit(upstream, consumer, want.access.tiers)
            if limit is None or composite.name not in consumer.products:
                continue
            case = Case("composite-limit", consumer.name, upstream.name, composite.name, None,
                        f"{limit.requests} per {limit.period_seconds}s across direct and composite calls together")
            with harness.gateway() as gateway:
                harness.clear_seen()
                admitted, _, seconds = _spend(gateway, probe_path(upstream), _key(consumer), limit)
                reply = call(gateway, probe_path(composite), _key(consumer))
                statuses = [st for u, st in ((reply.echo or {}).get("upstreams") or {}).items()
                            if f"//{upstream.service_host}:" in u]
                hits = len([s for s in harness.seen() if s.workload.startswith(f"{upstream.name}-")])
            status = statuses[0] if statuses else 0
            case.got = f"{admitted} direct admitted in {seconds:.2f}s; then through {composite.name}: {status}; " \
                       f"{hits} backend hit(s) in all"
            case.ok = status == 429 and hits == admitted and admitted <= limit.requests + _refill(limit, seconds)
            cases.append(case)
    return cases


def _internal_headers(reply: Reply) -> list[str]:
    return sorted(h for h in reply.headers if h == "server" or h.startswith("x-envoy-"))


def _hostile_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    allowed = [(p, c) for p in want.products for c in want.consumers_of(p.name)]
    if not allowed:
        return []
    product, consumer = allowed[0]
    hostile = "Basic " + "=" * (HOSTILE_BYTES - 7) + "A"
    timings: dict[str, tuple[float, int]] = {}

    def timed(name: str, **kwargs: Any) -> None:
        started = time.monotonic()
        reply = call(gateway, probe_path(product), **kwargs)
        timings[name] = ((time.monotonic() - started) * 1000, reply.status)

    with _unenforced(harness) as gateway:  # one worker: a stalled worker would stall the valid request too
        threads = [threading.Thread(target=timed, args=("hostile",), kwargs={"key": None, "authorization": hostile}),
                   threading.Thread(target=timed, args=("valid",), kwargs={"key": _key(consumer)})]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    (hostile_ms, hostile_status), (valid_ms, valid_status) = timings.get("hostile", (1e9, 0)), timings.get("valid", (1e9, 0))
    return [
        Case("hostile-header", None, product.name, None, None, f"401 or 431 within {HOSTILE_BUDGET_MS} ms",
             f"{hostile_status} in {hostile_ms:.1f} ms", hostile_status in (401, 431) and hostile_ms < HOSTILE_BUDGET_MS),
        Case("hostile-header", consumer.name, product.name, None, None,
             f"a concurrent valid request: 2xx within {HOSTILE_BUDGET_MS} ms", f"{valid_status} in {valid_ms:.1f} ms",
             200 <= valid_status < 300 and valid_ms < HOSTILE_BUDGET_MS),
    ]


def _hygiene_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    with _unenforced(harness) as gateway:
        for product in want.products:
            consumers = want.consumers_of(product.name)
            if not consumers:
                continue
            reply = call(gateway, probe_path(product), _key(consumers[0]), extra=SPOOFED)
            seen = (reply.echo or {}).get("headers") or {}
            leaked = sorted(h for h in seen if ((h in SPOOFED and h != "x-forwarded-for") or h.startswith("x-envoy-"))
                            and h not in ALLOWED_AT_BACKEND)
            spoofed_xff = any("203.0.113.9" in v for v in seen.get("x-forwarded-for", []))
            internal = _internal_headers(reply)
            got = f"{reply.status}; backend got {', '.join(leaked) or 'none'} of the spoofed headers" + \
                (", the client's x-forwarded-for" if spoofed_xff else "") + \
                (f"; client got {', '.join(internal)}" if internal else "")
            cases.append(Case("hygiene", consumers[0].name, product.name, None, None,
                              "2xx; no spoofed or x-envoy-* header at the backend; none to the client", got,
                              reply.status == 200 and not leaked and not spoofed_xff and not internal))
    return cases


def _generic(reply: Reply, status: int) -> tuple[bool, str]:
    body_ok = reply.headers.get("content-type") == "application/json" and reply.body_size <= 64
    internal = _internal_headers(reply)
    ok = reply.status == status and body_ok and not internal
    return ok, f"{reply.status}, {reply.headers.get('content-type', '-')} body of {reply.body_size} bytes" + \
        (f", {', '.join(internal)}" if internal else "")


def _error_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    product = want.products[0]
    outsider = next((c for c in want.callers if product.name not in c.products), None)
    with harness.gateway() as gateway:
        probes: list[tuple[int, str, Reply]] = [(401, "no key", call(gateway, probe_path(product), None))]
        insider = next((c for c in want.callers if c.products), None)
        if insider:  # a path no product serves is refused by the key policy before routing
            probes.append((403, "a path no product serves", call(gateway, "/datamesh-verify-no-such-route", _key(insider))))
        if outsider:
            probes.append((403, f"{outsider.name} may not call it", call(gateway, probe_path(product), _key(outsider))))
        limited = [(p, c, lim) for p in want.products for c in want.consumers_of(p.name)
                   if (lim := effective_limit(p, c, want.access.tiers))]
        if limited:
            p, c, lim = min(limited, key=lambda t: t[2].requests)
            _, reply, _ = _spend(gateway, probe_path(p), _key(c), lim)
            probes.append((429, f"{c.name} over its limit on {p.name}", reply))
        for status, what, reply in probes:
            ok, got = _generic(reply, status)
            if status == 429:
                ok = ok and reply.headers.get("retry-after", "").isdigit()
                got += f", retry-after {reply.headers.get('retry-after', 'missing')}"
            cases.append(Case("generic-error", None, product.name, None, None, f"{status} ({what}): short JSON, no internals",
                              got, ok))
        # Last: the product's backends go away, and Envoy's own 503 must say nothing of why.
        consumers = want.consumers_of(product.name)
        if consumers:
            harness.stop_backends(product.name)
            ok, got = _generic(call(gateway, probe_path(product), _key(consumers[0])), 503)
            cases.append(Case("generic-error", consumers[0].name, product.name, None, None,
                              "503 (backends gone): short JSON, no internals", got, ok))
    return cases


def _keys_case(want: Intent) -> list[Case]:
    if want.callers or not want.access.consumers:
        return []
    return [Case("keys", None, "-", None, None, "keys that open something, to prove allowed access and limits",
                 "none: every key is undecrypted (render with --test-keys FILE, verify with --keys FILE)", None)]


def run_cases(harness: MeshHarness, want: Intent, samples: int = DEFAULT_SAMPLES) -> list[Case]:
    return [*_keys_case(want), *_access_cases(harness, want), *_limit_cases(harness, want), *_canary_cases(harness, want, samples),
            *_hostile_cases(harness, want), *_hygiene_cases(harness, want), *_composite_cases(harness, want),
            *_composite_limit_cases(harness, want),
            *_error_cases(harness, want)]


def table(cases: list[Case]) -> str:
    rows = [("case", "consumer", "product", "via", "release", "expect", "got", "ok")]
    for c in cases:
        rows.append((c.kind, c.consumer or "-", c.product, c.via or "-", c.release or "-", c.expect, c.got,
                     {True: "ok", False: "FAIL", None: "n/a"}[c.ok]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
