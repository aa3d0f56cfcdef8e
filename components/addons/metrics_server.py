"""metrics-server: the resource metrics API that HorizontalPodAutoscalers read CPU from."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.documents import Document, merge_values
from components.platform.helm import pinned_release

NAMESPACE = "kube-system"

DEFAULT_VALUES: Document = {
    # Two replicas and a PDB: the HPAs keep their metrics through a node drain.
    "replicas": 2,
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
}


@dataclass(frozen=True)
class MetricsServerArgs:
    """Inputs of ``MetricsServer``.

    The cluster's Kubernetes provider (it waits for the node group) comes through ``opts``.

    Attributes:
        after: what must be running first (the managed CoreDNS and VPC CNI).
        values: Helm values merged over the defaults.
    """

    after: tuple[pulumi.Resource, ...] = ()
    values: Document = field(default_factory=dict)


class MetricsServer(pulumi.ComponentResource):
    """metrics-server. An EKS cluster created through the API has none, so without it
    no HorizontalPodAutoscaler can read CPU. Creates:

    - ``metrics-server``: the pinned Helm release in ``kube-system``; through the provider
      it waits for the node group, and on destroy it goes before the nodes.
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:MetricsServer", name, None, opts)
        self.release = pinned_release(
            "metrics-server",
            chart=versions.METRICS_SERVER_CHART,
            namespace=NAMESPACE,
            values=merge_values(DEFAULT_VALUES, args.values),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)),
        )
        self.register_outputs({"release": self.release.name})
