"""A product's AWS access as declared: parsed into ``AwsAccess``, and its wildcards found.

A wildcard (an action like ``s3:*``, an ARN naming every resource of a kind, a managed
policy as broad as ``*``) needs the stack's consent (``datamesh:allowWildcardIam``).
"""

from __future__ import annotations

import re

from components.documents import DocumentView
from components.products.model import AwsAccess, Product
from components.products.problems import Problem

# Managed policies that grant everything, or the power to grant it: as broad as "*".
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")


def aws_access(doc: DocumentView) -> AwsAccess | None:
    """The declaration's ``aws`` field (already valid against the schema), or None."""
    if "aws" not in doc:
        return None
    value = doc["aws"]
    return AwsAccess(tuple(value.get("managedPolicyArns", [])),
                     tuple((tuple(s["actions"]), tuple(s["resources"])) for s in value.get("statements", [])))


def _broad_resource(resource: str) -> bool:
    """Whether an ARN names every resource of a kind rather than the ones a product uses.

    A ``*`` in the partition, service, region or account, or in the first part of the
    resource (an S3 bucket name; elsewhere the resource type or the name after it:
    ``table/*``), is broad; one after a concrete name (``bucket/*``: the objects of one
    bucket, ``table/orders/index/*``) is not.
    """
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or any("*" in part or "?" in part for part in parts[1:5]):
        return True
    segments = re.split(r"[/:]", parts[5])
    named = segments[:1] if parts[2] == "s3" else segments[:2]
    return any("*" in s or "?" in s for s in named)


def wildcard_problem(product: Product) -> Problem | None:
    """(field, problem) for the first wildcard in a product's AWS access; None when it names what it uses."""
    if product.aws is None:
        return None
    for i, arn in enumerate(product.aws.managed_policy_arns):
        name = arn.rsplit("/", 1)[-1]
        # AWS's own *FullAccess policies grant <service>:* on every resource.
        if name in BROAD_MANAGED_POLICIES or (":iam::aws:policy/" in arn and name.endswith("FullAccess")):
            return Problem(f"aws.managedPolicyArns[{i}]", f"{arn} grants every action of a service on every resource")
    for i, (actions, resources) in enumerate(product.aws.statements):
        for action in actions:
            if "*" in action or "?" in action:
                return Problem(f"aws.statements[{i}].actions", f"{action!r} is a wildcard action; name the actions")
        for resource in resources:
            if _broad_resource(resource):
                return Problem(f"aws.statements[{i}].resources", f"{resource!r} names every resource of a kind; name the ARNs")
    return None
