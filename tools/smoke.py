"""Smoke test of a deployed stack, through the ingress gateway: its governance and each data product.

    export SMOKE_KEY=...         # a key of a consumer allowed on every product probed
    export SMOKE_OTHER_KEY=...   # a key of a consumer not allowed on the revenue predictor
    python -m tools.smoke --gateway HOST [--scheme http] [--gateway-replicas N] [--timeout S]
        [--render DIR | --outputs FILE] [--product NAME ...]

Keys are read from the environment, never from the command line (where any
user of the machine could read them in the process list). Governance checks,
in order: no key gets 401 with a Basic challenge; another consumer's key gets
403; a valid key gets 200; and the revenue predictor's limit (2 a minute) holds.
Each gateway replica has its own bucket and the load balancer spreads new
connections over them, so with N replicas up to 2N requests may pass: the
check sends at most 2N + 1 and passes when the first two get 200 and a 429
with x-datamesh-rate-limited comes by the last (one more than all buckets
hold). It needs fresh buckets: wait a minute between runs.
Per product, with ``--render DIR`` (a render folder: DIR/outputs.json) or
``--outputs FILE`` (``pulumi stack output --json``): the products and their
OpenAPI definitions come from the ``productUrls`` and ``catalog`` outputs; each
product's documented operation (the one marked ``x-datamesh-smoke``, else the
first with a JSON request-body example, else the first GET) must answer 2xx with
SMOKE_KEY, and its health path too where the gateway serves it (a product whose
route the gateway rewrites; otherwise only the kubelet reaches it, and the line
says so). These run before the governance checks; the revenue predictor itself
is left to those (its 2 requests a minute are theirs to count). ``--product``
narrows to the products named; the governance checks run when the revenue
predictor is among them, or without ``--product``.
Credentials go to the given gateway only: redirects are never followed (a 3xx
fails the check), proxy settings in the environment are ignored, and every
request has a timeout (--timeout, default 10 s).
Exit 0 when every check passes, 1 when one fails, 2 on bad usage or an
unusable --render/--outputs, 3 when the gateway cannot be reached or does not
answer HTTP (one line on stderr).
"""
from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import re
import socket
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from components.documents import Document
from components.inputs import InputError, load_yaml, read_text
from tools.cli import EXIT_BAD_INPUT, EXIT_CANNOT_FINISH, OneLineParser

PREDICT_PATH = "/public/api/v1/revenue-predictor/revenue/predict"
PREDICT_BODY = {"features": {"tenureMonths": 12, "ordersLastYear": 5, "avgBasket": 40.0}}
RATE_LIMITED_HEADER = "x-datamesh-rate-limited"
PREDICTOR_LIMIT = 2  # products/revenue-predictor.yaml: rateLimit {requests: 2, period: 1m}
GOVERNED_PRODUCT = "revenue-predictor"  # the product the governance checks call
MAX_OUTPUTS_BYTES = 64 * 1024 * 1024
SMOKE_MARK = "x-datamesh-smoke"


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]


def basic_auth(key: str) -> str:
    """The article's scheme: the key as Basic-auth username, with an empty password."""
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


class GatewayError(Exception):
    """The gateway could not be reached or did not answer HTTP; the message says which, without credentials."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the Authorization header to whatever host it names."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


# No ProxyHandler settings from the environment (HTTP_PROXY would receive the keys), no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def post(url: str, key: str | None, timeout: float = 10) -> Response:
    return send(url, key, timeout, "POST", PREDICT_BODY)


def send(url: str, key: str | None, timeout: float = 10, method: str = "POST", body: object = None) -> Response:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key is not None:
        headers["Authorization"] = basic_auth(key)
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as r:
            return Response(r.status, {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:  # 4xx, 5xx, and 3xx (not followed)
        return Response(e.code, {k.lower(): v for k, v in e.headers.items()})
    except urllib.error.URLError as e:
        raise GatewayError(_why(e.reason, timeout)) from None
    except (http.client.HTTPException, ssl.SSLError, OSError) as e:
        raise GatewayError(_why(e, timeout)) from None


class SmokeInputError(ValueError):
    """--render, --outputs or --product cannot be used; the message names which and why."""


@dataclass(frozen=True)
class ProductProbe:
    """What to call for one product: paths at the gateway, and the example body of its documented operation."""

    product: str
    method: str
    path: str
    body: object
    health_path: str | None  # None: the gateway does not serve it


def read_outputs(render: Path | None, outputs: Path | None) -> Document:
    """The stack outputs of a render folder (DIR/outputs.json) or of ``pulumi stack output --json``."""
    path = render / "outputs.json" if render is not None else outputs
    option = "--render" if render is not None else "--outputs"
    assert path is not None
    try:
        doc = json.loads(read_text(path, limit=MAX_OUTPUTS_BYTES))
    except InputError as exc:
        raise SmokeInputError(f"{option}: {path}: {exc}") from None
    except (json.JSONDecodeError, RecursionError):
        raise SmokeInputError(f"{option}: {path}: not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("productUrls"), dict) or not isinstance(doc.get("catalog"), list):
        raise SmokeInputError(f"{option}: {path}: has no productUrls and catalog outputs (is it this stack's?)")
    return doc


def _operation(definition: Document) -> tuple[str, str, Any] | None:
    """(method, path, body) of the documented operation smoke calls; None when the document has none."""
    candidates: list[tuple[int, str, str, Any]] = []
    for path, item in (definition.get("paths") or {}).items():
        for method, op in (item or {}).items() if isinstance(item, dict) else ():
            if method not in ("get", "post", "put", "patch") or not isinstance(op, dict):
                continue
            media = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {})
            body = media.get("example")
            if op.get(SMOKE_MARK):
                candidates.append((0, method, path, body))
            elif body is not None:
                candidates.append((1, method, path, body))
            elif method == "get" and not op.get("requestBody"):
                candidates.append((2, method, path, None))
    if not candidates:
        return None
    _, method, path, body = min(candidates, key=lambda c: c[0])
    return method.upper(), str(path), body


def product_probes(outputs: Document, only: list[str]) -> list[ProductProbe]:
    """Each product's probe from the productUrls and catalog outputs, narrowed to ``only`` when given."""
    names = sorted(outputs["productUrls"])
    unknown = [n for n in only if n not in names]
    if unknown:
        raise SmokeInputError(f"--product: {unknown[0][:60]!r} is not a product of this stack ({', '.join(names)})")
    entities = [e for e in outputs["catalog"] if isinstance(e, dict)]
    probes = []
    for name in only or names:
        api = next((e for e in entities if e.get("kind") == "API"
                    and (e.get("metadata", {}).get("annotations") or {}).get("datamesh.io/product") == name), None)
        component = next((e for e in entities if e.get("kind") == "Component"
                          and (e.get("metadata", {}).get("annotations") or {}).get("datamesh.io/product") == name), None)
        if api is None or component is None:
            raise SmokeInputError(f"catalog: has no API and Component entity for {name}")
        try:
            definition = load_yaml(str(api.get("spec", {}).get("definition", "")))
        except InputError as exc:
            raise SmokeInputError(f"catalog: {name}: the OpenAPI definition is not valid YAML ({exc})") from None
        if not isinstance(definition, dict):
            raise SmokeInputError(f"catalog: {name}: the OpenAPI definition is not a document")
        operation = _operation(definition)
        if operation is None:
            raise SmokeInputError(f"catalog: {name}: documents no operation to call ({SMOKE_MARK}, an example body or a GET)")
        servers = definition.get("servers") or []
        base = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/") if servers and isinstance(servers[0], dict) else ""
        method, path, body = operation
        health = (component.get("metadata", {}).get("annotations") or {}).get("datamesh.io/health-path")
        probes.append(ProductProbe(name, method, base + path, body, base + health if base and health else None))
    return probes


def probe_products(base_url: str, key: str, probes: list[ProductProbe], timeout: float = 10,
                   governance: bool = True) -> list[tuple[str, bool, str]]:
    """Per product: its health (where the gateway serves it) and its documented operation, as (what, passed, detail).

    With ``governance``, the governed product is left to the governance checks: any request here would spend
    the buckets they count.
    """
    results = []
    for probe in probes:
        if governance and probe.product == GOVERNED_PRODUCT:
            results.append((f"{probe.product}: health and operation", True, "left to the governance checks below"))
            continue
        if probe.health_path is None:
            results.append((f"{probe.product}: health", True, "not served through the gateway; the kubelet probes it"))
        else:
            r = send(base_url.rstrip("/") + probe.health_path, key, timeout, "GET")
            results.append((f"{probe.product}: GET {probe.health_path} gets 2xx", 200 <= r.status < 300, f"HTTP {r.status}"))
        r = send(base_url.rstrip("/") + probe.path, key, timeout, probe.method, probe.body)
        results.append((f"{probe.product}: {probe.method} {probe.path} gets 2xx", 200 <= r.status < 300, f"HTTP {r.status}"))
    return results


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


def _why(reason: object, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "host name does not resolve"
    if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ssl.SSLError):
        return "TLS handshake failed (is the gateway serving https?)"
    if isinstance(reason, (http.client.HTTPException, ConnectionResetError)):
        return "the reply is not HTTP (is the gateway serving https, or another protocol?)"
    if isinstance(reason, OSError) and reason.strerror:
        return f"unreachable ({reason.strerror})"
    return f"unreachable ({type(reason).__name__})"


_HOST = re.compile(r"(?P<host>[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:(?P<port>[0-9]{1,5}))?")


def gateway_problem(gateway: str) -> str | None:
    """What keeps ``gateway`` from being a host or host:port; None when it is one."""
    match = _HOST.fullmatch(gateway)
    if not match:
        return "must be a host name or address, with an optional :port (no scheme, path or credentials)"
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return "port must be from 1 to 65535"
    host = match.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return "is not a valid IPv6 address"
    return None


def run(base_url: str, key: str, other_key: str, replicas: int = 1, timeout: float = 10) -> list[tuple[str, bool, str]]:
    """The four checks, as (what, passed, detail)."""
    url = base_url.rstrip("/") + PREDICT_PATH
    results = []
    r = post(url, None, timeout)
    challenged = r.status == 401 and r.headers.get("www-authenticate", "").lower().startswith("basic")
    results.append(("no key gets 401 with a Basic challenge", challenged, f"HTTP {r.status}"))
    r = post(url, other_key, timeout)
    results.append(("another consumer's key gets 403", r.status == 403, f"HTTP {r.status}"))
    sent = [post(url, key, timeout)]
    results.append(("a valid key gets 200", sent[0].status == 200, f"HTTP {sent[0].status}"))
    # Bounded: one request more than the buckets of all replicas hold together.
    while sent[-1].status != 429 and len(sent) < PREDICTOR_LIMIT * replicas + 1:
        sent.append(post(url, key, timeout))
    passed, detail = rate_limit_holds(sent, replicas)
    results.append((f"the predictor admits {PREDICTOR_LIMIT} a minute per replica ({replicas}), then 429", passed, detail))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True, help="the ingress gateway's host name (stack output ingressGatewayHostname)")
    parser.add_argument("--scheme", default="https", choices=["http", "https"],
                        help="https (default) for a stack with TLS; http only for one with datamesh:allowPlainHttp")
    parser.add_argument("--gateway-replicas", type=int, default=2, metavar="N",
                        help="ready ingress gateway pods (each has its own buckets); default 2, the chart's minimum here")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (0.1 to 120)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--render", type=Path, metavar="DIR", help="probe each product of this render folder (DIR/outputs.json)")
    source.add_argument("--outputs", type=Path, metavar="FILE",
                        help="probe each product of these stack outputs (pulumi stack output --json)")
    parser.add_argument("--product", action="append", default=[], metavar="NAME",
                        help="probe only this product (repeat for more); needs --render or --outputs")
    args = parser.parse_args(argv)
    problem = gateway_problem(args.gateway)
    if problem:
        parser.error(f"--gateway: {problem}")
    if not 0.1 <= args.timeout <= 120:
        parser.error("--timeout: must be from 0.1 to 120 seconds")
    if args.gateway_replicas < 1:
        print("error: --gateway-replicas: must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.product and not (args.render or args.outputs):
        parser.error("--product: needs --render DIR or --outputs FILE to know the products")
    probes: list[ProductProbe] = []
    if args.render or args.outputs:
        try:
            probes = product_probes(read_outputs(args.render, args.outputs), args.product)
        except SmokeInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    # The arguments and files first, so a mistake there is reported before the keys are asked for.
    key, other = os.environ.get("SMOKE_KEY"), os.environ.get("SMOKE_OTHER_KEY")
    if not key or not other:
        print("error: set SMOKE_KEY and SMOKE_OTHER_KEY in the environment", file=sys.stderr)
        return EXIT_BAD_INPUT
    base_url = f"{args.scheme}://{args.gateway}"
    try:
        governance = not args.product or GOVERNED_PRODUCT in args.product
        results = probe_products(base_url, key, probes, args.timeout, governance)
        if governance:
            results += run(base_url, key, other, args.gateway_replicas, args.timeout)
    except GatewayError as exc:
        print(f"error: {args.scheme}://{args.gateway}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_FINISH
    for what, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {what}  ({detail})")
    failed = sum(not passed for _, passed, _ in results)
    print(f"smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
