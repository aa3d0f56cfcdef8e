"""IAM roles for Kubernetes service accounts (IRSA): the trust policy as a pure function."""

from __future__ import annotations

from typing import Any


def service_account_subject(namespace: str, service_account: str) -> str:
    """The ``sub`` claim EKS puts in the token of one service account."""
    return f"system:serviceaccount:{namespace}:{service_account}"


def trust_policy(oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str) -> dict[str, Any]:
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
