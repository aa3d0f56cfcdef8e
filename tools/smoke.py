"""Smoke test of a deployed stack's governance, through the ingress gateway.

    export SMOKE_KEY=...         # a key of a consumer allowed on the revenue predictor
    export SMOKE_OTHER_KEY=...   # a key of a consumer that is not
    python -m tools.smoke --gateway HOST [--scheme http] [--product revenue-predictor]

Keys are read from the environment, never from the command line (where any
user of the machine could read them in the process list). Checks, in order:
no key is refused; a valid key gets 200; another consumer's key is refused;
the third request within a minute gets 429 with x-datamesh-rate-limited.
The rate limit check needs a fresh bucket: wait a minute between runs.
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


def run(base_url: str, key: str, other_key: str) -> list[tuple[str, bool, str]]:
    """The four checks, as (what, passed, detail)."""
    url = base_url.rstrip("/") + PREDICT_PATH
    results = []
    r = post(url, None)
    results.append(("no key is refused", r.status in (401, 403), f"HTTP {r.status}"))
    r = post(url, other_key)
    results.append(("another consumer's key is refused", r.status in (401, 403), f"HTTP {r.status}"))
    first = post(url, key)
    results.append(("a valid key gets 200", first.status == 200, f"HTTP {first.status}"))
    second, third = post(url, key), post(url, key)
    limited = third.status == 429 and third.headers.get(RATE_LIMITED_HEADER) == "true"
    detail = f"HTTP {first.status}, {second.status}, {third.status}; {RATE_LIMITED_HEADER}: {third.headers.get(RATE_LIMITED_HEADER)}"
    if first.status == 429:
        detail += " (the bucket was not fresh: wait a minute and run again)"
    results.append(("the third request within a minute gets 429", second.status == 200 and limited, detail))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="the ingress gateway's host name (stack output ingressGatewayHostname)")
    parser.add_argument("--scheme", default="http", choices=["http", "https"])
    args = parser.parse_args(argv)
    key, other = os.environ.get("SMOKE_KEY"), os.environ.get("SMOKE_OTHER_KEY")
    if not key or not other:
        print("error: set SMOKE_KEY and SMOKE_OTHER_KEY in the environment", file=sys.stderr)
        return 2
    results = run(f"{args.scheme}://{args.gateway}", key, other)
    for what, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {what}  ({detail})")
    failed = sum(not passed for _, passed, _ in results)
    print(f"smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
