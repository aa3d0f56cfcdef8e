"""A render as istiod would see it in a cluster: the objects the program declares, and what the cluster adds.

The harness stands in for the cluster's controllers, and only for them:

- one Pod per Deployment (its pod template's labels and service account, the
  labels Istio's injector adds, a loopback address as pod IP, Ready);
- the ingress gateway's Pod, with the labels the gateway chart gives it
  (``gateway.selectorLabels`` in ``manifests/charts/gateway/templates/_helpers.tpl``)
  and the chart values' service account;
- one EndpointSlice per Service, listing the Pods its selector matches, as the
  EndpointSlice controller would;
- with sidecars, a cluster IP per Service, as the API server would assign.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.documents import Document, DocumentView
from components.inputs import TRUSTED_YAML_LOADER, YAML_DUMPER

ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")
# What the cluster's API server holds that Istio's service registry reads.
KUBE_KINDS = ("Namespace", "Service", "ServiceAccount")
GATEWAY_CHART = "gateway"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Pod IPs the harness hands out: a loopback range, so a stub backend can listen on each.
POD_NETWORK = ipaddress.IPv4Network("127.77.0.0/16")
# Where further harnesses in one machine take theirs from (127.64.0.0 to 127.191.255.255), one /16 each.
POD_NETWORKS = [ipaddress.IPv4Network(f"127.{n}.0.0/16") for n in range(64, 192)]
TRUST_DOMAIN = "cluster.local"


class TranslationError(RuntimeError):
    """Istio's translation refused the render (or the render cannot be read); the message carries its reason."""


@dataclass(frozen=True)
class Workload:
    """A pod the harness stands in for: a product's (or a release's) Deployment, or the gateway."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    service_account: str
    ip: str
    ports: tuple[tuple[str, int], ...]  # (name, containerPort)
    upstreams: tuple[str, ...] = ()  # the in-mesh URLs the pod is given (UPSTREAM_*_URL): a composite's upstreams

    @property
    def identity(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass
class Render:
    """A render folder's manifests and registered resources."""

    path: Path
    manifests: list[Document]
    resources: list[Document]

    @property
    def stack(self) -> str:
        for r in self.resources:
            return str(r["urn"]).split(":")[2]
        raise TranslationError(f"{self.path / 'resources.json'}: no resources")

    def releases(self, chart: str) -> list[Document]:
        return [r for r in self.resources if r["type"] == HELM_RELEASE and (r.get("inputs") or {}).get("chart") == chart]

    def kind(self, kind: str) -> list[Document]:
        return [m for m in self.manifests if m.get("kind") == kind]

    def injecting_istiod(self) -> Document | None:
        """The istiod release the mesh's pods are injected by, as a cluster would pick it.

        With one istiod, that one. With two, the one whose revision the revision tag's webhook
        configuration names (its ``istio.io/rev`` label): that istiod serves every tagged namespace.
        """
        istiods = self.releases("istiod")
        if len(istiods) <= 1:
            return istiods[0] if istiods else None
        tags = [m for m in self.kind("MutatingWebhookConfiguration") if "istio.io/tag" in (m["metadata"].get("labels") or {})]
        targets = {str(t["metadata"]["labels"].get("istio.io/rev")) for t in tags}
        chosen = [r for r in istiods if ((r["inputs"].get("values") or {}).get("revision") or "default") in targets]
        if len(chosen) != 1:
            raise TranslationError(f"{self.path}: {len(istiods)} istiod releases, and the revision tags point at "
                                   f"{sorted(targets) or 'none'}: cannot tell which istiod serves the mesh")
        return chosen[0]


def load_render(path: Path) -> Render:
    manifests: list[Document] = []
    for file in sorted((path / "manifests").glob("*.yaml")):
        manifests.extend(d for d in yaml.load_all(file.read_text(), Loader=TRUSTED_YAML_LOADER) if d)
    resources = json.loads((path / "resources.json").read_text())
    return Render(path, manifests, resources)


def _group(obj: DocumentView) -> str:
    return str(obj.get("apiVersion", "")).split("/")[0]


def is_istio(obj: DocumentView) -> bool:
    return _group(obj) in ISTIO_GROUPS


def _addresses(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[str]:
    for address in network.hosts():
        if int(address) & 0xFF not in (0, 1, 255):
            yield str(address)


def _container_ports(pod_spec: DocumentView) -> tuple[tuple[str, int], ...]:
    return tuple((p.get("name", ""), int(p["containerPort"])) for c in pod_spec.get("containers", [])
                 for p in c.get("ports") or [])


def workloads(render: Render, network: ipaddress.IPv4Network = POD_NETWORK) -> list[Workload]:
    """Every pod istiod would see: one per Deployment, and the ingress gateway's, with pod IPs from ``network``."""
    ips = _addresses(network)
    found = []
    for gateway in render.releases(GATEWAY_CHART):
        inputs = gateway["inputs"]
        values = inputs.get("values") or {}
        name = values.get("name") or inputs.get("name") or gateway["name"]
        user = values.get("labels") or {}
        labels = {"app": user.get("app") or name, "istio": user.get("istio") or name.removeprefix("istio-"),
                  **{k: v for k, v in user.items() if k not in ("app", "istio")},
                  "service.istio.io/canonical-name": name}
        account = (values.get("serviceAccount") or {}).get("name") or name
        found.append(Workload(f"{name}-0", inputs.get("namespace", "default"), labels, account, next(ips), ()))
    # A namespace the render declares without the injection label holds no mesh workload (the global rate
    # limit's service and Redis in istio-system): istiod gives its pods no sidecar, the harness no stub.
    outside = {n["metadata"]["name"] for n in render.kind("Namespace")
               if not {"istio-injection", "istio.io/rev"} & set(n["metadata"].get("labels") or {})}
    for deployment in sorted(render.kind("Deployment"), key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"])):
        if deployment["metadata"]["namespace"] in outside:
            continue
        template = deployment["spec"]["template"]
        labels = dict(template["metadata"].get("labels") or {})
        labels.setdefault("service.istio.io/canonical-name", labels.get("app", deployment["metadata"]["name"]))
        labels["security.istio.io/tlsMode"] = "istio"  # what the sidecar injector adds
        spec = template["spec"]
        upstreams = tuple(sorted(e["value"] for c in spec.get("containers", []) for e in c.get("env") or []
                                 if e.get("name", "").startswith("UPSTREAM_") and e.get("name", "").endswith("_URL")
                                 and "value" in e))
        found.append(Workload(f"{deployment['metadata']['name']}-0", deployment["metadata"]["namespace"], labels,
                              spec.get("serviceAccountName", "default"), next(ips), _container_ports(spec), upstreams))
    return found


def pod_object(w: Workload) -> Document:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": dict(w.labels)},
        "spec": {"serviceAccountName": w.service_account, "nodeName": "node-0",
                 "containers": [{"name": "app", "image": "stub",
                                 "ports": [{"name": n, "containerPort": p} for n, p in w.ports if n] or None}]},
        "status": {"phase": "Running", "podIP": w.ip, "podIPs": [{"ip": w.ip}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def target_port(service_port: DocumentView, w: Workload) -> int | None:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    return next((p for n, p in w.ports if n == target), None)


def selected(service: DocumentView, ws: list[Workload]) -> list[Workload]:
    selector = (service.get("spec") or {}).get("selector") or {}
    namespace = service["metadata"]["namespace"]
    return [w for w in ws if selector and w.namespace == namespace and selector.items() <= w.labels.items()]


def endpoint_slices(services: list[Document], ws: list[Workload]) -> list[Document]:
    slices = []
    for service in services:
        for port in service["spec"].get("ports") or []:
            members = [(w, t) for w in selected(service, ws) if (t := target_port(port, w)) is not None]
            for number in sorted({t for _, t in members}):
                slices.append({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": f"{service['metadata']['name']}-{port.get('name', port['port'])}-{number}",
                                 "namespace": service["metadata"]["namespace"],
                                 "labels": {"kubernetes.io/service-name": service["metadata"]["name"],
                                            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
                    "addressType": "IPv4",
                    "ports": [{"name": port.get("name", ""), "port": number, "protocol": port.get("protocol", "TCP")}],
                    "endpoints": [{"addresses": [w.ip], "conditions": {"ready": True, "serving": True},
                                   "targetRef": {"kind": "Pod", "name": w.name, "namespace": w.namespace}}
                                  for w, t in members if t == number],
                })
    return slices


def documents(objects: Sequence[DocumentView]) -> str:
    return "\n---\n".join(yaml.dump(_without_none(o), Dumper=YAML_DUMPER, sort_keys=True) for o in objects)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value




def with_cluster_ips(services: list[Document], network: ipaddress.IPv4Network) -> tuple[list[Document],
                                                                                              dict[str, str]]:
    """The Services with the cluster IPs the API server would assign (from a loopback /16 of their own)."""
    service_network = ipaddress.ip_network(f"127.{network.network_address.packed[1] + 64 & 0xFF}.0.0/16")
    ips = _addresses(service_network)
    out, by_host = [], {}
    for service in services:
        copy_ = json.loads(json.dumps(service))
        if (copy_.get("spec") or {}).get("type", "ClusterIP") != "LoadBalancer":
            ip = next(ips)
            copy_["spec"]["clusterIP"] = ip
            by_host[f"{copy_['metadata']['name']}.{copy_['metadata']['namespace']}.svc.cluster.local"] = ip
        out.append(copy_)
    return out, by_host
