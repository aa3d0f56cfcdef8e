"""The data mesh's lineage from a render: domains, their products, who consumes whom, which consumers may call what.

Products, domains and product-to-product consumption come from the Backstage catalog
the program exports (Component ``dependsOn``, System ``domain``). Which API consumers
may call which product comes from what the gateway enforces: the ALLOW
AuthorizationPolicies on the ingress gateway, whose rules pair a product's route
prefix with the consumer names a request header may carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from components.documents import Document

AUTHZ_TYPE = "kubernetes:security.istio.io/v1:AuthorizationPolicy"


@dataclass
class Lineage:
    domains: dict[str, list[str]] = field(default_factory=dict)  # domain -> products
    owners: dict[str, str] = field(default_factory=dict)  # product -> owner
    consumes: list[tuple[str, str]] = field(default_factory=list)  # (product, upstream product)
    may_call: list[tuple[str, str]] = field(default_factory=list)  # (consumer, product)

    @property
    def consumers(self) -> list[str]:
        return sorted({c for c, _ in self.may_call})


def _name(ref: Any) -> str:
    """An entity reference's name: "kind:namespace/name" (the catalog's form), "kind:name" or "name"."""
    return str(ref or "").split(":", 1)[-1].rsplit("/", 1)[-1]


def build(resources: list[Document], outputs: Document) -> Lineage:
    found = outputs.get("catalog")
    catalog: list[Any] = found if isinstance(found, list) else []
    system_domain = {e["metadata"]["name"]: _name(e["spec"].get("domain")) for e in catalog if e.get("kind") == "System"}
    lineage = Lineage()
    prefixes: dict[str, str] = {}
    for e in catalog:
        if e.get("kind") != "Component":
            continue
        name = e["metadata"]["name"]
        domain = system_domain.get(_name(e["spec"].get("system")), "unknown")
        lineage.domains.setdefault(domain, []).append(name)
        lineage.owners[name] = _name(e["spec"].get("owner", ""))
        lineage.consumes += [(name, _name(dep)) for dep in e["spec"].get("dependsOn", [])]
        prefix = e["metadata"].get("annotations", {}).get("datamesh.io/route-prefix")
        if prefix:
            prefixes[prefix] = name
    for r in resources:
        if r["type"] != AUTHZ_TYPE or (r["inputs"].get("spec") or {}).get("action", "ALLOW") != "ALLOW":
            continue
        for rule in (r["inputs"]["spec"].get("rules") or []):
            paths = [p for to in rule.get("to", []) for p in to.get("operation", {}).get("paths", [])]
            products = {prefixes[p.rstrip("*")] for p in paths if p.rstrip("*") in prefixes}
            consumers = [v for w in rule.get("when", []) if w.get("key", "").startswith("request.headers[")
                         for v in w.get("values", [])]
            lineage.may_call += [(c, p) for c in consumers for p in sorted(products)]
    lineage.may_call = sorted(set(lineage.may_call))
    lineage.consumes = sorted(set(lineage.consumes))
    for members in lineage.domains.values():
        members.sort()
    return lineage


def _id(kind: str, name: str) -> str:
    return f"{kind}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def mermaid(lineage: Lineage) -> str:
    lines = ["graph LR"]
    for domain in sorted(lineage.domains):
        lines.append(f'  subgraph {_id("d", domain)}["domain {domain}"]')
        lines += [f'    {_id("p", p)}["{p}<br/><small>{lineage.owners.get(p, "")}</small>"]' for p in lineage.domains[domain]]
        lines.append("  end")
    lines += [f'  {_id("c", c)}(["consumer {c}"])' for c in lineage.consumers]
    lines += [f"  {_id('p', a)} -->|consumes| {_id('p', b)}" for a, b in lineage.consumes]
    lines += [f"  {_id('c', c)} -.->|may call| {_id('p', p)}" for c, p in lineage.may_call]
    return "\n".join(lines) + "\n"


def dot(lineage: Lineage) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [fontsize=10];", "  edge [fontsize=9];"]
    for domain in sorted(lineage.domains):
        lines += [f"  subgraph cluster_{_id('d', domain)} {{", f'    label="domain {domain}";', "    style=rounded;"]
        lines += [f'    {_id("p", p)} [shape=box, label="{p}\\n{lineage.owners.get(p, "")}"];' for p in lineage.domains[domain]]
        lines.append("  }")
    lines += [f'  {_id("c", c)} [shape=ellipse, label="consumer {c}"];' for c in lineage.consumers]
    lines += [f'  {_id("p", a)} -> {_id("p", b)} [label="consumes"];' for a, b in lineage.consumes]
    lines += [f'  {_id("c", c)} -> {_id("p", p)} [style=dashed, label="may call"];' for c, p in lineage.may_call]
    lines.append("}")
    return "\n".join(lines) + "\n"
