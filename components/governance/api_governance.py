"""API keys and rate limits at the ingress gateway, with Istio resources only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import pulumi
import pulumi_kubernetes as k8s

from components.config import RateLimitSettings
from components.governance.access import Consumer, RateLimit, is_undecrypted, key_digest
from components.governance.gateway_match import CONSUMER_HEADER as CONSUMER_HEADER
from components.governance.gateway_match import GATEWAY_PORT as GATEWAY_PORT
from components.governance.gateway_match import GATEWAY_VHOST as GATEWAY_VHOST
from components.governance.gateway_match import HEADER_PREFIX as HEADER_PREFIX
from components.governance.gateway_match import RATE_LIMITED_HEADER as RATE_LIMITED_HEADER
from components.governance.gateway_match import STAT_PREFIX as STAT_PREFIX
from components.governance.gateway_match import route_patch, stat_prefix
from components.governance.global_limits import (
    global_gateway_patches,
    global_sidecar_patches,
    limited_headers,
    retry_after,
    runtime_fraction,
    tiered_consumers,
)
from components.governance.lua_sha256 import SHA256_LUA
from components.governance.rate_limit_service import Caller, RateLimitService, RateLimitServiceArgs
from components.platform.cluster import Cluster
from components.platform.istio import GATEWAY_SELECTOR, INGRESS_NAMESPACE, SYSTEM_NAMESPACE
from components.platform.network import Network
from components.products.declarations import Product
from components.products.workload import selector

REALM = "datamesh"
MAX_CREDENTIALS = 4  # Authorization values per request; more answer 401
# A longer Authorization header is refused before it is parsed. A key is 48 hex characters
# (docs/governance.md), 74 bytes as a Basic value; four of them fit with room to spare.
MAX_AUTHORIZATION_BYTES = 1024
KEY_FILTER_LUA = Template((Path(__file__).parent / "lua" / "api_keys.lua").read_text())
LOCAL_RATE_LIMIT = "envoy.filters.http.local_ratelimit"
LOCAL_RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
LUA = "envoy.filters.http.lua"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
# A product with consumer tiers but no limit of its own still needs a default bucket.
UNLIMITED = RateLimit(1_000_000, 1)

_HTTP_CONNECTION_MANAGER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager"}}}


def lua_key_filter(consumers: tuple[Consumer, ...], salt: str) -> str:
    """Lua that turns a known API key into the consumer's name, and drops the key (``lua/api_keys.lua``).

    The key arrives as the Basic-auth username (the article's scheme; any
    password is ignored). The filter holds no key: only each key's salted
    SHA-256 digest (``key_digest``), and hashes the key it is shown. Every
    client-sent ``x-datamesh-*`` header, hyphen or underscore spelling, is
    removed first, so only this filter sets the consumer header. No key, an
    unknown key, keys of two consumers, more than ``MAX_CREDENTIALS`` values or an
    ``Authorization`` header over ``MAX_AUTHORIZATION_BYTES`` answer 401 with a Basic
    challenge, before any parsing; a known consumer the route is not for is refused
    (403) by the AuthorizationPolicy after it.
    """
    # An offline render's placeholders are printed in the repository: they open nothing.
    table = {key_digest(k, salt): c.name for c in consumers for k in c.keys if not is_undecrypted(k)}
    entries = "\n".join(f"  [{json.dumps(d)}] = {json.dumps(n)}," for d, n in sorted(table.items()))
    return SHA256_LUA + "\n" + KEY_FILTER_LUA.substitute(
        salt=json.dumps(salt), entries=entries, max_header=MAX_AUTHORIZATION_BYTES, max_credentials=MAX_CREDENTIALS,
        realm=REALM, prefix_length=len(HEADER_PREFIX), header_prefix=HEADER_PREFIX, consumer_header=CONSUMER_HEADER)


def bucket(limit: RateLimit) -> dict:
    return {"max_tokens": limit.requests, "tokens_per_fill": limit.requests, "fill_interval": limit.fill_interval}


def route_rate_limit(product: Product, consumers: tuple[Consumer, ...], tiers: dict[str, RateLimit]) -> dict | None:
    """The per-route local rate limit for one product, or None when nothing limits it."""
    tiered = tiered_consumers(product, consumers)
    if product.rate_limit is None and not tiered:
        return None
    buckets = [product.rate_limit or UNLIMITED, *(tiers[c.tier] for c in tiered if c.tier)]
    # When a token is back in the slowest bucket on this route: a client that waits this long gets through.
    retry_seconds = max(math.ceil(b.period_seconds / b.requests) for b in buckets)
    config = {
        # The proto's own type, not udpa's TypedStruct: a wrong field name fails validation.
        "@type": LOCAL_RATE_LIMIT_TYPE,
        # Per product, so its counters (ok, rate_limited) are its own metrics.
        "stat_prefix": stat_prefix(product),
        # The product's own bucket is always consumed; a consumer's bucket as well.
        "token_bucket": bucket(product.rate_limit or UNLIMITED),
        "filter_enabled": runtime_fraction("local_rate_limit_enabled"),
        "filter_enforced": runtime_fraction("local_rate_limit_enforced"),
        "response_headers_to_add": limited_headers(retry_seconds),
        # The IETF draft's RateLimit headers (x-ratelimit-limit, -remaining, -reset) on every answer.
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        # The filter's own descriptors source: Envoy drops route-level rate_limits for the local limiter.
        "rate_limits": [{"actions": [{"request_headers": {"header_name": CONSUMER_HEADER, "descriptor_key": "consumer"}}]}],
        "descriptors": [
            {"entries": [{"key": "consumer", "value": c.name}], "token_bucket": bucket(tiers[c.tier])}
            for c in tiered if c.tier
        ],
    }
    return route_patch(product, {"typed_per_filter_config": {LOCAL_RATE_LIMIT: config}})


# Locally generated answers (the key filter's 401, RBAC's 403, no route's 404, the limiter's 429, and
# Envoy's own 5xx such as "upstream connect error") get these bodies instead of Envoy's text.
GENERIC_REPLIES = (("EQ", 401, "unauthorized"), ("EQ", 403, "forbidden"), ("EQ", 404, "not found"),
                   ("EQ", 429, "rate limited"), ("GE", 500, "unavailable"))
# Headers a client may send that would tell a backend something untrue (who forwarded, who the peer
# is) or that only the mesh sets; the gateway removes them before the backend sees the request.
SPOOFABLE_REQUEST_HEADERS = ("forwarded", "x-real-ip", "x-envoy-external-address", "x-envoy-peer-metadata",
                             "x-envoy-peer-metadata-id", "x-envoy-internal", "x-envoy-original-path",
                             "x-envoy-decorator-operation")
# What would tell a client about the gateway's internals.
INTERNAL_RESPONSE_HEADERS = ("server", "x-envoy-upstream-service-time", "x-envoy-decorator-operation")
HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"


def local_reply_mappers() -> list[dict]:
    return [{
        "filter": {"status_code_filter": {"comparison": {"op": op, "value": {
            "default_value": code, "runtime_key": f"datamesh.local_reply.{code}"}}}},
        "body_format_override": {"json_format": {"error": text}, "content_type": "application/json"},
    } for op, code, text in GENERIC_REPLIES]


def inbound_reply_patches() -> list[dict]:
    """Every sidecar's own answers (a 503 when its app is down, its 403s and 429s) say nothing of internals either:
    through the gateway they would reach the client as they are."""
    return [{"applyTo": "NETWORK_FILTER",
             "match": {"context": "SIDECAR_INBOUND", "listener": _HTTP_CONNECTION_MANAGER},
             "patch": {"operation": "MERGE", "value": {"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": {"@type": HCM_TYPE,
                                                                        "server_header_transformation": "PASS_THROUGH",
                                                                        "local_reply_config": {"mappers": local_reply_mappers()}}}}}]


def edge_hygiene_patches() -> list[dict]:
    """The gateway says nothing about its internals and forwards no client-claimed identity or route."""
    return [
        {"applyTo": "NETWORK_FILTER",
         "match": {"context": "GATEWAY", "listener": _HTTP_CONNECTION_MANAGER},
         "patch": {"operation": "MERGE", "value": {"name": "envoy.filters.network.http_connection_manager",
                                                   "typed_config": {
                                                       "@type": HCM_TYPE,
                                                       # No "server: istio-envoy" on the gateway's own answers.
                                                       "server_header_transformation": "PASS_THROUGH",
                                                       "local_reply_config": {"mappers": local_reply_mappers()}}}}},
        {"applyTo": "HTTP_FILTER",
         "match": {"context": "GATEWAY", "listener": {"filterChain": {"filter": {
             "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}}}},
         # No x-envoy-* headers added to requests (expected timeout, attempt count) or answers (service time).
         "patch": {"operation": "MERGE", "value": {"name": "envoy.filters.http.router", "typed_config": {
             "@type": ROUTER_TYPE, "suppress_envoy_headers": True}}}},
        {"applyTo": "VIRTUAL_HOST",
         "match": {"context": "GATEWAY", "routeConfiguration": {"portNumber": GATEWAY_PORT, "vhost": {"name": GATEWAY_VHOST}}},
         "patch": {"operation": "MERGE", "value": {
             "request_headers_to_remove": list(SPOOFABLE_REQUEST_HEADERS),
             # The client address as the gateway saw it, in place of whatever chain the client sent.
             "request_headers_to_add": [{"header": {"key": "x-forwarded-for", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"},
                                         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
             "response_headers_to_remove": list(INTERNAL_RESPONSE_HEADERS),
         }}},
    ]


def sidecar_rate_limit(product: Product, consumers: tuple[Consumer, ...], tiers: dict[str, RateLimit]) -> dict | None:
    """The product's limits at its own sidecar (every caller: the gateway and composites alike), or None.

    The same buckets as the gateway route's (``route_rate_limit``), as the filter's own configuration
    on the sidecar's inbound HTTP chain: a consumer's calls through a composite spend the same
    buckets as its direct calls. Per pod (Envoy's local limiter), like the gateway's per replica.
    """
    route = route_rate_limit(product, consumers, tiers)
    if route is None:
        return None
    config = dict(route["patch"]["value"]["typed_per_filter_config"][LOCAL_RATE_LIMIT])
    config["stat_prefix"] = f"{stat_prefix(product)}_inbound"
    return {
        "applyTo": "HTTP_FILTER",
        "match": {"context": "SIDECAR_INBOUND", "listener": {"filterChain": {"filter": {
            "name": "envoy.filters.network.http_connection_manager", "subFilter": {"name": "envoy.filters.http.router"}}}}},
        "patch": {"operation": "INSERT_BEFORE", "value": {"name": LOCAL_RATE_LIMIT, "typed_config": config}},
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
        namespaces: the product namespaces, by name (each product's own limits live in its namespace).
        rate_limits: datamesh:rateLimits: local (Envoy's local limiter) or global (the rate-limit service).
        cluster, network: where the global mode's Redis goes (ElastiCache) and who may reach it.
    """

    products: tuple[Product, ...]
    consumers: tuple[Consumer, ...]
    salt: str
    tiers: dict[str, RateLimit]
    gateway: pulumi.Resource
    namespaces: dict[str, k8s.core.v1.Namespace]
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    cluster: Cluster | None = None
    network: Network | None = None


class ApiGovernance(pulumi.ComponentResource):
    """Creates, in istio-ingress, for the gateway pods: an EnvoyFilter with the
    API-key Lua filter (it holds salted digests of the keys, never a key; no
    key or an unknown key gets 401); an ALLOW AuthorizationPolicy admitting a
    product's routes only for the consumers that may call it (another
    consumer's key gets 403); and an EnvoyFilter with Envoy's local rate limiter:
    the filter, and per product route a token bucket for the product and one
    per tiered consumer, answering 429 with ``x-datamesh-rate-limited: true`` and
    ``retry-after``; and an EnvoyFilter for the edge's hygiene: generic JSON bodies
    for the gateway's own 401/403/404/429/5xx, no ``server`` or ``x-envoy-*`` headers
    to clients, and no client-sent forwarding or mesh identity headers to backends;
    in each limited product's namespace an EnvoyFilter putting the same buckets on
    the product's own sidecar, so calls through composites spend them too; and in the
    root namespace an EnvoyFilter giving every sidecar's own answers the same generic bodies.

    Its children take the Kubernetes provider from ``opts`` (``ClusterContext.opts``).
    """

    def __init__(self, name: str, args: ApiGovernanceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:ApiGovernance", name, None, opts)
        undecrypted = sum(is_undecrypted(k) for c in args.consumers for k in c.keys)
        if undecrypted:
            pulumi.log.warn(f"datamesh:apiKeys: {undecrypted} key(s) not decrypted (an offline render): "
                            "the gateway accepts none of them")
        self._gateway = pulumi.ResourceOptions(parent=self, depends_on=[args.gateway])
        self._key_check(args)
        self._replies()
        if args.rate_limits.is_global:
            self._global_limits(args)
        else:
            self._product_limits(args)
            self._gateway_limits(args)
        self.register_outputs({})

    def _envoy_filter(self, name: str, namespace: str | pulumi.Output[str], spec: dict,
                      opts: pulumi.ResourceOptions | None = None, resource_name: str | None = None) -> None:
        k8s.apiextensions.CustomResource(
            resource_name or name,
            api_version="networking.istio.io/v1alpha3", kind="EnvoyFilter",
            metadata={"name": name, "namespace": namespace}, spec=spec, opts=opts or self._gateway)

    def _key_check(self, args: ApiGovernanceArgs) -> None:
        """The key filter, first in the gateway's chain, and the gateway's key policy after it."""
        self._envoy_filter("datamesh-api-keys", INGRESS_NAMESPACE, {
            "workloadSelector": {"labels": dict(GATEWAY_SELECTOR)},
            "configPatches": [{
                "applyTo": "HTTP_FILTER",
                # First in the chain: the consumer header must exist before authorization runs.
                "match": {"context": "GATEWAY", "listener": _HTTP_CONNECTION_MANAGER},
                "patch": {"operation": "INSERT_FIRST", "value": {"name": LUA, "typed_config": {
                    "@type": LUA_TYPE, "default_source_code": {"inline_string": lua_key_filter(args.consumers, args.salt)},
                }}},
            }],
        }, resource_name="datamesh-api-keys-filter")
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
            opts=self._gateway,
        )

    def _replies(self) -> None:
        """Generic answers and header hygiene at the gateway, and generic answers from every sidecar."""
        self._envoy_filter("datamesh-edge-hygiene", INGRESS_NAMESPACE, {
            "workloadSelector": {"labels": dict(GATEWAY_SELECTOR)}, "configPatches": edge_hygiene_patches()})
        # The root namespace, no selector: every sidecar of the mesh.
        self._envoy_filter("datamesh-inbound-replies", SYSTEM_NAMESPACE, {"configPatches": inbound_reply_patches()})

    def _product_limits(self, args: ApiGovernanceArgs) -> None:
        """Each limited product's buckets on its own sidecar, in its namespace."""
        for product in args.products:
            inbound = sidecar_rate_limit(product, args.consumers, args.tiers)
            if inbound is not None:
                self._envoy_filter(
                    f"{product.name}-limits", args.namespaces[product.namespace].metadata.name,
                    {"workloadSelector": {"labels": selector(product)}, "configPatches": [inbound]},
                    opts=pulumi.ResourceOptions(parent=self))

    def _global_limits(self, args: ApiGovernanceArgs) -> None:
        """The rate-limit service and its Redis, then the same EnvoyFilters as the local mode's, calling it. The
        service admits calls from exactly the pods those filters select (its NetworkPolicy)."""
        if args.cluster is None or args.network is None:
            raise ValueError("ApiGovernance: rateLimits global needs the cluster and the network")
        closed = args.rate_limits.failure == "closed"
        gateway = global_gateway_patches(args.products, args.consumers, args.tiers, closed)
        wait = retry_after(args.products, args.tiers)
        sidecars = {p.name: patches for p in args.products
                    if (patches := global_sidecar_patches(p, args.consumers, wait, closed))}
        callers = [Caller(INGRESS_NAMESPACE, dict(GATEWAY_SELECTOR))] if gateway else []
        callers += [Caller(args.namespaces[p.namespace].metadata.name, selector(p)) for p in args.products
                    if p.name in sidecars]
        service = RateLimitService("ratelimit", RateLimitServiceArgs(
            args.rate_limits, args.products, args.consumers, args.tiers, args.cluster.context, args.network.vpc_id,
            args.network.private_subnet_ids, args.cluster.node_security_group_id, args.network.zones,
            callers=callers, after=[args.gateway]),
            pulumi.ResourceOptions(parent=self))  # the cluster's AWS and Kubernetes providers, from this component's opts
        for product in args.products:
            if product.name in sidecars:
                self._envoy_filter(
                    f"{product.name}-limits", args.namespaces[product.namespace].metadata.name,
                    {"workloadSelector": {"labels": selector(product)}, "configPatches": sidecars[product.name]},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[service.deployment]))
        if gateway:
            self._envoy_filter("datamesh-rate-limits", INGRESS_NAMESPACE, {
                "workloadSelector": {"labels": dict(GATEWAY_SELECTOR)}, "configPatches": gateway},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.gateway, service.deployment]))

    def _gateway_limits(self, args: ApiGovernanceArgs) -> None:
        """The local rate limiter before the gateway's router, and per product route its buckets."""
        routes = [r for p in args.products if (r := route_rate_limit(p, args.consumers, args.tiers))]
        if not routes:
            return
        self._envoy_filter("datamesh-rate-limits", INGRESS_NAMESPACE, {
            "workloadSelector": {"labels": dict(GATEWAY_SELECTOR)},
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
        })
