"""IAM roles for Kubernetes service accounts (IRSA): the trust policy as a pure function, and the role itself."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.documents import Document, DocumentView
from components.platform.context import ClusterContext
from components.platform.helm import pinned_release
from components.versions import Chart


def service_account_subject(namespace: str, service_account: str) -> str:
    """The ``sub`` claim EKS puts in the token of one service account."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> Document:
    """A trust policy that lets exactly one service account assume the role.

    ``oidc_issuer`` is the issuer without ``https://`` (pulumi-eks ``oidcIssuer``).
    Both ``aud`` and ``sub`` are pinned with StringEquals: no wildcards, so no
    other service account of the cluster can assume the role.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": oidc_provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{oidc_issuer}:aud": "sts.amazonaws.com",
                        f"{oidc_issuer}:sub": service_account_subject(namespace, service_account),
                    }
                },
            }
        ],
    }


@dataclass(frozen=True)
class IrsaRole:
    """A policy, the role one service account may assume, and the attachment between them."""

    policy: aws.iam.Policy
    role: aws.iam.Role
    attachment: aws.iam.RolePolicyAttachment
    parent: pulumi.Resource
    namespace: str

    def helm_release(
        self,
        name: str,
        *,
        chart: Chart,
        values: DocumentView,
        after: Sequence[pulumi.Resource] = (),
        skip_crds: bool = False,
    ) -> k8s.helm.v3.Release:
        """The pinned release whose service account carries this role, in the role's namespace.
        It waits for the attachment: the workload must not start before it can act."""
        return pinned_release(
            name, chart=chart, namespace=self.namespace, values=values, skip_crds=skip_crds,
            opts=pulumi.ResourceOptions(parent=self.parent, depends_on=[self.attachment, *after]),
        )


def service_account_role(
    name: str,
    *,
    description: str,
    namespace: str,
    service_account: str,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """The IAM role exactly ``namespace/service_account`` may assume, with no permissions yet."""
    return aws.iam.Role(
        name,
        description=description,
        assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
            lambda v: json.dumps(trust_policy(v[0], v[1], namespace, service_account))
        ),
        tags=tags,
        opts=opts,
    )


def irsa_role(
    name: str,
    *,
    description: str,
    policy_document: pulumi.Input[Document],
    namespace: str,
    service_account: str,
    cluster: ClusterContext,
    parent: pulumi.Resource,
) -> IrsaRole:
    """Creates ``<name>-policy`` (the permissions), ``<name>-irsa`` (trusting exactly
    ``namespace/service_account``) and the attachment, parented to the role, that
    dependants wait for: a workload using the role must not start before it can act
    (``IrsaRole.helm_release`` adds the release that uses it).
    """
    tags = cluster.tags
    policy = aws.iam.Policy(
        f"{name}-policy",
        description=description,
        policy=pulumi.Output.from_input(policy_document).apply(json.dumps),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    role = service_account_role(
        f"{name}-irsa",
        description=f"IRSA role of {namespace}/{service_account} in {cluster.name}",
        namespace=namespace,
        service_account=service_account,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    attachment = aws.iam.RolePolicyAttachment(
        f"{name}-policy", role=role.name, policy_arn=policy.arn, opts=pulumi.ResourceOptions(parent=role),
    )
    return IrsaRole(policy, role, attachment, parent, namespace)
