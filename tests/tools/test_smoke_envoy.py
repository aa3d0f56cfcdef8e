"""tools.smoke against the gateway Istio's translation configures, in real Envoy: one replica, or two behind a balancer."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.conftest import copy_program, render_stack, write_stack, written
from tests.mesh_fixture import keys_of
from tools import smoke
from tools.engine import istio_xds
from tools.engine.envoy_proc import LOOPBACK, Envoy
from tools.engine.mesh_harness import MeshHarness


@pytest.fixture
def keys(demo, demo_keys):
    return keys_of(demo_keys)


@pytest.fixture
def env(monkeypatch, keys):
    monkeypatch.setenv("SMOKE_KEY", keys["analytics"][0])  # allowed on the revenue predictor
    monkeypatch.setenv("SMOKE_OTHER_KEY", keys["partner-portal"][0])  # a known consumer that is not


@pytest.fixture(scope="module")
def harness(demo_render, istio_tools):
    with MeshHarness(istio_xds.load_render(demo_render), istio_tools) as running:
        yield running


def balancer(ports: list[int]) -> dict:
    """An L4 round-robin balancer over gateway replicas, a new upstream connection per client connection (as an NLB)."""
    endpoints = [{"endpoint": {"address": {"socket_address": {"address": LOOPBACK, "port_value": p}}}} for p in ports]
    return {
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": 0}}},
        "static_resources": {
            "listeners": [{"name": "nlb", "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
                           "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                               "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                               "stat_prefix": "nlb", "cluster": "gateways"}}]}]}],
            "clusters": [{"name": "gateways", "type": "STATIC", "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN",
                          "load_assignment": {"cluster_name": "gateways", "endpoints": [{"lb_endpoints": endpoints}]}}],
        },
    }


def run_smoke(port: int, replicas: int) -> int:
    return smoke.main(["--gateway", f"{LOOPBACK}:{port}", "--scheme", "http", "--gateway-replicas", str(replicas)])


def test_passes_against_one_gateway_replica(env, harness, keys, capsys):
    with harness.gateway() as gw:
        assert run_smoke(gw.port, 1) == 0
    out = capsys.readouterr().out
    assert "4 passed, 0 failed" in out and "HTTP 200, 200, 429" in out
    assert keys["analytics"][0] not in out


def test_two_replicas_behind_a_balancer_need_the_replica_count(env, harness, capsys):
    with ExitStack() as stack:
        gateways = [stack.enter_context(harness.gateway()) for _ in range(2)]
        nlb = stack.enter_context(Envoy(balancer([g.port for g in gateways])))
        # Told of one replica, the smoke test sees the third request pass on the other replica's bucket: it fails.
        assert run_smoke(nlb.port("nlb"), 1) == 1
        assert "FAIL  the predictor admits 2 a minute per replica (1), then 429  (HTTP 200, 200, 200" in capsys.readouterr().out
    with ExitStack() as stack:
        gateways = [stack.enter_context(harness.gateway()) for _ in range(2)]
        nlb = stack.enter_context(Envoy(balancer([g.port for g in gateways])))
        assert run_smoke(nlb.port("nlb"), 2) == 0
        out = capsys.readouterr().out
    assert "4 passed, 0 failed" in out and "HTTP 200, 200, 200, 200, 429" in out


def test_fails_when_the_predictor_is_not_limited(env, tmp_path, istio_tools, capsys, monkeypatch):
    result = render_stack("dev", write_stack(tmp_path, {"datamesh:productOverrides": {
        "revenue-predictor": {"rateLimit": {"requests": 1000, "period": "1s"}}}}, base="demo"), test_keys=tmp_path / "k.json")
    monkeypatch.setenv("SMOKE_KEY", keys_of(tmp_path / "k.json")["analytics"][0])
    monkeypatch.setenv("SMOKE_OTHER_KEY", keys_of(tmp_path / "k.json")["partner-portal"][0])
    render = istio_xds.load_render(written(result, tmp_path / "render"))
    with MeshHarness(render, istio_tools) as harness, harness.gateway() as gw:
        assert run_smoke(gw.port, 1) == 1
    assert "no 429 with x-datamesh-rate-limited within 3 requests" in capsys.readouterr().out


def test_probes_each_product_of_a_render(env, harness, keys, demo_render, capsys):
    with harness.gateway() as gw:
        args = ["--gateway", f"{LOOPBACK}:{gw.port}", "--scheme", "http", "--gateway-replicas", "1",
                "--render", str(demo_render)]
        assert smoke.main(args) == 0
        out = capsys.readouterr().out
        assert "PASS  customer-features: POST /public/api/v1/customer-features/features/lookup gets 2xx  (HTTP 200)" in out
        assert "PASS  customer-revenue: POST /public/api/v1/customer-revenue/revenue/predict gets 2xx  (HTTP 200)" in out
        assert "PASS  customer-features: health  (not served through the gateway; the kubelet probes it)" in out
        assert "PASS  revenue-predictor: health and operation  (left to the governance checks below)" in out
        assert "9 passed, 0 failed" in out and "HTTP 200, 200, 429" in out  # the governance checks ran last
        assert smoke.main([*args, "--product", "customer-revenue"]) == 0
        out = capsys.readouterr().out
        assert "customer-revenue: POST" in out and "customer-features" not in out and "another consumer" not in out
    assert keys["analytics"][0] not in out


def test_a_rewritten_route_reaches_the_product_without_its_prefix(env, istio_tools, tmp_path, capsys, monkeypatch):
    """A product serving bare paths (OpenAPI servers at the prefix): Envoy strips the prefix, smoke probes its health."""
    import yaml

    from tools.engine.render import render_stack

    project = copy_program(tmp_path / "project", base="demo")
    spec_file = project / "products" / "openapi" / "customer-features.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["servers"] = [{"url": "/public/api/v1/customer-features"}]
    spec["paths"] = {"/features/lookup": spec["paths"].pop("/public/api/v1/customer-features/features/lookup")}
    spec_file.write_text(yaml.safe_dump(spec))
    render = written(render_stack("dev", project_dir=project, test_keys=tmp_path / "k.json"), tmp_path / "render")
    monkeypatch.setenv("SMOKE_KEY", keys_of(tmp_path / "k.json")["analytics"][0])
    with MeshHarness(istio_xds.load_render(render), istio_tools) as harness, harness.gateway() as gw:
        assert smoke.main(["--gateway", f"{LOOPBACK}:{gw.port}", "--scheme", "http", "--gateway-replicas", "1",
                           "--render", str(render), "--product", "customer-features"]) == 0
        seen = [s.path for s in harness.seen() if s.workload.startswith("customer-features-")]
    out = capsys.readouterr().out
    assert "PASS  customer-features: GET /public/api/v1/customer-features/isAlive/ gets 2xx  (HTTP 200)" in out
    assert "PASS  customer-features: POST /public/api/v1/customer-features/features/lookup gets 2xx  (HTTP 200)" in out
    assert seen == ["/isAlive/", "/features/lookup"]  # the product never saw the prefix
