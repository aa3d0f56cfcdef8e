"""Global rate limits (``datamesh:rateLimits: global``): the rate-limit service's configuration and Envoy's side of it.

Pure values, no Pulumi. One source for both modes: the same products, consumers and
tiers that ``api_governance.route_rate_limit`` turns into local token buckets are
turned here into envoyproxy/ratelimit's descriptors (``service_config``) and into the
descriptors Envoy's global rate limit filter sends (``route_rate_limits``), so the two
match by construction. A product's own limit is the descriptor ``product=<name>``; a
consumer's tier on that product is ``product=<name>, consumer=<name>``.

The gateway and the products' sidecars count in two domains (``GATEWAY_DOMAIN``,
``INBOUND_DOMAIN``) with the same descriptors: a direct call is counted once at the
gateway and once at the product's sidecar, a call through a composite only at the
sidecar, so the sidecar's count is every call and the gateway's is every direct call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.documents import Document
from components.governance.access import Consumer, RateLimit
from components.governance.gateway_match import BEFORE_ROUTER, CONSUMER_HEADER, RATE_LIMITED_HEADER, STAT_PREFIX, route_patch, stat_prefix
from components.platform.istio import SYSTEM_NAMESPACE
from components.products.declarations import Product
from components.ratelimit import service_unit

RATE_LIMIT_FILTER = "envoy.filters.http.ratelimit"
RATE_LIMIT_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
GATEWAY_DOMAIN = "datamesh-gateway"
INBOUND_DOMAIN = "datamesh-inbound"
SERVICE_NAME = "ratelimit"
SERVICE_NAMESPACE = SYSTEM_NAMESPACE
SERVICE_HOST = f"{SERVICE_NAME}.{SERVICE_NAMESPACE}.svc.cluster.local"
GRPC_PORT = 8081
HTTP_PORT = 8080  # /healthcheck
# The cluster the filter calls, added by the EnvoyFilter itself: a product's Sidecar resource limits which of
# istiod's own clusters its sidecar gets, and this one must be there regardless.
CLUSTER_NAME = "datamesh-ratelimit"
ENFORCED_RUNTIME_KEY = "global_rate_limit_enforced"
ENABLED_RUNTIME_KEY = "global_rate_limit_enabled"
# How long the filter waits for the service; past it, the call counts as the service being down (failure policy).
SERVICE_TIMEOUT = "0.5s"
PRODUCT_KEY, CONSUMER_KEY = "product", "consumer"


def tiered_consumers(product: Product, consumers: Sequence[Consumer]) -> list[Consumer]:
    return [c for c in consumers if product.name in c.products and c.tier]


def _limit(limit: RateLimit) -> dict[str, Any]:
    unit = service_unit(limit)
    if unit is None:  # stack_access refuses such a stack before anything is registered
        raise ValueError(f"a period of {limit.period_seconds}s has no unit in the rate-limit service")
    return {"unit": unit, "requests_per_unit": limit.requests}


def service_descriptors(products: Sequence[Product], consumers: Sequence[Consumer],
                        tiers: dict[str, RateLimit]) -> list[Document]:
    """envoyproxy/ratelimit's descriptors: per limited product its own limit, and nested, each tiered consumer's tier."""
    descriptors = []
    for product in products:
        tiered = tiered_consumers(product, consumers)
        if product.rate_limit is None and not tiered:
            continue
        entry: dict[str, Any] = {"key": PRODUCT_KEY, "value": product.name}
        if product.rate_limit is not None:
            entry["rate_limit"] = _limit(product.rate_limit)
        if tiered:
            entry["descriptors"] = [{"key": CONSUMER_KEY, "value": c.name, "rate_limit": _limit(tiers[c.tier])}
                                    for c in tiered if c.tier]
        descriptors.append(entry)
    return descriptors


def service_config(domain: str, products: Sequence[Product], consumers: Sequence[Consumer],
                   tiers: dict[str, RateLimit]) -> Document:
    """One config file of the service (a domain and its descriptors)."""
    return {"domain": domain, "descriptors": service_descriptors(products, consumers, tiers)}


def route_rate_limits(product: Product, consumers: Sequence[Consumer], consumer_header: str) -> list[Document]:
    """The descriptors Envoy sends for a call to ``product`` (route or filter ``rate_limits``); [] when nothing limits it."""
    product_entry = {"generic_key": {"descriptor_key": PRODUCT_KEY, "descriptor_value": product.name}}
    limits = []
    if product.rate_limit is not None:
        limits.append({"actions": [product_entry]})
    if tiered_consumers(product, consumers):
        # No consumer header (the key filter sets it, and refuses a call without a key): no descriptor.
        limits.append({"actions": [product_entry, {"request_headers": {
            "header_name": consumer_header, "descriptor_key": CONSUMER_KEY}}]})
    return limits


def retry_after(products: Sequence[Product], tiers: dict[str, RateLimit]) -> int:
    """Seconds within which every window the service counts in has started anew: the longest period in use."""
    periods = [p.rate_limit.period_seconds for p in products if p.rate_limit] + [t.period_seconds for t in tiers.values()]
    return max(periods, default=60)


def runtime_fraction(key: str) -> dict[str, Any]:
    """Envoy's runtime fraction under ``key``: 100% unless the runtime says otherwise (both limiters use it)."""
    return {"runtime_key": key, "default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def filter_config(domain: str, stat_prefix: str, closed: bool, limited_headers: list[Document]) -> Document:
    """Envoy's global rate limit filter: which domain, where the service is, and what to do when it is not."""
    config: dict[str, Any] = {
        "@type": RATE_LIMIT_TYPE,
        "domain": domain,
        "stat_prefix": stat_prefix,
        "timeout": SERVICE_TIMEOUT,
        # closed: refuse when the service (or its Redis) cannot answer; open: admit.
        "failure_mode_deny": closed,
        "filter_enabled": runtime_fraction(ENABLED_RUNTIME_KEY),
        "filter_enforced": runtime_fraction(ENFORCED_RUNTIME_KEY),
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        # No x-envoy-ratelimited on a 429: the gateway tells clients nothing of its internals (x-datamesh-* instead).
        "disable_x_envoy_ratelimited_header": True,
        "response_headers_to_add": limited_headers,
        "rate_limit_service": {"grpc_service": {"envoy_grpc": {"cluster_name": CLUSTER_NAME}, "timeout": SERVICE_TIMEOUT},
                               "transport_api_version": "V3"},
    }
    if closed:
        config["status_on_error"] = {"code": "ServiceUnavailable"}
    return config


def service_cluster(context: str) -> Document:
    """The EnvoyFilter patch adding the rate-limit service's cluster (gRPC over HTTP/2, by its Service's DNS name)."""
    return {"applyTo": "CLUSTER", "match": {"context": context}, "patch": {"operation": "ADD", "value": {
        "name": CLUSTER_NAME, "type": "STRICT_DNS", "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {HTTP_OPTIONS: {"@type": HTTP_OPTIONS_TYPE,
                                                            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": CLUSTER_NAME, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": SERVICE_HOST, "port_value": GRPC_PORT}}}}]}]},
    }}}


def limited_headers(retry_after: int) -> list[dict]:
    """What a 429 of either limiter carries: the gateway's mark, and when to retry."""
    return [{"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": RATE_LIMITED_HEADER, "value": "true"}},
            {"append_action": "OVERWRITE_IF_EXISTS_OR_ADD", "header": {"key": "retry-after", "value": str(retry_after)}}]


def global_gateway_patches(products: tuple[Product, ...], consumers: tuple[Consumer, ...], tiers: dict[str, RateLimit],
                           closed: bool) -> list[dict]:
    """Global mode at the gateway: the service's cluster, Envoy's global rate limit filter before the router, and
    per limited product route the descriptors it sends (``global_limits``); [] when nothing is limited."""
    routes = [(p, limits) for p in products if (limits := route_rate_limits(p, consumers, CONSUMER_HEADER))]
    if not routes:
        return []
    config = filter_config(GATEWAY_DOMAIN, STAT_PREFIX, closed, limited_headers(retry_after(products, tiers)))
    return [service_cluster("GATEWAY"),
            {"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY", "listener": BEFORE_ROUTER},
             "patch": {"operation": "INSERT_BEFORE", "value": {"name": RATE_LIMIT_FILTER, "typed_config": config}}},
            *(route_patch(p, {"route": {"rate_limits": limits}}) for p, limits in routes)]


def global_sidecar_patches(product: Product, consumers: tuple[Consumer, ...], retry_after_seconds: int,
                           closed: bool) -> list[dict]:
    """Global mode on a product's own sidecar: every inbound call (gateway and composites alike) counted in the
    sidecars' domain, descriptors on the filter itself (the sidecar serves one product); [] when nothing limits it.
    ``retry_after_seconds`` is ``retry_after`` of every product and tier, computed once for all of them."""
    limits = route_rate_limits(product, consumers, CONSUMER_HEADER)
    if not limits:
        return []
    config = filter_config(INBOUND_DOMAIN, f"{stat_prefix(product)}_inbound", closed,
                           limited_headers(retry_after_seconds))
    config["rate_limits"] = limits
    return [service_cluster("SIDECAR_OUTBOUND"),
            {"applyTo": "HTTP_FILTER", "match": {"context": "SIDECAR_INBOUND", "listener": BEFORE_ROUTER},
             "patch": {"operation": "INSERT_BEFORE", "value": {"name": RATE_LIMIT_FILTER, "typed_config": config}}}]
