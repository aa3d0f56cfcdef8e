"""The Anypoint adapter (governanceAdapter: anypoint) and observability.

The adapter's API ids name the demo's products, so its stacks are the demo stack's variants."""

import pytest

from components import versions
from tests.conftest import DEMO, render_variant, waits_for, write_stack
from tools.render import main as render_main

ANYPOINT = {
    "datamesh:governanceAdapter": "anypoint",
    "datamesh:anypointClientId": {"secure": "v1:placeholder-id"},
    "datamesh:anypointClientSecret": {"secure": "v1:placeholder-secret"},
    "datamesh:anypoint": {"plan": "small", "replicas": 1,
                          "apiIds": {"customer-features": "17595110", "revenue-predictor": "17595112", "customer-revenue": "17595114"}},
}


def crs(result, kind):
    return [r for r in result.resources if r.type.endswith(f":{kind}")]


@pytest.fixture(scope="module")
def anypoint(tmp_path_factory):
    return render_variant(tmp_path_factory.mktemp("anypoint"), ANYPOINT, base=DEMO)


def test_secret_then_adapter_then_one_binding_per_product(anypoint):
    secrets = {s.inputs["metadata"]["namespace"]: s for s in crs(anypoint, "Secret")}
    adapters = {a.inputs["metadata"]["namespace"]: a for a in crs(anypoint, "ServiceInstance")}
    bindings = {b.inputs["metadata"]["name"]: b for b in crs(anypoint, "ServiceBinding")}
    assert set(secrets) == set(adapters) == {"customer", "sales"}
    assert set(bindings) == {"customer-features-binding", "revenue-predictor-binding", "customer-revenue-binding"}
    for ns, adapter in adapters.items():
        spec = adapter.inputs["spec"]
        assert spec["clusterServiceClassExternalName"] == "anypoint-service-mesh-adapter"
        assert spec["clusterServicePlanExternalName"] == "small"
        assert spec["parameters"]["replication"] == {"replicas": 1}
        assert spec["parametersFrom"] == [{"secretKeyRef": {"name": "anypoint-credentials", "key": "credentials"}}]
        assert adapter.inputs["apiVersion"] == "servicecatalog.k8s.io/v1beta1"
        assert waits_for(anypoint, adapter, secrets[ns])
    binding = bindings["revenue-predictor-binding"]
    assert binding.inputs["spec"] == {
        "instanceRef": {"name": "adapter"}, "parameters": {"apiId": "17595112", "service": "revenue-predictor"}}
    for b in bindings.values():
        assert waits_for(anypoint, b, adapters[b.inputs["metadata"]["namespace"]])
        service = b.inputs["spec"]["parameters"]["service"]
        assert waits_for(anypoint, b, next(r for r in anypoint.of_type("kubernetes:core/v1:Service") if r.name == service))


def test_credentials_are_secret_everywhere(anypoint):
    for secret in crs(anypoint, "Secret"):
        assert secret.inputs["stringData"] == "[secret]"  # the Kubernetes SDK marks a Secret's data secret whole
    text = repr([r.inputs for r in anypoint.resources])
    assert "PLACEHOLDER-SECRET" not in text and "clientSecret" not in text


def test_anypoint_replaces_the_istio_key_and_limit_resources_but_keeps_zero_trust(anypoint):
    assert not crs(anypoint, "EnvoyFilter")
    assert [r.inputs["metadata"]["name"] for r in crs(anypoint, "PeerAuthentication")] == ["default"]
    assert any(r.inputs["metadata"]["name"] == "allow-nothing" for r in crs(anypoint, "AuthorizationPolicy"))


@pytest.mark.parametrize(
    ("overrides", "drop", "message"),
    [
        ({}, ("datamesh:anypointClientId",), "error: datamesh:anypointClientId: is required with governanceAdapter anypoint"),
        ({"datamesh:anypointClientSecret": "plain-text"}, (), "error: datamesh:anypointClientSecret: must be a secret"),
        ({"datamesh:anypoint": {"apiIds": {"customer-features": "1", "revenue-predictor": "2"}}}, (),
         "error: datamesh:anypoint.apiIds.customer-revenue: is missing"),
        ({"datamesh:anypoint": {"plan": "huge", "apiIds": {}}}, (), "error: datamesh:anypoint.plan: must be one of small, medium, large"),
        ({"datamesh:anypoint": {"adapterName": "MyAdapter", "apiIds": {}}}, (),
         "error: datamesh:anypoint.adapterName: 'MyAdapter' must be a lowercase"),
        ({"datamesh:anypoint": {"apiIds": {"customer-features": "abc"}}}, (),
         "error: datamesh:anypoint.apiIds.customer-features: must be a numeric"),
        ({"datamesh:governanceAdapter": "kong"}, (), "error: datamesh:governanceAdapter: must be one of istio, anypoint"),
    ],
)
def test_bad_anypoint_configuration_exits_2_naming_the_key(tmp_path, capsys, overrides, drop, message):
    config = {k: v for k, v in {**ANYPOINT, **overrides}.items() if k not in drop}
    stack = write_stack(tmp_path, config, base=DEMO)
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message), err
    assert "plain-text" not in err
    assert not (tmp_path / "out").exists()


def test_anypoint_render_writes_applicable_secret_manifests(tmp_path):
    from pathlib import Path

    import kubernetes_validate
    import yaml

    out = tmp_path / "out"
    assert render_main(["--stack", "dev", "--config", str(write_stack(tmp_path, ANYPOINT, base=DEMO)), "--out", str(out)]) == 0
    for path in sorted(Path(out, "manifests").glob("secret-*.yaml")):
        obj = yaml.safe_load(path.read_text())
        assert obj["stringData"] == {} and "withheld" in obj["metadata"]["annotations"]["datamesh.io/render"]
        kubernetes_validate.validate(obj, "1.35", strict=True)
    assert "PLACEHOLDER-SECRET" not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())


def test_mesh_telemetry_logs_and_tags_metrics_by_consumer(dev):
    [telemetry] = crs(dev, "Telemetry")
    spec = telemetry.inputs["spec"]
    assert telemetry.inputs["metadata"] == {"name": "mesh-default", "namespace": "istio-system"}
    assert spec["accessLogging"] == [{"providers": [{"name": "envoy"}]}]
    [override] = spec["metrics"][0]["overrides"]
    assert override["tagOverrides"]["consumer"]["value"] == "request.headers['x-datamesh-consumer']"


def test_prometheus_and_kiali_are_pinned_and_on_in_dev_only(dev, prod):
    releases = {r.name: r.inputs for r in dev.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases["prometheus"]["version"] == versions.PROMETHEUS_CHART.version
    assert releases["kiali"]["version"] == versions.KIALI_CHART.version
    assert releases["kiali"]["values"]["external_services"]["prometheus"]["url"] == "http://prometheus.istio-system:9090"
    assert releases["kiali"]["values"]["auth"]["strategy"] == "token"
    assert waits_for(dev, dev.one("kubernetes:helm.sh/v3:Release", "kiali"), dev.one("kubernetes:helm.sh/v3:Release", "prometheus"))
    assert not {"prometheus", "kiali"} & {r.name for r in prod.of_type("kubernetes:helm.sh/v3:Release")}
    assert crs(prod, "Telemetry")  # logs and metrics are on everywhere
