"""A cluster the stack is given (``datamesh:cluster: existing``): its Kubernetes provider and ``ClusterContext``.

No network, EKS cluster, add-ons or load balancer controller: the cluster is its owner's.
Everything above the platform (namespaces, products, governance, catalog) takes the same
``ClusterContext`` as on EKS. ``skip_await`` is for a control plane without nodes only
(the local one of tools/local_engine): every Kubernetes object the program declares is
annotated ``pulumi.com/skipAwait: "true"``, visibly, in its inputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import ClusterSettings, Settings
from components.platform.context import ClusterContext

SKIP_AWAIT = "pulumi.com/skipAwait"


@dataclass(frozen=True)
class ExistingClusterArgs:
    """Inputs of ``ExistingCluster``.

    Attributes:
        cluster_name: the stack's clusterName (tags, keys' salt); the cluster itself is not renamed.
        region: aws:region ("" without AWS access).
        kubernetes_version: the cluster's Kubernetes minor, as configured.
        cluster: the kind's settings: the kubeconfig (secret) and the IAM OIDC provider ("" for none).
        tags: tags for the AWS resources products' access makes (with an OIDC provider).
        aws_provider: the AWS provider, only with an OIDC provider.
    """

    cluster_name: str
    region: str
    kubernetes_version: str
    cluster: ClusterSettings
    tags: dict[str, str]
    aws_provider: pulumi.ProviderResource | None = None


class ExistingCluster(pulumi.ComponentResource):
    """An existing cluster. Creates:

    - ``cluster-k8s``: the Kubernetes provider, from the kubeconfig in secret config (server-side apply, as on EKS).

    Its ``context`` carries that provider, the AWS provider when products may use AWS, and the
    configured OIDC provider for their IAM roles.
    """

    context: ClusterContext
    provider: k8s.Provider

    def __init__(self, name: str, args: ExistingClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:ExistingCluster", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=pulumi.Output.secret(args.cluster.kubeconfig),
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.context = ClusterContext(
            name=args.cluster_name, region=args.region, kubernetes_version=args.kubernetes_version,
            oidc_provider_arn=pulumi.Output.from_input(args.cluster.oidc_provider_arn),
            oidc_issuer=pulumi.Output.from_input(args.cluster.oidc_issuer), tags=dict(args.tags),
            aws_provider=args.aws_provider, kubernetes=self.provider, node_group=None,
        )
        self.register_outputs({"kubernetesVersion": args.kubernetes_version})


def _with_skip_await(metadata: Any) -> Any:
    """``metadata`` (a plain dict, or an Output of one) with the skip-await annotation added."""
    def add(meta: Any) -> Any:
        if not isinstance(meta, dict):
            return meta
        annotations = meta.get("annotations") or {}
        if isinstance(annotations, dict):
            return {**meta, "annotations": {**annotations, SKIP_AWAIT: "true"}}
        return {**meta, "annotations": pulumi.Output.from_input(annotations).apply(
            lambda a: {**(a or {}), SKIP_AWAIT: "true"})}
    if isinstance(metadata, pulumi.Output):
        return metadata.apply(add)
    return add(metadata if metadata is not None else {})


def skip_await(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """A stack transformation: every Kubernetes object the program declares (not Helm releases, whose await is
    their own), annotated so the provider does not wait for a readiness that no kubelet will bring."""
    if not args.type_.startswith("kubernetes:") or args.type_.startswith("kubernetes:helm.sh/"):
        return None
    if args.opts is not None and args.opts.id is not None:
        return None  # a read (the live istiod) has no inputs to annotate
    props = args.props
    if isinstance(props, dict) and "metadata" in props:
        return pulumi.ResourceTransformationResult({**props, "metadata": _with_skip_await(props["metadata"])}, args.opts)
    fields = getattr(props, "__dict__", None)  # the SDK's generated classes pass their Args object
    if isinstance(fields, dict) and "metadata" in fields:
        changed = copy.copy(props)
        vars(changed)["metadata"] = _with_skip_await(fields["metadata"])
        return pulumi.ResourceTransformationResult(changed, args.opts)
    return None


def register_skip_await(cluster: ClusterSettings) -> None:
    """With ``datamesh:skipAwait`` (existing clusters only), annotate every Kubernetes object registered after this."""
    if cluster.skip_await:
        pulumi.runtime.register_stack_transformation(skip_await)


def existing_cluster(settings: Settings, aws_provider: pulumi.ProviderResource | None) -> ClusterContext:
    """The ``ClusterContext`` of the stack's existing cluster (skip-await registered first, when asked for)."""
    register_skip_await(settings.cluster)
    args = ExistingClusterArgs(settings.cluster_name, settings.region, settings.kubernetes_version, settings.cluster,
                               settings.tag_map, aws_provider)
    return ExistingCluster("cluster", args).context
