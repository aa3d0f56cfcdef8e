"""tools.verify's cases for what an attacker or a failure may make the gateway do (see verify.py)."""

from __future__ import annotations

import threading
import time

from components.products.declarations import Product
from tools.engine.mesh_harness import GatewayEnvoy, MeshHarness
from tools.engine.verify_calls import (
    ALLOWED_AT_BACKEND,
    HOSTILE_BUDGET_MS,
    HOSTILE_BYTES,
    SPOOFED,
    Case,
    Intent,
    Reply,
    call,
    effective_limit,
    key_of,
    probe_path,
    spend,
    unenforced,
)


def internal_headers(reply: Reply) -> list[str]:
    return sorted(h for h in reply.headers if h == "server" or h.startswith("x-envoy-"))


HOSTILE_TRIES = 3  # best of three: a loaded machine slows one try; a super-linear filter slows every try


def _hostile_try(gateway: GatewayEnvoy, product: Product, consumer_key: str, hostile: str) -> dict[str, tuple[float, int]]:
    """One hostile request and one valid request, sent at the same moment to a one-worker gateway."""
    timings: dict[str, tuple[float, int]] = {}

    def timed(name: str, key: str | None, authorization: str | None = None) -> None:
        started = time.monotonic()
        reply = call(gateway, probe_path(product), key, authorization=authorization)
        timings[name] = ((time.monotonic() - started) * 1000, reply.status)

    threads = [threading.Thread(target=timed, args=("hostile",), kwargs={"key": None, "authorization": hostile}),
               threading.Thread(target=timed, args=("valid",), kwargs={"key": consumer_key})]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return timings


def hostile_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    allowed = [(p, c) for p in want.products for c in want.consumers_of(p.name)]
    if not allowed:
        return []
    product, consumer = allowed[0]
    hostile = "Basic " + "=" * (HOSTILE_BYTES - 7) + "A"
    # One gateway with one worker for every try: a stalled worker would stall the valid request, and the next try too.
    with unenforced(harness) as gateway:
        tries = [_hostile_try(gateway, product, key_of(consumer), hostile) for _ in range(HOSTILE_TRIES)]
    hostile_ms, hostile_status = min((t.get("hostile", (1e9, 0)) for t in tries), key=lambda r: r[0])
    valid_ms, valid_status = min((t.get("valid", (1e9, 0)) for t in tries), key=lambda r: r[0])
    best = f" (best of {HOSTILE_TRIES})"
    return [
        Case("hostile-header", None, product.name, None, None, f"401 or 431 within {HOSTILE_BUDGET_MS} ms",
             f"{hostile_status} in {hostile_ms:.1f} ms{best}", hostile_status in (401, 431) and hostile_ms < HOSTILE_BUDGET_MS),
        Case("hostile-header", consumer.name, product.name, None, None,
             f"a concurrent valid request: 2xx within {HOSTILE_BUDGET_MS} ms", f"{valid_status} in {valid_ms:.1f} ms{best}",
             200 <= valid_status < 300 and valid_ms < HOSTILE_BUDGET_MS),
    ]


def hygiene_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    with unenforced(harness) as gateway:
        for product in want.products:
            consumers = want.consumers_of(product.name)
            if not consumers:
                continue
            reply = call(gateway, probe_path(product), key_of(consumers[0]), extra=SPOOFED)
            seen = (reply.echo or {}).get("headers") or {}
            leaked = sorted(h for h in seen if ((h in SPOOFED and h != "x-forwarded-for") or h.startswith("x-envoy-"))
                            and h not in ALLOWED_AT_BACKEND)
            spoofed_xff = any("203.0.113.9" in v for v in seen.get("x-forwarded-for", []))
            internal = internal_headers(reply)
            got = f"{reply.status}; backend got {', '.join(leaked) or 'none'} of the spoofed headers" + \
                (", the client's x-forwarded-for" if spoofed_xff else "") + \
                (f"; client got {', '.join(internal)}" if internal else "")
            cases.append(Case("hygiene", consumers[0].name, product.name, None, None,
                              "2xx; no spoofed or x-envoy-* header at the backend; none to the client", got,
                              reply.status == 200 and not leaked and not spoofed_xff and not internal))
    return cases


def generic(reply: Reply, status: int) -> tuple[bool, str]:
    body_ok = reply.headers.get("content-type") == "application/json" and reply.body_size <= 64
    internal = internal_headers(reply)
    ok = reply.status == status and body_ok and not internal
    return ok, f"{reply.status}, {reply.headers.get('content-type', '-')} body of {reply.body_size} bytes" + \
        (f", {', '.join(internal)}" if internal else "")


def error_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    product = want.products[0]
    outsider = next((c for c in want.callers if product.name not in c.products), None)
    with harness.gateway() as gateway:
        probes: list[tuple[int, str, Reply]] = [(401, "no key", call(gateway, probe_path(product), None))]
        insider = next((c for c in want.callers if c.products), None)
        if insider:  # a path no product serves is refused by the key policy before routing
            probes.append((403, "a path no product serves", call(gateway, "/datamesh-verify-no-such-route", key_of(insider))))
        if outsider:
            probes.append((403, f"{outsider.name} may not call it", call(gateway, probe_path(product), key_of(outsider))))
        limited = [(p, c, lim) for p in want.products for c in want.consumers_of(p.name)
                   if (lim := effective_limit(p, c, want.access.tiers))]
        if limited:
            p, c, lim = min(limited, key=lambda t: t[2].requests)
            _, reply, _ = spend(gateway, probe_path(p), key_of(c), lim)
            probes.append((429, f"{c.name} over its limit on {p.name}", reply))
        for status, what, reply in probes:
            ok, got = generic(reply, status)
            if status == 429:
                ok = ok and reply.headers.get("retry-after", "").isdigit()
                got += f", retry-after {reply.headers.get('retry-after', 'missing')}"
            cases.append(Case("generic-error", None, product.name, None, None, f"{status} ({what}): short JSON, no internals",
                              got, ok))
        # Last: the product's backends go away, and Envoy's own 503 must say nothing of why.
        consumers = want.consumers_of(product.name)
        if consumers:
            harness.stop_backends(product.name)
            ok, got = generic(call(gateway, probe_path(product), key_of(consumers[0])), 503)
            cases.append(Case("generic-error", consumers[0].name, product.name, None, None,
                              "503 (backends gone): short JSON, no internals", got, ok))
    return cases


