"""Node autoscaling: the Cluster Autoscaler, scaling the managed node group between its bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.documents import Document, merge_values
from components.platform.context import ClusterContext
from components.platform.irsa import irsa_role

NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"


def iam_policy_document(cluster_name: str) -> Document:
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


def default_values(cluster_name: str, region: str, kubernetes_version: str, role_arn: pulumi.Input[str]) -> Document:
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
            # Every pod Istio injects has an emptyDir (istio-data), so with the default (true) no node
            # running a product would ever be scaled in. Products keep nothing on local disk that a
            # reschedule would lose (read-only root filesystem; emptyDirs are scratch), and each runs
            # behind a PodDisruptionBudget, so their nodes may drain.
            "skip-nodes-with-local-storage": False,
        },
    }


@dataclass(frozen=True)
class ClusterAutoscalerArgs:
    """Inputs of ``ClusterAutoscaler``.

    Attributes:
        cluster: the cluster (its minor picks the autoscaler image of the same minor; its OIDC provider, IRSA).
        after: what must be running first (the managed CoreDNS and VPC CNI).
        values: Helm values merged over the defaults.
    """

    cluster: ClusterContext
    after: tuple[pulumi.Resource, ...] = ()
    values: Document = field(default_factory=dict)


class ClusterAutoscaler(pulumi.ComponentResource):
    """The Cluster Autoscaler. It moves the managed node group's desired size between
    ``nodeMinSize`` and ``nodeMaxSize`` (the node group ignores changes to it). Creates:

    - ``<name>-policy``: its IAM policy, scaling only this cluster's groups;
    - ``<name>-irsa``: an IAM role trusted only by its service account through the cluster's OIDC provider;
    - ``<name>-policy`` (an attachment, child of the role);
    - ``cluster-autoscaler``: the pinned Helm release, after the attachment.

    Providers come through ``opts`` (``ClusterContext.opts``).
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:ClusterAutoscaler", name, None, opts)
        cluster = args.cluster
        irsa = irsa_role(
            name,
            description=f"Cluster Autoscaler for {cluster.name}",
            policy_document=iam_policy_document(cluster.name),
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            cluster=cluster,
            parent=self,
        )
        values = default_values(cluster.name, cluster.region, cluster.kubernetes_version, irsa.role.arn)
        self.release = irsa.helm_release("cluster-autoscaler", chart=versions.CLUSTER_AUTOSCALER_CHART,
                                         values=merge_values(values, args.values), after=args.after)
        self.register_outputs({"release": self.release.name, "roleArn": irsa.role.arn})
