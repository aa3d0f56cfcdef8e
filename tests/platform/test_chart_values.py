"""Every Helm release's values, checked against the keys its pinned chart version defines.

The key lists in tests/data/charts/<chart>-<version>.txt were recorded from each
chart's own values.yaml (and the '.Values.<path>' its templates read), at the
commit named in each file's header. Where the chart ships a values.schema.json
(Istio's gateway, Prometheus), the values are validated against it as well.
Helm does neither for charts without a schema: a misplaced key is silently ignored.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.conftest import ROOT, render_variant

DATA = ROOT / "tests" / "data" / "charts"
RELEASE = "kubernetes:helm.sh/v3:Release"

# Documented exceptions: values the chart passes through whole, so no key list can hold them.
OPEN_MAPS = {
    # The full Istio MeshConfig, rendered into the mesh ConfigMap.
    "istiod": ("meshConfig",),
    # Pod labels, a string map (values.yaml happens to carry one default entry; the schema says "object").
    "gateway": ("labels",),
    # templates/configmap.yaml renders all of .Values into Kiali's config.yaml: any Kiali CR spec field goes.
    "kiali-server": ("external_services", "auth", "deployment", "server", "kiali_feature_flags"),
    # templates/deployment.yaml turns every extraArgs entry into a --flag of the autoscaler.
    "cluster-autoscaler": ("extraArgs",),
}


def chart_keys(chart: str, version: str) -> frozenset[str]:
    path = DATA / f"{chart}-{version}.txt"
    if not path.exists():
        pytest.fail(f"no recorded keys for chart {chart} {version}: add {path.relative_to(ROOT)}")
    lines = path.read_text().splitlines()
    assert lines[0] == f"# chart: {chart}" and lines[1] == f"# version: {version}"
    assert any(line.startswith("# commit: ") for line in lines[:8]), f"{path.name}: no source commit"
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _quote(key: str) -> str:
    return f'"{key}"' if "." in key else key


def value_paths(values: dict, prefix: str = "") -> list[str]:
    """Every dotted path in ``values``; a non-empty map is listed and recursed, as in the key lists."""
    out = []
    for key, value in values.items():
        path = f"{prefix}.{_quote(key)}" if prefix else _quote(key)
        out.append(path)
        if isinstance(value, dict) and value:
            out.extend(value_paths(value, path))
    return out


def _ancestors(path: str) -> list[str]:
    parts, out, depth, cur = [], [], 0, ""
    for ch in path:  # split on dots outside quotes
        if ch == '"':
            depth ^= 1
        if ch == "." and not depth:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for i in range(1, len(parts)):
        out.append(".".join(parts[:i]))
    return out


def unknown_keys(chart: str, version: str, values: dict) -> list[str]:
    """Value paths the chart version does not define (nor leaves open)."""
    keys = chart_keys(chart, version)
    open_roots = OPEN_MAPS.get(chart, ())
    bad = []
    for path in value_paths(values):
        ancestors = _ancestors(path)
        if path in keys or f"{path}.*" in keys:
            continue
        if any(f"{a}.*" in keys for a in ancestors) or any(a in open_roots for a in ancestors):
            continue
        if not any(b for b in bad if path.startswith(b + ".")):
            bad.append(path)
    return bad


def schema_errors(chart: str, version: str, values: dict) -> list[str] | None:
    path = DATA / f"{chart}-{version}.values.schema.json"
    if not path.exists():
        return None
    schema = json.loads(path.read_text())
    # Both name "http://json-schema.org/schema#", which is no particular draft; they use
    # "$defs", so validate them as draft 2020-12.
    schema.pop("$schema", None)
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


@pytest.fixture(scope="module")
def releases(dev, prod, tmp_path_factory):
    found = {}
    variants = {"dev": dev, "prod": prod,
                "prod+observability": render_variant(tmp_path_factory.mktemp("obs"), {"datamesh:observability": True}, base="prod")}
    for stack, result in variants.items():
        for reg in result.of_type(RELEASE):
            found[f"{stack}/{reg.name}"] = reg.inputs
    return found


def test_every_pinned_chart_is_checked(releases):
    charts = {(r["chart"], r["version"]) for r in releases.values()}
    assert {"base", "istiod", "gateway", "aws-load-balancer-controller", "prometheus", "kiali-server",
            "metrics-server", "cluster-autoscaler"} <= {c for c, _ in charts}
    for chart, version in charts:
        chart_keys(chart, version)  # fails when a chart has no recorded key list


def test_release_values_use_only_keys_the_chart_defines(releases):
    problems = {name: bad for name, r in releases.items() if (bad := unknown_keys(r["chart"], r["version"], r.get("values", {})))}
    assert not problems


def test_release_values_pass_the_charts_own_schema(releases):
    checked = set()
    for name, r in releases.items():
        errors = schema_errors(r["chart"], r["version"], r.get("values", {}))
        if errors is not None:
            checked.add(r["chart"])
            assert not errors, f"{name}: {errors}"
    assert checked == {"gateway", "prometheus"}


def test_the_key_check_catches_what_helm_ignores():
    # Both were in the istiod values until 1.24 moved them: the check must reject them.
    assert unknown_keys("istiod", "1.30.5", {"pilot": {"autoscaleMin": 2}}) == ["pilot"]
    assert unknown_keys("istiod", "1.30.5", {"global": {"proxy": {"holdApplicationUntilProxyStarts": True}}}) == [
        "global.proxy.holdApplicationUntilProxyStarts"]
    assert unknown_keys("istiod", "1.30.5", {"autoscaleMin": 2, "meshConfig": {"anything": {"goes": 1}}}) == []
    assert unknown_keys("aws-load-balancer-controller", "3.5.0",
                        {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "x"}}}) == []
    assert schema_errors("gateway", "1.30.5", {"replicaCountt": 2})


def test_key_files_name_their_source():
    for path in DATA.glob("*.txt"):
        head = path.read_text().splitlines()[:12]
        assert head[0].startswith("# chart: ") and head[1].startswith("# version: "), path.name
        assert any(h.startswith("# repo: https://github.com/") for h in head), path.name
        assert any(h.startswith("# commit: ") for h in head), path.name


def test_istiod_runs_highly_available(dev, prod):
    for result in (dev, prod):
        values = result.one(RELEASE, "istiod").inputs["values"]
        assert values["autoscaleMin"] >= 2 and values["autoscaleEnabled"] is True
        assert values["pdb"]["minAvailable"] == 1  # the chart renders the PDB only with autoscaleMin > 1
        assert values["resources"]["requests"]["memory"]
        assert "pilot" not in values
        assert "holdApplicationUntilProxyStarts" not in json.dumps(values)

