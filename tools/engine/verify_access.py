"""tools.verify's cases for what a consumer may do: access, limits, canaries, composite paths (see verify.py)."""

from __future__ import annotations

import math
import time

from components.governance.access import Consumer
from components.products.declarations import Product
from tools.engine.mesh_harness import GatewayEnvoy, MeshHarness
from tools.engine.verify_calls import (
    CONSUMER_HEADER,
    RATE_LIMITED_HEADER,
    SIGMAS,
    WRONG_KEY,
    Case,
    Intent,
    call,
    effective_limit,
    is_undecrypted,
    key_of,
    probe_path,
    refill,
    spend,
    unenforced,
)


def access_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    with unenforced(harness) as gateway:
        for product in want.products:
            path = probe_path(product)
            for consumer in want.access.consumers:
                allowed = product.name in consumer.products
                placeholder = is_undecrypted(key_of(consumer))
                case = Case("placeholder-key" if placeholder else "access", consumer.name, product.name, None, None,
                            "401: an undecrypted key opens nothing" if placeholder else
                            f"2xx at {product.name} as {consumer.name}, no key" if allowed else "403, no backend")
                harness.clear_seen()
                reply = call(gateway, path, key_of(consumer))
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


def limit_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    cases = []
    for product in want.products:
        for consumer in want.consumers_of(product.name):
            limit = effective_limit(product, consumer, want.access.tiers)
            if limit is None:
                continue
            case = Case("limit", consumer.name, product.name, None, None,
                        f"{limit.requests} per {limit.period_seconds}s, then 429 with {RATE_LIMITED_HEADER}")
            with harness.gateway() as gateway:
                admitted, reply, seconds = spend(gateway, probe_path(product), key_of(consumer), limit)
            slack = refill(limit, seconds)
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
            admitted, _, seconds = spend(gateway, probe_path(product), key_of(first), own)
            reply = call(gateway, probe_path(product), key_of(second))
        case.got = f"{first.name}: {admitted} admitted; {second.name}: {reply.status}"
        spent_all = own.requests >= product.rate_limit.requests
        case.ok = reply.status == 429 if spent_all and refill(product.rate_limit, seconds) == 0 else None
        if case.ok is None:
            case.got += " (not provable: the first consumer's own limit is tighter, or the bucket refilled)"
        cases.append(case)
    return cases


def within(observed: int, samples: int, share: float) -> tuple[bool, str]:
    expected = samples * share
    bound = SIGMAS * math.sqrt(samples * share * (1 - share)) if 0 < share < 1 else 0
    return abs(observed - expected) <= bound, f"{expected:.0f} ± {bound:.0f}"


def canary_cases(harness: MeshHarness, want: Intent, samples: int) -> list[Case]:
    cases = []
    for product in want.products:
        if len(product.releases) < 2 and product.mirror is None:
            continue
        consumers = want.consumers_of(product.name)
        if not consumers:
            cases.append(Case("canary", None, product.name, None, None, "weights per release",
                              "no consumer may call it: not measurable through the gateway", None))
            continue
        with unenforced(harness) as gateway:
            harness.clear_seen()
            for _ in range(samples):
                call(gateway, probe_path(product), key_of(consumers[0]))
            seen = [s for s in harness.seen() if s.workload.startswith(f"{product.name}-")]
        served = [s for s in seen if not any(h.endswith("-shadow") for h in s.headers.get("host", []))]
        shadows = [s for s in seen if any(h.endswith("-shadow") for h in s.headers.get("host", []))]
        versions = {w.name: w.labels.get("version", "") for w in harness.mesh.workloads}
        for release in product.releases:
            got = sum(1 for s in served if versions.get(s.workload) == release.version)
            ok, expected = within(got, samples, release.weight / 100)
            cases.append(Case("canary", consumers[0].name, product.name, None, release.version,
                              f"{release.weight}% of {samples}: {expected}", f"{got}", ok))
        if product.mirror is not None:
            got = sum(1 for s in shadows if versions.get(s.workload) == product.mirror.version)
            ok, expected = within(got, samples, product.mirror.percent / 100)
            cases.append(Case("mirror", consumers[0].name, product.name, None, product.mirror.version,
                              f"copies of {product.mirror.percent}% of {samples}: {expected}", f"{got}", ok))
    return cases


def composite_paths(want: Intent) -> list[tuple[Product, Product]]:
    by_name = {p.name: p for p in want.products}
    return [(composite, by_name[u]) for composite in want.products for u in composite.consumes if u in by_name]


def composite_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    """consumer -> composite -> upstream: what reaches the upstream is what the consumer may reach directly."""
    cases = []
    with unenforced(harness) as gateway:
        for composite, upstream in composite_paths(want):
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
                reply = call(gateway, probe_path(composite), key_of(consumer))
                statuses = {u: st for u, st in ((reply.echo or {}).get("upstreams") or {}).items() if f"//{url_host}:" in u}
                status = next(iter(statuses.values()), 0)
                at_upstream = [s for s in harness.seen() if s.workload.startswith(f"{upstream.name}-")]
                as_consumer = all(s.headers.get(CONSUMER_HEADER) == [consumer.name] for s in at_upstream)
                case.got = f"composite {reply.status}; upstream {status}, {len(at_upstream)} backend hit(s)"
                case.ok = (reply.status == 200 and ((status == 200 and len(at_upstream) == 1 and as_consumer) if reach
                                                    else (status == 403 and not at_upstream)))
                cases.append(case)
    return cases


COMPOSITE_TRIES = 5  # composite calls after the direct 429: the upstream's sidecar must refuse one of them


def composite_limit_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    """A product's limit holds across direct and composite calls together: direct calls spend it, then the
    composite's calls on the same consumer's behalf are refused by the upstream's own sidecar.

    The gateway's bucket and the sidecar's are two buckets, each refilled continuously (one token every
    period/requests seconds) on its own clock: right after the gateway's 429 the sidecar may hold the
    token its last refill gave it. So the budget is what is checked: composite calls follow at once until
    the sidecar refuses one (``COMPOSITE_TRIES`` at most), and every call that reached the upstream's
    backend, direct or composite, stays within the limit plus what refills in the time taken, plus one.
    """
    cases: list[Case] = []
    if not harness.sidecars:
        return cases
    for composite, upstream in composite_paths(want):
        for consumer in want.consumers_of(upstream.name):
            limit = effective_limit(upstream, consumer, want.access.tiers)
            if limit is None or composite.name not in consumer.products:
                continue
            case = Case("composite-limit", consumer.name, upstream.name, composite.name, None,
                        f"{limit.requests} per {limit.period_seconds}s across direct and composite calls together")
            with harness.gateway() as gateway:
                harness.clear_seen()
                started = time.monotonic()
                admitted, _, seconds = spend(gateway, probe_path(upstream), key_of(consumer), limit)
                statuses = _through(gateway, composite, upstream, consumer)
                elapsed = time.monotonic() - started
                hits = len([s for s in harness.seen() if s.workload.startswith(f"{upstream.name}-")])
            budget = limit.requests + refill(limit, elapsed) + 1
            case.got = (f"{admitted} direct admitted in {seconds:.2f}s; then through {composite.name}: "
                        f"{', '.join(map(str, statuses))}; {hits} backend hit(s) in all, budget {budget} in {elapsed:.2f}s")
            case.ok = statuses[-1] == 429 and hits <= budget and hits == admitted + statuses.count(200)
            cases.append(case)
    return cases


def _through(gateway: GatewayEnvoy, composite: Product, upstream: Product, consumer: Consumer) -> list[int]:
    """The upstream's statuses of composite calls made at once, until one is not a 200 (``COMPOSITE_TRIES`` at most)."""
    statuses: list[int] = []
    for _ in range(COMPOSITE_TRIES):
        reply = call(gateway, probe_path(composite), key_of(consumer))
        found = [st for u, st in ((reply.echo or {}).get("upstreams") or {}).items() if f"//{upstream.service_host}:" in u]
        statuses.append(found[0] if found else 0)
        if statuses[-1] != 200:
            break
    return statuses


def keys_case(want: Intent) -> list[Case]:
    if want.callers or not want.access.consumers:
        return []
    return [Case("keys", None, "-", None, None, "keys that open something, to prove allowed access and limits",
                 "none: every key is undecrypted (render with --test-keys FILE, verify with --keys FILE)", None)]


