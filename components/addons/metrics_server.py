"""metrics-server: the resource metrics API that HorizontalPodAutoscalers read CPU from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.platform.helm import merge_values, pinned_release

NAMESPACE = "kube-system"

DEFAULT_VALUES: dict[str, Any] = {
    # Two replicas and a PDB: the HPAs keep their metrics through a node drain.
    "replicas": 2,
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
}


@dataclass(frozen=True)
class MetricsServerArgs:
    """Inputs of ``MetricsServer``.

    Attributes:
        provider: the cluster's Kubernetes provider (it waits for the node group).
        after: what must be running first (the managed CoreDNS and VPC CNI).
        values: Helm values merged over the defaults.
    """

    provider: k8s.Provider
    after: tuple[pulumi.Resource, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)


class MetricsServer(pulumi.ComponentResource):
    """Creates: the pinned metrics-server Helm release in ``kube-system``. An
    EKS cluster created through the API has no metrics-server, so without it
    no HorizontalPodAutoscaler can read CPU. Through the provider it waits for
    the node group, and on destroy it goes before the nodes.
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:MetricsServer", name, None, opts)
        self.release = pinned_release(
            "metrics-server",
            chart="metrics-server",
            version=versions.METRICS_SERVER_CHART_VERSION,
            repo=versions.METRICS_SERVER_CHART_REPO,
            namespace=NAMESPACE,
            values=merge_values(DEFAULT_VALUES, args.values),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after)),
        )
        self.register_outputs({"release": self.release.name})
