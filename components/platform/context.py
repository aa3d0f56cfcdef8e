"""The seam between the cluster and what runs on it: one frozen ``ClusterContext``.

``Cluster`` builds it once; add-ons and products take it instead of re-declaring
the cluster's name, region, OIDC provider, tags and providers field by field
(pulumi-eks passes a ``CoreData``, cdk-eks-blueprints a ``ClusterInfo``). The
providers reach a component through its ``opts`` (``ClusterContext.opts``), and
its children inherit them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class ClusterContext:
    """What add-ons and products know of the cluster.

    ``Cluster`` (EKS) and ``ExistingCluster`` (a cluster the stack is given) each build one.

    Attributes:
        name: the EKS cluster's name (an existing cluster: the stack's clusterName).
        region: its AWS region.
        kubernetes_version: its Kubernetes minor, e.g. ``1.35``.
        oidc_provider_arn, oidc_issuer: its IAM OIDC provider, for IRSA (the issuer without ``https://``).
        tags: tags for every AWS resource (the stack's and the ownership tags).
        aws_provider: the AWS provider (region and default tags); None on an existing cluster without AWS access.
        kubernetes: the cluster's Kubernetes provider; on EKS it waits for the node group.
        node_group: the managed node group (what the EKS managed add-ons wait for); None on an existing cluster.
    """

    name: str
    region: str
    kubernetes_version: str
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    tags: dict[str, str]
    aws_provider: pulumi.ProviderResource | None
    kubernetes: k8s.Provider
    node_group: aws.eks.NodeGroup | None

    def opts(self) -> pulumi.ResourceOptions:
        """Options for a component on the cluster: both providers (or the Kubernetes one alone), which its children inherit."""
        if self.aws_provider is None:
            return pulumi.ResourceOptions(providers={"kubernetes": self.kubernetes})
        return pulumi.ResourceOptions(providers={"aws": self.aws_provider, "kubernetes": self.kubernetes})
