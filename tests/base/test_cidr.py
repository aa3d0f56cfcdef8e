import ipaddress
import itertools

import pytest

from components.cidr import CidrError, overlaps, plan_subnets


def nets(plans):
    for p in plans:
        yield ipaddress.ip_network(p.private_cidr)
        yield ipaddress.ip_network(p.public_cidr)


@pytest.mark.parametrize(
    ("vpc", "zones"),
    [(vpc, z) for vpc in ("10.0.0.0/16", "10.20.0.0/20") for z in (2, 3, 4, 6)]
    + [("192.168.0.0/24", 2), ("192.168.0.0/24", 3)],
)
def test_subnets_are_inside_the_vpc_and_disjoint(vpc, zones):
    azs = [f"eu-west-1{c}" for c in "abcdef"[:zones]]
    plans = plan_subnets(vpc, azs)
    assert [p.availability_zone for p in plans] == azs
    all_nets = list(nets(plans))
    assert all(n.subnet_of(ipaddress.ip_network(vpc)) for n in all_nets)
    for a, b in itertools.combinations(all_nets, 2):
        assert not a.overlaps(b), (a, b)


def test_private_subnets_are_larger_than_public_ones():
    plans = plan_subnets("10.0.0.0/16", ["a", "b", "c"])
    # 3 zones + 1 spare block -> 4 blocks of /18; the spare /18 split in 4 /20s.
    assert [p.private_cidr for p in plans] == ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"]
    assert [p.public_cidr for p in plans] == ["10.0.192.0/20", "10.0.208.0/20", "10.0.224.0/20"]


def test_two_zones_leave_room_and_stay_stable():
    two = plan_subnets("10.0.0.0/16", ["a", "b"])
    assert [p.private_cidr for p in two] == ["10.0.0.0/18", "10.0.64.0/18"]
    assert [p.public_cidr for p in two] == ["10.0.192.0/19", "10.0.224.0/19"]
    # A third zone fits in the same four blocks: existing private subnets do not move.
    three = plan_subnets("10.0.0.0/16", ["a", "b", "c"])
    assert [p.private_cidr for p in three[:2]] == [p.private_cidr for p in two]


@pytest.mark.parametrize(
    ("vpc", "zones", "message"),
    [
        ("10.0.0.0/33", 2, "not a valid IPv4 network CIDR"),
        ("10.0.0.1/16", 2, "not a valid IPv4 network CIDR"),  # host bits set
        ("banana", 2, "not a valid IPv4 network CIDR"),
        ("10.0.0.0/8", 2, "larger than AWS allows"),
        ("10.0.0.0/26", 6, "too small for 6 zones"),
        ("10.0.0.0/16", 0, "at least one availability zone"),
    ],
)
def test_layouts_that_cannot_work_are_refused(vpc, zones, message):
    with pytest.raises(CidrError, match=message):
        plan_subnets(vpc, [f"z{i}" for i in range(zones)])


def test_overlaps():
    assert overlaps("10.0.0.0/16", "10.0.128.0/17")
    assert not overlaps("10.0.0.0/16", "172.20.0.0/16")
