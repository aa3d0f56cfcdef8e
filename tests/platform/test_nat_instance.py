"""datamesh:natGateways: instance — one NAT instance instead of NAT gateways, and Graviton nodes."""

import pytest

from components.platform.nat_instance import AMI_PARAMETER, INSTANCE_TYPE
from tests.conftest import render_variant, write_stack
from tools.engine.cost import estimate, load_prices
from tools.render import main as render_main

INSTANCE = "aws:ec2/instance:Instance"


@pytest.fixture(scope="module")
def dev_single_nat(tmp_path_factory):
    return render_variant(tmp_path_factory.mktemp("single-nat"), {"datamesh:natGateways": "single"})


@pytest.fixture(scope="module")
def nat(tmp_path_factory):
    return render_variant(tmp_path_factory.mktemp("nat"), {"datamesh:natGateways": "instance"})


def test_one_instance_and_no_nat_gateway(nat):
    [instance] = nat.of_type(INSTANCE)
    assert not nat.of_type("aws:ec2/natGateway:NatGateway") and not nat.of_type("aws:ec2/eip:Eip")
    inputs = instance.inputs
    assert inputs["instanceType"] == INSTANCE_TYPE and inputs["sourceDestCheck"] is False
    assert inputs["associatePublicIpAddress"] is True
    assert inputs["metadataOptions"]["httpTokens"] == "required"
    assert inputs["rootBlockDevice"]["encrypted"] is True
    assert "masquerade" in inputs["userData"] and "ip_forward" in inputs["userData"]
    assert instance.ignore_changes == ["ami"]
    # The image comes from AWS's public parameter, read when the instance is created.
    assert any(token == "aws:ssm/getParameter:getParameter" and args["name"] == AMI_PARAMETER for token, args in nat.invokes)
    # In the first zone's public subnet.
    public = [s for s in nat.of_type("aws:ec2/subnet:Subnet") if "kubernetes.io/role/elb" in s.inputs["tags"]]
    first = sorted(public, key=lambda s: s.inputs["availabilityZone"])[0]
    assert instance.parent == first.urn


def test_it_forwards_only_the_vpc(nat):
    vpc = nat.one("aws:ec2/vpc:Vpc", "network-vpc").inputs["cidrBlock"]
    [group] = [g for g in nat.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name.startswith("network-nat-")]
    assert [rule["cidrBlocks"] for rule in group.inputs["ingress"]] == [[vpc]]


def test_every_private_route_goes_through_it_and_the_nodes_wait_for_it(nat):
    [instance] = nat.of_type(INSTANCE)
    routes = [r for r in nat.of_type("aws:ec2/route:Route") if r.name.startswith("network-private-")]
    assert routes and all(instance.urn in r.dependencies for r in routes)
    assert all("natGatewayId" not in r.inputs for r in routes)
    node_group = nat.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")
    assert instance.urn in node_group.dependencies


def test_the_cost_prices_the_instance_not_a_gateway(nat, dev_single_nat):
    prices = load_prices()
    rows = {row["type"]: row for row in estimate([r.as_json() for r in nat.resources], prices)["resources"]}
    assert "aws:ec2/natGateway:NatGateway" not in rows and "aws:ec2/eip:Eip" not in rows
    row = rows[INSTANCE]
    hours = prices["hoursPerMonth"]
    expected = hours * prices["ec2OnDemandPerHour"][INSTANCE_TYPE]["value"] + hours * prices["publicIPv4PerHour"]["value"] \
        + nat.one(INSTANCE, row["name"]).inputs["rootBlockDevice"]["volumeSize"] * prices["ebsGp3PerGBMonth"]["value"]
    assert row["monthly"] == pytest.approx(expected, abs=0.02)
    gateway = sum(r["monthly"] for r in estimate([r.as_json() for r in dev_single_nat.resources], prices)["resources"]
                  if r["type"] in ("aws:ec2/natGateway:NatGateway", "aws:ec2/eip:Eip"))
    assert row["monthly"] < gateway / 4


def test_graviton_types_take_the_arm64_image(tmp_path):
    result = render_variant(tmp_path, {"datamesh:nodeInstanceTypes": ["t4g.large", "m6g.large"]})
    assert result.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").inputs["amiType"] == "AL2023_ARM_64_STANDARD"


def test_x86_types_keep_the_x86_image(tmp_path):
    result = render_variant(tmp_path, {"datamesh:nodeInstanceTypes": ["m6a.large", "m5.large"]})
    assert result.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").inputs["amiType"] == "AL2023_x86_64_STANDARD"


def test_mixing_architectures_is_refused(tmp_path, capsys):
    stack = write_stack(tmp_path, {"datamesh:nodeInstanceTypes": ["t4g.large", "m6a.large"]})
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: datamesh:nodeInstanceTypes: mixes Graviton"), err
