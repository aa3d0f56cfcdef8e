"""tools.verify on a global-mode render: the real rate-limit service (built from its pinned Go module), Debian's
redis-server, several gateway Envoys over Istio's translation. Expectations come from the stack file as plain YAML."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO, ROOT, render_stack, stack_name, write_stack, written
from tests.tools.test_verify import run, tamper

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("go") is None,
                                reason="global mode runs Debian's redis-server and builds the service with Go")
REPLICAS = 2
NONE_UNANSWERED = "0 unanswered checks at the gateways, 0 at their sidecars"


def _period_seconds(period: str) -> int:
    return int(period[:-1]) * {"s": 1, "m": 60, "h": 3600}[period[-1]]


def expected_limits(stack: Path) -> dict[tuple[str, str], int]:
    """(consumer, product) -> the requests its tighter limit admits per window, from the stack file and declarations."""
    config = yaml.safe_load(stack.read_text())["config"]
    tiers = config.get("datamesh:rateLimitTiers") or {}
    out = {}
    for consumer, spec in (config.get("datamesh:consumers") or {}).items():
        for product in spec["products"]:
            own = yaml.safe_load((ROOT / "products" / f"{product}.yaml").read_text()).get("rateLimit")
            limits = [lim for lim in (own, tiers.get(spec.get("tier"))) if lim]
            if limits:
                out[(consumer, product)] = min(limits, key=lambda lim: lim["requests"] / _period_seconds(lim["period"]))["requests"]
    return out


@pytest.fixture(scope="module", params=["open", "closed"])
def global_render(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"global-{request.param}")
    stack = write_stack(folder, {"datamesh:rateLimits": "global", "datamesh:rateLimitRedis": "in-cluster",
                                 "datamesh:rateLimitFailure": request.param}, base=DEMO)
    keys = folder / "keys.json"
    return request.param, stack, keys, written(render_stack(stack_name(DEMO), stack, test_keys=keys), folder / "render")


def test_every_limit_is_exact_across_replicas_and_the_failure_policy_holds(global_render, tmp_path, capsys, istio_tools):
    policy, stack, keys, render = global_render
    code, out, _ = run(["--render", str(render), "--stack-file", str(stack), "--keys", str(keys), "--gateway-replicas",
                        str(REPLICAS), "--out", str(tmp_path / "r.json")], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, out
    assert report["rateLimits"] == "global" and report["gatewayReplicas"] == REPLICAS
    exact = {(c["consumer"], c["product"]): c for c in report["cases"] if c["case"] == "global-limit"}
    want = expected_limits(stack)
    assert set(exact) == set(want)
    for pair, requests in want.items():
        assert exact[pair]["ok"] is True and exact[pair]["got"].startswith(f"{requests} 2xx, "), exact[pair]
        assert exact[pair]["got"].endswith(f"; {NONE_UNANSWERED}"), exact[pair]  # the service answered every check
    gateway = [c for c in report["cases"] if c["case"] == "global-filter" and c["via"] == "gateway"]
    assert gateway and gateway[0]["ok"] is True
    [failure] = [c for c in report["cases"] if c.get("fault") == "redis-stopped"]
    assert failure["case"] == f"failure-{policy}" and failure["ok"] is True
    down = re.search(r"Redis stopped: (\d+) (\w+); (\d+) unanswered checks at the gateways", failure["got"])
    assert down is not None, failure
    calls, answer, unanswered = down.groups()
    # every call while Redis is down was decided by the stack's policy at a gateway, one unanswered check each
    assert answer == ("503" if policy == "closed" else "2xx") and unanswered == calls, failure
    assert failure["got"].endswith(f"; {NONE_UNANSWERED}"), failure  # once Redis is back, the service answers again


def test_without_the_global_filters_the_exact_cases_fail(global_render, tmp_path, capsys, istio_tools):
    policy, stack, keys, render = global_render
    if policy == "closed":
        pytest.skip("one policy is enough to show the cases can fail")
    tampered = tamper(render, tmp_path / "tampered", ["envoyfilter-istio-ingress-datamesh-rate-limits.yaml",
                                                      "envoyfilter-*-limits.yaml"])
    code, out, _ = run(["--render", str(tampered), "--stack-file", str(stack), "--keys", str(keys), "--no-sidecars",
                        "--cases", "global", "--out", str(tmp_path / "r.json")], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1, out
    failed = {c["case"] for c in report["cases"] if c["ok"] is False}
    assert {"global-filter", "global-limit", "failure-open"} <= failed
