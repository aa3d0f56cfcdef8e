"""Istio: three pinned charts in order, the NLB gateway Service, injected namespaces."""

from components import versions
from tests.conftest import declared, selected, waits_for

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
WEBHOOKS = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"


def test_three_istio_charts_pinned_to_the_configured_release(dev):
    charts = {r.inputs["chart"]: r.inputs for r in dev.of_type(RELEASE) if r.inputs["repositoryOpts"]["repo"] == versions.ISTIO_CHART_REPO}
    assert set(charts) == {"base", "istiod", "gateway"}
    assert {c["version"] for c in charts.values()} == {"1.30.5"}
    assert charts["base"]["namespace"] == charts["istiod"]["namespace"] == "istio-system"
    assert charts["gateway"]["namespace"] == "istio-ingress"
    assert charts["gateway"]["values"]["labels"] == {"istio": "ingressgateway"}
    assert charts["gateway"]["values"]["service"] == {"type": "None"}


def test_charts_install_in_order(dev):
    base, istiod, gateway = (dev.one(RELEASE, n) for n in ("istio-base", "istiod", "istio-ingressgateway"))
    tag = dev.one(WEBHOOKS, "istio-revision-tag-stable")
    assert base.urn in istiod.dependencies
    # The gateway's pods are injected through the tag, which waits for the istiod it points at.
    assert istiod.urn in tag.dependencies
    assert tag.urn in gateway.dependencies


def test_gateway_service_is_an_internet_facing_ip_target_nlb(dev):
    svc = dev.one("kubernetes:core/v1:Service", "istio-ingressgateway").inputs
    annotations = svc["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["selector"] == {"istio": "ingressgateway"}
    assert svc["metadata"]["namespace"] == "istio-ingress"
    # Only what the Gateway serves is open to the internet: no status port, no 443 without a TLS server.
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 80}


def test_gateway_hostname_is_a_stack_output(dev):
    assert dev.outputs["ingressGatewayHostname"].startswith("PLACEHOLDER-")


def test_product_domain_namespaces_are_labelled_for_injection_after_the_tag(dev):
    tag = dev.one(WEBHOOKS, "istio-revision-tag-stable")
    # the domains of the products Pulumi.dev.yaml selects, in the order it selects them
    domains = list(dict.fromkeys(declared(name)["domain"] for name in selected("dev")))
    assert domains
    for name in domains:
        ns = dev.one(NAMESPACE, name)
        assert ns.inputs["metadata"]["labels"]["istio.io/rev"] == "stable"
        assert "istio-injection" not in ns.inputs["metadata"]["labels"]
        assert tag.urn in ns.dependencies
    assert dev.outputs["meshNamespaces"] == domains


def test_platform_namespaces_are_not_injected(dev):
    for name in ("istio-system", "istio-ingress"):
        labels = dev.one(NAMESPACE, name).inputs["metadata"].get("labels", {})
        assert "istio-injection" not in labels and "istio.io/rev" not in labels


def test_revision_labels_namespaces_and_charts(tmp_path):
    from tests.conftest import render_variant

    result = render_variant(tmp_path, {"datamesh:istioRevision": "1-30", "datamesh:meshNamespaces": ["features", "models"]})
    for name in ("features", "models", "customer", "sales"):
        labels = result.one(NAMESPACE, name).inputs["metadata"]["labels"]
        assert labels["istio.io/rev"] == "stable" and "istio-injection" not in labels
    # The one-revision shorthand keeps the release name it always had: no second istiod on an existing stack.
    assert result.one(RELEASE, "istiod").inputs["values"]["revision"] == "1-30"
    assert result.one(RELEASE, "istio-ingressgateway").inputs["values"]["revision"] == "stable"
    assert result.one(RELEASE, "istio-base").inputs["values"]["defaultRevision"] == "1-30"
    tag = result.one(WEBHOOKS, "istio-revision-tag-stable").inputs
    assert tag["metadata"]["labels"]["istio.io/rev"] == "1-30"
    assert {w["clientConfig"]["service"]["name"] for w in tag["webhooks"]} == {"istiod-1-30"}


def test_nlb_opens_exactly_the_ports_the_gateway_serves(dev, prod):
    # dev serves plain HTTP (allowPlainHttp): the NLB listens on what the Gateway serves.
    # prod has TLS at the edge: the NLB's only listener is 443, forwarding to that same port.
    for result, listeners in ((dev, [80]), (prod, [443])):
        service = result.one("kubernetes:core/v1:Service", "istio-ingressgateway").inputs
        gateway = result.one("kubernetes:networking.istio.io/v1:Gateway", "datamesh").inputs
        served = sorted(s["port"]["number"] for s in gateway["spec"]["servers"])
        assert served == [80]
        assert sorted(p["port"] for p in service["spec"]["ports"]) == listeners
        assert sorted(p["targetPort"] for p in service["spec"]["ports"]) == served


def test_gateway_rollouts_drop_no_request(dev):
    """The NLB marks a new pod healthy before an old one goes, and an old pod serves until the NLB let it go."""
    import json as _json

    namespace = dev.one("kubernetes:core/v1:Namespace", "istio-ingress").inputs["metadata"]
    assert namespace["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    gateway = dev.one("kubernetes:helm.sh/v3:Release", "istio-ingressgateway")
    # The namespace, with its label, exists before the chart creates any gateway pod, and so does the
    # controller whose pod webhook adds the readiness gate.
    assert namespace["name"] == gateway.inputs["namespace"]
    assert waits_for(dev, gateway, dev.one("kubernetes:core/v1:Namespace", "istio-ingress"))
    assert waits_for(dev, gateway, dev.one("kubernetes:helm.sh/v3:Release", "aws-load-balancer-controller"))
    values = gateway.inputs["values"]
    assert values["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    keys = [c["topologyKey"] for c in values["topologySpreadConstraints"]]
    assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    service = dev.one("kubernetes:core/v1:Service", "istio-ingressgateway").inputs["metadata"]["annotations"]
    attributes = service["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"]
    delay = int(attributes.removeprefix("deregistration_delay.timeout_seconds="))
    pre_stop = values["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(_json.loads(values["podAnnotations"]["proxy.istio.io/config"])["terminationDrainDuration"].rstrip("s"))
    assert pre_stop > delay  # still serving while the NLB drains it
    assert values["terminationGracePeriodSeconds"] > pre_stop + drain  # never killed mid-drain
