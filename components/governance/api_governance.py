"""API keys and rate limits at the ingress gateway, with Istio resources only."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.governance.access import Consumer, RateLimit, key_digest
from components.governance.lua_sha256 import SHA256_LUA
from components.platform.istio import GATEWAY_SELECTOR, INGRESS_NAMESPACE, SERVED_PORTS
from components.products.declarations import Product

HEADER_PREFIX = "x-datamesh-"  # only the gateway sets these; a client's are dropped
CONSUMER_HEADER = HEADER_PREFIX + "consumer"
RATE_LIMITED_HEADER = HEADER_PREFIX + "rate-limited"
REALM = "datamesh"
MAX_CREDENTIALS = 4  # Authorization values per request; more answer 401
STAT_PREFIX = "http_local_rate_limiter"
# The port the shared Gateway serves HTTP on (TLS, when on, ends at the NLB in front of it).
GATEWAY_PORT = next(p["number"] for p in SERVED_PORTS if p["protocol"] == "HTTP")
GATEWAY_VHOST = f"*:{GATEWAY_PORT}"  # Istio names the gateway's virtual host <host>:<port>
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
LUA = "envoy.filters.http.lua"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
# A product with consumer tiers but no limit of its own still needs a default bucket.
UNLIMITED = RateLimit(1_000_000, 1)

_HTTP_CONNECTION_MANAGER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}


def lua_key_filter(consumers: tuple[Consumer, ...], salt: str) -> str:
    """Lua that turns a known API key into the consumer's name, and drops the key.

    The key arrives as the Basic-auth username (the article's scheme; any
    password is ignored). The filter holds no key: only each key's salted
    SHA-256 digest (``key_digest``), and hashes the key it is shown. Every
    client-sent ``x-datamesh-*`` header, hyphen or underscore spelling, is
    removed first, so only this filter sets the consumer header. No key, an
    unknown key, or keys of two consumers answer 401 with a Basic challenge;
    a known consumer the route is not for is refused (403) by the
    AuthorizationPolicy after it.
    """
    table = {key_digest(k, salt): c.name for c in consumers for k in c.keys}
    entries = "\n".join(f"  [{json.dumps(d)}] = {json.dumps(n)}," for d, n in sorted(table.items()))
    return SHA256_LUA + f"""
local SALT = {json.dumps(salt)}
local CONSUMERS = {{
{entries}
}}
local B64 = {{}}
for i = 1, 64 do
  B64[string.byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", i)] = i - 1
end

-- Standard base64, padding optional (RFC 7617 clients differ); nil if it is not base64.
local function unbase64(text)
  text = text:gsub("=+$", "")
  if #text % 4 == 1 or text:find("[^%w%+/]") then
    return nil
  end
  local out = {{}}
  for i = 1, #text, 4 do
    local group, n = 0, 0
    for j = i, math.min(i + 3, #text) do
      group, n = group * 64 + B64[text:byte(j)], n + 1
    end
    group = group * 64 ^ (4 - n)
    local bytes = string.char(math.floor(group / 65536) % 256, math.floor(group / 256) % 256, group % 256)
    out[#out + 1] = bytes:sub(1, n - 1)
  end
  return table.concat(out)
end

-- The consumer one Authorization value names, or nil. The scheme is case-insensitive.
local function consumer_of(credentials)
  local scheme, token = credentials:match("^%s*(%S+)%s+(%S+)%s*$")
  if scheme == nil or scheme:lower() ~= "basic" then
    return nil
  end
  local decoded = unbase64(token)
  local key = decoded and decoded:match("^[^:]+")
  return key and CONSUMERS[sha256_hex(SALT .. key)]
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  local spoofed = {{}}
  for name, _ in pairs(headers) do
    if (name:lower():gsub("_", "-")):sub(1, {len(HEADER_PREFIX)}) == "{HEADER_PREFIX}" then
      spoofed[#spoofed + 1] = name
    end
  end
  for _, name in ipairs(spoofed) do
    headers:remove(name)
  end
  -- A header sent twice arrives joined with ","; every value must name the same consumer.
  -- At most {MAX_CREDENTIALS} values, so no request can make the gateway hash at length.
  local consumer, values = nil, 0
  for credentials in (headers:get("authorization") or ""):gmatch("[^,]+") do
    local named = consumer_of(credentials)
    values = values + 1
    if named == nil or values > {MAX_CREDENTIALS} or (consumer ~= nil and consumer ~= named) then
      consumer = nil
      break
    end
    consumer = named
  end
  if consumer == nil then
    request_handle:respond(
      {{[":status"] = "401", ["www-authenticate"] = 'Basic realm="{REALM}"', ["content-type"] = "text/plain"}},
      "missing or unknown API key\\n")
    return
  end
  headers:remove("authorization")
  headers:add("{CONSUMER_HEADER}", consumer)
end
"""


def stat_prefix(product: Product) -> str:
    return f"{STAT_PREFIX}_{product.name.replace('-', '_')}"


def bucket(limit: RateLimit) -> dict:
    return {"max_tokens": limit.requests, "tokens_per_fill": limit.requests, "fill_interval": limit.fill_interval}


def _percent(key: str) -> dict:
    return {"runtime_key": key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def route_rate_limit(product: Product, consumers: tuple[Consumer, ...], tiers: dict[str, RateLimit]) -> dict | None:
    """The per-route local rate limit for one product, or None when nothing limits it."""
    tiered = [c for c in consumers if product.name in c.products and c.tier]
    if product.rate_limit is None and not tiered:
        return None
    config = {
        # The proto's own type, not udpa's TypedStruct: a wrong field name fails validation.
        "@type": LOCAL_RATE_LIMIT_TYPE,
        # Per product, so its counters (ok, rate_limited) are its own metrics.
        "stat_prefix": stat_prefix(product),
        # The product's own bucket is always consumed; a consumer's bucket as well.
        "token_bucket": bucket(product.rate_limit or UNLIMITED),
        "filter_enabled": _percent("local_rate_limit_enabled"),
        "filter_enforced": _percent("local_rate_limit_enforced"),
        "response_headers_to_add": [
            {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": RATE_LIMITED_HEADER, "value": "true"}}
        ],
        "descriptors": [
            {"entries": [{"key": "consumer", "value": c.name}], "token_bucket": bucket(tiers[c.tier])} for c in tiered
        ],
    }
    return {
        "applyTo": "HTTP_ROUTE",
        "match": {"context": "GATEWAY", "routeConfiguration": {
            "portNumber": GATEWAY_PORT, "vhost": {"name": GATEWAY_VHOST, "route": {"name": product.name}}}},
        "patch": {"operation": "MERGE", "value": {
            # rate_limits belongs to the RouteAction (Route has no such field; istiod would drop it silently).
            "route": {"rate_limits": [
                {"actions": [{"request_headers": {"header_name": CONSUMER_HEADER, "descriptor_key": "consumer"}}]}]},
            "typed_per_filter_config": {LOCAL_RATE_LIMIT: config},
        }},
    }


def key_policy_rules(products: tuple[Product, ...], consumers: tuple[Consumer, ...]) -> list[dict]:
    """One rule per product: its route prefix, for exactly the consumers allowed to call it."""
    rules = []
    for product in products:
        allowed = sorted(c.name for c in consumers if product.name in c.products)
        if allowed:
            rules.append({
                "to": [{"operation": {"paths": [f"{product.route_prefix}*"]}}],
                "when": [{"key": f"request.headers[{CONSUMER_HEADER}]", "values": allowed}],
            })
    return rules


@dataclass(frozen=True)
class ApiGovernanceArgs:
    """Inputs of ``ApiGovernance``.

    Attributes:
        products: every product routed through the gateway.
        consumers: declared consumers with their keys (only their salted digests are rendered).
        salt: the public salt of the key digests (``access.key_salt``).
        tiers: rate-limit tiers by name.
        gateway: the ingress gateway's release; the filters configure its pods.
        provider: the cluster's Kubernetes provider.
    """

    products: tuple[Product, ...]
    consumers: tuple[Consumer, ...]
    salt: str
    tiers: dict[str, RateLimit]
    gateway: pulumi.Resource
    provider: k8s.Provider


class ApiGovernance(pulumi.ComponentResource):
    """Creates, in istio-ingress, for the gateway pods: an EnvoyFilter with the
    API-key Lua filter (it holds salted digests of the keys, never a key; no
    key or an unknown key gets 401); an ALLOW AuthorizationPolicy admitting a
    product's routes only for the consumers that may call it (another
    consumer's key gets 403); and an EnvoyFilter with Envoy's local rate limiter:
    the filter, and per product route a token bucket for the product and one
    per tiered consumer, answering 429 with ``x-datamesh-rate-limited: true``.
    """

    def __init__(self, name: str, args: ApiGovernanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:ApiGovernance", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[args.gateway])
        selector = {"labels": dict(GATEWAY_SELECTOR)}

        k8s.apiextensions.CustomResource(
            "datamesh-api-keys-filter",
            api_version="networking.istio.io/v1alpha3",
            kind="EnvoyFilter",
            metadata={"name": "datamesh-api-keys", "namespace": INGRESS_NAMESPACE},
            spec={
                "workloadSelector": selector,
                "configPatches": [{
                    "applyTo": "HTTP_FILTER",
                    # First in the chain: the consumer header must exist before authorization runs.
                    "match": {"context": "GATEWAY", "listener": _HTTP_CONNECTION_MANAGER},
                    "patch": {"operation": "INSERT_FIRST", "value": {
                        "name": LUA,
                        "typed_config": {
                            "@type": LUA_TYPE,
                            "default_source_code": {"inline_string": lua_key_filter(args.consumers, args.salt)},
                        },
                    }},
                }],
            },
            opts=k8s_opts,
        )
        k8s.apiextensions.CustomResource(
            "datamesh-api-keys-policy",
            api_version="security.istio.io/v1",
            kind="AuthorizationPolicy",
            metadata={"name": "datamesh-api-keys", "namespace": INGRESS_NAMESPACE},
            spec={
                "selector": {"matchLabels": dict(GATEWAY_SELECTOR)},
                "action": "ALLOW",
                # No rule for a product nobody may call: the gateway refuses everything not listed.
                "rules": key_policy_rules(args.products, args.consumers),
            },
            opts=k8s_opts,
        )
        routes = [r for p in args.products if (r := route_rate_limit(p, args.consumers, args.tiers))]
        if routes:
            k8s.apiextensions.CustomResource(
                "datamesh-rate-limits",
                api_version="networking.istio.io/v1alpha3",
                kind="EnvoyFilter",
                metadata={"name": "datamesh-rate-limits", "namespace": INGRESS_NAMESPACE},
                spec={
                    "workloadSelector": selector,
                    "configPatches": [
                        {
                            "applyTo": "HTTP_FILTER",
                            "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {
                                "name": "envoy.filters.network.http_connection_manager",
                                "subFilter": {"name": "envoy.filters.http.router"}}}}},
                            # The filter itself limits nothing; each route's config below does.
                            "patch": {"operation": "INSERT_BEFORE", "value": {"name": LOCAL_RATE_LIMIT, "typed_config": {
                                "@type": LOCAL_RATE_LIMIT_TYPE, "stat_prefix": STAT_PREFIX,
                            }}},
                        },
                        *routes,
                    ],
                },
                opts=k8s_opts,
            )
        self.register_outputs({})
