"""EKS managed add-ons: the VPC CNI, kube-proxy and CoreDNS, at versions that follow the cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import versions
from components.platform.context import ClusterContext


@dataclass(frozen=True)
class ManagedAddonsArgs:
    """Inputs of ``ManagedAddons``.

    Attributes:
        cluster: the cluster. An add-on not in ``pinned`` takes EKS's default version for
            its Kubernetes minor, so raising that upgrades them too. Each waits for its
            node group (CoreDNS needs nodes to become active, and every add-on is removed
            before the nodes on destroy) and carries its tags.
        pinned: exact versions by add-on name (``datamesh:eksAddonVersions``).
    """

    cluster: ClusterContext
    pinned: dict[str, str]


class ManagedAddons(pulumi.ComponentResource):
    """The EKS managed add-ons. Creates:

    - ``<name>-vpc-cni``, ``<name>-kube-proxy``, ``<name>-coredns``: one ``aws.eks.Addon`` each,
      taking over the copies EKS installs at cluster creation (conflicts resolved by
      overwriting them), each at its pinned version or else at EKS's default version for
      the cluster's Kubernetes version (the default, not the newest build: it does not
      move under a stack between two ``up`` runs when AWS publishes a build). The VPC CNI
      is configured to enforce NetworkPolicies (``versions.EKS_ADDON_CONFIGURATION``).

    pulumi-eks would manage kube-proxy and the VPC CNI itself, and CoreDNS only
    with a default node group; ``Cluster`` turns all three off there, so each
    add-on has exactly one owner and is visible here.
    """

    addons: dict[str, aws.eks.Addon]

    def __init__(self, name: str, args: ManagedAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:ManagedAddons", name, None, opts)
        cluster = args.cluster
        self.addons = {}
        for addon in versions.EKS_MANAGED_ADDONS:
            version: pulumi.Input[str] = args.pinned.get(addon) or aws.eks.get_addon_version_output(
                addon_name=addon, kubernetes_version=cluster.kubernetes_version, most_recent=False,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).version
            self.addons[addon] = aws.eks.Addon(
                f"{name}-{addon}",
                cluster_name=cluster.name,
                addon_name=addon,
                addon_version=version,
                configuration_values=json.dumps(versions.EKS_ADDON_CONFIGURATION[addon])
                if addon in versions.EKS_ADDON_CONFIGURATION else None,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                # Removing the add-on from EKS's management keeps its pods running:
                # pod networking and DNS must not vanish under what still runs.
                preserve=True,
                tags=cluster.tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[n for n in (cluster.node_group,) if n is not None]),
            )
        self.register_outputs({addon: a.addon_version for addon, a in self.addons.items()})
