"""The cost estimate: cost.json from the price table, per priced resource and in total."""

import json

import pytest

from tests.conftest import ROOT, render_variant
from tools.engine.cost import estimate, load_prices
from tools.engine.render import write_render

PRICES = load_prices()
HOURS = 730


def price(*path: str) -> float:
    entry = PRICES
    for key in path:
        entry = entry[key]
    return float(entry["value"])


@pytest.fixture(scope="module", params=["dev", "prod"])
def cost(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    from tools.render import main

    assert main(["--stack", request.param, "--out", str(out)]) == 0
    return request.param, json.loads((out / "cost.json").read_text())


def by_type(cost_json: dict, type_: str) -> list[dict]:
    return [r for r in cost_json["resources"] if r["type"] == type_]


def test_price_table_states_region_currency_date_and_a_source_for_every_figure():
    assert PRICES["region"] == "eu-west-1" and PRICES["currency"] == "USD" and PRICES["checked"]
    assert PRICES["hoursPerMonth"] == HOURS

    def leaves(node):
        if isinstance(node, dict) and "value" in node:
            yield node
        elif isinstance(node, dict):
            for v in node.values():
                yield from leaves(v)

    figures = list(leaves(PRICES))
    assert len(figures) > 20 and all(f.get("source") for f in figures)


def test_cost_json_totals_its_resources(cost):
    _, c = cost
    assert c["region"] == "eu-west-1" and c["currency"] == "USD" and c["warnings"] == []
    assert c["total"] == pytest.approx(sum(r["monthly"] for r in c["resources"]), abs=0.01)
    for r in c["resources"]:
        assert r["monthly"] == pytest.approx(sum(i["monthly"] for i in r["items"]), abs=0.01)


def test_control_plane_nat_and_load_balancer_at_list_price(cost):
    stack, c = cost
    (cluster,) = by_type(c, "eks:index:Cluster")
    assert cluster["items"][0]["monthly"] == pytest.approx(price("eks", "controlPlanePerHour") * HOURS)  # 73.00
    nats = by_type(c, "aws:ec2/natGateway:NatGateway")
    assert len(nats) == {"dev": 1, "prod": 3}[stack]
    nat = price("natGateway", "perHour") * HOURS + price("natGateway", "perGBProcessed") * price("natGateway", "assumedGBPerMonth")
    assert all(n["monthly"] == pytest.approx(nat, abs=0.01) for n in nats)
    assert len(by_type(c, "aws:ec2/eip:Eip")) == len(nats)
    (nlb,) = by_type(c, "kubernetes:core/v1:Service")
    zones = {"dev": 2, "prod": 3}[stack]
    expected = (price("networkLoadBalancer", "perHour") + price("networkLoadBalancer", "perNLCUHour")
                + zones * price("publicIPv4PerHour")) * HOURS
    assert nlb["monthly"] == pytest.approx(expected, abs=0.02)


def test_nodes_at_desired_size_by_capacity_type(cost):
    stack, c = cost
    (nodes,) = by_type(c, "aws:eks/nodeGroup:NodeGroup")
    if stack == "prod":  # 3 x m6i.xlarge on-demand, 100 GB each
        assert nodes["items"][0]["monthly"] == pytest.approx(3 * HOURS * price("ec2OnDemandPerHour", "m6i.xlarge"), abs=0.01)
        assert nodes["items"][1]["monthly"] == pytest.approx(3 * 100 * price("ebsGp3PerGBMonth"), abs=0.01)
        assert "monthlyRange" not in nodes and c["totalRange"] == [c["total"], c["total"]]
    else:  # spot: a range around the estimate
        low, high = nodes["monthlyRange"]
        assert "spot" in nodes["items"][0]["what"] and low < nodes["monthly"] < high


def test_spot_nodes_carry_the_discount_range():
    resources = [{"urn": "u", "type": "aws:eks/nodeGroup:NodeGroup", "name": "n", "parent": None, "dependencies": [],
                  "inputs": {"capacityType": "SPOT", "instanceTypes": ["m6a.large", "m5.large"],
                             "scalingConfig": {"desiredSize": 2}, "diskSize": 20}}]
    (row,) = estimate(resources)["resources"]
    dearest = price("ec2OnDemandPerHour", "m5.large")  # several types: priced at the dearest
    assert row["items"][0]["monthly"] == pytest.approx(2 * HOURS * dearest * (1 - price("spot", "discountEstimate")), abs=0.01)
    disk = 2 * 20 * price("ebsGp3PerGBMonth")
    assert row["monthlyRange"] == pytest.approx([2 * HOURS * dearest * (1 - price("spot", "discountHigh")) + disk,
                                                 2 * HOURS * dearest * (1 - price("spot", "discountLow")) + disk], abs=0.01)


def test_extended_support_costs_six_times_standard():
    cluster = {"urn": "u", "type": "eks:index:Cluster", "name": "c", "parent": None, "dependencies": [],
               "inputs": {"version": "1.33"}}  # standard support ended 2026-07-29
    (row,) = estimate([cluster], {**PRICES, "checked": "2026-11-26"})["resources"]
    assert "extended support" in row["items"][0]["what"]
    assert row["monthly"] == pytest.approx(price("eks", "extendedSupportPerHour") * HOURS)
    (row,) = estimate([cluster], {**PRICES, "checked": "2026-07-01"})["resources"]
    assert row["monthly"] == pytest.approx(price("eks", "controlPlanePerHour") * HOURS)


def test_an_unpriced_instance_type_is_named_not_guessed():
    resources = [{"urn": "u", "type": "aws:eks/nodeGroup:NodeGroup", "name": "n", "parent": None, "dependencies": [],
                  "inputs": {"capacityType": "ON_DEMAND", "instanceTypes": ["x9.huge"], "scalingConfig": {"desiredSize": 1}}}]
    c = estimate(resources)
    assert c["resources"] == [] and c["warnings"] == ["n: no price for instance type(s) x9.huge in prices.yaml"]


def test_every_instance_type_a_stack_uses_is_priced():
    import yaml

    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        types = yaml.safe_load(stack_file.read_text())["config"].get("datamesh:nodeInstanceTypes", ["m6i.large"])
        assert set(types) <= set(PRICES["ec2OnDemandPerHour"]), stack_file.name


def test_the_diff_prints_the_cost_delta(tmp_path):
    from tools.engine.review import diff_renders

    old, new = tmp_path / "old", tmp_path / "new"
    write_render(render_variant(tmp_path, {}), old)
    write_render(render_variant(tmp_path, {"datamesh:nodeDesiredSize": 3}), new)
    before, after = (json.loads((d / "cost.json").read_text())["total"] for d in (old, new))
    text = diff_renders(old, new)
    assert f"total (${before:,.2f} -> ${after:,.2f})" in text
    assert text.count("aws:eks/nodeGroup:NodeGroup cluster-nodes (") == 1  # one priced resource changed
    assert text.splitlines()[-1].endswith(f"cost +${after - before:,.2f}/month (${after:,.2f} list price)")


def test_the_documented_totals_are_the_renders(cost):
    stack, c = cost
    text = (ROOT / "docs" / "operating.md").read_text()
    assert f"| {stack} | ${c['total']:,.2f}" in text


def test_a_stack_in_another_region_is_told_the_prices_are_not_its_own():
    provider = {"urn": "p", "type": "pulumi:providers:aws", "name": "aws", "parent": None, "dependencies": [],
                "inputs": {"region": "us-east-1"}}
    assert estimate([provider])["warnings"] == [
        "the stack is in us-east-1; the price table is for eu-west-1: figures are indicative"]
