"""What a destroyed stack may have left on AWS: everything tagged with the stack, and every
load balancer, target group and security group the load balancer controller tagged with
the cluster, except KMS keys already scheduled for deletion (AWS keeps a key at least 7
days after ``ScheduleKeyDeletion``; that is the deletion, not a leak)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

STACK_TAG = "datamesh:stack"  # every resource the program creates carries it (the provider's default tags)
# The controller tags each load balancer, target group and security group it makes with the cluster's
# name (and with its defaultTags, which are the stack's tags: components/platform/load_balancer_controller.py).
CONTROLLER_CLUSTER_TAG = "elbv2.k8s.aws/cluster"


def is_kms_key(arn: str) -> bool:
    return arn.split(":")[2:3] == ["kms"] and ":key/" in arn


def leftovers(arns: Iterable[str], key_state: Callable[[str], str]) -> list[str]:
    """The ARNs that still count: all but the KMS keys whose state is ``PendingDeletion``."""
    return sorted({arn for arn in arns if not (is_kms_key(arn) and key_state(arn) == "PendingDeletion")})


def tagged(client: object, key: str, value: str) -> list[str]:
    """Every ARN the Resource Groups Tagging API lists with the tag ``key=value``."""
    arns: list[str] = []
    for page in client.get_paginator("get_resources").paginate(TagFilters=[{"Key": key, "Values": [value]}]):  # type: ignore[attr-defined]
        arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    return arns
