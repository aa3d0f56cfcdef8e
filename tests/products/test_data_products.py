"""DataProduct component, discovery and composition.

What every product gets is asserted over every product Pulumi.dev.yaml selects, from its
declaration; what the demo's three products get by name (composition, lineage, prod
sizing), on the demo stack (tests/conftest.py)."""

import json

import pytest
import yaml

from components.products.catalog import entities
from components.products.declarations import load_products
from tests.conftest import (
    DEMO_NAMESPACES,
    DEMO_PRODUCTS,
    ROOT,
    declared,
    kube_object,
    prefix_of,
    render_variant,
    selected,
    stack_file,
    waits_for,
)

PRODUCTS = DEMO_PRODUCTS
NAMESPACE_OF = DEMO_NAMESPACES
DEV_SELECTED = selected("dev")


def owned(result, kind, name):
    """The objects of ``kind`` the DataProduct ``name`` registers (a Deployment per release, say)."""
    return [r for r in result.resources if r.type.startswith("kubernetes:") and r.type.endswith(f":{kind}")
            and (r.parent or "").endswith(f"datamesh:products:DataProduct::{name}")]


def test_dev_selects_products():
    assert DEV_SELECTED, "Pulumi.dev.yaml selects no product: the per-product tests below would check nothing"


@pytest.mark.parametrize("name", DEV_SELECTED)
def test_each_product_has_its_workload_service_and_routing(dev, name):
    namespace = declared(name)["domain"]
    for kind in ("ServiceAccount", "Service", "PodDisruptionBudget", "VirtualService", "DestinationRule", "Sidecar"):
        obj = kube_object(dev, kind, name)
        assert obj.inputs["metadata"]["namespace"] == namespace
        assert obj.parent.endswith(f"datamesh:products:DataProduct::{name}")
    deployments = owned(dev, "Deployment", name)
    assert len(deployments) == len(declared(name).get("releases", [None]))  # one, or one per release
    assert {d.inputs["metadata"]["namespace"] for d in deployments} == {namespace}


@pytest.mark.parametrize("name", DEV_SELECTED)
def test_deployment_is_locked_down_and_probed(dev, name):
    decl = declared(name)
    deployments = owned(dev, "Deployment", name)
    assert deployments
    for deployment in deployments:
        spec = deployment.inputs["spec"]
        pod = spec["template"]["spec"]
        [c] = pod["containers"]
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert set(c["resources"]) == {"requests", "limits"}
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == {"path": decl.get("healthPath", "/isAlive/"), "port": decl.get("port", 12000)}
        labels = spec["template"]["metadata"]["labels"]
        assert labels["app"] == name and labels["app.kubernetes.io/name"] == name
        assert labels["app.kubernetes.io/part-of"] == "datamesh"
        assert spec["selector"]["matchLabels"]["app"] == name
        assert pod["serviceAccountName"] == name


@pytest.mark.parametrize("name", PRODUCTS)
def test_the_demo_deployments_run_the_declared_image_as_one_release(demo, name):
    spec = kube_object(demo, "Deployment", name).inputs["spec"]
    [c] = spec["template"]["spec"]["containers"]
    assert c["image"] == "python:3.12.10-slim-bookworm"
    assert spec["template"]["metadata"]["labels"]["version"] == "1.0.0"
    assert spec["selector"]["matchLabels"] == {"app": name}


@pytest.mark.parametrize("name", DEV_SELECTED)
def test_service_port_is_named_for_istio_protocol_selection(dev, name):
    decl = declared(name)
    [port] = kube_object(dev, "Service", name).inputs["spec"]["ports"]
    assert port["name"] == decl.get("portName", f"{decl.get('protocol', 'http')}-api")
    assert port["port"] == port["targetPort"] == decl.get("port", 12000)


@pytest.mark.parametrize("name", PRODUCTS)
def test_the_demo_service_ports(demo, name):
    [port] = kube_object(demo, "Service", name).inputs["spec"]["ports"]
    assert port == {"name": "http-api", "port": 12000, "targetPort": 12000, "protocol": "TCP"}


def test_autoscaling_products_get_an_hpa_and_no_fixed_replicas(demo):
    hpas = [r for r in demo.resources if r.type.endswith(":HorizontalPodAutoscaler")]
    assert [h.inputs["metadata"]["name"] for h in hpas] == ["revenue-predictor"]
    # the demo's override (dev's: 1 to 2) replaces the declaration's 2 to 6.
    assert (hpas[0].inputs["spec"]["minReplicas"], hpas[0].inputs["spec"]["maxReplicas"]) == (1, 2)
    assert hpas[0].inputs["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "revenue-predictor"}
    assert "replicas" not in kube_object(demo, "Deployment", "revenue-predictor").inputs["spec"]
    assert kube_object(demo, "Deployment", "customer-features").inputs["spec"]["replicas"] == 2


def test_routes_bind_the_shared_gateway_under_each_prefix(dev):
    gateway = dev.one("kubernetes:networking.istio.io/v1:Gateway", "datamesh")
    assert gateway.inputs["spec"]["selector"] == {"istio": "ingressgateway"}
    for name in DEV_SELECTED:
        decl = declared(name)
        vs = kube_object(dev, "VirtualService", name)
        [http] = vs.inputs["spec"]["http"]
        assert vs.inputs["spec"]["gateways"] == ["istio-ingress/datamesh"]
        assert http["match"] == [{"uri": {"prefix": prefix_of(name)}}]
        assert {(d["destination"]["host"], d["destination"]["port"]["number"]) for d in http["route"]} == {
            (f"{name}.{decl['domain']}.svc.cluster.local", decl.get("port", 12000))}
        assert waits_for(dev, vs, gateway)
    urls = dev.outputs["productUrls"]
    assert set(urls) == set(DEV_SELECTED)
    assert all(url.endswith(prefix_of(name)) for name, url in urls.items())


def test_the_demo_product_urls(demo):
    urls = demo.outputs["productUrls"]
    assert set(urls) == set(PRODUCTS)
    assert urls["customer-revenue"] == "http://PLACEHOLDER-istio-ingressgateway.elb.eu-west-1.amazonaws.com/public/api/v1/customer-revenue/"


def test_composed_product_gets_its_upstreams_urls(demo):
    [c] = kube_object(demo, "Deployment", "customer-revenue").inputs["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["UPSTREAM_CUSTOMER_FEATURES_URL"] == "http://customer-features.customer.svc.cluster.local:12000"
    assert env["UPSTREAM_REVENUE_PREDICTOR_URL"] == "http://revenue-predictor.sales.svc.cluster.local:12000"
    [leaf] = kube_object(demo, "Deployment", "customer-features").inputs["spec"]["template"]["spec"]["containers"]
    assert not [e for e in leaf["env"] if e["name"].startswith("UPSTREAM_")]


def test_each_proxy_learns_only_its_upstreams(demo):
    def hosts(name):
        return kube_object(demo, "Sidecar", name).inputs["spec"]["egress"][0]["hosts"]

    assert hosts("customer-features") == ["istio-system/*"]
    assert hosts("revenue-predictor") == ["istio-system/*"]
    assert sorted(hosts("customer-revenue")) == sorted([
        "istio-system/*",
        "customer/customer-features.customer.svc.cluster.local",
        "sales/revenue-predictor.sales.svc.cluster.local",
    ])
    assert kube_object(demo, "Sidecar", "customer-revenue").inputs["spec"]["workloadSelector"] == {"labels": {"app": "customer-revenue"}}


def test_destination_rules_use_mesh_mtls(dev):
    for name in DEV_SELECTED:
        policy = kube_object(dev, "DestinationRule", name).inputs["spec"]["trafficPolicy"]
        assert policy["tls"] == {"mode": "ISTIO_MUTUAL"} and "outlierDetection" in policy


def test_products_start_only_in_injected_namespaces(dev):
    istiod = dev.one("kubernetes:helm.sh/v3:Release", "istiod")
    for name in DEV_SELECTED:
        assert all(waits_for(dev, d, istiod) for d in owned(dev, "Deployment", name)) and owned(dev, "Deployment", name)


def test_openapi_definitions_are_discoverable_in_cluster(dev):
    for name in DEV_SELECTED:
        cm = kube_object(dev, "ConfigMap", f"{name}-openapi")
        assert cm.inputs["metadata"]["labels"]["datamesh.io/catalog"] == "api"
        spec = yaml.safe_load(cm.inputs["data"]["openapi.yaml"])
        assert spec == yaml.safe_load((ROOT / "products" / declared(name)["openapi"]).read_text())
        assert spec["openapi"].startswith("3.") and spec["paths"]


def test_catalog_is_exported_with_lineage(demo):
    catalog = demo.outputs["catalog"]
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
    assert link["url"] == demo.outputs["productUrls"]["revenue-predictor"] and link["url"].endswith("/public/api/v1/revenue-predictor/")


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
    assert sorted(p.name for p in (tmp_path / "catalog" / "openapi").iterdir()) == [f"{n}.yaml" for n in sorted(DEV_SELECTED)]
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert len(outputs["catalog"]) == len(docs)


def test_entities_without_external_urls():
    products = load_products(ROOT / "products", list(PRODUCTS), {})
    for entity in entities(products):
        assert entity["metadata"].get("links", []) == []
        assert entity["metadata"]["namespace"] == "default"


def test_files_are_mounted_and_roll_the_deployment_on_change(demo):
    cm = kube_object(demo, "ConfigMap", "customer-features-files")
    assert cm.inputs["data"]["server.py"] == (ROOT / "products" / "demo" / "server.py").read_text()
    pod = kube_object(demo, "Deployment", "customer-features").inputs["spec"]["template"]
    assert {"name": "files", "configMap": {"name": "customer-features-files"}} in pod["spec"]["volumes"]
    assert len(pod["metadata"]["annotations"]["datamesh.io/files-sha256"]) == 64


def test_prod_selects_its_own_products(tmp_path):
    result = render_variant(tmp_path, {"datamesh:products": ["customer-features"]}, base="prod",
                            drop=("datamesh:productOverrides", "datamesh:consumers", "datamesh:apiKeys"))
    assert [r.name for r in result.of_type("datamesh:products:DataProduct")] == ["customer-features"]
    assert set(result.outputs["productUrls"]) == {"customer-features"}


def test_prod_runs_its_selected_products_with_its_overrides(prod):
    config = stack_file("prod")["config"]
    assert sorted(r.name for r in prod.of_type("datamesh:products:DataProduct")) == sorted(selected("prod"))
    overrides = config.get("datamesh:productOverrides", {})
    checked = 0
    for name, override in overrides.items():
        for deployment in owned(prod, "Deployment", name):
            spec = deployment.inputs["spec"]
            if "replicas" in override:
                assert spec["replicas"] == override["replicas"], name
                checked += 1
            if "resources" in override:
                [c] = spec["template"]["spec"]["containers"]
                assert c["resources"] == override["resources"], name
                checked += 1
        if "autoscaling" in override:
            hpa = kube_object(prod, "HorizontalPodAutoscaler", name).inputs["spec"]
            assert (hpa["minReplicas"], hpa["maxReplicas"]) == (override["autoscaling"]["minReplicas"],
                                                                override["autoscaling"]["maxReplicas"]), name
            checked += 1
    assert checked >= len(overrides)
    assert set(prod.outputs["productUrls"]) == set(selected("prod"))
    assert all(url.startswith(f"https://{config['datamesh:domain']}/") for url in prod.outputs["productUrls"].values())
