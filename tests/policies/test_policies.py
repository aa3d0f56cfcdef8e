"""The policy pack: each rule both ways, every stack passes, and the render enforces it."""

import json
from pathlib import Path

import pytest
import yaml

from components.istio_protocol import convert_protocol
from policies.rules import (
    ADVISORY,
    MANDATORY,
    RULES,
    RULES_BY_NAME,
    PolicyConfigError,
    Resource,
    evaluate,
    rule_configs,
)
from tests.conftest import DEMO, ROOT, copy_program, write_stack
from tools.render import main as render_main


def res(type_, name="r", **props):
    return Resource(f"urn:pulumi:t::p::{type_}::{name}", type_, name, props)


def namespace(name, injected=True):
    labels = {"istio-injection": "enabled"} if injected else {}
    return res("kubernetes:core/v1:Namespace", name, metadata={"name": name, "labels": labels})


def service(name, ports, ns="sales", svc_type="ClusterIP", labels=None, selector=None):
    return res("kubernetes:core/v1:Service", name, metadata={"name": name, "namespace": ns, "labels": labels or {}},
               spec={"type": svc_type, "ports": ports, "selector": selector or {"app": name}})


def deployment(name="d", image="repo/app:1.2.3", ns="sales", **container):
    c = {"name": "app", "image": image,
         "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
         "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False}, **container}
    return res("kubernetes:apps/v1:Deployment", name, metadata={"name": name, "namespace": ns},
               spec={"template": {"spec": {"containers": [c]}}})


def findings(rule, resources, config=None):
    return [v for v in evaluate(resources, config) if v.rule == rule]


# --- istio-port-naming: the cases ---------------------------------------

PASSING_PORTS = [{"name": "http-api", "port": 80}, {"name": "grpc-web", "port": 8080}, {"name": "HTTP", "port": 80},
                 {"name": "tcp-db", "port": 5432}, {"port": 12000, "appProtocol": "http"},
                 {"name": "web", "port": 80, "appProtocol": "HTTP2"}, {"name": "dns", "port": 53, "protocol": "UDP"}]
FAILING_PORTS = [{"name": "web", "port": 80}, {"name": "httpfoo", "port": 80}, {"port": 12000},
                 {"name": "web", "port": 80, "appProtocol": "custom"}]


@pytest.mark.parametrize("port", PASSING_PORTS, ids=lambda p: json.dumps(p))
def test_port_names_istio_reads_pass(port):
    assert findings("istio-port-naming", [namespace("sales"), service("s", [port])]) == []


@pytest.mark.parametrize("port", FAILING_PORTS, ids=lambda p: json.dumps(p))
def test_port_names_istio_cannot_read_fail_naming_service_and_port(port):
    [v] = findings("istio-port-naming", [namespace("sales"), service("s", [port])])
    assert v.level == MANDATORY and "Service sales/s" in v.message
    assert (f"port {port['name']!r}" if "name" in port else "unnamed port 0") in v.message
    # A suggested name that selects HTTP (these ports' numbers are HTTP's), without repeating a protocol word.
    suggested = v.message.split("e.g. '")[1].split("'")[0]
    assert convert_protocol(port["port"], suggested, "TCP", None) == "HTTP" and suggested.count("http") == 1


def test_port_naming_only_applies_in_mesh_namespaces():
    assert findings("istio-port-naming", [namespace("sales", injected=False), service("s", [{"name": "web"}])]) == []
    revisioned = res("kubernetes:core/v1:Namespace", "sales", metadata={"name": "sales", "labels": {"istio.io/rev": "1-30"}})
    assert findings("istio-port-naming", [revisioned, service("s", [{"name": "web"}])])
    # Namespaces made outside the stack can be named in the rule's config.
    config = {"istio-port-naming": {"meshNamespaces": ["sales"]}}
    assert findings("istio-port-naming", [service("s", [{"name": "web"}])], config)


# Istio's own TestConvertProtocol table (pkg/config/kube/conversion_test.go @ 1.30.3), verbatim:
# (case, port, portName, protocol, appProtocol, expected). Istio's "" protocol is Kubernetes' default, TCP.
ISTIO_TEST_TABLE = [
    ("resolves empty", 0, "", "", None, "UnsupportedProtocol"),
    ("resolves from protocol directly", 0, "", "UDP", None, "UDP"),
    ("resolves from port name", 0, "http-something", "", None, "HTTP"),
    ("prefers appProto over portName", 0, "http-something", "", "https", "HTTPS"),
    ("resolves from appProto", 0, "something-httpx", "", "https", "HTTPS"),
    ("resolves grpc-web", 0, "grpc-web-x", "", None, "GRPC-Web"),
    ("makes sure grpc-web is not resolved incorrectly", 0, "grpcweb-x", "", None, "UnsupportedProtocol"),
    ("resolves based on known ports", 3306, "random-name", "", None, "TCP"),
    ("standard app protocol", 3306, "random-name", "", "kubernetes.io/h2c", "HTTP2"),
]
# Cases read from the same function's code (Istio's table has none for them).
ISTIO_CODE_CASES = [
    ("a set appProtocol alone decides, even unknown", 80, "http", "TCP", "foo", "UnsupportedProtocol"),
    ("an empty appProtocol still replaces the name", 80, "http", "TCP", "", "UnsupportedProtocol"),
    ("websocket appProtocol", 80, "web", "TCP", "kubernetes.io/ws", "HTTP"),
    ("websocket over TLS appProtocol", 443, "web", "TCP", "kubernetes.io/wss", "HTTPS"),
    ("kubernetes.io values match exactly", 80, "web", "TCP", "kubernetes.io/H2C", "UnsupportedProtocol"),
    ("kubernetes.io values only through appProtocol", 80, "kubernetes.io/h2c", "TCP", None, "UnsupportedProtocol"),
    ("other kubernetes.io values are unknown", 80, "web", "TCP", "kubernetes.io/foo", "UnsupportedProtocol"),
    ("appProtocol is cut at the first dash too", 80, "web", "TCP", "http-foo", "HTTP"),
    ("case does not matter to Parse", 80, "HTTP2-x", "TCP", None, "HTTP2"),
    ("grpc-web is a prefix, case aside", 80, "GRPC-Webfoo", "TCP", None, "GRPC-Web"),
    ("a name without a dash is used whole", 80, "https2", "TCP", None, "UnsupportedProtocol"),
    ("udp by name with a TCP protocol", 80, "udp-x", "TCP", None, "UDP"),
    ("well-known port, unknown appProtocol", 53, "http", "TCP", "foo", "TCP"),
    ("well-known ports are 25, 53, 3306, 27017 only", 5432, "", "TCP", None, "UnsupportedProtocol"),
    ("SCTP falls through to the name", 80, "http", "SCTP", None, "HTTP"),
    ("http_proxy is an Istio protocol", 80, "http_proxy", "TCP", None, "HTTP_PROXY"),
]


@pytest.mark.parametrize(("case", "port", "name", "protocol", "app", "expected"), ISTIO_TEST_TABLE + ISTIO_CODE_CASES,
                         ids=[c[0] for c in ISTIO_TEST_TABLE + ISTIO_CODE_CASES])
def test_convert_protocol_judges_as_istio(case, port, name, protocol, app, expected):
    assert convert_protocol(port, name, protocol or "TCP", app) == expected
    # and the rule fails exactly the ports Istio cannot read
    spec = {"name": name, "port": port, "protocol": protocol or "TCP", **({} if app is None else {"appProtocol": app})}
    failed = findings("istio-port-naming", [namespace("sales"), service("s", [spec])])
    assert bool(failed) == (expected == "UnsupportedProtocol")


# --- the other rules, both ways --------------------------------------------------

def subnet(tags):
    return res("aws:ec2/subnet:Subnet", "sn", tags=tags)


def eks(**props):
    return res("eks:index:Cluster", "c", **props)


BOTH_WAYS = [
    ("subnet-role-tags", [subnet({"kubernetes.io/role/elb": "1"})],
     [subnet({}), subnet({"kubernetes.io/role/elb": "1", "kubernetes.io/role/internal-elb": "1"})]),
    ("loadbalancer-only-gateway", [service("istio-ingressgateway", [{"name": "http2"}], ns="istio-ingress", svc_type="LoadBalancer")],
     [service("s", [{"name": "http-api"}], svc_type="LoadBalancer")]),
    ("mesh-namespace-injection", [namespace("sales"), namespace("istio-system", injected=False)], [namespace("sales", injected=False)]),
    ("pinned-images", [deployment(image="repo/app:1.2.3"), deployment(image="repo/app@sha256:" + "a" * 64),
                       deployment(image="registry:5000/app:2")],
     [deployment(image="repo/app:latest"), deployment(image="repo/app"), deployment(image="registry:5000/app")]),
    ("container-hardening", [deployment()],
     [deployment(resources={"requests": {"cpu": "1"}}), deployment(securityContext={"runAsNonRoot": True}),
      deployment(securityContext={"allowPrivilegeEscalation": False})]),
    ("eks-hardening", [eks(encryptionConfigKeyArn="arn:k", enabledClusterLogTypes=["api"])],
     [eks(enabledClusterLogTypes=["api"]), eks(encryptionConfigKeyArn="arn:k")]),
    ("eks-public-endpoint", [eks(endpointPublicAccess=False), eks(publicAccessCidrs=["203.0.113.0/24"])],
     [eks(), eks(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])]),
]


@pytest.mark.parametrize(("rule", "good", "bad"), BOTH_WAYS, ids=[c[0] for c in BOTH_WAYS])
def test_resource_rules_both_ways(rule, good, bad):
    assert findings(rule, good) == [], rule
    for resource in bad:
        assert findings(rule, [resource]), (rule, resource)


def product_stack(*, authz=True, limit="envoyfilter"):
    labels = {"app.kubernetes.io/component": "data-product"}
    resources = [namespace("sales"), service("predictor", [{"name": "http-api"}], labels=labels)]
    if authz:
        resources.append(res("kubernetes:security.istio.io/v1:AuthorizationPolicy", "p", metadata={"name": "p", "namespace": "sales"},
                             spec={"selector": {"matchLabels": {"app": "predictor"}}, "action": "ALLOW", "rules": []}))
    if limit == "envoyfilter":
        patch = {"match": {"routeConfiguration": {"vhost": {"route": {"name": "predictor"}}}},
                 "patch": {"value": {"typed_per_filter_config": {"envoy.filters.http.local_ratelimit": {}}}}}
        resources.append(res("kubernetes:networking.istio.io/v1alpha3:EnvoyFilter", "f",
                             metadata={"name": "f", "namespace": "istio-ingress"}, spec={"configPatches": [patch]}))
    elif limit == "binding":
        resources.append(res("kubernetes:servicecatalog.k8s.io/v1beta1:ServiceBinding", "b", metadata={"name": "b", "namespace": "sales"},
                             spec={"parameters": {"service": "predictor", "apiId": "1"}}))
    return resources


def test_product_governed_both_ways():
    assert findings("product-governed", product_stack()) == []
    assert findings("product-governed", product_stack(limit="binding")) == []
    [v] = findings("product-governed", product_stack(authz=False))
    assert "not covered by an ALLOW AuthorizationPolicy" in v.message
    [v] = findings("product-governed", product_stack(limit=None))
    assert "has no rate limit" in v.message


def test_every_rule_has_a_test_both_ways():
    # gateway-tls: tests/platform/test_edge_tls.py::test_gateway_tls_rule
    tested = {c[0] for c in BOTH_WAYS} | {"istio-port-naming", "product-governed", "gateway-tls"}
    assert tested == set(RULES_BY_NAME)


# --- configuration ---------------------------------------------------------------

def test_levels_and_exemptions_come_from_config():
    bad = [deployment(name="legacy", image="repo/app:latest")]
    assert findings("pinned-images", bad)[0].level == MANDATORY
    assert findings("pinned-images", bad, {"pinned-images": "advisory"})[0].level == ADVISORY
    assert findings("pinned-images", bad, {"pinned-images": "disabled"}) == []
    assert findings("pinned-images", bad, {"pinned-images": {"exemptions": ["legacy"]}}) == []
    assert findings("pinned-images", bad, {"all": "advisory"})[0].level == ADVISORY


@pytest.mark.parametrize(("config", "message"), [({"no-such-rule": "mandatory"}, "no-such-rule: is not a datamesh policy"),
                                                 ({"pinned-images": "loud"}, "pinned-images.enforcementLevel: must be one of")])
def test_bad_policy_config_is_named(config, message):
    with pytest.raises(PolicyConfigError, match=message):
        rule_configs(config)


# --- every stack in the repository passes ----------------------------------------

@pytest.mark.parametrize("stack", sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")))
def test_every_stack_passes_every_mandatory_rule(stack, tmp_path):
    assert render_main(["--stack", stack, "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "policy-report.json").read_text())
    assert report["passed"] is True
    assert not [v for v in report["violations"] if v["level"] == MANDATORY]
    assert [r["name"] for r in report["rules"]] == [r.name for r in RULES]


def test_prod_makes_the_public_endpoint_rule_mandatory(tmp_path, capsys):
    stack = write_stack(tmp_path, {"datamesh:publicAccessCidrs": ["0.0.0.0/0"]}, base="prod")
    code = render_main(["--stack", "prod", "--config", str(stack), "--out", str(tmp_path / "out"),
                        "--policy-config", str(ROOT / "policies" / "config" / "prod.json")])
    assert code == 1
    assert "policy mandatory: eks-public-endpoint" in capsys.readouterr().err
    # dev's config keeps it advisory
    assert render_main(["--stack", "dev", "--out", str(tmp_path / "dev")]) == 0


# --- the render fails a product with a bad port name ------------------------------

@pytest.fixture
def project_copy(tmp_path):
    """A copy of the program whose products/ can be edited."""
    return copy_program(tmp_path / "project", base=DEMO)


def render_with_port(project_copy, **port_fields):
    from tools.engine.render import check_policies, render_stack

    path = project_copy / "products" / "revenue-predictor.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(port_fields)
    path.write_text(yaml.safe_dump(doc))
    return [v for v in check_policies(render_stack("dev", project_dir=project_copy), {}) if v.level == MANDATORY]


@pytest.mark.parametrize(("port_fields", "suggestion"), [
    ({"portName": "web"}, "http"), ({"portName": "httpfoo"}, "http"), ({"portName": ""}, "http-api"),
    ({"portName": "api-http"}, "http-api"), ({"portName": "grpc-web"}, "http"), ({"portName": "tcp-db"}, "http-db"),
])
def test_a_product_port_istio_would_not_read_as_declared_is_a_declaration_error(project_copy, port_fields, suggestion):
    # Where the mistake is: the declaration's portName, exit 2 before anything renders, with a name that works.
    from components.products.declarations import DeclarationError

    declared = yaml.safe_load((project_copy / "products" / "revenue-predictor.yaml").read_text())
    assert declared["protocol"] == "http"  # the suggestions below select it
    with pytest.raises(DeclarationError) as caught:
        render_with_port(project_copy, **port_fields)
    message = str(caught.value)
    assert message.startswith(f"{project_copy / 'products' / 'revenue-predictor.yaml'}: portName: "), message
    assert f"{suggestion!r}" in message and "istio-port-naming" not in message


@pytest.mark.parametrize("port_fields", [{"portName": "http-api"}, {"portName": "HTTP"}, {"portName": "http"},
                                         {"portName": "", "appProtocol": "http"}])
def test_render_accepts_product_ports_istio_reads(project_copy, port_fields):
    assert render_with_port(project_copy, **port_fields) == []


def test_the_policy_rule_still_judges_every_other_service(project_copy):
    # A Service the declarations do not make (here one a team adds beside its product) is the rule's.
    from tools.engine.render import check_policies, render_stack

    result = render_stack("dev", project_dir=project_copy)
    [product] = [r for r in result.resources if r.type == "kubernetes:core/v1:Service" and r.name == "revenue-predictor"]
    bad = Resource("urn:x", "kubernetes:core/v1:Service", "extra", {
        "metadata": {"name": "extra", "namespace": product.inputs["metadata"]["namespace"]},
        "spec": {"ports": [{"name": "web", "port": 8080}]}})
    mine = [Resource(r.urn, r.type, r.name, r.inputs) for r in result.resources if r.type != "pulumi:pulumi:Stack"]
    assert not [v for v in check_policies(result, {}) if v.rule == "istio-port-naming"]
    found = [v for v in evaluate([*mine, bad], {}) if v.rule == "istio-port-naming"]
    assert [v.urn for v in found] == ["urn:x"] and "e.g. 'http'" in found[0].message


def test_render_exit_code_for_a_policy_failure(tmp_path, capsys, monkeypatch):
    # Through the CLI entry point: exit 1, every file still written, the rule and resource named.
    from tools import render

    monkeypatch.setattr(render, "check_policies", lambda result, config: evaluate(
        [Resource("urn:x", "kubernetes:core/v1:Namespace", "n", {"metadata": {"name": "n"}})], config))
    assert render_main(["--stack", "dev", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "policy mandatory: mesh-namespace-injection: namespace n must be labelled" in err and "(urn:x)" in err
    assert json.loads((tmp_path / "policy-report.json").read_text())["passed"] is False
    assert (tmp_path / "resources.json").exists()


# --- the Pulumi pack adapter ---------------------------------------------------------

class Args:
    def __init__(self, resource, config=None):
        self.urn, self.resource_type, self.name, self.props = resource.urn, resource.type, resource.name, dict(resource.props)
        self.resources = [self]
        self._config = config or {}

    def get_config(self):
        return self._config


def test_pack_reports_through_pulumi_policy():
    from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

    from policies.pack import build_policies

    policies = {p.name: p for p in build_policies()}
    assert set(policies) == set(RULES_BY_NAME)
    assert isinstance(policies["pinned-images"], ResourceValidationPolicy)
    assert isinstance(policies["istio-port-naming"], StackValidationPolicy)
    reported = []
    policies["pinned-images"].validate(Args(deployment(image="x:latest")), lambda msg, urn: reported.append((msg, urn)))
    assert len(reported) == 1 and "is not pinned" in reported[0][0]
    reported.clear()
    policies["pinned-images"].validate(Args(deployment(name="d", image="x:latest"), {"exemptions": ["d"]}), lambda m, u: reported.append(m))
    assert reported == []


def test_the_pack_declares_to_pulumi_the_schema_the_render_validates_against():
    from policies.pack import build_policies
    from policies.rules import config_schema
    from tools.engine.render import policy_config_schema

    whole = policy_config_schema()
    for policy in build_policies():
        declared = policy.config_schema.properties
        assert declared == config_schema(RULES_BY_NAME[policy.name])["properties"]
        checked = whole["properties"][policy.name]["oneOf"][1]["properties"]
        assert {k: v for k, v in checked.items() if k != "enforcementLevel"} == declared


def test_the_pack_fails_closed_on_a_malformed_exemption():
    from policies.pack import build_policies

    policies = {p.name: p for p in build_policies()}
    with pytest.raises(PolicyConfigError, match="exemptions: must be a list of strings"):
        # A string would otherwise be read letter by letter, and "*" exempts everything.
        policies["pinned-images"].validate(Args(deployment(image="x:latest"), {"exemptions": "legacy-*"}), lambda m, u: None)


def test_pack_files():
    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python" and pack["runtime"]["options"]["virtualenv"]
    main = (ROOT / "policies" / "__main__.py").read_text()
    assert "PolicyPack(" in main and "def check" not in main  # it only assembles the pack
    requirements = (ROOT / "policies" / "requirements.txt").read_text()
    assert "pulumi-policy==" in requirements
    for path in Path(ROOT / "policies" / "config").glob("*.json"):
        rule_configs(json.loads(path.read_text()))


def test_the_platform_namespaces_are_the_ones_the_config_reserves():
    # One list: a product domain may not take a platform namespace, and only those are exempt from injection.
    from components import names
    from components.config import RESERVED_NAMESPACES
    from policies import rules

    assert rules.PLATFORM_NAMESPACES is names.PLATFORM_NAMESPACES
    assert frozenset(rules.PLATFORM_NAMESPACES) == RESERVED_NAMESPACES
