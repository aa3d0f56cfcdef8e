"""Global rate limits (datamesh:rateLimits: global): config, the service's descriptors, Envoy's filter, Redis, cost."""

import json

import pytest
import yaml

from components.config import ConfigError
from components.governance.global_limits import (
    CLUSTER_NAME,
    GATEWAY_DOMAIN,
    INBOUND_DOMAIN,
    RATE_LIMIT_FILTER,
    SERVICE_HOST,
)
from components.ratelimit import SERVICE_UNITS
from components.versions import RATELIMIT_COMMIT, RATELIMIT_IMAGE
from tests.conftest import DEMO, kube_object, render_variant, stack_file, written
from tools.engine.cost import estimate, load_prices
from tools.engine.ratelimit_build import pinned_ratelimit
from tools.engine.render import render_stack
from tools.engine.verify_calls import effective_limit, intent

GLOBAL_DEV = {"datamesh:rateLimits": "global", "datamesh:rateLimitRedis": "in-cluster"}
GLOBAL_PROD = {"datamesh:rateLimits": "global", "datamesh:rateLimitFailure": "closed",
               "datamesh:rateLimitRedisAuthToken": {"secure": "v1:REPLACE-BEFORE-PULUMI-UP:redis"}}


def _want(tmp_path, overrides, base=DEMO):
    """What the stack declares, read with the program's parsers from the same stack file the render used."""
    from tests.conftest import ROOT, stack_name, write_stack

    path = write_stack(tmp_path, overrides, base)
    return intent(ROOT, stack_name(base), path), render_stack(stack_name(base), path)


@pytest.fixture(scope="module")
def global_dev(tmp_path_factory):
    return _want(tmp_path_factory.mktemp("global-dev"), GLOBAL_DEV)


@pytest.fixture(scope="module")
def global_prod(tmp_path_factory):
    return _want(tmp_path_factory.mktemp("global-prod"), GLOBAL_PROD, base="prod")


@pytest.mark.parametrize("stack", ["global_dev", "global_prod"])  # prod: its 600-a-minute standard tier
def test_service_descriptors_come_from_the_declarations(stack, request):
    want, result = request.getfixturevalue(stack)
    assert want.access.tiers and any(c.tier for c in want.access.consumers)
    config = kube_object(result, "ConfigMap", "ratelimit-config").inputs["data"]
    for domain in (GATEWAY_DOMAIN, INBOUND_DOMAIN):
        doc = yaml.safe_load(config[f"{domain}.yaml"])
        assert doc["domain"] == domain
        by_product = {d["value"]: d for d in doc["descriptors"]}
        for product in want.products:
            tiered = [c for c in want.access.consumers if product.name in c.products and c.tier]
            if product.rate_limit is None and not tiered:
                assert product.name not in by_product
                continue
            entry = by_product[product.name]
            if product.rate_limit:
                assert entry["rate_limit"] == {"unit": SERVICE_UNITS[product.rate_limit.period_seconds],
                                               "requests_per_unit": product.rate_limit.requests}
            tiers = {d["value"]: d["rate_limit"] for d in entry.get("descriptors", [])}
            assert tiers == {c.name: {"unit": SERVICE_UNITS[want.access.tiers[c.tier].period_seconds],
                                      "requests_per_unit": want.access.tiers[c.tier].requests} for c in tiered}


def test_envoy_filters_call_the_service_with_matching_descriptors(global_dev):
    want, result = global_dev
    gateway = kube_object(result, "EnvoyFilter", "datamesh-rate-limits").inputs["spec"]["configPatches"]
    clusters = [p for p in gateway if p["applyTo"] == "CLUSTER"]
    assert clusters[0]["patch"]["value"]["name"] == CLUSTER_NAME
    endpoint = clusters[0]["patch"]["value"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"]["socket_address"]["address"] == SERVICE_HOST
    filters = [p["patch"]["value"] for p in gateway if p["applyTo"] == "HTTP_FILTER"]
    assert [f["name"] for f in filters] == [RATE_LIMIT_FILTER]
    assert filters[0]["typed_config"]["domain"] == GATEWAY_DOMAIN
    assert filters[0]["typed_config"]["failure_mode_deny"] is False  # the default policy: open
    assert not any("local_ratelimit" in json.dumps(p) for p in gateway)
    routes = {p["match"]["routeConfiguration"]["vhost"]["route"]["name"]: p["patch"]["value"]["route"]["rate_limits"]
              for p in gateway if p["applyTo"] == "HTTP_ROUTE"}
    for product in want.products:
        tiered = any(product.name in c.products and c.tier for c in want.access.consumers)
        keys = [[next(iter(a)) for a in limit["actions"]] for limit in routes.get(product.name, [])]
        assert keys == [["generic_key"]] * bool(product.rate_limit) + [["generic_key", "request_headers"]] * tiered
        if keys:
            sidecar = kube_object(result, "EnvoyFilter", f"{product.name}-limits").inputs["spec"]["configPatches"]
            inbound = next(p for p in sidecar if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]["typed_config"]
            assert inbound["domain"] == INBOUND_DOMAIN and inbound["rate_limits"] == routes[product.name]


def test_in_cluster_redis_and_the_pinned_service(global_dev):
    _, result = global_dev
    deployment = kube_object(result, "Deployment", "ratelimit").inputs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == RATELIMIT_IMAGE
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REDIS_URL"].startswith("ratelimit-redis.") and env["REDIS_TLS"] == "false"
    kube_object(result, "Deployment", "ratelimit-redis")
    assert not [r for r in result.resources if r.type.startswith("aws:elasticache")]


def test_image_and_go_module_are_the_same_commit():
    assert pinned_ratelimit().endswith("-" + RATELIMIT_COMMIT[:12])
    assert RATELIMIT_IMAGE.endswith(":" + RATELIMIT_COMMIT[:8])


def test_prod_elasticache_is_encrypted_authenticated_and_private(global_prod):
    _, result = global_prod
    [group] = [r for r in result.resources if r.type == "aws:elasticache/replicationGroup:ReplicationGroup"]
    assert group.inputs["transitEncryptionEnabled"] is True and group.inputs["atRestEncryptionEnabled"] is True
    assert group.inputs["authToken"] == "[secret]"
    [subnets] = [r for r in result.resources if r.type == "aws:elasticache/subnetGroup:SubnetGroup"]
    private = sorted(f"{r.name}-PLACEHOLDER-id" for r in result.resources
                     if r.type == "aws:ec2/subnet:Subnet" and "-private-" in r.name)
    assert private and sorted(subnets.inputs["subnetIds"]) == private
    rules = [r for r in result.resources if r.type == "aws:ec2/securityGroupRule:SecurityGroupRule"
             and r.parent and "RateLimitService" in r.parent]
    assert [(r.inputs["type"], r.inputs["fromPort"], r.inputs["toPort"]) for r in rules] == [("ingress", 6379, 6379)]
    assert rules[0].inputs["sourceSecurityGroupId"].startswith("cluster-nodes")
    secret = kube_object(result, "Secret", "ratelimit-redis-auth").inputs
    assert secret["stringData"] == "[secret]"
    env = {e["name"]: e for e in kube_object(result, "Deployment", "ratelimit").inputs["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REDIS_TLS"]["value"] == "true" and "secretKeyRef" in env["REDIS_AUTH"]["valueFrom"]
    gateway = kube_object(result, "EnvoyFilter", "datamesh-rate-limits").inputs["spec"]["configPatches"]
    config = next(p for p in gateway if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]["typed_config"]
    assert config["failure_mode_deny"] is True and config["status_on_error"] == {"code": "ServiceUnavailable"}


def test_cost_prices_the_redis(global_prod, tmp_path):
    _, result = global_prod
    resources = json.loads((written(result, tmp_path / "render") / "resources.json").read_text())
    [row] = [r for r in estimate(resources)["resources"] if r["type"] == "aws:elasticache/replicationGroup:ReplicationGroup"]
    group = next(r for r in result.resources if r.type == "aws:elasticache/replicationGroup:ReplicationGroup").inputs
    prices = load_prices()
    price = prices["elastiCacheNodePerHour"][group["nodeType"]]["value"]
    assert row["monthly"] == round(group["numCacheClusters"] * prices["hoursPerMonth"] * price, 2)


def test_local_is_the_default_and_renders_the_same(tmp_path, dev):
    explicit = render_variant(tmp_path, {"datamesh:rateLimits": "local", "datamesh:rateLimitFailure": "closed"})
    assert {r.urn: r.inputs for r in explicit.resources} == {r.urn: r.inputs for r in dev.resources}


@pytest.mark.parametrize(("overrides", "key"), [
    ({"datamesh:rateLimits": "exact"}, "datamesh:rateLimits:"),
    ({"datamesh:rateLimits": "global", "datamesh:rateLimitFailure": "maybe"}, "datamesh:rateLimitFailure:"),
    ({"datamesh:rateLimits": "global"}, "datamesh:rateLimitRedisAuthToken:"),
    ({"datamesh:rateLimits": "global", "datamesh:rateLimitRedisAuthToken": "a" * 32}, "datamesh:rateLimitRedisAuthToken:"),
    ({**GLOBAL_DEV, "datamesh:rateLimitTiers": {"standard": {"requests": 60, "period": "30s"},
                                                "trial": {"requests": 10, "period": "1m"}}}, "datamesh:rateLimitTiers.standard:"),
    ({**GLOBAL_DEV, "datamesh:productOverrides": {"revenue-predictor": {"rateLimit": {"requests": 2, "period": "2m"}}}},
     "datamesh:productOverrides.revenue-predictor.rateLimit:"),
])
def test_bad_global_config_is_refused_naming_the_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError) as error:
        render_variant(tmp_path, overrides, base=DEMO)
    assert str(error.value).startswith(key), str(error.value)
    assert "a" * 32 not in str(error.value)


def test_periods_local_mode_accepts(tmp_path):
    render_variant(tmp_path, {"datamesh:rateLimitTiers": {"standard": {"requests": 60, "period": "30s"},
                                                          "trial": {"requests": 10, "period": "1m"}}}, base=DEMO)


@pytest.mark.parametrize("stack", ["global_dev", "global_prod"])
def test_effective_limits_are_all_expressible(stack, request):
    want, _ = request.getfixturevalue(stack)
    assert stack_file(DEMO)
    for product in want.products:
        for consumer in want.consumers_of(product.name):
            limit = effective_limit(product, consumer, want.access.tiers)
            assert limit is None or limit.period_seconds in SERVICE_UNITS


def _policies(result):
    return {r.inputs["metadata"]["name"]: r.inputs for r in result.resources
            if r.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"}


def _selects(selector, labels):
    return selector.items() <= labels.items()


def _pods(result, namespace):
    """Pod labels by Deployment in ``namespace``, and the gateway chart's pod labels for its release's namespace."""
    pods = [d.inputs["spec"]["template"]["metadata"]["labels"] for d in result.resources
            if d.type == "kubernetes:apps/v1:Deployment" and d.inputs["metadata"]["namespace"] == namespace]
    pods += [r.inputs["values"]["labels"] for r in result.resources
             if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("namespace") == namespace
             and "labels" in (r.inputs.get("values") or {})]
    return pods


def _ports(result, name):
    return [p["port"] for p in kube_object(result, "Service", name).inputs["spec"]["ports"]]


def test_only_the_service_reaches_the_in_cluster_redis(global_dev):
    import kubernetes_validate

    _, result = global_dev
    policy = _policies(result)["ratelimit-redis"]
    redis = kube_object(result, "Deployment", "ratelimit-redis").inputs
    service = kube_object(result, "Deployment", "ratelimit").inputs
    assert policy["metadata"]["namespace"] == redis["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"] == redis["spec"]["selector"]["matchLabels"]
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], redis["spec"]["template"]["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [source] = rule["from"]
    assert set(source) == {"podSelector"}  # its own namespace only
    assert _selects(source["podSelector"]["matchLabels"], service["spec"]["template"]["metadata"]["labels"])
    assert not _selects(source["podSelector"]["matchLabels"], redis["spec"]["template"]["metadata"]["labels"])
    assert rule["ports"] == [{"protocol": "TCP", "port": port} for port in _ports(result, "ratelimit-redis")]
    kubernetes_validate.validate(policy | {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}, "1.35", strict=True)


@pytest.mark.parametrize("stack", ["global_dev", "global_prod"])
def test_the_service_takes_grpc_only_from_the_envoys_that_call_it(stack, request):
    import kubernetes_validate

    _, result = request.getfixturevalue(stack)
    policy = _policies(result)["ratelimit"]
    kubernetes_validate.validate(policy | {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy"}, "1.35", strict=True)
    service = kube_object(result, "Deployment", "ratelimit").inputs
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]["matchLabels"]
    [rule] = policy["spec"]["ingress"]
    grpc = [p["port"] for p in kube_object(result, "Service", "ratelimit").inputs["spec"]["ports"] if p["name"] == "grpc"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port} for port in grpc]
    # The callers: exactly the pods an EnvoyFilter gives the global rate limit filter (gateway and product sidecars),
    # whose cluster calls the Service's gRPC port, in plaintext: istio-system has no sidecar injection.
    calling = set()
    for f in (r for r in result.resources if r.type.endswith(":EnvoyFilter")):
        patches = f.inputs["spec"]["configPatches"]
        if any(p["patch"]["value"].get("name") == RATE_LIMIT_FILTER for p in patches):
            calling.add((f.inputs["metadata"]["namespace"], json.dumps(f.inputs["spec"]["workloadSelector"]["labels"])))
            [cluster] = [p["patch"]["value"] for p in patches if p["applyTo"] == "CLUSTER"]
            address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
            assert address["port_value"] in grpc and "transport_socket" not in cluster
    admitted = {(s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                 json.dumps(s["podSelector"]["matchLabels"])) for s in rule["from"]}
    assert admitted == calling and len(calling) >= 2  # the gateway, and at least one limited product
    for namespace, labels in admitted:
        assert any(_selects(json.loads(labels), pod) for pod in _pods(result, namespace)), (namespace, labels)
    system = kube_object(result, "Namespace", service["metadata"]["namespace"]).inputs["metadata"]
    assert not {"istio-injection", "istio.io/rev"} & set(system.get("labels") or {})
    if stack == "global_prod":  # ElastiCache: no Redis pod, no policy for one
        assert set(_policies(result)) == {"ratelimit"}


def test_the_service_writes_no_line_per_call():
    # Without a stats sink the service logs every timer sample to stderr, on the call's path.
    from components.governance.rate_limit_service import service_env

    env = {e["name"]: e.get("value") for e in service_env("redis:6379", False, None)}
    assert env["DISABLE_STATS"] == "true"
