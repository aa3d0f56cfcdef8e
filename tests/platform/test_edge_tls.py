"""TLS at the edge: an ACM certificate validated through Route 53, terminated at the NLB; plain HTTP only when asked."""

from __future__ import annotations

import json

import pytest

from policies.rules import Context, Resource, check_gateway_tls
from tests.conftest import DEMO, render_variant, waits_for, write_stack
from tools.render import main as render_main

LB = "service.beta.kubernetes.io/aws-load-balancer-"
DOMAIN = "api.datamesh.example.com"
ARN = "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"


def gateway_service(result):
    return result.one("kubernetes:core/v1:Service", "istio-ingressgateway")


def test_prod_requests_a_certificate_validated_in_its_zone_and_the_nlb_terminates_tls(prod):
    cert = prod.one("aws:acm/certificate:Certificate", "edge-certificate")
    assert cert.inputs["domainName"] == DOMAIN and cert.inputs["validationMethod"] == "DNS"
    record = prod.one("aws:route53/record:Record", "edge-validation-record")
    assert record.inputs["zoneId"] == "Z0PLACEHOLDER0ZONE0ID" and record.inputs["type"] == "CNAME"
    assert record.inputs["allowOverwrite"] is True  # renewals reuse it
    validation = prod.one("aws:acm/certificateValidation:CertificateValidation", "edge-validation")
    assert validation.inputs["validationRecordFqdns"] == [record.inputs["name"]]

    service = gateway_service(prod)
    annotations = service.inputs["metadata"]["annotations"]
    assert annotations[LB + "ssl-cert"] == validation.inputs["certificateArn"]
    assert annotations[LB + "ssl-ports"] == "https"
    assert annotations[LB + "ssl-negotiation-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    ports = {p["port"]: p for p in service.inputs["spec"]["ports"]}
    assert set(ports) == {443}  # no listener on 80: plain HTTP never reaches a gateway pod
    assert ports[443] == {"name": "https", "port": 443, "targetPort": 80, "protocol": "TCP"}
    # The listener is made only once ACM has issued the certificate, and goes before it on destroy.
    assert waits_for(prod, service, validation) and waits_for(prod, service, cert)


def test_prod_points_its_name_at_the_nlb_and_publishes_https_urls(prod):
    dns = prod.one("aws:route53/record:Record", "edge-record")
    nlb = "PLACEHOLDER-istio-ingressgateway.elb.eu-west-1.amazonaws.com"  # the mocks' load balancer hostname
    assert dns.inputs == {"name": DOMAIN, "records": [nlb], "ttl": 300, "type": "CNAME", "zoneId": "Z0PLACEHOLDER0ZONE0ID"}
    assert waits_for(prod, dns, gateway_service(prod))
    assert prod.outputs["gatewayUrl"] == f"https://{DOMAIN}"


def test_a_domain_with_products_gives_https_product_urls_and_catalog(tmp_path):
    result = render_variant(tmp_path, {"datamesh:domain": DOMAIN, "datamesh:hostedZoneId": "Z0PLACEHOLDER0ZONE0ID"},
                            base=DEMO, drop=("datamesh:allowPlainHttp",))
    urls = result.outputs["productUrls"]
    assert urls["revenue-predictor"] == f"https://{DOMAIN}/public/api/v1/revenue-predictor/"
    assert all(u.startswith("https://") for u in urls.values())
    catalog = json.dumps(result.outputs["catalog"])
    assert f"https://{DOMAIN}/public/api/v1/" in catalog and "http://PLACEHOLDER" not in catalog


def test_an_issued_certificate_is_used_as_is(tmp_path):
    result = render_variant(tmp_path, {"datamesh:domain": DOMAIN, "datamesh:certificateArn": ARN},
                            drop=("datamesh:allowPlainHttp",))
    assert not [r for r in result.resources if r.type.startswith(("aws:acm/", "aws:route53/"))]
    assert gateway_service(result).inputs["metadata"]["annotations"][LB + "ssl-cert"] == ARN


def test_dev_serves_plain_http_because_it_says_so(dev):
    service = gateway_service(dev)
    assert LB + "ssl-cert" not in service.inputs["metadata"]["annotations"]
    assert {p["port"] for p in service.inputs["spec"]["ports"]} == {80}
    assert dev.outputs["productUrls"] and all(u.startswith("http://PLACEHOLDER-") for u in dev.outputs["productUrls"].values())


@pytest.mark.parametrize(("overrides", "drop", "message"), [
    ({}, ("datamesh:allowPlainHttp",), "datamesh:domain: is required for HTTPS at the gateway"),
    ({"datamesh:domain": DOMAIN, "datamesh:hostedZoneId": "Z0PLACEHOLDER0ZONE0ID"}, (),
     "datamesh:allowPlainHttp: must be false when domain is set"),
    ({"datamesh:domain": DOMAIN}, ("datamesh:allowPlainHttp",), "datamesh:domain: needs hostedZoneId"),
    ({"datamesh:domain": "*.example.com", "datamesh:hostedZoneId": "Z1"}, ("datamesh:allowPlainHttp",),
     "datamesh:domain: '*.example.com' is not a DNS name"),
    ({"datamesh:domain": DOMAIN, "datamesh:hostedZoneId": "example.com"}, ("datamesh:allowPlainHttp",),
     "datamesh:hostedZoneId: 'example.com' is not a Route 53 hosted zone ID"),
    ({"datamesh:domain": DOMAIN, "datamesh:certificateArn": ARN.replace("eu-west-1", "us-east-1")},
     ("datamesh:allowPlainHttp",), "datamesh:certificateArn: "),
    ({"datamesh:hostedZoneId": "Z1"}, (), "datamesh:hostedZoneId: is set but domain is not"),
    ({"datamesh:domain": "example.com", "datamesh:hostedZoneId": "Z1"}, ("datamesh:allowPlainHttp",),
     "datamesh:domain: 'example.com' looks like a zone apex"),
    ({"datamesh:domain": DOMAIN, "datamesh:certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/" + "-" * 36},
     ("datamesh:allowPlainHttp",), "datamesh:certificateArn: "),
])
def test_bad_edge_configuration_exits_2_naming_the_key(tmp_path, capsys, overrides, drop, message):
    stack = write_stack(tmp_path, overrides, drop=drop)
    assert render_main(["--stack", "dev", "--config", str(stack), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}"), err
    assert not (tmp_path / "out").exists()


def test_prod_refuses_to_render_without_tls(tmp_path, capsys):
    stack = write_stack(tmp_path, {"datamesh:allowPlainHttp": True}, base="prod",
                        drop=("datamesh:domain", "datamesh:hostedZoneId"))
    # The stack file is read as "prod", so prod's policy config (gateway-tls mandatory) applies.
    assert render_main(["--stack", "prod", "--config", str(stack), "--out", str(tmp_path / "out")]) == 1
    assert "policy mandatory: gateway-tls: LoadBalancer Service istio-ingress/istio-ingressgateway terminates no TLS" \
        in capsys.readouterr().err


def service(annotations, ports):
    return Resource("urn", "kubernetes:core/v1:Service", "gw", {
        "metadata": {"name": "gw", "namespace": "istio-ingress", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": [{"name": n, "port": p} for n, p in ports]}})


def test_gateway_tls_rule():
    rule = lambda r: list(check_gateway_tls(r, Context()))  # noqa: E731
    tls = {LB + "ssl-cert": ARN, LB + "ssl-ports": "https"}
    assert rule(service(tls, [("status-port", 15021), ("https", 443)])) == []
    assert rule(service({LB + "ssl-cert": ARN}, [("http2", 80), ("https", 443)])) == []  # no ssl-ports: all TLS
    [found] = rule(service(tls, [("status-port", 15021), ("http2", 80), ("https", 443)]))
    assert "serves port 80 (http2) without TLS" in found
    [found] = rule(service({}, [("http2", 80)]))
    assert "terminates no TLS" in found
    assert rule(Resource("urn", "kubernetes:core/v1:Service", "x", {"spec": {"type": "ClusterIP"}})) == []


def test_gateway_tls_rule_runs_in_a_first_preview_while_the_certificate_is_unknown():
    # As the policy pack hands props over during `pulumi preview`: reading an unknown value raises.
    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

    def previewed(annotations):
        return Resource("urn", "kubernetes:core/v1:Service", "gw", unknown_checking_proxy({
            "metadata": {"name": "gw", "namespace": "istio-ingress", "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "status-port", "port": 15021}, {"name": "https", "port": 443}]}}))

    assert list(check_gateway_tls(previewed({LB + "ssl-cert": UNKNOWN_STRING_VALUE, LB + "ssl-ports": "https"}), Context())) == []
    assert list(check_gateway_tls(previewed({}), Context()))
