"""A data product's AWS access and secrets: its IAM role (IRSA) and its ExternalSecret.

Pure builders plus ``product_role``/``product_secrets``, which ``DataProduct``
calls to create these as its children. The role is trusted only by the
product's service account; the secret values never pass through Pulumi: the
External Secrets Operator copies them from Secrets Manager into a Kubernetes
Secret the pods read through ``secretKeyRef``.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components.config import ClusterSettings, ConfigError
from components.documents import Document
from components.platform.irsa import service_account_role
from components.products.declarations import Product

# Where EKS's pod identity webhook (aws/amazon-eks-pod-identity-webhook, pkg/handler/handler.go)
# mounts the web identity token. Declared here as the webhook would add it: it skips a volume and
# a mount of this name that already exist, and still sets AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE.
TOKEN_VOLUME = "aws-iam-token"
TOKEN_MOUNT = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
TOKEN_AUDIENCE = "sts.amazonaws.com"
TOKEN_SECONDS = 86400  # the webhook's default expiration
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def inline_policy(product: Product) -> Document | None:
    """The product's declared statements as an IAM policy document; None when it declares none."""
    if product.aws is None or not product.aws.statements:
        return None
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": f"Declared{i}", "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}
            for i, (actions, resources) in enumerate(product.aws.statements)
        ],
    }


def token_volume() -> Document:
    """The projected service-account token STS accepts (audience sts.amazonaws.com), and only that token."""
    return {"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
        "audience": TOKEN_AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}}]}}


def token_mount() -> Document:
    return {"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT, "readOnly": True}


def secret_name(product: Product) -> str:
    """The Kubernetes Secret the operator writes the product's values into."""
    return f"{product.name}-secrets"


def secret_env(product: Product) -> list[Document]:
    """Container env entries reading each declared secret from that Secret."""
    return [{"name": s.env, "valueFrom": {"secretKeyRef": {"name": secret_name(product), "key": s.env}}}
            for s in product.secrets]


def external_secret_spec(product: Product, store: str) -> Document:
    """An ExternalSecret (external-secrets.io/v1): one Secret key per declared env, from Secrets Manager."""
    data = []
    for s in product.secrets:
        ref: Document = {"key": s.name}
        if s.key:
            ref["property"] = s.key  # a key of a JSON secret; without it the whole secret string
        data.append({"secretKey": s.env, "remoteRef": ref})
    return {
        "refreshInterval": "1h",
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": store},
        "target": {"name": secret_name(product), "creationPolicy": "Owner"},
        "data": data,
    }


def product_role(product: Product, oidc_provider_arn: pulumi.Input[str], oidc_issuer: pulumi.Input[str],
                 tags: dict[str, str], opts: pulumi.ResourceOptions) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """The product's IAM role, trusted only by its service account, and what grants it its permissions."""
    role = service_account_role(
        f"{product.name}-irsa",
        description=f"IRSA role of data product {product.namespace}/{product.name}",
        namespace=product.namespace,
        service_account=product.name,
        oidc_provider_arn=oidc_provider_arn,
        oidc_issuer=oidc_issuer,
        tags=tags,
        opts=opts,
    )
    grants: list[pulumi.Resource] = []
    child = pulumi.ResourceOptions(parent=role)
    policy = inline_policy(product)
    if policy is not None:
        grants.append(aws.iam.RolePolicy(f"{product.name}-declared", role=role.name, policy=json.dumps(policy),
                                         opts=child))
    assert product.aws is not None
    for i, arn in enumerate(product.aws.managed_policy_arns):
        grants.append(aws.iam.RolePolicyAttachment(f"{product.name}-managed-{i}", role=role.name, policy_arn=arn,
                                                   opts=child))
    return role, grants


def refuse_without_oidc(products: list[Product] | tuple[Product, ...], cluster: ClusterSettings) -> None:
    """On an existing cluster without ``datamesh:oidcProviderArn``, a product with AWS access (an IAM role for
    ``aws:``, or Secrets Manager values through the External Secrets Operator's role) is refused, naming it."""
    if not cluster.existing or cluster.oidc_provider_arn:
        return
    for p in products:
        what = "aws:" if p.aws is not None else "secrets:" if p.secrets else None
        if what:
            raise ConfigError(f"datamesh:oidcProviderArn: is required on an existing cluster (datamesh:cluster existing) "
                              f"for product {p.name}'s AWS access ({what} in {p.source.name}): set the cluster's IAM OIDC "
                              "provider ARN, or leave the product out of datamesh:products")
