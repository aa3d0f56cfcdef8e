"""Istio's own translation of a render: the Envoy configuration istiod pushes, from istio.io/istio's Go code.

``build_istio_tools()`` builds two binaries from the Go module pinned in
``tools/istiod/go.mod`` (cached by the hash of that folder): ``istiod-xds``, the
project's small program around Istio's ``pilot/test/xds.NewFakeDiscoveryServer``,
and ``istioctl`` from the same module.

``mesh_spec(render)`` turns a render into what istiod would see in a cluster: the
Istio resources and Kubernetes objects the program declares, plus what the
cluster's own controllers would add, and nothing else:

- one Pod per Deployment (its pod template's labels and service account, the
  labels Istio's injector adds, a loopback address as pod IP, Ready);
- the ingress gateway's Pod, with the labels the gateway chart gives it
  (``gateway.selectorLabels`` in ``manifests/charts/gateway/templates/_helpers.tpl``)
  and the chart values' service account;
- one EndpointSlice per Service, listing the Pods its selector matches, as the
  EndpointSlice controller would;
- the istiod chart's ``meshConfig`` value.

``generate(spec)`` runs Istio's translation and returns, per proxy, the listeners,
routes, clusters and endpoints istiod's generators produce. ``for_upstream_envoy``
removes from that, and only from that, what upstream Envoy cannot load
(``REMOVED_FILTERS``) and the one address the harness must move
(``LOOPBACK_SUBSTITUTIONS``); each entry says why.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GO_PROGRAM = ROOT / "tools" / "istiod"
ISTIO_GROUPS = ("networking.istio.io", "security.istio.io", "telemetry.istio.io", "extensions.istio.io")
# What the cluster's API server holds that Istio's service registry reads.
KUBE_KINDS = ("Namespace", "Service", "ServiceAccount")
GATEWAY_CHART = "gateway"
ISTIOD_CHART = "istiod"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
# Pod IPs the harness hands out: a loopback range, so a stub backend can listen on each.
POD_NETWORK = ipaddress.ip_network("127.77.0.0/16")
# Where further harnesses in one machine take theirs from (127.64.0.0 to 127.191.255.255), one /16 each.
POD_NETWORKS = [ipaddress.ip_network(f"127.{n}.0.0/16") for n in range(64, 192)]
TRUST_DOMAIN = "cluster.local"

# Filters Istio's proxy build has and upstream Envoy lacks. Each is removed wherever it
# appears (listener filters, network filters, HTTP filters, cluster filters); nothing else
# is edited. None of them decides whether a request is admitted, limited or routed.
REMOVED_FILTERS: dict[str, str] = {
    "istio.alpn": "Istio's ALPN override for mTLS between proxies (istio-http/1.x); upstream Envoy has no such filter, "
                  "and the stub backends accept the TLS connection without it",
    "istio.stats": "Istio's Prometheus metrics (the stats plugin); observability only",
    "istio.metadata_exchange": "Istio's peer metadata exchange (who the peer is, for telemetry); observability only",
    "envoy.filters.http.peer_metadata": "Istio's HTTP peer metadata discovery, for telemetry; observability only",
    "envoy.filters.network.metadata_exchange": "Istio's TCP metadata exchange, for telemetry; observability only",
}
# Istio's extension types (by type URL) that upstream Envoy does not register; a filter whose typed_config is
# one of these is removed for the reason of the filter it implements.
REMOVED_TYPES: dict[str, str] = {
    "type.googleapis.com/istio.envoy.config.filter.http.alpn.v2alpha1.FilterConfig": "istio.alpn",
    "type.googleapis.com/stats.PluginConfig": "istio.stats",
    "type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange": "istio.metadata_exchange",
    "type.googleapis.com/io.istio.http.peer_metadata.Config": "envoy.filters.http.peer_metadata",
}
LOOPBACK_SUBSTITUTIONS: dict[str, str] = {
    "gateway listener address": "istiod binds the gateway's listeners to 0.0.0.0 on the Gateway's port; the harness binds "
                                "each to 127.0.0.1 on a free port, so it is reachable only from this machine and several "
                                "gateways can run at once. The listener's filters, routes and name are unchanged.",
    "sidecar listener addresses": "istiod binds a sidecar's virtualInbound (15006) and virtualOutbound (15001) to 0.0.0.0, "
                                  "which in a pod's own network namespace is the pod; the harness runs every pod in one "
                                  "namespace, so each sidecar binds them to its pod's address, same ports. Listeners that "
                                  "do not bind (bind_to_port: false) are unchanged.",
}


class IstioBuildError(RuntimeError):
    """The Go toolchain or Istio's module could not build the translation; the message says which."""


class TranslationError(RuntimeError):
    """Istio's translation refused the render; the message carries its reason."""


# --- the binaries -----------------------------------------------------------------


def pinned_istio() -> str:
    """The Istio module and version tools/istiod/go.mod pins (``istio.io/istio@v0.0.0-...``)."""
    for line in (GO_PROGRAM / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "istio.io/istio":
            return f"{parts[0]}@{parts[1]}"
    raise IstioBuildError(f"{GO_PROGRAM / 'go.mod'}: no istio.io/istio requirement")


def _cache_root() -> Path:
    base = os.environ.get("DATAMESH_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datamesh"


def _program_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(GO_PROGRAM.iterdir()):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class IstioTools:
    xds: Path
    istioctl: Path


def build_istio_tools() -> IstioTools:
    """Build (once per version of tools/istiod) istiod-xds and istioctl from the pinned Istio module."""
    out = _cache_root() / f"istiod-{_program_hash()}"
    tools = IstioTools(out / "istiod-xds", out / "istioctl")
    if tools.xds.exists() and tools.istioctl.exists():
        return tools
    go = shutil.which("go")
    if go is None:
        raise IstioBuildError("the Go toolchain (go) is not on PATH; it builds Istio's translation (tools/istiod)")
    staging = Path(tempfile.mkdtemp(prefix="istiod-", dir=_ensure(out.parent)))
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
    for target, package in (("istiod-xds", "."), ("istioctl", "istio.io/istio/istioctl/cmd/istioctl")):
        done = subprocess.run([go, "build", "-trimpath", "-o", str(staging / target), package], cwd=GO_PROGRAM,
                              env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise IstioBuildError(f"go build {package} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return tools


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- the render as istiod would see it -----------------------------------------------


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
    manifests: list[dict[str, Any]]
    resources: list[dict[str, Any]]

    @property
    def stack(self) -> str:
        for r in self.resources:
            return str(r["urn"]).split(":")[2]
        raise TranslationError(f"{self.path / 'resources.json'}: no resources")

    def releases(self, chart: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == HELM_RELEASE and (r.get("inputs") or {}).get("chart") == chart]

    def kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m.get("kind") == kind]


def load_render(path: Path) -> Render:
    manifests = []
    for file in sorted((path / "manifests").glob("*.yaml")):
        manifests.extend(d for d in yaml.safe_load_all(file.read_text()) if d)
    resources = json.loads((path / "resources.json").read_text())
    return Render(path, manifests, resources)


def _group(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).split("/")[0]


def is_istio(obj: Mapping[str, Any]) -> bool:
    return _group(obj) in ISTIO_GROUPS


def _addresses(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Iterator[str]:
    for address in network.hosts():
        if int(address) & 0xFF not in (0, 1, 255):
            yield str(address)


def _container_ports(pod_spec: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
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
    for deployment in sorted(render.kind("Deployment"), key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"])):
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


def _pod(w: Workload) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": dict(w.labels)},
        "spec": {"serviceAccountName": w.service_account, "nodeName": "node-0",
                 "containers": [{"name": "app", "image": "stub",
                                 "ports": [{"name": n, "containerPort": p} for n, p in w.ports if n] or None}]},
        "status": {"phase": "Running", "podIP": w.ip, "podIPs": [{"ip": w.ip}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def target_port(service_port: Mapping[str, Any], w: Workload) -> int | None:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    return next((p for n, p in w.ports if n == target), None)


def selected(service: Mapping[str, Any], ws: list[Workload]) -> list[Workload]:
    selector = (service.get("spec") or {}).get("selector") or {}
    namespace = service["metadata"]["namespace"]
    return [w for w in ws if selector and w.namespace == namespace and selector.items() <= w.labels.items()]


def _endpoint_slices(services: list[dict[str, Any]], ws: list[Workload]) -> list[dict[str, Any]]:
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


def _documents(objects: list[Mapping[str, Any]]) -> str:
    return "\n---\n".join(yaml.safe_dump(_without_none(o), sort_keys=True) for o in objects)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def node_id(w: Workload, router: bool) -> str:
    return f"{'router' if router else 'sidecar'}~{w.ip}~{w.name}.{w.namespace}~{w.namespace}.svc.cluster.local"


@dataclass
class MeshSpec:
    """What istiod is given, and the workloads the harness will stand in for."""

    spec: dict[str, Any]
    workloads: list[Workload]
    gateway: Workload
    service_ips: dict[str, str] = field(default_factory=dict)  # <name>.<namespace>.svc.cluster.local -> cluster IP


def _with_cluster_ips(services: list[dict[str, Any]], network: ipaddress.IPv4Network) -> tuple[list[dict[str, Any]],
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


def _mesh_config(render: Render) -> str:
    [istiod] = render.releases(ISTIOD_CHART) or [{"inputs": {}}]
    values = istiod["inputs"].get("values") or {}
    return yaml.safe_dump(values.get("meshConfig") or {})


def _versions(render: Render) -> tuple[str, str]:
    istio = next((r["inputs"].get("version", "") for r in render.releases(ISTIOD_CHART)), "")
    kube = next((r["inputs"].get("version", "") for r in render.resources if r["type"] == "aws:eks/cluster:Cluster"), "")
    return istio, kube


def mesh_spec(render: Render, sidecars: bool = False, network: ipaddress.IPv4Network = POD_NETWORK) -> MeshSpec:
    """The spec ``istiod-xds generate`` reads: the gateway always, each workload's sidecar when asked."""
    ws = workloads(render, network)
    gateways = [w for w in ws if "security.istio.io/tlsMode" not in w.labels]
    if not gateways:
        raise TranslationError(f"{render.path}: no ingress gateway release (chart {GATEWAY_CHART!r}) in resources.json")
    gateway = gateways[0]
    kube = [m for m in render.manifests if m.get("kind") in KUBE_KINDS]
    services = [m for m in kube if m["kind"] == "Service"]
    service_ips: dict[str, str] = {}
    if sidecars:  # a sidecar's outbound listeners and its app's calls go to the services' cluster IPs
        services, service_ips = _with_cluster_ips(services, network)
        kube = [m for m in kube if m["kind"] != "Service"] + services
    istio_version, kube_version = _versions(render)
    proxies = [_proxy("gateway", gateway, router=True)]
    if sidecars:
        proxies += [_proxy(w.name, w, router=False) for w in ws if w is not gateway]
    spec = {
        "istioConfig": _documents([m for m in render.manifests if is_istio(m)]),
        "kubernetes": _documents([*kube, *(_pod(w) for w in ws), *_endpoint_slices(services, ws)]),
        "meshConfig": _mesh_config(render),
        "kubernetesVersion": kube_version,
        "istioVersion": istio_version,
        "proxies": proxies,
    }
    return MeshSpec(spec, ws, gateway, service_ips)


def _proxy(name: str, w: Workload, router: bool) -> dict[str, Any]:
    return {"name": name, "type": "router" if router else "sidecar", "id": f"{w.name}.{w.namespace}", "ip": w.ip,
            "namespace": w.namespace, "serviceAccount": w.service_account, "labels": dict(w.labels)}


# --- translation -------------------------------------------------------------------


@dataclass
class Translation:
    """istiod's output: ``generator`` names the module; ``proxies`` maps a proxy name to its resources."""

    generator: dict[str, str]
    proxies: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)


def generate(tools: IstioTools, spec: Mapping[str, Any]) -> Translation:
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out = Path(tmp) / "spec.json", Path(tmp) / "xds.json"
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([str(tools.xds), "generate", "--in", str(spec_file), "--out", str(out)],
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise TranslationError((done.stderr or done.stdout).strip()[-2000:])
        data = json.loads(out.read_text())
    return Translation(data["generator"], data["proxies"])


def _filter_kind(f: Mapping[str, Any]) -> str | None:
    name = f.get("name", "")
    if name in REMOVED_FILTERS:
        return name
    type_url = (f.get("typed_config") or {}).get("@type", "")
    if type_url == "type.googleapis.com/udpa.type.v1.TypedStruct" or type_url.endswith("xds.type.v3.TypedStruct"):
        type_url = "type.googleapis.com/" + (f.get("typed_config") or {}).get("type_url", "").split("/")[-1]
    return REMOVED_TYPES.get(type_url)


def _strip(filters: list[dict[str, Any]], removed: dict[str, int]) -> list[dict[str, Any]]:
    kept = []
    for f in filters:
        kind = _filter_kind(f)
        if kind is None:
            kept.append(f)
        else:
            removed[kind] = removed.get(kind, 0) + 1
    return kept


def for_upstream_envoy(resources: Mapping[str, list[dict[str, Any]]], listen_port: int | None = None,
                       bind_ip: str | None = None) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """A copy of one proxy's resources that upstream Envoy loads: ``REMOVED_FILTERS`` taken out, nothing else.

    With ``listen_port``, the gateway's (single) HTTP listener is moved to 127.0.0.1 on that
    port; with ``bind_ip``, a sidecar's listeners that bind (virtualInbound, virtualOutbound)
    bind to its pod's address instead of 0.0.0.0 (``LOOPBACK_SUBSTITUTIONS``). Returns the copy
    and how many of each filter were removed.
    """
    out = copy.deepcopy(dict(resources))
    removed: dict[str, int] = {}
    for listener in out.get("listeners", []):
        listener["listener_filters"] = _strip(listener.get("listener_filters", []), removed)
        for chain in [*listener.get("filter_chains", []), *([listener["default_filter_chain"]]
                                                            if "default_filter_chain" in listener else [])]:
            chain["filters"] = _strip(chain.get("filters", []), removed)
            for f in chain["filters"]:
                hcm = f.get("typed_config") or {}
                if "http_filters" in hcm:
                    hcm["http_filters"] = _strip(hcm["http_filters"], removed)
        wildcard = listener.get("address", {}).get("socket_address", {}).get("address") == "0.0.0.0"
        if listen_port is not None and wildcard:
            listener["address"]["socket_address"].update({"address": "127.0.0.1", "port_value": listen_port})
        if bind_ip is not None and wildcard and listener.get("bind_to_port", True) is not False:
            listener["address"]["socket_address"]["address"] = bind_ip
    for cluster in out.get("clusters", []):
        if "filters" in cluster:
            cluster["filters"] = _strip(cluster["filters"], removed)
    return out, removed


def analyze(tools: IstioTools, render: Render) -> dict[str, Any]:
    """``istioctl analyze --use-kube=false`` over the render's manifests: errors, warnings and each message."""
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "render.yaml"
        objects = [m for m in render.manifests if is_istio(m) or m.get("kind") in (*KUBE_KINDS, "Deployment")]
        files.write_text(_documents(objects))
        done = subprocess.run([str(tools.istioctl), "analyze", "--use-kube=false", "-o", "json", "--failure-threshold",
                               "Error", "--all-namespaces", str(files)],
                              capture_output=True, text=True, timeout=300, check=False)
    try:
        messages = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise TranslationError(f"istioctl analyze: {(done.stderr or done.stdout).strip()[-500:]}") from exc
    found = [{"level": m.get("level", ""), "code": (m.get("code") or ""), "message": m.get("message", ""),
              "origin": m.get("origin", "")} for m in messages]
    return {"errors": sum(m["level"] == "Error" for m in found), "warnings": sum(m["level"] == "Warning" for m in found),
            "messages": found}
