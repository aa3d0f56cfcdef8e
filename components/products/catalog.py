"""Backstage catalog entities for the data products: pure functions, no Pulumi.

Each owner becomes a Group; each domain a Domain and a System; each product a
Component (the running service) and an API (its OpenAPI definition, inline).
Composition is lineage: a composed product's Component ``consumesApis`` and
``dependsOn`` its upstreams, so Backstage draws the graph the mesh routes.
Every entity lives in the Backstage namespace of its environment (the stack),
and every reference names that namespace, so the dev and prod catalogs can
both be registered in one Backstage without colliding. The Component carries
what Backstage's plugins look for: its Kubernetes label selector, its source
location (with the ``sourceUrl`` setting) and its gateway URL as a link.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from components.documents import Document
from components.products.declarations import Product

API_VERSION = "backstage.io/v1alpha1"
PLATFORM_OWNER = "datamesh-platform"
# Backstage's entity name and namespace formats (its FieldFormatEntityPolicy): at most 63 characters.
_NAME = re.compile(r"[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?")
_NAMESPACE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def system_name(domain: str) -> str:
    return f"{domain}-data-products"


def catalog_namespace(environment: str | None) -> str:
    """The Backstage namespace for a stack: its name in Backstage's namespace format ("default" without one)."""
    if not environment:
        return "default"
    name = re.sub(r"[^a-z0-9]+", "-", environment.lower()).strip("-")[:63].strip("-")
    return name if name and _NAMESPACE.fullmatch(name) else "default"


def _owner_ref(owner: str, namespace: str) -> str:
    """An owner that is a plain name is a Group in the environment's namespace; a full reference stays as it is."""
    return f"group:{namespace}/{owner}" if _NAME.fullmatch(owner) else owner


def entities(products: Iterable[Product], external_urls: dict[str, str] | None = None,
             environment: str | None = None, source_url: str = "") -> list[Document]:
    """Group, Domain, System, Component and API entities, in a stable order.

    ``environment`` (the stack) names the Backstage namespace; ``source_url`` (a
    folder address ending in "/") is where products/ lives in the repository.
    """
    products = sorted(products, key=lambda p: p.name)
    urls = external_urls or {}
    ns = catalog_namespace(environment)
    domains: dict[str, set[str]] = {}
    for p in products:
        domains.setdefault(p.domain, set()).add(p.owner)
    domain_owner = {d: sorted(o)[0] if len(o) == 1 else PLATFORM_OWNER for d, o in domains.items()}
    groups = sorted({p.owner for p in products} | set(domain_owner.values()))
    result = [_group(group, ns) for group in groups if _NAME.fullmatch(group)]
    for domain, owner in sorted(domain_owner.items()):
        result += _domain_and_system(domain, owner, ns)
    for p in products:
        result += _component_and_api(p, urls, ns, source_url)
    return result


def _group(group: str, ns: str) -> Document:
    return {
        "apiVersion": API_VERSION, "kind": "Group",
        "metadata": {"name": group, "namespace": ns, "description": f"Owners of data products ({ns})"},
        "spec": {"type": "team", "children": []},
    }


def _domain_and_system(domain: str, owner: str, ns: str) -> list[Document]:
    return [{
        "apiVersion": API_VERSION, "kind": "Domain",
        "metadata": {"name": domain, "namespace": ns, "description": f"Data products of the {domain} domain"},
        "spec": {"owner": _owner_ref(owner, ns)},
    }, {
        "apiVersion": API_VERSION, "kind": "System",
        "metadata": {"name": system_name(domain), "namespace": ns,
                     "description": f"APIs the {domain} domain serves into the mesh"},
        "spec": {"owner": _owner_ref(owner, ns), "domain": f"domain:{ns}/{domain}"},
    }]


def _annotations(p: Product) -> dict[str, str]:
    """What the Component and the API both carry."""
    return {
        "datamesh.io/product": p.name,
        "datamesh.io/route-prefix": p.route_prefix,
        "datamesh.io/mesh-url": p.mesh_url,
        "datamesh.io/namespace": p.namespace,
    }


def _component_annotations(p: Product, source_url: str) -> dict[str, str]:
    """The Component's annotations: what Backstage's plugins look for, and the releases running side by side."""
    found = {
        **_annotations(p),
        "datamesh.io/health-path": p.health_path,
        # The Kubernetes plugin finds the product's pods, Service and HPA by these.
        "backstage.io/kubernetes-label-selector": f"app={p.name}",
        "backstage.io/kubernetes-namespace": p.namespace,
    }
    if source_url:
        found["backstage.io/source-location"] = f"url:{source_url}products/"
    if p.releases:  # "version=weight%" (a mirrored release gets a copy only)
        found["datamesh.io/releases"] = ", ".join(
            f"{r.version}={r.weight}%" + (f" (mirror {p.mirror.percent}%)" if p.mirror and p.mirror.version == r.version else "")
            for r in p.releases)
    return found


def _component_and_api(p: Product, urls: dict[str, str], ns: str, source_url: str) -> list[Document]:
    links = [{"url": urls[p.name], "title": "Gateway URL", "icon": "cloud"}] if p.name in urls else []
    tags = [p.protocol, p.lifecycle]
    owner = _owner_ref(p.owner, ns)
    system = f"system:{ns}/{system_name(p.domain)}"
    component = {
        "apiVersion": API_VERSION, "kind": "Component",
        "metadata": {"name": p.name, "namespace": ns, "description": p.description,
                     "annotations": _component_annotations(p, source_url), "tags": tags, "links": links},
        "spec": {
            "type": "service",
            "lifecycle": p.lifecycle,
            "owner": owner,
            "system": system,
            "providesApis": [f"api:{ns}/{p.name}"],
            "consumesApis": [f"api:{ns}/{u}" for u in p.consumes],
            "dependsOn": [f"component:{ns}/{u}" for u in p.consumes],
        },
    }
    api = {
        "apiVersion": API_VERSION, "kind": "API",
        "metadata": {"name": p.name, "namespace": ns,
                     "description": p.openapi.get("info", {}).get("title", p.description),
                     "annotations": _annotations(p), "tags": tags, "links": links},
        "spec": {"type": "openapi", "lifecycle": p.lifecycle, "owner": owner, "system": system,
                 "definition": p.openapi_text},
    }
    return [component, api]
