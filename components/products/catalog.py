"""Backstage catalog entities for the data products: pure functions, no Pulumi.

Each domain becomes a Domain and a System; each product a Component (the
running service) and an API (its OpenAPI definition, inline). Composition is
lineage: a composed product's Component ``consumesApis`` and ``dependsOn`` its
upstreams, so Backstage draws the graph the mesh routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from components.products.declarations import Product

API_VERSION = "backstage.io/v1alpha1"


def system_name(domain: str) -> str:
    return f"{domain}-data-products"


def entities(products: Iterable[Product], external_urls: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Domain, System, Component and API entities, in a stable order."""
    products = sorted(products, key=lambda p: p.name)
    urls = external_urls or {}
    result: list[dict[str, Any]] = []
    domains: dict[str, set[str]] = {}
    for p in products:
        domains.setdefault(p.domain, set()).add(p.owner)
    for domain, owners in sorted(domains.items()):
        owner = sorted(owners)[0] if len(owners) == 1 else "datamesh-platform"
        result.append({
            "apiVersion": API_VERSION, "kind": "Domain",
            "metadata": {"name": domain, "description": f"Data products of the {domain} domain"},
            "spec": {"owner": owner},
        })
        result.append({
            "apiVersion": API_VERSION, "kind": "System",
            "metadata": {"name": system_name(domain), "description": f"APIs the {domain} domain serves into the mesh"},
            "spec": {"owner": owner, "domain": domain},
        })
    for p in products:
        annotations = {
            "datamesh.io/route-prefix": p.route_prefix,
            "datamesh.io/mesh-url": p.mesh_url,
            "datamesh.io/namespace": p.namespace,
        }
        if p.name in urls:
            annotations["datamesh.io/external-url"] = urls[p.name]
        tags = [p.protocol, p.lifecycle]
        # The releases running side by side: "version=weight%" (a mirrored release gets a copy only).
        running = {"datamesh.io/releases": ", ".join(
            f"{r.version}={r.weight}%" + (f" (mirror {p.mirror.percent}%)" if p.mirror and p.mirror.version == r.version else "")
            for r in p.releases)} if p.releases else {}
        result.append({
            "apiVersion": API_VERSION, "kind": "Component",
            "metadata": {"name": p.name, "description": p.description, "annotations": {**annotations, **running},
                         "tags": tags},
            "spec": {
                "type": "service",
                "lifecycle": p.lifecycle,
                "owner": p.owner,
                "system": system_name(p.domain),
                "providesApis": [f"api:{p.name}"],
                "consumesApis": [f"api:{u}" for u in p.consumes],
                "dependsOn": [f"component:{u}" for u in p.consumes],
            },
        })
        result.append({
            "apiVersion": API_VERSION, "kind": "API",
            "metadata": {"name": p.name, "description": p.openapi.get("info", {}).get("title", p.description),
                         "annotations": annotations, "tags": tags},
            "spec": {
                "type": "openapi",
                "lifecycle": p.lifecycle,
                "owner": p.owner,
                "system": system_name(p.domain),
                "definition": p.openapi_text,
            },
        })
    return result
