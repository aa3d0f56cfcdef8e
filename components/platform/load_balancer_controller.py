"""The AWS Load Balancer Controller: its IAM policy, IRSA role and pinned Helm release."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components import versions
from components.documents import Document, merge_values
from components.inputs import TRUSTED_YAML_LOADER
from components.platform.context import ClusterContext
from components.platform.irsa import irsa_role
from components.platform.lifecycle import formerly

NAMESPACE = "kube-system"
# The chart creates this service account; the IRSA trust policy names exactly it.
SERVICE_ACCOUNT = "aws-load-balancer-controller"
IAM_POLICY_PATH = Path(__file__).parent / "iam" / versions.LBC_IAM_POLICY_FILE
CRDS_PATH = Path(__file__).parent / "crds" / versions.LBC_CRDS_FILE


def iam_policy_document() -> Document:
    """The controller's own IAM policy for the pinned version, unchanged."""
    return json.loads(IAM_POLICY_PATH.read_text())


@functools.cache
def _crds_json() -> str:
    return json.dumps([doc for doc in yaml.load_all(CRDS_PATH.read_text(), Loader=TRUSTED_YAML_LOADER) if doc])


def crd_documents() -> list[Document]:
    """The chart's CustomResourceDefinitions for the pinned version, as vendored: parsed once a process, a fresh
    copy each call."""
    return json.loads(_crds_json())


def default_values(cluster_name: str, region: str, vpc_id: pulumi.Input[str], role_arn: pulumi.Input[str],
                   tags: Mapping[str, str] | None = None) -> Document:
    """Chart values. Region and VPC are given, so the controller never needs IMDS (nodes allow 1 hop).

    ``tags``: the stack's tags, on everything the controller creates in AWS (the NLB, its target
    groups and security groups), so a stack's leftovers can be found by its tags after a destroy.
    """
    return {
        "clusterName": cluster_name,
        "defaultTags": dict(tags or {}),
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
        cluster: the EKS cluster the controller manages load balancers for.
        vpc_id: the cluster's VPC.
        values: Helm values merged over the defaults.
        after: what must be up first (the EKS managed add-ons: the VPC CNI restarts while it is adopted).
    """

    cluster: ClusterContext
    vpc_id: pulumi.Input[str]
    values: Document = field(default_factory=dict)
    after: tuple[pulumi.Resource, ...] = ()


class LoadBalancerController(pulumi.ComponentResource):
    """The AWS Load Balancer Controller. Creates:

    - ``<name>-policy``: the controller's IAM policy (its documented policy, nothing widened);
    - ``<name>-irsa``: an IAM role trusted only by the controller's service account
      through the cluster's OIDC provider;
    - ``<name>-policy`` (an attachment, child of the role);
    - one CustomResourceDefinition per chart CRD (TargetGroupBinding, IngressClassParams, ...),
      resources of their own, so an upgrade updates them (``helm upgrade`` never does);
    - ``aws-load-balancer-controller``: the Helm release (CRDs skipped), which waits for the
      attachment and the CRDs and, being a waiting release, is ready (webhook serving)
      before anything that depends on it starts.

    Providers come through ``opts`` (``ClusterContext.opts``).
    """

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:LoadBalancerController", name, None,
                         formerly("datamesh:loadbalancer:LoadBalancerController", opts))

        cluster = args.cluster
        irsa = irsa_role(
            name,
            description=f"AWS Load Balancer Controller {versions.LBC_APP_VERSION} for {cluster.name}",
            policy_document=iam_policy_document(),
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            cluster=cluster,
            parent=self,
        )
        crds = [
            k8s.apiextensions.v1.CustomResourceDefinition(
                doc["metadata"]["name"], metadata=doc["metadata"], spec=doc["spec"],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for doc in crd_documents()
        ]
        values = merge_values(default_values(cluster.name, cluster.region, args.vpc_id, irsa.role.arn, cluster.tags), args.values)
        # Permissions and CRDs first; on destroy the role outlives the
        # controller, which still needs it to delete load balancers.
        self.release = irsa.helm_release("aws-load-balancer-controller", chart=versions.LBC_CHART,
                                         values=values, after=[*crds, *args.after], skip_crds=True)
        self.register_outputs({"release": self.release.name, "roleArn": irsa.role.arn})
