"""DataProduct component, discovery and composition, as registered for the dev stack."""

import json

import pytest
import yaml

from components.products.catalog import entities
from components.products.declarations import load_products
from tests.conftest import ROOT, render_variant, waits_for

PRODUCTS = ("customer-features", "revenue-predictor", "customer-revenue")
NAMESPACE_OF = {"customer-features": "customer", "revenue-predictor": "sales", "customer-revenue": "sales"}


def k8s(result, kind, name):
    matches = [r for r in result.resources if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}")
               and r.inputs.get("metadata", {}).get("name") == name]
    assert len(matches) == 1, (kind, name, len(matches))
    return matches[0]


@pytest.mark.parametrize("name", PRODUCTS)
def test_each_product_has_its_workload_service_and_routing(dev, name):
    for kind in ("ServiceAccount", "Deployment", "Service", "PodDisruptionBudget", "VirtualService", "DestinationRule", "Sidecar"):
        obj = k8s(dev, kind, name)
        assert obj.inputs["metadata"]["namespace"] == NAMESPACE_OF[name]
        assert obj.parent.endswith(f"datamesh:product:DataProduct::{name}")


@pytest.mark.parametrize("name", PRODUCTS)
def test_deployment_is_locked_down_and_probed(dev, name):
    spec = k8s(dev, "Deployment", name).inputs["spec"]
    pod = spec["template"]["spec"]
    [c] = pod["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert set(c["resources"]) == {"requests", "limits"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/isAlive/", "port": 12000}
    assert c["image"] == "python:3.12.10-slim-bookworm"
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app"] == name and labels["version"] == "1.0.0"
    assert labels["app.kubernetes.io/name"] == name and labels["app.kubernetes.io/part-of"] == "datamesh"
    assert spec["selector"]["matchLabels"] == {"app": name}
    assert pod["serviceAccountName"] == name


@pytest.mark.parametrize("name", PRODUCTS)
def test_service_port_is_named_for_istio_protocol_selection(dev, name):
    [port] = k8s(dev, "Service", name).inputs["spec"]["ports"]
    assert port == {"name": "http-api", "port": 12000, "targetPort": 12000, "protocol": "TCP"}


def test_autoscaling_products_get_an_hpa_and_no_fixed_replicas(dev):
    hpas = [r for r in dev.resources if r.type.endswith(":HorizontalPodAutoscaler")]
    assert [h.inputs["metadata"]["name"] for h in hpas] == ["revenue-predictor"]
    # dev's override (1 to 2) replaces the declaration's 2 to 6.
    assert (hpas[0].inputs["spec"]["minReplicas"], hpas[0].inputs["spec"]["maxReplicas"]) == (1, 2)
    assert hpas[0].inputs["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "revenue-predictor"}
    assert "replicas" not in k8s(dev, "Deployment", "revenue-predictor").inputs["spec"]
    assert k8s(dev, "Deployment", "customer-features").inputs["spec"]["replicas"] == 2


def test_routes_bind_the_shared_gateway_under_each_prefix(dev):
    gateway = dev.one("kubernetes:networking.istio.io/v1:Gateway", "datamesh")
    assert gateway.inputs["spec"]["selector"] == {"istio": "ingressgateway"}
    for name in PRODUCTS:
        vs = k8s(dev, "VirtualService", name)
        [http] = vs.inputs["spec"]["http"]
        assert vs.inputs["spec"]["gateways"] == ["istio-ingress/datamesh"]
        assert http["match"] == [{"uri": {"prefix": f"/public/api/v1/{name}/"}}]
        assert http["route"][0]["destination"] == {
            "host": f"{name}.{NAMESPACE_OF[name]}.svc.cluster.local", "port": {"number": 12000}}
        assert waits_for(dev, vs, gateway)
    urls = dev.outputs["productUrls"]
    assert set(urls) == set(PRODUCTS)
    assert urls["customer-revenue"] == "http://PLACEHOLDER-istio-ingressgateway.elb.eu-west-1.amazonaws.com/public/api/v1/customer-revenue/"


def test_composed_product_gets_its_upstreams_urls(dev):
    [c] = k8s(dev, "Deployment", "customer-revenue").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["UPSTREAM_CUSTOMER_FEATURES_URL"] == "http://customer-features.customer.svc.cluster.local:12000"
    assert env["UPSTREAM_REVENUE_PREDICTOR_URL"] == "http://revenue-predictor.sales.svc.cluster.local:12000"
    [leaf] = k8s(dev, "Deployment", "customer-features").inputs["spec"]["template"]["spec"]["containers"]
    assert not [e for e in leaf["env"] if e["name"].startswith("UPSTREAM_")]


def test_each_proxy_learns_only_its_upstreams(dev):
    def hosts(name):
        return k8s(dev, "Sidecar", name).inputs["spec"]["egress"][0]["hosts"]

    assert hosts("customer-features") == ["istio-system/*"]
    assert hosts("revenue-predictor") == ["istio-system/*"]
    assert sorted(hosts("customer-revenue")) == sorted([
        "istio-system/*",
        "customer/customer-features.customer.svc.cluster.local",
        "sales/revenue-predictor.sales.svc.cluster.local",
    ])
    assert k8s(dev, "Sidecar", "customer-revenue").inputs["spec"]["workloadSelector"] == {"labels": {"app": "customer-revenue"}}


def test_destination_rules_use_mesh_mtls(dev):
    for name in PRODUCTS:
        policy = k8s(dev, "DestinationRule", name).inputs["spec"]["trafficPolicy"]
        assert policy["tls"] == {"mode": "ISTIO_MUTUAL"} and "outlierDetection" in policy


def test_products_start_only_in_injected_namespaces(dev):
    istiod = dev.one("kubernetes:helm.sh/v3:Release", "istiod")
    for name in PRODUCTS:
        assert waits_for(dev, k8s(dev, "Deployment", name), istiod)


def test_openapi_definitions_are_discoverable_in_cluster(dev):
    for name in PRODUCTS:
        cm = k8s(dev, "ConfigMap", f"{name}-openapi")
        assert cm.inputs["metadata"]["labels"]["datamesh.io/catalog"] == "api"
        spec = yaml.safe_load(cm.inputs["data"]["openapi.yaml"])
        assert spec["openapi"].startswith("3.") and any(path.startswith(f"/public/api/v1/{name}/") for path in spec["paths"])


def test_catalog_is_exported_with_lineage(dev):
    catalog = dev.outputs["catalog"]
    kinds = {(e["kind"], e["metadata"]["name"]) for e in catalog}
    assert {("Domain", "customer"), ("Domain", "sales"), ("System", "sales-data-products"),
            ("Group", "team-sales-ml"), ("Group", "team-customer-data")} <= kinds
    assert {e["metadata"]["namespace"] for e in catalog} == {"dev"}
    for name in PRODUCTS:
        assert ("Component", name) in kinds and ("API", name) in kinds
    composed = next(e for e in catalog if e["kind"] == "Component" and e["metadata"]["name"] == "customer-revenue")
    assert sorted(composed["spec"]["consumesApis"]) == ["api:dev/customer-features", "api:dev/revenue-predictor"]
    assert sorted(composed["spec"]["dependsOn"]) == ["component:dev/customer-features", "component:dev/revenue-predictor"]
    assert composed["spec"]["owner"] == "group:dev/team-sales-ml"
    annotations = composed["metadata"]["annotations"]
    assert annotations["backstage.io/kubernetes-label-selector"] == "app=customer-revenue"
    assert "backstage.io/source-location" not in annotations  # dev sets no sourceUrl
    api = next(e for e in catalog if e["kind"] == "API" and e["metadata"]["name"] == "revenue-predictor")
    assert api["spec"]["type"] == "openapi"
    assert api["spec"]["definition"] == (ROOT / "products" / "openapi" / "revenue-predictor.yaml").read_text()
    [link] = api["metadata"]["links"]
    assert link["url"] == dev.outputs["productUrls"]["revenue-predictor"] and link["url"].endswith("/public/api/v1/revenue-predictor/")


def test_every_catalog_reference_resolves_in_its_namespace(dev):
    catalog = dev.outputs["catalog"]
    refs = {f"{e['kind'].lower()}:{e['metadata']['namespace']}/{e['metadata']['name']}" for e in catalog}
    used = [e["spec"][f] for e in catalog for f in ("owner", "system", "domain") if f in e["spec"]]
    used += [r for e in catalog for f in ("providesApis", "consumesApis", "dependsOn") for r in e["spec"].get(f, [])]
    assert used and set(used) <= refs, set(used) - refs


def test_dev_and_prod_catalogs_do_not_collide():
    products = load_products(ROOT / "products", list(PRODUCTS), {})
    ids = [{(e["kind"], e["metadata"]["namespace"], e["metadata"]["name"]) for e in entities(products, environment=stack)}
           for stack in ("dev", "prod")]
    assert len(ids[0]) == len(ids[1]) == 12 and not ids[0] & ids[1]


def test_source_location_comes_from_the_source_url(tmp_path):
    result = render_variant(tmp_path, {"datamesh:sourceUrl": "https://github.com/acme/datamesh/tree/main/"})
    components = [e for e in result.outputs["catalog"] if e["kind"] == "Component"]
    assert {e["metadata"]["annotations"]["backstage.io/source-location"] for e in components} == {
        "url:https://github.com/acme/datamesh/tree/main/products/"}


def test_render_writes_the_catalog(tmp_path):
    from tools.render import main

    assert main(["--stack", "dev", "--out", str(tmp_path)]) == 0
    docs = list(yaml.safe_load_all((tmp_path / "catalog" / "catalog-info.yaml").read_text()))
    assert {d["kind"] for d in docs} == {"Group", "Domain", "System", "Component", "API"}
    assert sorted(p.name for p in (tmp_path / "catalog" / "openapi").iterdir()) == [f"{n}.yaml" for n in sorted(PRODUCTS)]
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert len(outputs["catalog"]) == len(docs)


def test_entities_without_external_urls():
    products = load_products(ROOT / "products", list(PRODUCTS), {})
    for entity in entities(products):
        assert entity["metadata"].get("links", []) == []
        assert entity["metadata"]["namespace"] == "default"


def test_files_are_mounted_and_roll_the_deployment_on_change(dev, tmp_path):
    cm = k8s(dev, "ConfigMap", "customer-features-files")
    assert cm.inputs["data"]["server.py"] == (ROOT / "products" / "demo" / "server.py").read_text()
    pod = k8s(dev, "Deployment", "customer-features").inputs["spec"]["template"]
    assert {"name": "files", "configMap": {"name": "customer-features-files"}} in pod["spec"]["volumes"]
    assert len(pod["metadata"]["annotations"]["datamesh.io/files-sha256"]) == 64


def test_prod_selects_its_own_products(tmp_path):
    result = render_variant(tmp_path, {"datamesh:products": ["customer-features"]}, base="prod",
                            drop=("datamesh:productOverrides", "datamesh:consumers", "datamesh:apiKeys"))
    assert [r.name for r in result.of_type("datamesh:product:DataProduct")] == ["customer-features"]
    assert set(result.outputs["productUrls"]) == {"customer-features"}


def test_prod_runs_the_articles_three_products_prod_sized(prod):
    assert sorted(r.name for r in prod.of_type("datamesh:product:DataProduct")) == sorted(PRODUCTS)
    assert k8s(prod, "Deployment", "customer-features").inputs["spec"]["replicas"] == 3
    hpa = k8s(prod, "HorizontalPodAutoscaler", "revenue-predictor").inputs["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    [c] = k8s(prod, "Deployment", "revenue-predictor").inputs["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["requests"] == {"cpu": "200m", "memory": "256Mi"}
    assert set(prod.outputs["productUrls"]) == set(PRODUCTS)
    assert all(url.startswith("https://api.datamesh.example.com/") for url in prod.outputs["productUrls"].values())
