"""Network component, as registered under mocks."""

import ipaddress
import json

import pytest

from tests.conftest import render_variant, stack_file

SUBNET = "aws:ec2/subnet:Subnet"


@pytest.fixture(scope="module")
def dev_single_nat(tmp_path_factory):
    return render_variant(tmp_path_factory.mktemp("single-nat"), {"datamesh:natGateways": "single"})


def subnets(result, role):
    return [r for r in result.of_type(SUBNET) if f"kubernetes.io/role/{role}" in r.inputs["tags"]]


def test_one_public_and_one_private_subnet_per_zone(dev, prod):
    for result, zones in ((dev, {"eu-west-1a", "eu-west-1b"}), (prod, {"eu-west-1a", "eu-west-1b", "eu-west-1c"})):
        public, private = subnets(result, "elb"), subnets(result, "internal-elb")
        assert {s.inputs["availabilityZone"] for s in public} == zones
        assert {s.inputs["availabilityZone"] for s in private} == zones
        assert len(result.of_type(SUBNET)) == 2 * len(zones)


def test_subnet_role_tags_are_exclusive_and_name_the_cluster(dev):
    for s in subnets(dev, "elb"):
        assert s.inputs["tags"]["kubernetes.io/role/elb"] == "1"
        assert "kubernetes.io/role/internal-elb" not in s.inputs["tags"]
        assert s.inputs["tags"]["kubernetes.io/cluster/datamesh-dev"] == "shared"
        assert s.inputs.get("mapPublicIpOnLaunch") is False
    for s in subnets(dev, "internal-elb"):
        assert s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1"
        assert "kubernetes.io/role/elb" not in s.inputs["tags"]


def test_subnets_fit_the_vpc_without_overlap(prod):
    vpc = ipaddress.ip_network(prod.one("aws:ec2/vpc:Vpc", "network-vpc").inputs["cidrBlock"])
    cidrs = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in prod.of_type(SUBNET)]
    assert str(vpc) == "10.20.0.0/16"
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert len({c for c in cidrs}) == len(cidrs)
    assert not any(a.overlaps(b) for i, a in enumerate(cidrs) for b in cidrs[i + 1:])


def test_nat_gateways_follow_the_stack(dev, prod, dev_single_nat):
    assert len(dev_single_nat.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == {"single": 1, "instance": 0}[
        stack_file("dev")["config"]["datamesh:natGateways"]]
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3
    public_ids = {f"{s.name}-PLACEHOLDER-id" for s in subnets(prod, "elb")}
    assert {n.inputs["subnetId"] for n in prod.of_type("aws:ec2/natGateway:NatGateway")} == public_ids


def test_private_routes_go_through_nat_and_public_through_the_internet_gateway(prod):
    routes = prod.of_type("aws:ec2/route:Route")
    public = [r for r in routes if "gatewayId" in r.inputs]
    private = [r for r in routes if "natGatewayId" in r.inputs]
    assert len(public) == 1 and public[0].inputs["destinationCidrBlock"] == "0.0.0.0/0"
    # perAz: each zone's private route uses its own zone's NAT gateway.
    assert len(private) == 3
    assert len({r.inputs["natGatewayId"] for r in private}) == 3
    assoc = prod.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert len(assoc) == 6


def test_single_nat_is_shared_by_every_private_route(dev_single_nat):
    private = [r for r in dev_single_nat.of_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    assert len(private) == 2 and len({r.inputs["natGatewayId"] for r in private}) == 1


def test_vpc_has_dns_for_eks(dev):
    vpc = dev.one("aws:ec2/vpc:Vpc", "network-vpc").inputs
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True


def test_every_aws_resource_uses_the_tagging_provider(dev):
    provider = dev.one("pulumi:providers:aws", "aws")
    assert provider.inputs["region"] == "eu-west-1"
    # Provider inputs travel JSON-encoded, as the engine receives them.
    default_tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert default_tags == {"environment": "dev", "datamesh:stack": "dev", "datamesh:cluster": "datamesh-dev"}
    for r in dev.resources:
        if r.type.startswith("aws:"):
            assert r.provider and r.provider.startswith(provider.urn + "::"), r.urn
