"""API keys and rate limits at the ingress gateway, with Istio resources only."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.governance.access import Consumer, RateLimit
from components.platform.istio import GATEWAY_SELECTOR, INGRESS_NAMESPACE
from components.products.declarations import Product

CONSUMER_HEADER = "x-datamesh-consumer"
RATE_LIMITED_HEADER = "x-datamesh-rate-limited"
STAT_PREFIX = "http_local_rate_limiter"
GATEWAY_VHOST = "*:80"  # Istio names the gateway's virtual host <host>:<port>
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
# A product with consumer tiers but no limit of its own still needs a default bucket.
UNLIMITED = RateLimit(1_000_000, 1)

_HTTP_CONNECTION_MANAGER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}


def lua_key_filter(consumers: tuple[Consumer, ...]) -> str:
    """Lua that turns a known API key into the consumer's name, and drops the key.

    The key arrives as the Basic-auth username with an empty password (the
    article's scheme). A client-sent consumer header is always removed first,
    so only this filter can set it; an unknown key sets nothing and the
    gateway's AuthorizationPolicy refuses the request.
    """
    table = {value: c.name for c in consumers for value in c.basic_auth_values}
    entries = "\n".join(f"  [{json.dumps(v)}] = {json.dumps(n)}," for v, n in sorted(table.items()))
    return f"""local consumers = {{
{entries}
}}

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  headers:remove("{CONSUMER_HEADER}")
  local authorization = headers:get("authorization")
  if authorization ~= nil and consumers[authorization] ~= nil then
    headers:add("{CONSUMER_HEADER}", consumers[authorization])
    headers:remove("authorization")
  end
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
            "portNumber": 80, "vhost": {"name": GATEWAY_VHOST, "route": {"name": product.name}}}},
        "patch": {"operation": "MERGE", "value": {
            "rate_limits": [{"actions": [{"request_headers": {"header_name": CONSUMER_HEADER, "descriptor_key": "consumer"}}]}],
            "typed_per_filter_config": {LOCAL_RATE_LIMIT: {
                "@type": "type.googleapis.com/udpa.type.v1.TypedStruct", "type_url": LOCAL_RATE_LIMIT_TYPE, "value": config}},
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
        consumers: declared consumers with their keys.
        tiers: rate-limit tiers by name.
        gateway: the ingress gateway's release; the filters configure its pods.
        provider: the cluster's Kubernetes provider.
    """

    products: tuple[Product, ...]
    consumers: tuple[Consumer, ...]
    tiers: dict[str, RateLimit]
    gateway: pulumi.Resource
    provider: k8s.Provider


class ApiGovernance(pulumi.ComponentResource):
    """Creates, in istio-ingress, for the gateway pods: an EnvoyFilter with the
    API-key Lua filter (its code, holding the keys, is a secret); an ALLOW
    AuthorizationPolicy admitting a product's routes only for the consumers
    that may call it (so no key, a wrong key or another consumer's key is
    refused with 403); and an EnvoyFilter with Envoy's local rate limiter:
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
                        "name": "envoy.filters.http.lua",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                            "default_source_code": {"inline_string": pulumi.Output.secret(lua_key_filter(args.consumers))},
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
                                "@type": "type.googleapis.com/udpa.type.v1.TypedStruct",
                                "type_url": LOCAL_RATE_LIMIT_TYPE,
                                "value": {"stat_prefix": STAT_PREFIX},
                            }}},
                        },
                        *routes,
                    ],
                },
                opts=k8s_opts,
            )
        self.register_outputs({})
