"""tools.verify's cases for a global-mode render (``datamesh:rateLimits: global``), on several gateway replicas.

- ``global-filter``: Istio's translation of the render carries Envoy's global rate limit filter, in the
  gateway's listener (the gateway's domain) and, with sidecars, in each limited product's inbound listener
  (the sidecars' domain), with the stack's failure policy and the service's cluster.
- ``global-limit`` per allowed (consumer, product) pair with a limit: ``replicas`` gateways, a fresh
  Redis, and several connections at once spread over the replicas send the limit plus a quarter more;
  exactly the limit (the tighter of tier and product) is admitted, the rest is 429 with
  ``x-datamesh-rate-limited``. envoyproxy/ratelimit counts in fixed windows aligned to the unit: a burst
  that straddles two is run again from the window just begun, so exactly one window is measured. The
  service must answer every check (``Unanswered``: Envoy's ``ratelimit`` ``error`` counters), or the
  failure policy, not the limit, decided some calls (a loaded machine can overrun the filter's timeout).
- ``global-product-limit`` per product with its own limit and two consumers or more: their calls
  together are admitted exactly up to the product's limit.
- ``failure-open`` or ``failure-closed`` (the stack's ``rateLimitFailure``), with ``fault: redis-stopped``:
  the pair's limit is spent (in one window, as above), Redis is stopped, and the gateways admit (open) or
  answer 503 (closed), each call with one unanswered check at its gateway; once Redis is back, calls are
  counted again (in one window), every check answered. A limit that does not hold before the fault fails
  the case at once.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.governance.global_limits import CLUSTER_NAME, GATEWAY_DOMAIN, INBOUND_DOMAIN, RATE_LIMIT_FILTER
from components.ratelimit import RateLimit
from tools.engine.envoy_proc import LOOPBACK
from tools.engine.mesh_harness import GatewayEnvoy, MeshHarness
from tools.engine.verify_calls import RATE_LIMITED_HEADER, Case, Intent, basic, effective_limit, key_of, probe_path

CONNECTIONS = 4
WINDOW_MARGIN_SECONDS = 15  # windows this short or shorter are not measured: a loaded machine's burst may take as long
SETTLE_SECONDS = 1.0  # twice the filter's timeout (global_limits.SERVICE_TIMEOUT)


def _http_filters(resources: dict[str, list[dict[str, Any]]], listener: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for lis in resources.get("listeners", []):
        if lis.get("name") != listener:
            continue
        for chain in lis.get("filter_chains", []):
            for f in chain.get("filters", []):
                found += (f.get("typed_config") or {}).get("http_filters") or []
    return found


def _filter_state(resources: dict[str, list[dict[str, Any]]], listener: str, domain: str, closed: bool) -> tuple[bool, str]:
    filters = [f for f in _http_filters(resources, listener) if f.get("name") == RATE_LIMIT_FILTER]
    configs = [f.get("typed_config") or {} for f in filters]
    cluster = any(c.get("name") == CLUSTER_NAME for c in resources.get("clusters", []))
    ok = bool(configs) and cluster and all(c.get("domain") == domain and bool(c.get("failure_mode_deny")) == closed
                                           for c in configs)
    got = f"{len(configs)} {RATE_LIMIT_FILTER} in {listener} (domain {','.join(sorted({c.get('domain', '-') for c in configs})) or '-'}, " \
          f"failure_mode_deny {','.join(sorted({str(bool(c.get('failure_mode_deny'))) for c in configs})) or '-'}); " \
          f"cluster {CLUSTER_NAME} {'present' if cluster else 'missing'}"
    return ok, got


def filter_cases(harness: MeshHarness, want: Intent) -> list[Case]:
    closed = want.rate_limits.failure == "closed"
    expect = f"{RATE_LIMIT_FILTER}, domain %s, failure_mode_deny {closed}, its cluster"
    ok, got = _filter_state(harness.gateway_resources, harness.listener, GATEWAY_DOMAIN, closed)
    cases = [Case("global-filter", None, "-", "gateway", None, expect % GATEWAY_DOMAIN, got, ok)]
    for w in harness.pods:
        product = next((p for p in want.products if p.name == w.labels.get("app")), None)
        limited = product is not None and (product.rate_limit or any(c.tier for c in want.consumers_of(product.name)))
        if product is None or not limited:
            continue
        ok, got = _filter_state(harness.sidecar_resources[w.name], "virtualInbound", INBOUND_DOMAIN, closed)
        cases.append(Case("global-filter", None, product.name, "sidecar", None, expect % INBOUND_DOMAIN, got, ok))
    return cases


def burst(gateways: list[GatewayEnvoy], path: str, keys: list[str], total: int) -> Counter[str]:
    """``total`` calls from ``CONNECTIONS`` connections at once, spread over the replicas and ``keys``; answers by kind."""
    tally: Counter[str] = Counter()
    lock = threading.Lock()
    tickets = iter(range(total))

    def worker(i: int) -> None:
        connection = http.client.HTTPConnection(LOOPBACK, gateways[i % len(gateways)].port, timeout=15)
        try:
            while True:
                with lock:
                    ticket = next(tickets, None)
                if ticket is None:
                    return
                headers = {"content-type": "application/json", "authorization": basic(keys[ticket % len(keys)])}
                connection.request("POST", path, body=b"{}", headers=headers)
                response = connection.getresponse()
                response.read()
                kind = "2xx" if 200 <= response.status < 300 else str(response.status)
                if response.status == 429 and response.getheader(RATE_LIMITED_HEADER) == "true":
                    kind = "429-limited"
                with lock:
                    tally[kind] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally


def _show(tally: Counter[str]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(tally.items()))


def _window(limit: RateLimit) -> int:
    """The service's fixed window for ``limit``'s unit at this moment (windows are aligned to the epoch)."""
    return int(time.time() // limit.period_seconds)


def _in_one_window(limit: RateLimit, flush: Callable[[], None], run: Callable[[], Counter[str]]) -> Counter[str]:
    """``run()``'s tally, from calls counted in one window of ``limit``'s unit: a run that straddled two is run
    again on fresh counters, from the window just begun."""
    for _ in range(2):
        window = _window(limit)
        tally = run()
        if _window(limit) == window:
            break
        flush()
    return tally


@dataclass(frozen=True)
class Unanswered:
    """Checks the rate limit filter got no answer for from the service in time (Envoy's ``ratelimit...error``
    counters), at the gateways and at their sidecars: each such call was decided by the failure policy."""

    gateways: int = 0
    sidecars: int = 0

    def __sub__(self, other: Unanswered) -> Unanswered:
        return Unanswered(self.gateways - other.gateways, self.sidecars - other.sidecars)

    def __str__(self) -> str:
        return f"{self.gateways} unanswered checks at the gateways, {self.sidecars} at their sidecars"


def unanswered(gateways: list[GatewayEnvoy]) -> Unanswered:
    sidecars = {id(s): s for g in gateways for s in g.sidecars}  # the replicas share their products' sidecars
    return Unanswered(sum(g.rate_limit_calls()["error"] for g in gateways),
                      sum(s.rate_limit_calls()["error"] for s in sidecars.values()))


def _counting_unanswered(gateways: list[GatewayEnvoy], run: Callable[[], Counter[str]]) -> tuple[Counter[str], Unanswered]:
    """``run()``'s tally, and the checks of its calls that the rate-limit service did not answer."""
    before = unanswered(gateways)
    tally = run()
    return tally, unanswered(gateways) - before


def _exact(harness: MeshHarness, replicas: int, path: str, keys: list[str], limit: RateLimit) -> tuple[bool | None, str]:
    total = limit.requests + max(4, limit.requests // 4)
    limits = harness.limits
    assert limits is not None  # global mode: every count is in Redis, so a flush makes fresh buckets
    with harness.gateways(replicas) as gateways:
        started = time.monotonic()
        tally, missed = _counting_unanswered(gateways, lambda: _in_one_window(limit, limits.flush,
                                                                              lambda: burst(gateways, path, keys, total)))
        seconds = time.monotonic() - started
    got = f"{_show(tally)} of {total} over {replicas} replicas, {CONNECTIONS} connections, {seconds:.2f}s; {missed}"
    if limit.period_seconds <= WINDOW_MARGIN_SECONDS:  # a window shorter than the burst: not one window
        return None, got + " (not provable: the window is shorter than the burst)"
    return missed == Unanswered() and tally["2xx"] == limit.requests and tally["429-limited"] == total - limit.requests, got


def limit_cases(harness: MeshHarness, want: Intent, replicas: int) -> list[Case]:
    cases = []
    for product in want.products:
        consumers = want.consumers_of(product.name)
        for consumer in consumers:
            limit = effective_limit(product, consumer, want.access.tiers)
            if limit is None:
                continue
            case = Case("global-limit", consumer.name, product.name, None, None,
                        f"exactly {limit.requests} admitted in one {limit.period_seconds}s window across {replicas} replicas")
            case.ok, case.got = _exact(harness, replicas, probe_path(product), [key_of(consumer)], limit)
            cases.append(case)
        if product.rate_limit is None or len(consumers) < 2:
            continue
        allowance = sum((effective_limit(product, c, want.access.tiers) or product.rate_limit).requests for c in consumers)
        case = Case("global-product-limit", ",".join(c.name for c in consumers), product.name, None, None,
                    f"exactly {product.rate_limit.requests} admitted for all its consumers together, across {replicas} replicas")
        if allowance < product.rate_limit.requests:
            case.got = "not provable: its consumers' tiers together allow less than the product's limit"
        else:
            case.ok, case.got = _exact(harness, replicas, probe_path(product), [key_of(c) for c in consumers],
                                       product.rate_limit)
        cases.append(case)
    return cases


def failure_cases(harness: MeshHarness, want: Intent, replicas: int) -> list[Case]:
    """The stack's failure policy with Redis stopped mid-run, after the limit was spent."""
    pairs = [(p, c, lim) for p in want.products for c in want.consumers_of(p.name)
             if (lim := effective_limit(p, c, want.access.tiers)) is not None]
    if not pairs or harness.limits is None:
        return []
    product, consumer, limit = min(pairs, key=lambda t: t[2].requests)
    closed = want.rate_limits.failure == "closed"
    case = Case(f"failure-{want.rate_limits.failure}", consumer.name, product.name, None, None,
                ("503 from every replica" if closed else "2xx from every replica, past the spent limit") +
                " while Redis is down; counted again once it is back", fault="redis-stopped")
    path, keys = probe_path(product), [key_of(consumer)]
    limits = harness.limits
    with harness.gateways(replicas) as gateways:
        def spend() -> tuple[Counter[str], Unanswered]:
            return _counting_unanswered(gateways, lambda: _in_one_window(
                limit, limits.flush, lambda: burst(gateways, path, keys, limit.requests + 1)))

        spent, spent_missed = spend()
        if spent_missed != Unanswered() or spent["2xx"] != limit.requests:  # the limit did not hold: nothing to see
            case.got, case.ok = f"spent: {_show(spent)}; {spent_missed}; the limit did not hold before the fault", False
            return [case]
        limits.stop_redis()
        try:
            down, down_missed = _counting_unanswered(gateways, lambda: burst(gateways, path, keys, 2 * replicas * CONNECTIONS))
        finally:
            limits.start_redis()
        counting = _until_counted(harness, gateways, path, keys)
        back, back_missed = spend()
    expected = "503" if closed else "2xx"
    case.got = f"spent: {_show(spent)}; {spent_missed}. Redis stopped: {_show(down)}; {down_missed}. " \
               f"Redis back (counting after {counting:.1f}s): {_show(back)}; {back_missed}"
    # Every call while Redis is down is decided by the failure policy at the gateway, one unanswered check each:
    # an answer for another reason (the upstream's 503, a filter that never asked the service) is not the policy.
    case.ok = (set(down) == {expected} and down_missed.gateways == sum(down.values())
               and back_missed == Unanswered() and back["2xx"] == limit.requests and back["429-limited"] == 1)
    return [case]


def _until_counted(harness: MeshHarness, gateways: list[GatewayEnvoy], path: str, keys: list[str],
                   seconds: float = 15) -> float:
    """Once Redis is back, how long until the service counts in it again (its connections reopen); then fresh
    counters. A call the filter gave up on (past its timeout) may still be counted later: wait that out first."""
    assert harness.limits is not None
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        probe = time.monotonic()
        burst(gateways[:1], path, keys, 1)
        quick = time.monotonic() - probe < SETTLE_SECONDS / 2
        if quick and harness.limits.command("DBSIZE") not in (":0", ""):
            break
        time.sleep(0.1)
    time.sleep(SETTLE_SECONDS)
    harness.limits.flush()
    return time.monotonic() - started


def global_cases(harness: MeshHarness, want: Intent, replicas: int) -> list[Case]:
    if not want.rate_limits.is_global:
        return []
    return [*filter_cases(harness, want), *limit_cases(harness, want, replicas), *failure_cases(harness, want, replicas)]
