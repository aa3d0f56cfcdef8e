"""Istio's own translation of a render: the Envoy configuration istiod pushes, from istio.io/istio's Go code.

``mesh_spec(render)`` is what istiod is given: the render's Istio resources and
Kubernetes objects plus what the cluster's controllers add (``istio_cluster``), and
the istiod chart's ``meshConfig``. ``generate(tools, spec)`` runs Istio's translation
(``istio_build``) and returns, per proxy, the listeners, routes, clusters and endpoints
istiod's generators produce. ``for_upstream_envoy`` removes from that, and only from
that, what upstream Envoy cannot load (``REMOVED_FILTERS``) and moves the addresses
the harness must move (``LOOPBACK_SUBSTITUTIONS``); each entry says why.
``analyze`` runs ``istioctl analyze --use-kube=false`` over the render.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.documents import Document, DocumentView
from tools.engine.istio_build import GO_PROGRAM as GO_PROGRAM
from tools.engine.istio_build import IstioBuildError as IstioBuildError
from tools.engine.istio_build import IstioTools as IstioTools
from tools.engine.istio_build import build_istio_tools as build_istio_tools
from tools.engine.istio_build import pinned_istio as pinned_istio
from tools.engine.istio_cluster import GATEWAY_CHART, KUBE_KINDS, documents, endpoint_slices, pod_object, with_cluster_ips, workloads
from tools.engine.istio_cluster import POD_NETWORK as POD_NETWORK
from tools.engine.istio_cluster import POD_NETWORKS as POD_NETWORKS
from tools.engine.istio_cluster import TRUST_DOMAIN as TRUST_DOMAIN
from tools.engine.istio_cluster import Render as Render
from tools.engine.istio_cluster import TranslationError as TranslationError
from tools.engine.istio_cluster import Workload as Workload
from tools.engine.istio_cluster import is_istio as is_istio
from tools.engine.istio_cluster import load_render as load_render
from tools.engine.istio_cluster import selected as selected
from tools.engine.istio_cluster import target_port as target_port

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


def node_id(w: Workload, router: bool) -> str:
    return f"{'router' if router else 'sidecar'}~{w.ip}~{w.name}.{w.namespace}~{w.namespace}.svc.cluster.local"


@dataclass
class MeshSpec:
    """What istiod is given, and the workloads the harness will stand in for."""

    spec: Document
    workloads: list[Workload]
    gateway: Workload
    service_ips: dict[str, str] = field(default_factory=dict)  # <name>.<namespace>.svc.cluster.local -> cluster IP


def _mesh_config(render: Render) -> str:
    istiod = render.injecting_istiod() or {"inputs": {}}
    values = istiod["inputs"].get("values") or {}
    return yaml.safe_dump(values.get("meshConfig") or {})


def _versions(render: Render) -> tuple[str, str]:
    istio = (render.injecting_istiod() or {"inputs": {}})["inputs"].get("version", "")
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
        services, service_ips = with_cluster_ips(services, network)
        kube = [m for m in kube if m["kind"] != "Service"] + services
    istio_version, kube_version = _versions(render)
    proxies = [_proxy("gateway", gateway, router=True)]
    if sidecars:
        proxies += [_proxy(w.name, w, router=False) for w in ws if w is not gateway]
    spec = {
        "istioConfig": documents([m for m in render.manifests if is_istio(m)]),
        "kubernetes": documents([*kube, *(pod_object(w) for w in ws), *endpoint_slices(services, ws)]),
        "meshConfig": _mesh_config(render),
        "kubernetesVersion": kube_version,
        "istioVersion": istio_version,
        "proxies": proxies,
    }
    return MeshSpec(spec, ws, gateway, service_ips)


def _proxy(name: str, w: Workload, router: bool) -> Document:
    return {"name": name, "type": "router" if router else "sidecar", "id": f"{w.name}.{w.namespace}", "ip": w.ip,
            "namespace": w.namespace, "serviceAccount": w.service_account, "labels": dict(w.labels)}


# --- translation -------------------------------------------------------------------


@dataclass
class Translation:
    """istiod's output: ``generator`` names the module; ``proxies`` maps a proxy name to its resources."""

    generator: dict[str, str]
    proxies: dict[str, dict[str, list[Document]]] = field(default_factory=dict)


def generate(tools: IstioTools, spec: DocumentView) -> Translation:
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out = Path(tmp) / "spec.json", Path(tmp) / "xds.json"
        spec_file.write_text(json.dumps(spec))
        done = subprocess.run([str(tools.xds), "generate", "--in", str(spec_file), "--out", str(out)],
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise TranslationError((done.stderr or done.stdout).strip()[-2000:])
        data = json.loads(out.read_text())
    return Translation(data["generator"], data["proxies"])


def _filter_kind(f: DocumentView) -> str | None:
    name = f.get("name", "")
    if name in REMOVED_FILTERS:
        return name
    type_url = (f.get("typed_config") or {}).get("@type", "")
    if type_url == "type.googleapis.com/udpa.type.v1.TypedStruct" or type_url.endswith("xds.type.v3.TypedStruct"):
        type_url = "type.googleapis.com/" + (f.get("typed_config") or {}).get("type_url", "").split("/")[-1]
    return REMOVED_TYPES.get(type_url)


def _strip(filters: list[Document], removed: dict[str, int]) -> list[Document]:
    kept = []
    for f in filters:
        kind = _filter_kind(f)
        if kind is None:
            kept.append(f)
        else:
            removed[kind] = removed.get(kind, 0) + 1
    return kept


def for_upstream_envoy(resources: Mapping[str, list[Document]], listen_port: int | None = None,
                       bind_ip: str | None = None) -> tuple[dict[str, list[Document]], dict[str, int]]:
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


def analyze(tools: IstioTools, render: Render) -> Document:
    """``istioctl analyze --use-kube=false`` over the render's manifests: errors, warnings and each message."""
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "render.yaml"
        objects = [m for m in render.manifests if is_istio(m) or m.get("kind") in (*KUBE_KINDS, "Deployment")]
        files.write_text(documents(objects))
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
