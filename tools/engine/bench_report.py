"""tools.bench_gateway's Markdown report: the gateways' wrk figures side by side, per run and their median.

The gateways, as the tables name them: ``UNGOVERNED`` (the render without the gateway's EnvoyFilters and
AuthorizationPolicies), ``LOCAL`` (governed, Envoy's local rate limiter) and ``GLOBAL`` (governed, the global
rate limit filter asking the real rate-limit service).
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime

from tools.engine import istio_xds
from tools.engine.ratelimit_build import pinned_ratelimit

MODES = ("local", "global")
UNGOVERNED, LOCAL, GLOBAL = "ungoverned", "governed", "global"


Figures = dict[str, float]  # one wrk run: rps, p50, p99 (ms), requests, non2xx
Rows = list[tuple[str, dict[str, Figures]]]  # per run, each gateway's figures


def table(rows: Rows, base: str, other: str, labels: tuple[str, str]) -> list[str]:
    """``other`` against ``base``, a row per run: each one's req/s, p50 and p99, the ratio, and what ``other`` adds."""
    b, o = labels
    lines = [
        f"| run | {b} req/s | p50 ms | p99 ms | {o} req/s | p50 ms | p99 ms | {o}/{b} | added p50 ms | added p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, runs in rows:
        x, y = runs[base], runs[other]
        lines.append(f"| {name} | {x['rps']:.0f} | {x['p50']:.3f} | {x['p99']:.3f} | {y['rps']:.0f} | "
                     f"{y['p50']:.3f} | {y['p99']:.3f} | {y['rps'] / x['rps']:.0%} | "
                     f"{y['p50'] - x['p50']:+.3f} | {y['p99'] - x['p99']:+.3f} |")
    return lines


def with_median(rows: Rows) -> Rows:
    gateways = rows[0][1].keys()
    return [*rows, ("median", {g: {m: statistics.median(r[1][g][m] for r in rows) for m in ("rps", "p50", "p99")}
                               for g in gateways})]


def _intro(args: argparse.Namespace, host: str) -> list[str]:
    return [
        "# Governance benchmark: the gateway's filters in a real Envoy",
        "",
        f"Command: `.venv/bin/python -m tools.bench_gateway --duration {args.duration} --repeat {args.repeat} "
        f"--connections {args.connections} --modes {','.join(args.modes)}`, run on {datetime.now(UTC):%Y-%m-%d}.",
        "",
        f"Machine: {host}.",
        "",
        "Gateway Envoys (1 worker thread each), configured over ADS with what Istio's own translation",
        f"({istio_xds.pinned_istio()}) makes of the demo render: *governed* (Lua key filter with its SHA-256,",
        "RBAC from the AuthorizationPolicy, the local rate limiter with buckets too large to refuse, and the rest",
        "of istiod's gateway) and *ungoverned* (the same render without the gateway's EnvoyFilters and",
        "AuthorizationPolicies). All reach the backends over Istio mTLS; the backends are another Envoy answering",
        "directly. wrk (1 thread, keep-alive connections) sends the revenue predictor's path with a valid key to",
        "each in turn; runs alternate, and each table gives each run and the median.",
    ]


def _governance(saturated: Rows, single: Rows, args: argparse.Namespace) -> list[str]:
    labels = ("ungoverned", "governed")
    return [
        "", f"## Throughput: {args.connections} connections (the gateway saturated)", "",
        *table(saturated, UNGOVERNED, LOCAL, labels),
        "", "## Latency: one connection (no queueing behind other requests)", "",
        *table(single, UNGOVERNED, LOCAL, labels),
    ]


def _global(saturated: Rows, single: Rows, args: argparse.Namespace, calls: dict[str, int] | None) -> list[str]:
    if calls is None:
        return ["", "## The global rate limit's call", "",
                "Not measured: redis-server is not installed (Debian: `apt-get install -y redis-server`)."]
    labels = ("local", "global")
    return [
        "", "## The global rate limit's call: local vs global", "",
        "*local* is the governed gateway above; *global* is the same render with `datamesh:rateLimits: global`:",
        "its rate-limit filter (before the router, as the local limiter) asks the rate-limit service, built from",
        f"{pinned_ratelimit()}, over gRPC for every request, and the service counts in redis-server; both run on",
        "127.0.0.1 with the Deployment's settings (`tools.verify`'s harness, `ratelimit_proc`), on the same cores",
        f"as wrk and the Envoys. Buckets are too large to refuse. The global gateway's filter was answered "
        f"{calls['ok']} times by the service ({calls['requests']} requests completed by wrk, warm-up included), "
        f"with {calls['error']} errors and {calls['failure_mode_allowed']} admitted by the failure policy.",
        "", "### Latency: one connection (the call's added latency)", "",
        *table(single, LOCAL, GLOBAL, labels),
        "", f"### Throughput: {args.connections} connections (the gateway saturated)", "",
        *table(saturated, LOCAL, GLOBAL, labels),
    ]


def report(saturated: Rows, single: Rows, costs: dict[str, float], args: argparse.Namespace, host: str,
           calls: dict[str, int] | None) -> str:
    lines = [*_intro(args, host)]
    if "local" in args.modes:
        lines += _governance(saturated, single, args)
    if "global" in args.modes:
        lines += _global(saturated, single, args, calls)
    lines += [
        "", "## The key filter's own work, inside Envoy", "",
        "The rendered Lua, its parts timed in a loop of 20000 inside one request (LuaJIT, JIT on):",
        "",
        "| part | µs per call |",
        "| --- | ---: |",
        *(f"| {part} | {us:.1f} |" for part, us in costs.items()),
    ]
    return "\n".join(lines) + "\n"
