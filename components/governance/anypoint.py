"""MuleSoft Anypoint Service Mesh: what `asmctl adapter create` and `asmctl adapter binding create` do, declaratively."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.config.values import fail
from components.documents import DocumentView
from components.names import is_dns_label
from components.problems import did_you_mean
from components.products.declarations import Product

PLANS = ("small", "medium", "large")
DEFAULT_PLATFORM_URI = "https://anypoint.mulesoft.com"
CREDENTIALS_SECRET = "anypoint-credentials"
_API_ID = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class AnypointSettings:
    adapter_name: str
    plan: str
    replicas: int
    platform_uri: str
    api_ids: dict[str, str]
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)


def parse_anypoint(raw: DocumentView, client_id: str, client_secret: str,
                   products: tuple[Product, ...]) -> AnypointSettings:
    """Validate ``datamesh:anypoint`` and the two credentials for ``governanceAdapter: anypoint``."""
    known = {"adapterName", "plan", "replicas", "platformUri", "apiIds"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"anypoint.{unknown[0]}", f"is not a known field ({', '.join(sorted(known))})")
    for key, value in (("anypointClientId", client_id), ("anypointClientSecret", client_secret)):
        if not value:
            raise fail(key, "is required with governanceAdapter anypoint; set it with pulumi config set --secret")
    adapter = raw.get("adapterName", "adapter")
    if not isinstance(adapter, str) or not is_dns_label(adapter):
        raise fail("anypoint.adapterName", f"{adapter!r} must be a lowercase DNS name")
    plan = raw.get("plan", "small")
    if plan not in PLANS:
        raise fail("anypoint.plan", f"must be one of {', '.join(PLANS)}, got {json.dumps(plan)}")
    replicas = raw.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= 10:
        raise fail("anypoint.replicas", f"must be a whole number from 1 to 10, got {json.dumps(replicas)}")
    uri = raw.get("platformUri", DEFAULT_PLATFORM_URI)
    if not isinstance(uri, str) or not re.fullmatch(r"https://[a-z0-9.-]+(/.*)?", uri):
        raise fail("anypoint.platformUri", f"must be an https URL, got {json.dumps(uri)}")
    api_ids = raw.get("apiIds", {})
    if not isinstance(api_ids, Mapping):
        raise fail("anypoint.apiIds", "must be a map of product name to API Manager API id")
    names = {p.name for p in products}
    for name in api_ids:
        if name not in names:
            raise fail(f"anypoint.apiIds.{name}", f"is not a selected product{did_you_mean(str(name), names)}")
    for product in products:
        api_id = api_ids.get(product.name)
        if api_id is None:
            raise fail(f"anypoint.apiIds.{product.name}", "is missing: every governed product needs its API Manager API id")
        if not _API_ID.match(str(api_id)):
            raise fail(f"anypoint.apiIds.{product.name}", f"must be a numeric API id, got {json.dumps(api_id)}")
    return AnypointSettings(adapter, plan, replicas, uri, {k: str(v) for k, v in api_ids.items()}, client_id, client_secret)


@dataclass(frozen=True)
class AnypointAdapterArgs:
    """Inputs of ``AnypointAdapter``.

    Attributes:
        settings: validated adapter settings and credentials.
        products: the governed products; one binding each.
        namespaces: product namespaces by name; each gets its own adapter, as bindings
            reference an adapter in their own namespace.
        services: per product, what its binding waits for (the product, whose Service it binds).
    """

    settings: AnypointSettings
    products: tuple[Product, ...]
    namespaces: dict[str, k8s.core.v1.Namespace]
    services: Mapping[str, pulumi.Resource] = field(default_factory=dict)


class AnypointAdapter(pulumi.ComponentResource):
    """The Anypoint Service Mesh adapter. Creates, per product namespace:

    - ``<namespace>-<credentials secret>``: a Secret with the Anypoint client id and secret
      (never on a command line or in plain config);
    - ``<namespace>-<adapter>``: the adapter ``ServiceInstance`` (class
      anypoint-service-mesh-adapter, the plan, replicas) that reads its credentials from that Secret;
    - ``<product>-binding`` per governed product: a ``ServiceBinding`` with its API id and
      Service, created after the adapter (and so deleted before it).
    """

    def __init__(self, name: str, args: AnypointAdapterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:AnypointAdapter", name, None, opts)
        self._args = args
        self._k8s_opts = pulumi.ResourceOptions(parent=self)
        s = args.settings
        credentials = pulumi.Output.secret(json.dumps({"clientId": s.client_id, "clientSecret": s.client_secret}))
        for ns_name in sorted({p.namespace for p in args.products}):
            namespace = args.namespaces[ns_name].metadata.name
            adapter = self._adapter(ns_name, namespace, credentials)
            for product in (p for p in args.products if p.namespace == ns_name):
                self._binding(product, namespace, adapter)
        self.register_outputs({})

    def _adapter(self, ns_name: str, namespace: pulumi.Output[str], credentials: pulumi.Output[str]) -> k8s.apiextensions.CustomResource:
        """The namespace's credentials Secret, then the adapter ServiceInstance that reads it."""
        s = self._args.settings
        secret = k8s.core.v1.Secret(
            f"{ns_name}-{CREDENTIALS_SECRET}",
            metadata={"name": CREDENTIALS_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={"credentials": credentials},
            opts=self._k8s_opts,
        )
        return k8s.apiextensions.CustomResource(
            f"{ns_name}-{s.adapter_name}",
            api_version="servicecatalog.k8s.io/v1beta1",
            kind="ServiceInstance",
            metadata={"name": s.adapter_name, "namespace": namespace,
                      "labels": {"service-mesh.mulesoft.com/kind": "adapter"}},
            spec={
                "clusterServiceClassExternalName": "anypoint-service-mesh-adapter",
                "clusterServicePlanExternalName": s.plan,
                "parameters": {"platformUri": s.platform_uri, "replication": {"replicas": s.replicas}},
                # clientId and clientSecret come from the Secret, merged into the parameters.
                "parametersFrom": [{"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "credentials"}}],
            },
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=[secret])),
        )

    def _binding(self, product: Product, namespace: pulumi.Output[str], adapter: pulumi.Resource) -> None:
        args, s = self._args, self._args.settings
        k8s.apiextensions.CustomResource(
            f"{product.name}-binding",
            api_version="servicecatalog.k8s.io/v1beta1",
            kind="ServiceBinding",
            metadata={"name": f"{product.name}-binding", "namespace": namespace,
                      "labels": {"service-mesh.mulesoft.com/kind": "adapter-binding"}},
            spec={
                "instanceRef": {"name": s.adapter_name},
                "parameters": {"apiId": s.api_ids[product.name], "service": product.name},
            },
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(
                depends_on=[adapter, *([args.services[product.name]] if product.name in args.services else [])])),
        )
