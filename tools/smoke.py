"""Smoke test of a deployed stack's governance, through the ingress gateway.

    export SMOKE_KEY=...         # a key of a consumer allowed on the revenue predictor
    export SMOKE_OTHER_KEY=...   # a key of a consumer that is not
    python -m tools.smoke --gateway HOST [--scheme http] [--gateway-replicas N]

Keys are read from the environment, never from the command line (where any
user of the machine could read them in the process list). Checks, in order:
no key gets 401 with a Basic challenge; another consumer's key gets 403; a
valid key gets 200; and the revenue predictor's limit (2 a minute) holds.
Each gateway replica has its own bucket and the load balancer spreads new
connections over them, so with N replicas up to 2N requests may pass: the
check sends at most 2N + 1 and passes when the first two get 200 and a 429
with x-datamesh-rate-limited comes by the last (one more than all buckets
hold). It needs fresh buckets: wait a minute between runs.
Exit 0 when every check passes, 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

PREDICT_PATH = "/public/api/v1/revenue-predictor/revenue/predict"
PREDICT_BODY = {"features": {"tenureMonths": 12, "ordersLastYear": 5, "avgBasket": 40.0}}
RATE_LIMITED_HEADER = "x-datamesh-rate-limited"
PREDICTOR_LIMIT = 2  # products/revenue-predictor.yaml: rateLimit {requests: 2, period: 1m}


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]


def basic_auth(key: str) -> str:
    """The article's scheme: the key as Basic-auth username, with an empty password."""
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


def post(url: str, key: str | None, timeout: float = 10) -> Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = basic_auth(key)
    request = urllib.request.Request(url, data=json.dumps(PREDICT_BODY).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()})


def rate_limit_holds(statuses: list[Response], replicas: int) -> tuple[bool, str]:
    """Whether the predictor's limit held over these responses, sent until the first 429 or 2N + 1 requests."""
    codes = [r.status for r in statuses]
    detail = "HTTP " + ", ".join(map(str, codes))
    last = statuses[-1]
    limited = last.status == 429 and last.headers.get(RATE_LIMITED_HEADER) == "true"
    if codes[0] == 429:
        return False, detail + " (the buckets were not fresh: wait a minute and run again)"
    if not limited:
        return False, detail + f" (no 429 with {RATE_LIMITED_HEADER} within {len(codes)} requests)"
    return codes[:PREDICTOR_LIMIT] == [200] * PREDICTOR_LIMIT and len(codes) <= PREDICTOR_LIMIT * replicas + 1, detail


def run(base_url: str, key: str, other_key: str, replicas: int = 1) -> list[tuple[str, bool, str]]:
    """The four checks, as (what, passed, detail)."""
    url = base_url.rstrip("/") + PREDICT_PATH
    results = []
    r = post(url, None)
    challenged = r.status == 401 and r.headers.get("www-authenticate", "").lower().startswith("basic")
    results.append(("no key gets 401 with a Basic challenge", challenged, f"HTTP {r.status}"))
    r = post(url, other_key)
    results.append(("another consumer's key gets 403", r.status == 403, f"HTTP {r.status}"))
    sent = [post(url, key)]
    results.append(("a valid key gets 200", sent[0].status == 200, f"HTTP {sent[0].status}"))
    # Bounded: one request more than the buckets of all replicas hold together.
    while sent[-1].status != 429 and len(sent) < PREDICTOR_LIMIT * replicas + 1:
        sent.append(post(url, key))
    passed, detail = rate_limit_holds(sent, replicas)
    results.append((f"the predictor admits {PREDICTOR_LIMIT} a minute per replica ({replicas}), then 429", passed, detail))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="the ingress gateway's host name (stack output ingressGatewayHostname)")
    parser.add_argument("--scheme", default="https", choices=["http", "https"],
                        help="https (default) for a stack with TLS; http only for one with datamesh:allowPlainHttp")
    parser.add_argument("--gateway-replicas", type=int, default=2, metavar="N",
                        help="ready ingress gateway pods (each has its own buckets); default 2, the chart's minimum here")
    args = parser.parse_args(argv)
    key, other = os.environ.get("SMOKE_KEY"), os.environ.get("SMOKE_OTHER_KEY")
    if not key or not other:
        print("error: set SMOKE_KEY and SMOKE_OTHER_KEY in the environment", file=sys.stderr)
        return 2
    if args.gateway_replicas < 1:
        print("error: --gateway-replicas: must be at least 1", file=sys.stderr)
        return 2
    results = run(f"{args.scheme}://{args.gateway}", key, other, args.gateway_replicas)
    for what, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {what}  ({detail})")
    failed = sum(not passed for _, passed, _ in results)
    print(f"smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
