"""Where the gateway's governance attaches in Istio's translation: its HTTP port and virtual host, a route's
EnvoyFilter match, and the headers only the gateway sets. Shared by the local and the global rate limits."""

from __future__ import annotations

from components.platform.istio import SERVED_PORTS
from components.products.declarations import Product

HEADER_PREFIX = "x-datamesh-"  # only the gateway sets these; a client's are dropped
CONSUMER_HEADER = HEADER_PREFIX + "consumer"
RATE_LIMITED_HEADER = HEADER_PREFIX + "rate-limited"
STAT_PREFIX = "http_local_rate_limiter"
# The port the shared Gateway serves HTTP on (TLS, when on, ends at the NLB in front of it).
GATEWAY_PORT = next(p["number"] for p in SERVED_PORTS if p["protocol"] == "HTTP")
GATEWAY_VHOST = f"*:{GATEWAY_PORT}"  # Istio names the gateway's virtual host <host>:<port>
# Just before the router in an HTTP connection manager's filter chain.
BEFORE_ROUTER = {"filterChain": {"filter": {"name": "envoy.filters.network.http_connection_manager",
                                            "subFilter": {"name": "envoy.filters.http.router"}}}}


def route_patch(product: Product, value: dict) -> dict:
    """An EnvoyFilter patch merging ``value`` into the gateway route named after ``product`` (istiod names it so)."""
    return {
        "applyTo": "HTTP_ROUTE",
        "match": {"context": "GATEWAY", "routeConfiguration": {
            "portNumber": GATEWAY_PORT, "vhost": {"name": GATEWAY_VHOST, "route": {"name": product.name}}}},
        "patch": {"operation": "MERGE", "value": value},
    }




def stat_prefix(product: Product) -> str:
    return f"{STAT_PREFIX}_{product.name.replace('-', '_')}"
