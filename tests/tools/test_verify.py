"""tools.verify: the stack's declared access, run through Istio's translation of its render in real Envoy.

Expectations come from the stack files (plain YAML here), never from the verifier's own parsing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, add_documented_product, copy_repository, render_stack, written
from tools import verify


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = verify.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def declared_pairs(stack_path: Path) -> tuple[set[tuple[str, str]], set[str], set[str]]:
    """(consumer, product) pairs the stack allows, its consumers and its products, read as plain YAML."""
    config = yaml.safe_load(stack_path.read_text())["config"]
    consumers = config.get("datamesh:consumers") or {}
    allowed = {(c, p) for c, spec in consumers.items() for p in spec["products"]}
    return allowed, set(consumers), set(config["datamesh:products"])


def check_report(report: dict, stack_path: Path) -> None:
    allowed, consumers, products = declared_pairs(stack_path)
    assert report["generator"].startswith("istio.io/istio@v0.0.0-")
    assert report["analyze"]["errors"] == 0
    kinds = {c["case"] for c in report["cases"]}
    # Under attack and in error, wherever a consumer may call something:
    assert {"hostile-header", "hygiene", "generic-error"} <= kinds
    statuses = {c["expect"].split(" ")[0] for c in report["cases"] if c["case"] == "generic-error"}
    assert {"401", "503"} <= statuses
    assert all(c["ok"] for c in report["cases"] if c["case"] in ("hostile-header", "hygiene", "generic-error"))
    access = {(c["consumer"], c["product"]): c for c in report["cases"] if c["case"] == "access"}
    assert set(access) == {(c, p) for c in consumers for p in products}  # every consumer x every product
    for (consumer, product), case in access.items():
        assert case["ok"] is True, case
        assert case["got"].startswith("200" if (consumer, product) in allowed else "403"), case
    for kind in ("no-key", "wrong-key"):
        assert {c["product"] for c in report["cases"] if c["case"] == kind and c["ok"]} == products
    assert all(c["ok"] is not False for c in report["cases"])
    composite = [c for c in report["cases"] if c["case"] == "composite"]
    if report["sidecars"]:  # every sidecar ran (root, iptables): consumer -> composite -> upstream proven
        assert composite and all(c["ok"] is True for c in composite)
        for c in composite:
            assert c["got"].startswith("composite 200; upstream " + ("200" if (c["consumer"], c["product"]) in allowed else "403"))
    else:
        assert all(c["ok"] is None for c in composite)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_shipped_stacks_verify(stack, tmp_path, capsys, istio_tools):
    render = written(render_stack(stack, test_keys=tmp_path / "keys.json"), tmp_path / "render")
    code, out, _ = run(["--render", str(render), "--keys", str(tmp_path / "keys.json"),
                        "--out", str(tmp_path / "report.json")], capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "report.json").read_text())
    check_report(report, ROOT / f"Pulumi.{stack}.yaml")
    tiers = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"].get("datamesh:consumers") or {}
    limited = {(c["consumer"], c["product"]) for c in report["cases"] if c["case"] == "limit" and c["ok"]}
    assert {(c, p) for c, spec in tiers.items() if spec.get("tier") for p in spec["products"]} <= limited


def test_an_offline_render_refuses_the_placeholder_keys(dev, tmp_path, capsys, istio_tools):
    """Without decrypted keys the gateway accepts none: the keys printed in the repository open nothing."""
    code, out, _ = run(["--render", str(written(dev, tmp_path / "render")), "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    _, consumers, products = declared_pairs(ROOT / "Pulumi.dev.yaml")
    refused = {(c["consumer"], c["product"]) for c in report["cases"] if c["case"] == "placeholder-key" and c["ok"]}
    assert refused == {(c, p) for c in consumers for p in products}
    assert not [c for c in report["cases"] if c["case"] == "access"]
    # The digest the issue found in the default render, for dev's first placeholder, is gone.
    assert "54be2fed8215b777a4388158adac427b37a498fca120c214504c78c92b6b4284" not in \
        (tmp_path / "render" / "manifests" / "envoyfilter-istio-ingress-datamesh-api-keys.yaml").read_text()


def test_the_demo_verifies_with_its_limits(demo_render, demo_config, demo_keys, tmp_path, capsys, istio_tools):
    code, out, _ = run(["--render", str(demo_render), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    check_report(report, demo_config)
    predictor = yaml.safe_load((ROOT / "products" / "revenue-predictor.yaml").read_text())["rateLimit"]["requests"]
    [case] = [c for c in report["cases"] if c["case"] == "limit" and c["product"] == "revenue-predictor"]
    assert case["got"].startswith(f"{predictor} admitted") and "then 429 with x-datamesh-rate-limited" in case["got"]
    assert {"istio.alpn", "istio.stats", "istio.metadata_exchange"} <= set(report["removedFilters"])


def tamper(render: Path, out: Path, drop: list[str], without_consumer_check: bool = False) -> Path:
    """A copy of ``render`` with the manifests matching ``drop`` (globs) removed; optionally the products' own
    caller policies admitting their callers on anyone's behalf (as before composition was governed)."""
    shutil.copytree(render, out)
    for pattern in drop:
        for file in (out / "manifests").glob(pattern):
            file.unlink()
    if without_consumer_check:
        for file in (out / "manifests").glob("authorizationpolicy-*-callers.yaml"):
            doc = yaml.safe_load(file.read_text())
            for rule in doc["spec"]["rules"]:
                rule.pop("when", None)
            file.write_text(yaml.safe_dump(doc))
    return out


# Each layer is removed where it is enforced: at the gateway, and (for what products' sidecars enforce too)
# on the sidecars, so the check fails whether or not verify runs the sidecars.
# Each runs only the group of cases it checks (--cases); the untampered renders above run every group.
@pytest.mark.parametrize(("drop", "without_consumer_check", "failing", "group"), [
    (["authorizationpolicy-istio-ingress-datamesh-api-keys.yaml"], True, "access", "access"),
    (["envoyfilter-istio-ingress-datamesh-api-keys.yaml"], False, "access", "access"),
    (["envoyfilter-istio-ingress-datamesh-rate-limits.yaml", "envoyfilter-*-limits.yaml"], False, "limit", "limits"),
    (["envoyfilter-istio-ingress-datamesh-edge-hygiene.yaml"], False, "generic-error", "errors"),
    (["envoyfilter-istio-ingress-datamesh-edge-hygiene.yaml"], False, "hygiene", "hygiene"),
])
def test_a_tampered_render_fails(drop, without_consumer_check, failing, group, demo_render, demo_config, demo_keys,
                                 tmp_path, capsys, istio_tools):
    tampered = tamper(demo_render, tmp_path / "render", drop, without_consumer_check)
    code, out, _ = run(["--render", str(tampered), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--cases", group, "--out", str(tmp_path / "r.json")], capsys)
    assert code == 1, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["groups"] == [group]
    assert any(c["case"] == failing and c["ok"] is False for c in report["cases"])


def test_cases_runs_only_the_groups_named(demo_render, demo_config, demo_keys, tmp_path, capsys, istio_tools):
    code, out, _ = run(["--render", str(demo_render), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--cases", "errors,access", "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    _, consumers, products = declared_pairs(demo_config)
    assert report["groups"] == ["errors", "access"]
    assert {c["case"] for c in report["cases"]} == {"access", "no-key", "wrong-key", "generic-error"}
    assert {(c["consumer"], c["product"]) for c in report["cases"] if c["case"] == "access"} == \
        {(c, p) for c in consumers for p in products}


def test_the_products_own_sidecars_hold_when_the_gateways_key_policy_is_gone(demo_render, demo_config, demo_keys, tmp_path,
                                                                            capsys, istio_tools):
    """Defense in depth: with every sidecar running, a consumer refused by a product stays refused at the product."""
    tampered = tamper(demo_render, tmp_path / "render", ["authorizationpolicy-istio-ingress-datamesh-api-keys.yaml"])
    run(["--render", str(tampered), "--stack-file", str(demo_config), "--keys", str(demo_keys), "--cases", "access",
         "--out", str(tmp_path / "r.json")], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    refused = [c for c in report["cases"] if c["case"] == "access" and c["expect"].startswith("403")]
    assert refused
    if report["sidecars"]:
        assert all(c["ok"] for c in refused)  # the products' own sidecars refuse them
    else:
        assert not any(c["ok"] for c in refused)  # the gateway alone: they get through


def test_a_rate_limit_patch_istiod_cannot_apply_fails(demo_render, demo_config, demo_keys, tmp_path, capsys, istio_tools):
    """rate_limits on the Route (not in the limiter's config): istiod drops it, the tiers never bite; verify says so."""
    tampered = tamper(demo_render, tmp_path / "render", [])
    path = tampered / "manifests" / "envoyfilter-istio-ingress-datamesh-rate-limits.yaml"
    doc = yaml.safe_load(path.read_text())
    for patch in doc["spec"]["configPatches"][1:]:
        value = patch["patch"]["value"]
        value["rate_limits"] = value["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"].pop("rate_limits")
    path.write_text(yaml.safe_dump(doc))
    for sidecar in (tampered / "manifests").glob("envoyfilter-*-limits.yaml"):  # the sidecars' own copy, likewise
        if sidecar == path:
            continue
        doc = yaml.safe_load(sidecar.read_text())
        doc["spec"]["configPatches"][0]["patch"]["value"]["typed_config"].pop("rate_limits")
        sidecar.write_text(yaml.safe_dump(doc))
    code, out, _ = run(["--render", str(tampered), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--cases", "limits"], capsys)
    assert code == 1, out


def test_a_product_added_the_documented_way_verifies(tmp_path, istio_tools):
    repo = copy_repository(tmp_path / "repo")
    added = add_documented_product(repo)
    rendered = subprocess.run([sys.executable, "-m", "tools.render", "--stack", "dev", "--out", "render/dev",
                               "--test-keys", "render/dev-keys.json"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert rendered.returncode == 0, rendered.stderr
    done = subprocess.run([sys.executable, "-m", "tools.verify", "--render", "render/dev", "--keys", "render/dev-keys.json",
                           "--out", "report.json"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((repo / "report.json").read_text())
    check_report(report, added["stack"])
    canary = {c["release"]: c for c in report["cases"] if c["case"] == "canary" and c["product"] == added["product"]}
    assert set(canary) == {v for v, _ in added["releases"]}
    assert all(c["ok"] for c in canary.values())
    [new] = [c for c in report["cases"] if c["case"] == "access" and c["consumer"] == added["consumer"]
             and c["product"] == added["product"]]
    assert new["ok"] and new["got"].startswith("200")


@pytest.mark.parametrize(("argv", "message"), [
    (["--render", "/nonexistent/render"], "is not a folder"),
    (["--render", "{tmp}"], "not a render"),
    (["--render", "{demo}", "--out", "{tmp}"], "is a folder"),
    (["--render", "{demo}", "--samples", "5"], "--samples"),
    (["--render", "{demo}", "--stack-file", "{tmp}/missing.yaml"], "missing.yaml"),
    (["--render", "{demo}", "--keys", "{tmp}/missing.json"], "--keys"),
    (["--render", "{demo}", "--keys", "{demo}/resources.json"], "--keys"),
    (["--render", "{demo}", "--cases", "access,limit"], "'limit' is not a group of cases (did you mean 'limits'?)"),
])
def test_bad_arguments_exit_2_with_one_line(argv, message, demo_render, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, demo=demo_render) for a in argv]
    try:
        code = verify.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert message in out.err and len(out.err.strip().splitlines()) == 1 and "Traceback" not in out.err


def test_a_render_of_another_stack_file_is_refused(demo_config, tmp_path, capsys):
    # A render with one product, checked against the demo's stack file (three): refuse rather than guess.
    config = yaml.safe_load(demo_config.read_text())
    config["config"]["datamesh:products"] = ["customer-features"]
    config["config"]["datamesh:consumers"] = {"analytics": {"products": ["customer-features"], "tier": "standard"}}
    config["config"]["datamesh:apiKeys"] = {"analytics": config["config"]["datamesh:apiKeys"]["analytics"]}
    config["config"].pop("datamesh:productOverrides", None)
    small = tmp_path / "Pulumi.small.yaml"
    small.write_text(yaml.safe_dump(config))
    render = written(render_stack("dev", small), tmp_path / "render")
    code, out, err = run(["--render", str(render), "--stack-file", str(demo_config)], capsys)
    assert code == 2 and out == ""
    assert "no VirtualService for customer-revenue, revenue-predictor" in err


@pytest.mark.skipif(not verify._can_run_sidecars(), reason="composite paths need every sidecar: root, ip and iptables")
def test_a_composite_acting_for_anyone_fails(demo_render, demo_config, demo_keys, tmp_path, capsys, istio_tools):
    """Products admitting their composites on anyone's behalf: partner-portal's prediction through customer-revenue."""
    tampered = tamper(demo_render, tmp_path / "render", [], without_consumer_check=True)
    code, out, _ = run(["--render", str(tampered), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--out", str(tmp_path / "r.json")], capsys)
    assert code == 1, out
    report = json.loads((tmp_path / "r.json").read_text())
    leaked = [c for c in report["cases"] if c["case"] == "composite" and c["ok"] is False]
    assert leaked and all(c["expect"].startswith("403") for c in leaked)


def test_without_sidecars_composite_paths_are_not_claimed(demo_render, demo_config, demo_keys, tmp_path, capsys,
                                                          istio_tools):
    code, out, _ = run(["--render", str(demo_render), "--stack-file", str(demo_config), "--keys", str(demo_keys),
                        "--no-sidecars", "--out", str(tmp_path / "r.json")], capsys)
    assert code == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sidecars"] is False
    composite = [c for c in report["cases"] if c["case"] == "composite"]
    assert composite and all(c["ok"] is None for c in composite)
    assert not [c for c in report["cases"] if c["case"] == "composite-limit"]
