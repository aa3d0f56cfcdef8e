"""Node autoscaling: the Cluster Autoscaler, scaling the managed node group between its bounds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.platform.helm import merge_values, pinned_release
from components.platform.irsa import irsa_role

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"


def iam_policy_document(cluster_name: str) -> dict[str, Any]:
    """What the autoscaler needs (kubernetes/autoscaler cloudprovider/aws/README.md, "recommended"
    policy), with the two write actions limited to this cluster's Auto Scaling groups, which EKS
    managed node groups tag ``k8s.io/cluster-autoscaler/<cluster>=owned``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Discover",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                    "eks:DescribeNodegroup",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ScaleOwnGroups",
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
            },
        ],
    }


def default_values(cluster_name: str, region: str, kubernetes_version: str, role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Chart values: discover this cluster's node groups by tag, and run the autoscaler of the cluster's minor."""
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {"tag": versions.CLUSTER_AUTOSCALER_IMAGE_TAGS[kubernetes_version]},
        "rbac": {"serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        }},
        "extraArgs": {
            # The platform's own kube-system Deployments (CoreDNS, metrics-server, the
            # controller) may move: each runs two replicas behind a PodDisruptionBudget,
            # so a node holding one can still be scaled in.
            "skip-nodes-with-system-pods": False,
        },
    }


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    """Inputs of ``ClusterAutoscaler``.

    Attributes:
        cluster_name, region: the EKS cluster and its region.
        kubernetes_version: the cluster's minor; picks the autoscaler image of the same minor.
        oidc_provider_arn, oidc_issuer: the cluster's IAM OIDC provider, for IRSA.
        provider: the cluster's Kubernetes provider (it waits for the node group).
        after: what must be running first (the managed CoreDNS and VPC CNI).
        tags: tags for the IAM resources.
        values: Helm values merged over the defaults.
    """

    cluster_name: str
    region: str
    kubernetes_version: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    provider: k8s.Provider
    tags: dict[str, str]
    after: tuple[pulumi.Resource, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)


class ClusterAutoscaler(pulumi.ComponentResource):
    """Creates: the autoscaler's IAM policy (scaling only this cluster's groups);
    an IAM role trusted only by its service account through the cluster's OIDC
    provider; the policy attachment; and the pinned Helm release, which waits
    for the attachment. It moves the managed node group's desired size between
    ``nodeMinSize`` and ``nodeMaxSize`` (the node group ignores changes to it).
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:ClusterAutoscaler", name, None, opts)
        irsa = irsa_role(
            name,
            description=f"Cluster Autoscaler for {args.cluster_name}",
            policy_document=iam_policy_document(args.cluster_name),
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            cluster_name=args.cluster_name,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            tags=args.tags,
            parent=self,
        )
        role, attachment = irsa.role, irsa.attachment
        values = default_values(args.cluster_name, args.region, args.kubernetes_version, role.arn)
        self.release = pinned_release(
            "cluster-autoscaler",
            chart="cluster-autoscaler",
            version=versions.CLUSTER_AUTOSCALER_CHART_VERSION,
            repo=versions.CLUSTER_AUTOSCALER_CHART_REPO,
            namespace=NAMESPACE,
            values=merge_values(values, args.values),
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[attachment, *args.after]),
        )
        self.register_outputs({"release": self.release.name, "roleArn": role.arn})
