"""The AWS Load Balancer Controller: its IAM policy, IRSA role and pinned Helm release."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import versions
from components.platform.helm import merge_values, pinned_release
from components.platform.irsa import irsa_role

NAMESPACE = "kube-system"
# The chart creates this service account; the IRSA trust policy names exactly it.
SERVICE_ACCOUNT = "aws-load-balancer-controller"
IAM_POLICY_PATH = Path(__file__).parent / "iam" / versions.LBC_IAM_POLICY_FILE
CRDS_PATH = Path(__file__).parent / "crds" / versions.LBC_CRDS_FILE


def iam_policy_document() -> dict[str, Any]:
    """The controller's own IAM policy for the pinned version, unchanged."""
    return json.loads(IAM_POLICY_PATH.read_text())


def crd_documents() -> list[dict[str, Any]]:
    """The chart's CustomResourceDefinitions for the pinned version, as vendored."""
    return [doc for doc in yaml.safe_load_all(CRDS_PATH.read_text()) if doc]


def default_values(cluster_name: str, region: str, vpc_id: pulumi.Input[str], role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Chart values. Region and VPC are given, so the controller never needs IMDS (nodes allow 1 hop)."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "image": {"tag": versions.LBC_APP_VERSION},
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            "annotations": {"eks.amazonaws.com/role-arn": role_arn},
        },
        # Off: the mutator would intercept every Service in the cluster, so a
        # Service created while the controller restarts would fail. Our one
        # LoadBalancer Service names the controller through its annotations.
        "enableServiceMutatorWebhook": False,
        "podDisruptionBudget": {"maxUnavailable": 1},
    }


@dataclass(frozen=True)
class LoadBalancerControllerArgs:
    """Inputs of ``LoadBalancerController``.

    Attributes:
        cluster_name: the EKS cluster the controller manages load balancers for.
        region: AWS region of the cluster.
        vpc_id: the cluster's VPC.
        oidc_provider_arn, oidc_issuer: the cluster's IAM OIDC provider, for IRSA.
        provider: the cluster's Kubernetes provider.
        tags: tags for the IAM resources.
        values: Helm values merged over the defaults.
    """

    cluster_name: str
    region: str
    vpc_id: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    provider: k8s.Provider
    tags: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)


class LoadBalancerController(pulumi.ComponentResource):
    """Creates: the controller's IAM policy (its documented policy, nothing
    widened); an IAM role trusted only by the controller's service account
    through the cluster's OIDC provider; the policy attachment; the chart's
    CustomResourceDefinitions (TargetGroupBinding, IngressClassParams, ...) as
    resources of their own, so an upgrade updates them (``helm upgrade`` never
    does); and the Helm release (CRDs skipped), which waits for the attachment
    and the CRDs and, being a waiting release, is ready (webhook serving)
    before anything that depends on it starts.
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:loadbalancer:LoadBalancerController", name, None, opts)

        irsa = irsa_role(
            name,
            description=f"AWS Load Balancer Controller {versions.LBC_APP_VERSION} for {args.cluster_name}",
            policy_document=iam_policy_document(),
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            cluster_name=args.cluster_name,
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer=args.oidc_issuer,
            tags=args.tags,
            parent=self,
        )
        role, attachment = irsa.role, irsa.attachment

        crds = [
            k8s.apiextensions.v1.CustomResourceDefinition(
                doc["metadata"]["name"],
                metadata=doc["metadata"],
                spec=doc["spec"],
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
            for doc in crd_documents()
        ]
        values = merge_values(default_values(args.cluster_name, args.region, args.vpc_id, role.arn), args.values)
        self.release = pinned_release(
            "aws-load-balancer-controller",
            chart=versions.LBC_CHART,
            version=versions.LBC_CHART_VERSION,
            repo=versions.LBC_CHART_REPO,
            namespace=NAMESPACE,
            values=values,
            skip_crds=True,
            # Permissions and CRDs first; on destroy the role outlives the
            # controller, which still needs it to delete load balancers.
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[attachment, *crds]),
        )
        self.register_outputs({"release": self.release.name, "roleArn": role.arn})
