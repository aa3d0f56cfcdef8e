"""Subnet arithmetic for the network component: pure functions, no Pulumi.

The VPC is cut into ``2**k`` equal blocks, the smallest power of two that leaves
one block spare after giving every availability zone a private block. Private
subnets get whole blocks (with the VPC CNI every pod takes a private-subnet IP,
so they need the room); the spare block is cut again into one small public
subnet per zone, which only holds load balancers and NAT gateways.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# AWS allows VPC and subnet prefixes from /16 to /28.
MIN_VPC_PREFIX = 16
MAX_SUBNET_PREFIX = 28


class CidrError(ValueError):
    """The requested layout does not fit; the message says why."""


@dataclass(frozen=True)
class SubnetPlan:
    """The CIDRs of one availability zone's subnet pair."""

    availability_zone: str
    private_cidr: str
    public_cidr: str


def _bits_for(count: int) -> int:
    """The smallest k with 2**k >= count."""
    return max(0, (count - 1).bit_length())


def plan_subnets(vpc_cidr: str, availability_zones: list[str] | tuple[str, ...]) -> list[SubnetPlan]:
    """Give each zone a private and a public subnet inside ``vpc_cidr``.

    The result is deterministic: the same inputs always give the same CIDRs,
    in zone order, so adding a zone at the end never moves an existing subnet
    as long as the block count does not grow.
    """
    try:
        vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    except ValueError as exc:
        raise CidrError(f"{vpc_cidr!r} is not a valid IPv4 network CIDR ({exc})") from None
    if not availability_zones:
        raise CidrError("at least one availability zone is needed")
    if vpc.prefixlen < MIN_VPC_PREFIX:
        raise CidrError(f"{vpc_cidr} is larger than AWS allows for a VPC (/{MIN_VPC_PREFIX} at most)")

    zones = len(availability_zones)
    private_prefix = vpc.prefixlen + _bits_for(zones + 1)
    blocks = list(vpc.subnets(new_prefix=private_prefix))
    public_block = blocks[-1]
    public_prefix = public_block.prefixlen + _bits_for(zones)
    if public_prefix > MAX_SUBNET_PREFIX:
        raise CidrError(
            f"{vpc_cidr} is too small for {zones} zones: public subnets would be "
            f"/{public_prefix}, smaller than the /{MAX_SUBNET_PREFIX} AWS allows"
        )
    publics = list(public_block.subnets(new_prefix=public_prefix))
    return [
        SubnetPlan(zone, str(blocks[i]), str(publics[i]))
        for i, zone in enumerate(availability_zones)
    ]


def overlaps(a: str, b: str) -> bool:
    """Whether two valid IPv4 CIDRs share any address."""
    return ipaddress.IPv4Network(a, strict=False).overlaps(ipaddress.IPv4Network(b, strict=False))
