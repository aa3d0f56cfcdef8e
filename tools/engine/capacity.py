"""How many nodes a render's pods need: their requests against the node type's allocatable.

Every pod the stack runs is counted: the program's own Deployments (replicas, or their
autoscaler's minimum, each with its injected sidecar), every Helm release's workloads (the
values' replicas and requests, else the pinned chart's defaults: capacity.yaml), and the EKS
managed add-ons. DaemonSets count on every node. A node's allocatable is what nodeadm leaves
(its reserved CPU and memory, from the max pods the VPC CNI allows, and the eviction threshold).
The pods are packed first-fit-decreasing onto nodes of the group's smallest type, each filled
to ``packTo`` (room for a rollout's surge); the group's minimum and maximum bound the result.
Not modelled: anti-affinity and topology spread, and pods the autoscaler would add under load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.documents import Document, DocumentView
from components.inputs import TRUSTED_YAML_LOADER
from components.products.checks import quantity

TABLE = Path(__file__).with_name("capacity.yaml")
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
MI = 1024 * 1024


def load_table(path: Path = TABLE) -> Document:
    return yaml.load(path.read_text(), Loader=TRUSTED_YAML_LOADER)


@dataclass(frozen=True)
class Pod:
    """One pod's requests: CPU in millicores, memory in MiB."""

    owner: str
    cpu: int
    memory: int


@dataclass
class Capacity:
    """The pods, the per-node overhead, a node's allocatable and the nodes needed."""

    pods: list[Pod] = field(default_factory=list)
    per_node: list[Pod] = field(default_factory=list)
    allocatable: tuple[int, int, int] = (0, 0, 0)  # millicores, MiB, pods
    needed: int = 0

    def as_json(self) -> Document:
        cpu, memory, pods = self.allocatable
        return {"pods": len(self.pods), "requests": {"cpuMillicores": sum(p.cpu for p in self.pods),
                                                     "memoryMiB": sum(p.memory for p in self.pods)},
                "perNode": {"pods": len(self.per_node), "cpuMillicores": sum(p.cpu for p in self.per_node),
                            "memoryMiB": sum(p.memory for p in self.per_node)},
                "nodeAllocatable": {"cpuMillicores": cpu, "memoryMiB": memory, "pods": pods},
                "nodesNeeded": self.needed}


def _millicores(value: object) -> int:
    amount = quantity(str(value)) if value is not None else None
    return math.ceil(amount * 1000) if amount is not None else 0


def _mebibytes(value: object) -> int:
    amount = quantity(str(value)) if value is not None else None
    return math.ceil(amount / MI) if amount is not None else 0


def _pod(owner: str, requests: Mapping[str, Any] | None) -> Pod:
    requests = requests or {}
    return Pod(owner, _millicores(requests.get("cpu")), _mebibytes(requests.get("memory")))


def _at(values: Mapping[str, Any], path: str, default: Any) -> Any:
    current: Any = values
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return default
        current = current[part]
    return current


def allocatable(instance_type: str, table: DocumentView) -> tuple[int, int, int]:
    """nodeadm's allocatable for ``instance_type``: (millicores, MiB, max pods)."""
    spec = table["instances"][instance_type]
    cores = int(spec["vcpu"]) * 1000
    # 6% of the first core, 1% of the second, 0.5% of the third and fourth, 0.25% above.
    reserved_cpu = sum(max(0, min(cores, hi) - lo) * pct // 10000
                       for lo, hi, pct in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, cores, 25)))
    max_pods = int(spec["enis"]) * (int(spec["ipsPerEni"]) - 1) + 2
    memory = int(float(spec["memoryGiB"]) * 1024 * float(table["memoryVisible"]))
    return cores - reserved_cpu, memory - (11 * max_pods + 255) - int(table["evictionHardMi"]), max_pods


def _release_pods(release: Mapping[str, Any], table: Mapping[str, Any]) -> tuple[list[Pod], list[Pod]]:
    inputs = release.get("inputs") or {}
    values = inputs.get("values") or {}
    pods: list[Pod] = []
    per_node: list[Pod] = []
    for w in table["charts"].get(inputs.get("chart"), []):
        if "enabledBy" in w and not _at(values, *w["enabledBy"]):
            continue
        pod = _pod(f"{release['name']}/{w['name']}", _at(values, *w["requests"]))
        if w.get("perNode"):
            per_node.append(pod)
        else:
            pods += [pod] * int(_at(values, *w["replicas"]))
    return pods, per_node


def _sidecar(template: Mapping[str, Any], default: Pod) -> Pod:
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    if str(annotations.get("sidecar.istio.io/inject", "")).lower() == "false":
        return Pod(default.owner, 0, 0)
    cpu = annotations.get("sidecar.istio.io/proxyCPU")
    memory = annotations.get("sidecar.istio.io/proxyMemory")
    return Pod(default.owner, _millicores(cpu) if cpu else default.cpu, _mebibytes(memory) if memory else default.memory)


def _deployment_pods(manifests: list[Mapping[str, Any]], sidecar: Pod) -> list[Pod]:
    injected = {m["metadata"]["name"] for m in manifests if m.get("kind") == "Namespace"
                and {"istio.io/rev", "istio-injection"} & set(m["metadata"].get("labels") or {})}
    floors = {(h["metadata"].get("namespace"), h["spec"]["scaleTargetRef"]["name"]): int(h["spec"].get("minReplicas", 1))
              for h in manifests if h.get("kind") == "HorizontalPodAutoscaler"}
    pods: list[Pod] = []
    for d in (m for m in manifests if m.get("kind") == "Deployment"):
        namespace, name = d["metadata"].get("namespace"), d["metadata"]["name"]
        template = d["spec"]["template"]
        containers = template["spec"].get("containers") or []
        cpu = sum(_millicores(((c.get("resources") or {}).get("requests") or {}).get("cpu")) for c in containers)
        memory = sum(_mebibytes(((c.get("resources") or {}).get("requests") or {}).get("memory")) for c in containers)
        proxy = _sidecar(template, sidecar) if namespace in injected else Pod("", 0, 0)
        replicas = max(int(d["spec"].get("replicas", 1)), floors.get((namespace, name), 0))
        pods += [Pod(f"{namespace}/{name}", cpu + proxy.cpu, memory + proxy.memory)] * replicas
    return pods


def _pack(pods: list[Pod], room: tuple[int, int, int]) -> int:
    """First-fit decreasing: the nodes ``pods`` fill, each node offering ``room`` (millicores, MiB, pods)."""
    nodes: list[list[int]] = []
    for pod in sorted(pods, key=lambda p: max(p.cpu / max(room[0], 1), p.memory / max(room[1], 1)), reverse=True):
        for node in nodes:
            if node[0] >= pod.cpu and node[1] >= pod.memory and node[2] >= 1:
                node[0], node[1], node[2] = node[0] - pod.cpu, node[1] - pod.memory, node[2] - 1
                break
        else:
            if pod.cpu > room[0] or pod.memory > room[1]:
                nodes.append([0, 0, 0])  # fits no node of this type: it takes one and still does not run
            else:
                nodes.append([room[0] - pod.cpu, room[1] - pod.memory, room[2] - 1])
    return len(nodes)


def estimate(resources: Sequence[DocumentView], instance_type: str, table: DocumentView | None = None) -> Capacity:
    """The pods of a render (resources.json) and the nodes of ``instance_type`` they need (before the group's bounds)."""
    table = table or load_table()
    manifests = [r["inputs"] for r in resources if r["type"].startswith("kubernetes:") and "kind" in (r.get("inputs") or {})]
    sidecar_default = Pod("sidecar", _millicores(table["sidecar"]["cpu"]), _mebibytes(table["sidecar"]["memory"]))
    istiod = next((r for r in resources if r["type"] == HELM_RELEASE and (r.get("inputs") or {}).get("chart") == "istiod"), None)
    configured = _at((istiod or {}).get("inputs", {}).get("values") or {}, "global.proxy.resources.requests", None)
    sidecar = _pod("sidecar", configured) if configured else sidecar_default
    result = Capacity(allocatable=allocatable(instance_type, table))
    result.pods = _deployment_pods(manifests, sidecar)
    for release in (r for r in resources if r["type"] == HELM_RELEASE):
        pods, per_node = _release_pods(release, table)
        result.pods += pods
        result.per_node += per_node
    for addon in table["eksAddons"]:
        pod = _pod(f"eks/{addon['name']}", addon["requests"])
        (result.per_node.append(pod) if addon.get("perNode") else result.pods.extend([pod] * int(addon["replicas"])))
    cpu, memory, max_pods = result.allocatable
    fill = float(table["packTo"])
    room = (int((cpu - sum(p.cpu for p in result.per_node)) * fill), int((memory - sum(p.memory for p in result.per_node)) * fill),
            max_pods - len(result.per_node))
    result.needed = _pack(result.pods, room)
    return result


def share(capacity: Capacity, nodes: int) -> float:
    """The fraction of ``nodes`` nodes' room the pods request (the larger of CPU and memory)."""
    cpu, memory, _ = capacity.allocatable
    room_cpu = nodes * (cpu - sum(p.cpu for p in capacity.per_node))
    room_memory = nodes * (memory - sum(p.memory for p in capacity.per_node))
    used_cpu, used_memory = sum(p.cpu for p in capacity.pods), sum(p.memory for p in capacity.pods)
    return max(used_cpu / room_cpu if room_cpu > 0 else 1.0, used_memory / room_memory if room_memory > 0 else 1.0)


