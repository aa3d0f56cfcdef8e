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
- ``hostile-header``: best of three tries, a ~60 KB ``Authorization`` header of padding (the shape that was
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

With ``datamesh:rateLimits: global`` (the render runs the real rate-limit service and Redis,
``ratelimit_proc``), the cases above run against it, and ``verify_global`` adds the translation
check, exact counts across several gateway replicas under concurrent load, and the failure policy
with Redis stopped (``"fault": "redis-stopped"``).

Access and canary cases run with the limiter's own runtime switch
(``local_rate_limit_enforced``, a key the generated config declares) at 0, so
that spending tokens there cannot turn an access answer into a 429; limit cases
run on fresh gateways with the switch as configured.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from tools.engine.mesh_harness import MeshHarness
from tools.engine.verify_access import (
    access_cases,
    canary_cases,
    composite_cases,
    composite_limit_cases,
    keys_case,
    limit_cases,
)
from tools.engine.verify_attack import error_cases, hostile_cases, hygiene_cases
from tools.engine.verify_calls import DEFAULT_SAMPLES as DEFAULT_SAMPLES
from tools.engine.verify_calls import Case as Case
from tools.engine.verify_calls import Intent as Intent
from tools.engine.verify_calls import intent as intent
from tools.engine.verify_global import global_cases


@dataclass(frozen=True)
class Run:
    """What one group of cases is run with."""

    harness: MeshHarness
    want: Intent
    samples: int
    replicas: int


# The groups of cases (tools.verify --cases), in the order they run: first those that share one gateway with its
# limits off, then those that need fresh buckets each; errors last, as it stops a product's backends.
GROUPS: dict[str, Callable[[Run], list[Case]]] = {
    "access": lambda r: [*keys_case(r.want), *access_cases(r.harness, r.want)],
    "canary": lambda r: canary_cases(r.harness, r.want, r.samples),
    "hostile": lambda r: hostile_cases(r.harness, r.want),
    "hygiene": lambda r: hygiene_cases(r.harness, r.want),
    "composite": lambda r: composite_cases(r.harness, r.want),
    "limits": lambda r: limit_cases(r.harness, r.want),
    "composite-limits": lambda r: composite_limit_cases(r.harness, r.want),
    "global": lambda r: global_cases(r.harness, r.want, r.replicas),
    "errors": lambda r: error_cases(r.harness, r.want),
}


def run_cases(harness: MeshHarness, want: Intent, samples: int = DEFAULT_SAMPLES, replicas: int = 2,
              groups: Collection[str] | None = None) -> list[Case]:
    """Every case of ``groups`` (default: all of ``GROUPS``), in ``GROUPS``' order."""
    run = Run(harness, want, samples, replicas)
    return [case for name, cases in GROUPS.items() if groups is None or name in groups for case in cases(run)]


def table(cases: list[Case]) -> str:
    rows = [("case", "consumer", "product", "via", "release", "expect", "got", "ok")]
    for c in cases:
        rows.append((c.kind, c.consumer or "-", c.product, c.via or "-", c.release or "-", c.expect, c.got,
                     {True: "ok", False: "FAIL", None: "n/a"}[c.ok]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows)
