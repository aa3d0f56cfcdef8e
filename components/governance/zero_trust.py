"""Zero trust inside the mesh: mutual TLS everywhere, and nothing allowed unless a policy says so."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.governance.access import Consumer
from components.platform.istio import GATEWAY_NAME, INGRESS_NAMESPACE, SYSTEM_NAMESPACE
from components.products.declarations import Product

# Who a call is on behalf of: set by the gateway's key filter, forwarded by composites (api_governance.py).
CONSUMER_HEADER = "x-datamesh-consumer"
# The gateway chart runs its pods as a service account named after the release.
GATEWAY_PRINCIPAL = f"cluster.local/ns/{INGRESS_NAMESPACE}/sa/{GATEWAY_NAME}"


def principal(product: Product) -> str:
    """The SPIFFE identity a product's pods present over mutual TLS."""
    return f"cluster.local/ns/{product.namespace}/sa/{product.name}"


def allowed_callers(product: Product, products: tuple[Product, ...]) -> list[str]:
    """The ingress gateway, and every product that declares this one as an upstream."""
    composers = sorted(principal(p) for p in products if product.name in p.consumes)
    return [GATEWAY_PRINCIPAL, *composers]


def caller_rules(product: Product, products: tuple[Product, ...], consumers: tuple[Consumer, ...] | None) -> list[dict]:
    """Who may call ``product``, by mTLS identity and, when consumers are governed here, on whose behalf.

    Without consumers (the Anypoint adapter governs them): the gateway and the composites.
    With them: a call is admitted only from the gateway or a composite consuming this product, and only
    when it carries (``x-datamesh-consumer``, set by the gateway's key filter and forwarded by the
    composite) a consumer allowed on this product. A composite calling on its own account, or on behalf
    of a consumer the product does not admit, is refused (403) by this product's own sidecar.
    """
    callers = allowed_callers(product, products)
    if consumers is None:
        return [{"from": [{"source": {"principals": callers}}]}]
    admitted = sorted(c.name for c in consumers if product.name in c.products)
    if not admitted:
        return []  # nobody may call it, directly or through a composite
    return [{"from": [{"source": {"principals": callers}}],
             "when": [{"key": f"request.headers[{CONSUMER_HEADER}]", "values": admitted}]}]


@dataclass(frozen=True)
class ZeroTrustArgs:
    """Inputs of ``ZeroTrust``.

    Attributes:
        products: every product of the stack (callers are derived from their ``consumes``).
        consumers: the consumers the gateway's API keys govern (``caller_rules``), or None when
            another gateway (the Anypoint adapter) governs consumers.
        namespaces: the product namespaces, by name, to deny by default.
        istiod: istiod's release; policies need its CRDs and webhook.

    The cluster's Kubernetes provider comes through ``opts``.
    """

    products: tuple[Product, ...]
    consumers: tuple[Consumer, ...] | None
    namespaces: dict[str, k8s.core.v1.Namespace]
    istiod: pulumi.Resource


class ZeroTrust(pulumi.ComponentResource):
    """Zero trust in the mesh. Creates:

    - ``mesh-mtls-strict``: a mesh-wide PeerAuthentication with mTLS STRICT (in istio-system,
      the root namespace);
    - ``<namespace>-allow-nothing`` in every product namespace: an AuthorizationPolicy that
      denies by default;
    - ``<product>-callers`` per product: an ALLOW AuthorizationPolicy admitting exactly the
      ingress gateway and the products that consume it, by their mTLS identities, each only
      on behalf of a consumer allowed on the product (``caller_rules``).

    Health probes are rewritten by Istio to the sidecar agent, so they need no rule.
    """

    guards: dict[str, list[pulumi.Resource]]

    def __init__(self, name: str, args: ZeroTrustArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:ZeroTrust", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=[args.istiod])

        k8s.apiextensions.CustomResource(
            "mesh-mtls-strict",
            api_version="security.istio.io/v1",
            kind="PeerAuthentication",
            metadata={"name": "default", "namespace": SYSTEM_NAMESPACE},
            spec={"mtls": {"mode": "STRICT"}},
            opts=k8s_opts,
        )
        deny: dict[str, pulumi.Resource] = {}
        for ns_name in sorted({p.namespace for p in args.products}):
            deny[ns_name] = k8s.apiextensions.CustomResource(
                f"{ns_name}-allow-nothing",
                api_version="security.istio.io/v1",
                kind="AuthorizationPolicy",
                metadata={"name": "allow-nothing", "namespace": args.namespaces[ns_name].metadata.name},
                spec={},  # an ALLOW policy that matches nothing: deny unless another policy allows
                opts=k8s_opts,
            )
        # Per product, the policies that must exist before it serves: its namespace's
        # deny-by-default and its own callers. Just these two, so the graph stays linear.
        self.guards = {}
        for product in args.products:
            self.guards[product.name] = [deny[product.namespace], k8s.apiextensions.CustomResource(
                f"{product.name}-callers",
                api_version="security.istio.io/v1",
                kind="AuthorizationPolicy",
                metadata={"name": f"{product.name}-callers",
                          "namespace": args.namespaces[product.namespace].metadata.name},
                spec={
                    "selector": {"matchLabels": {"app": product.name}},
                    "action": "ALLOW",
                    "rules": caller_rules(product, args.products, args.consumers),
                },
                opts=k8s_opts,
            )]
        self.register_outputs({})
