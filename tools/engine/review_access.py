"""What a reviewer reads first in a render diff: who may call what, and what the mesh exposes.

Derived only from what a render records, never from fixed product or consumer names:

- **Access.** An API consumer may call a product when an ALLOW AuthorizationPolicy pairs the
  product's route prefix with the consumer's name (``tools.engine.lineage``, as the gateway
  enforces it); its tier is the token bucket a rate-limit descriptor gives it on that product's
  workload. A product may call another when the callee's ALLOW policy (selected by its ``app``
  label) admits the caller's service-account principal; the caller is named by the ``app``
  label of the workloads running as that service account. Principals in a Gateway's namespace
  are the gateway itself: the consumers it lets through are listed by name instead.
- **Exposure.** The routes VirtualServices declare (match, hosts, gateways, destinations,
  weights aside), the ports of every Service (with its type and load-balancer scheme) and the
  servers of every Gateway.

AWS access and secrets are ``tools.engine.review_identity``.
"""

from __future__ import annotations

import re
from typing import Any

from components.documents import Document
from tools.engine.lineage import build as build_lineage

Resources = list[Document]
_PRINCIPAL = re.compile(r"[^/]+/ns/([^/]+)/sa/([^/]+)")
_SCHEME = "service.beta.kubernetes.io/aws-load-balancer-scheme"


def k8s_objects(resources: Resources, kind: str) -> list[Document]:
    """The inputs of every Kubernetes object of ``kind`` in the render."""
    return [r["inputs"] for r in resources
            if r["type"].startswith("kubernetes:") and (r.get("inputs") or {}).get("kind") == kind]


def _where(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def app_of(obj: Document, labels: Document | None) -> str:
    """What a workload or a selector names: its ``app`` label, else the object's namespace/name."""
    return str((labels or {}).get("app") or _where(obj))


def workloads(resources: Resources) -> list[Document]:
    """Every object with a pod template (Deployments, StatefulSets, Jobs...)."""
    return [r["inputs"] for r in resources if r["type"].startswith("kubernetes:")
            and isinstance(((r.get("inputs") or {}).get("spec") or {}).get("template"), dict)]


def _runs_as(resources: Resources) -> dict[tuple[str, str], str]:
    """(namespace, service account) -> the app its workloads are."""
    found: dict[tuple[str, str], str] = {}
    for w in workloads(resources):
        pod = w["spec"]["template"]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        found[((w.get("metadata") or {}).get("namespace", ""), account)] = app_of(w, (pod.get("metadata") or {}).get("labels"))
    return found


def _bucket(descriptor: dict[str, Any]) -> str:
    bucket = descriptor.get("token_bucket") or {}
    return f"{bucket.get('tokens_per_fill', bucket.get('max_tokens'))} requests per {bucket.get('fill_interval')}"


def _tiers(resources: Resources) -> dict[tuple[str, str], str]:
    """(consumer, app) -> the token bucket a rate-limit descriptor gives the consumer on that app's workload."""
    found: dict[tuple[str, str], str] = {}

    def walk(value: Any, app: str) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("entries"), list) and "token_bucket" in value:
                for entry in value["entries"]:
                    found[(str(entry.get("value")), app)] = _bucket(value)
            for item in value.values():
                walk(item, app)
        elif isinstance(value, list):
            for item in value:
                walk(item, app)

    for f in k8s_objects(resources, "EnvoyFilter"):
        labels = ((f.get("spec") or {}).get("workloadSelector") or {}).get("labels")
        if labels:
            walk(f.get("spec"), app_of(f, labels))
    return found


def access_grants(resources: Resources, outputs: Document) -> dict[tuple[str, str], str]:
    """(caller, callee) -> how the caller is limited: the consumer's tier, or "" for a product or workload."""
    tiers = _tiers(resources)
    named = {name: spec.get("tier") for name, spec in (outputs.get("consumers") or {}).items() if isinstance(spec, dict)}
    grants = {(c, p): (f"tier {named[c]}: {tiers[(c, p)]}" if named.get(c) else f"tier: {tiers[(c, p)]}")
              if (c, p) in tiers else "no tier" for c, p in build_lineage(resources, outputs).may_call}
    gateways = {(g.get("metadata") or {}).get("namespace") for g in k8s_objects(resources, "Gateway")}
    runs_as = _runs_as(resources)
    for policy in k8s_objects(resources, "AuthorizationPolicy"):
        spec = policy.get("spec") or {}
        labels = (spec.get("selector") or {}).get("matchLabels")
        if spec.get("action", "ALLOW") != "ALLOW" or not labels:
            continue
        callee = app_of(policy, labels)
        for rule in spec.get("rules") or []:
            for source in rule.get("from") or []:
                for principal in (source.get("source") or {}).get("principals") or []:
                    match = _PRINCIPAL.fullmatch(principal)
                    if match and match.group(1) in gateways:
                        continue  # the gateway: who it lets through is listed by consumer
                    caller = runs_as.get((match[1], match[2]), f"{match[1]}/{match[2]}") if match else principal
                    grants.setdefault((caller, callee), "")
    return grants


def access_lines(old: dict[tuple[str, str], str], new: dict[tuple[str, str], str]) -> list[str]:
    """One sentence per access granted, changed or taken away."""
    def who(caller: str, limit: str) -> str:
        return f"`{caller}` ({limit})" if limit else f"`{caller}`"

    added = [f"{who(c, new[(c, p)])} may now call `{p}`" for c, p in sorted(set(new) - set(old))]
    changed = [f"`{c}` calling `{p}`: {old[(c, p)]} -> {new[(c, p)]}"
               for c, p in sorted(set(new) & set(old)) if old[(c, p)] != new[(c, p)]]
    removed = [f"{who(c, old[(c, p)])} may no longer call `{p}`" for c, p in sorted(set(old) - set(new))]
    return added + changed + removed


def _routes(vs: dict[str, Any]) -> list[str]:
    spec = vs.get("spec") or {}
    hosts = ", ".join(spec.get("hosts") or [])
    via = f" via {', '.join(spec['gateways'])}" if spec.get("gateways") else ""
    lines = []
    for http in spec.get("http") or []:
        destinations = sorted({f"{(d.get('destination') or {}).get('host')}"
                               + (f":{d['destination']['port']['number']}" if (d.get("destination") or {}).get("port") else "")
                               for d in http.get("route") or []})
        for match in http.get("match") or [{}]:
            uri = match.get("uri") or {}
            what = " ".join(f"{k} {v}" for k, v in sorted(uri.items())) or "every path"
            lines.append(f"route {what} on hosts {hosts}{via} -> {', '.join(destinations)} ({_where(vs)})")
    return lines


def _service_ports(svc: dict[str, Any]) -> list[str]:
    spec = svc.get("spec") or {}
    scheme = ((svc.get("metadata") or {}).get("annotations") or {}).get(_SCHEME)
    kind = " ".join(x for x in (spec.get("type") if spec.get("type") not in (None, "ClusterIP") else None, scheme) if x)
    return [f"Service {_where(svc)}{' (' + kind + ')' if kind else ''} port {p.get('port')}/{p.get('protocol', 'TCP')}"
            + (f" ({p['name']})" if p.get("name") else "") for p in spec.get("ports") or []]


def _gateway_servers(gw: dict[str, Any]) -> list[str]:
    lines = []
    for server in (gw.get("spec") or {}).get("servers") or []:
        port = server.get("port") or {}
        tls = f" tls {server['tls'].get('mode')}" if isinstance(server.get("tls"), dict) else ""
        lines.append(f"Gateway {_where(gw)} {port.get('protocol')} port {port.get('number')} hosts "
                     f"{', '.join(server.get('hosts') or [])}{tls}")
    return lines


def exposure(resources: Resources) -> set[str]:
    """Every route, Service port and Gateway server the render declares, one line each."""
    lines = {line for vs in k8s_objects(resources, "VirtualService") for line in _routes(vs)}
    lines |= {line for svc in k8s_objects(resources, "Service") for line in _service_ports(svc)}
    return lines | {line for gw in k8s_objects(resources, "Gateway") for line in _gateway_servers(gw)}


def set_lines(old: set[str], new: set[str]) -> list[str]:
    """``+ line`` for each line only ``new`` has, then ``- line`` for each only ``old`` has."""
    return [f"+ {line}" for line in sorted(new - old)] + [f"- {line}" for line in sorted(old - new)]
