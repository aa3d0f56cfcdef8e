"""tools.smoke against the real gateway: the dev render in Envoy 1.40, one replica or two behind a balancer."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.conftest import render_variant
from tests.envoy_fixture import demo_upstreams, running_gateway, stack_keys
from tools import smoke
from tools.engine.envoy_gateway import LOOPBACK, Envoy

KEYS = stack_keys()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SMOKE_KEY", KEYS["analytics"][0])  # allowed on the revenue predictor
    monkeypatch.setenv("SMOKE_OTHER_KEY", KEYS["partner-portal"][0])  # a known consumer that is not


@pytest.fixture(scope="module")
def upstreams():
    with demo_upstreams() as started:
        yield started


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


def test_passes_against_one_gateway_replica(env, dev, upstreams, capsys):
    with running_gateway(dev, upstreams) as envoy:
        assert run_smoke(envoy.port(), 1) == 0
    out = capsys.readouterr().out
    assert "4 passed, 0 failed" in out and "HTTP 200, 200, 429" in out
    assert KEYS["analytics"][0] not in out


def test_two_replicas_behind_a_balancer_need_the_replica_count(env, dev, upstreams, capsys):
    with ExitStack() as stack:
        gateways = [stack.enter_context(running_gateway(dev, upstreams)) for _ in range(2)]
        nlb = stack.enter_context(Envoy(balancer([g.port() for g in gateways])))
        # Told of one replica, the smoke test sees the third request pass on the other replica's bucket: it fails.
        assert run_smoke(nlb.port("nlb"), 1) == 1
        assert "FAIL  the predictor admits 2 a minute per replica (1), then 429  (HTTP 200, 200, 200" in capsys.readouterr().out
    with ExitStack() as stack:
        gateways = [stack.enter_context(running_gateway(dev, upstreams)) for _ in range(2)]
        nlb = stack.enter_context(Envoy(balancer([g.port() for g in gateways])))
        assert run_smoke(nlb.port("nlb"), 2) == 0
        out = capsys.readouterr().out
    assert "4 passed, 0 failed" in out and "HTTP 200, 200, 200, 200, 429" in out


def test_fails_when_the_predictor_is_not_limited(env, tmp_path, upstreams, capsys):
    result = render_variant(tmp_path, {"datamesh:productOverrides": {
        "revenue-predictor": {"rateLimit": {"requests": 1000, "period": "1s"}}}})
    with running_gateway(result, upstreams) as envoy:
        assert run_smoke(envoy.port(), 1) == 1
    assert "no 429 with x-datamesh-rate-limited within 3 requests" in capsys.readouterr().out
