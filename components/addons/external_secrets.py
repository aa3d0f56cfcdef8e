"""External Secrets Operator: copies the products' declared Secrets Manager values into Kubernetes Secrets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.documents import Document, merge_values
from components.platform.context import ClusterContext
from components.platform.irsa import irsa_role

# Outside the mesh, like the other cluster add-ons: the API server calls its admission webhook
# directly (no sidecar, no mTLS), and the controller reaches Secrets Manager without the mesh's egress.
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "external-secrets"
STORE = "aws-secrets-manager"


def secret_arns(oidc_provider_arn: str, region: str, names: Iterable[str]) -> list[str]:
    """The ARNs of the named secrets in this account and region. Secrets Manager appends
    "-" and six random characters to a secret's name in its ARN, hence "-??????"."""
    partition, account = oidc_provider_arn.split(":")[1], oidc_provider_arn.split(":")[4]
    return [f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-??????" for name in sorted(set(names))]


def iam_policy_document(arns: list[str]) -> Document:
    """Read the declared secrets, nothing else (the operator's AWS provider calls GetSecretValue and DescribeSecret)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadDeclaredSecrets", "Effect": "Allow",
        "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], "Resource": arns}]}


def default_values(role_arn: pulumi.Input[str]) -> Document:
    """Chart values (external-secrets 2.9.0 values.yaml): the controller's service account carries the IRSA role."""
    return {
        "installCRDs": True,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT, "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
        "replicaCount": 2,
        "leaderElect": True,  # two replicas, one active
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}},
        "webhook": {"replicaCount": 2, "podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
    }


@dataclass(frozen=True)
class ExternalSecretsArgs:
    """Inputs of ``ExternalSecrets``.

    Attributes:
        secret_names: the Secrets Manager names the products declare; the operator may read these only.
        namespaces: the namespaces of the products that declare them; only ExternalSecrets there may
            use the store (a namespace without such a product cannot read any of them).
        cluster: the cluster (the store reads Secrets Manager in its region; its OIDC provider, IRSA).
        after: what must be running first (the managed CoreDNS and VPC CNI).
        values: Helm values merged over the defaults.
    """

    secret_names: tuple[str, ...]
    namespaces: tuple[str, ...]
    cluster: ClusterContext
    after: tuple[pulumi.Resource, ...] = ()
    values: Document = field(default_factory=dict)


class ExternalSecrets(pulumi.ComponentResource):
    """The External Secrets Operator. Creates:

    - ``<name>-policy``: an IAM policy reading only the declared secrets;
    - ``<name>-irsa``: an IAM role trusted only by the operator's service account;
    - ``<name>-policy`` (an attachment, child of the role);
    - ``external-secrets``: the pinned Helm release in ``kube-system`` (its CRDs included), after the attachment;
    - ``aws-secrets-manager``: the ClusterSecretStore the products' ExternalSecrets name, after the release.

    Providers come through ``opts`` (``ClusterContext.opts``).
    """

    release: k8s.helm.v3.Release
    store: k8s.apiextensions.CustomResource
    store_name: str = STORE

    def __init__(self, name: str, args: ExternalSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:addons:ExternalSecrets", name, None, opts)
        cluster = args.cluster
        irsa = irsa_role(
            name,
            description=f"External Secrets Operator of {cluster.name}: the declared secrets only",
            policy_document=cluster.oidc_provider_arn.apply(
                lambda arn: iam_policy_document(secret_arns(arn, cluster.region, args.secret_names))),
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            cluster=cluster,
            parent=self,
        )
        self.release = irsa.helm_release("external-secrets", chart=versions.EXTERNAL_SECRETS_CHART,
                                         values=merge_values(default_values(irsa.role.arn), args.values), after=args.after)
        # No auth block: the store uses the controller's own IRSA credentials.
        self.store = k8s.apiextensions.CustomResource(
            STORE,
            api_version="external-secrets.io/v1",
            kind="ClusterSecretStore",
            metadata={"name": STORE},
            spec={
                "provider": {"aws": {"service": "SecretsManager", "region": cluster.region}},
                "conditions": [{"namespaces": sorted(set(args.namespaces))}],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
        )
        self.register_outputs({"release": self.release.name, "roleArn": irsa.role.arn, "store": STORE})
