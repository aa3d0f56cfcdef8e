"""The cost estimate: cost.json from the price table, per priced resource and in total."""

import json

import pytest

from tests.conftest import ROOT, render_variant, stack_file
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
    config = stack_file(stack)["config"]
    (cluster,) = by_type(c, "eks:index:Cluster")
    assert cluster["items"][0]["monthly"] == pytest.approx(price("eks", "controlPlanePerHour") * HOURS)  # 73.00
    nats = by_type(c, "aws:ec2/natGateway:NatGateway")
    mode, zones = config.get("datamesh:natGateways", "single"), len(config["datamesh:availabilityZones"])
    assert len(nats) == {"single": 1, "perAz": zones, "instance": 0}[mode]
    assert len(by_type(c, "aws:ec2/instance:Instance")) == (mode == "instance")
    nat = price("natGateway", "perHour") * HOURS + price("natGateway", "perGBProcessed") * price("natGateway", "assumedGBPerMonth")
    assert all(n["monthly"] == pytest.approx(nat, abs=0.01) for n in nats)
    assert len(by_type(c, "aws:ec2/eip:Eip")) == len(nats)
    (nlb,) = by_type(c, "kubernetes:core/v1:Service")
    expected = (price("networkLoadBalancer", "perHour") + price("networkLoadBalancer", "perNLCUHour")
                + zones * price("publicIPv4PerHour")) * HOURS
    assert nlb["monthly"] == pytest.approx(expected, abs=0.02)


def test_nodes_at_what_the_requests_need_within_the_bounds(cost):
    stack, c = cost
    config = stack_file(stack)["config"]
    (nodes,) = by_type(c, "aws:eks/nodeGroup:NodeGroup")
    low, high = config["datamesh:nodeMinSize"], config["datamesh:nodeMaxSize"]
    count = min(max(c["capacity"]["nodesNeeded"], low), high)
    assert c["capacity"]["nodes"] == count and f"{count} x " in nodes["items"][0]["what"]
    [itype] = {max(config["datamesh:nodeInstanceTypes"], key=lambda t: price("ec2OnDemandPerHour", t))}
    hourly = price("ec2OnDemandPerHour", itype)
    disk = count * config["datamesh:nodeDiskSize"] * price("ebsGp3PerGBMonth")
    assert nodes["items"][1]["monthly"] == pytest.approx(disk, abs=0.01)
    if config["datamesh:nodeCapacityType"] == "ON_DEMAND":
        assert nodes["items"][0]["monthly"] == pytest.approx(count * HOURS * hourly, abs=0.01)
        assert "monthlyRange" not in nodes and c["totalRange"] == [c["total"], c["total"]]
    else:  # spot: a range around the estimate
        assert nodes["items"][0]["monthly"] == pytest.approx(count * HOURS * hourly * (1 - price("spot", "discountEstimate")),
                                                             abs=0.01)
        range_low, range_high = nodes["monthlyRange"]
        assert "spot" in nodes["items"][0]["what"] and range_low < nodes["monthly"] < range_high


def test_spot_nodes_carry_the_discount_range():
    resources = [{"urn": "u", "type": "aws:eks/nodeGroup:NodeGroup", "name": "n", "parent": None, "dependencies": [],
                  "inputs": {"capacityType": "SPOT", "instanceTypes": ["m6a.large", "m5.large"],
                             "scalingConfig": {"minSize": 2, "desiredSize": 2, "maxSize": 2}, "diskSize": 20}}]
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

    for path in ROOT.glob("Pulumi.*.yaml"):
        types = yaml.safe_load(path.read_text())["config"].get("datamesh:nodeInstanceTypes", ["m6i.large"])
        assert set(types) <= set(PRICES["ec2OnDemandPerHour"]), path.name


def test_the_diff_prints_the_cost_delta(tmp_path):
    from tools.engine.review import diff_renders

    old, new = tmp_path / "old", tmp_path / "new"
    low = stack_file("dev")["config"]["datamesh:nodeMinSize"]
    high = stack_file("dev")["config"]["datamesh:nodeMaxSize"]
    write_render(render_variant(tmp_path, {}), old)
    # A floor above what the requests need: more nodes, and the cost follows.
    write_render(render_variant(tmp_path, {"datamesh:nodeMinSize": high, "datamesh:nodeDesiredSize": high}), new)
    before, after = (json.loads((d / "cost.json").read_text())["total"] for d in (old, new))
    assert after > before and low < high
    text = diff_renders(old, new)
    assert f"total (${before:,.2f} -> ${after:,.2f})" in text
    assert text.count("aws:eks/nodeGroup:NodeGroup cluster-nodes (") == 1  # one priced resource changed
    assert text.splitlines()[-1].endswith(f"cost +${after - before:,.2f}/month (${after:,.2f} list price)")


def test_a_desired_size_change_says_it_will_not_apply_and_costs_nothing(tmp_path):
    from tools.engine.review import diff_renders

    old, new = tmp_path / "old", tmp_path / "new"
    config = stack_file("dev")["config"]
    other = config["datamesh:nodeMaxSize"] if config["datamesh:nodeDesiredSize"] != config["datamesh:nodeMaxSize"] \
        else config["datamesh:nodeMinSize"]
    write_render(render_variant(tmp_path, {}), old)
    write_render(render_variant(tmp_path, {"datamesh:nodeDesiredSize": other}), new)
    text = diff_renders(old, new)
    assert "scalingConfig.desiredSize (ignoreChanges: applies to a new stack only, not to this one)" in text
    assert "cost +$0.00/month" in text.splitlines()[-1]


def test_the_documented_totals_are_the_renders(cost):
    stack, c = cost
    text = (ROOT / "docs" / "operating.md").read_text()
    assert f"| {stack} | ${c['total']:,.2f}" in text


def test_a_stack_in_another_region_is_told_the_prices_are_not_its_own():
    provider = {"urn": "p", "type": "pulumi:providers:aws", "name": "aws", "parent": None, "dependencies": [],
                "inputs": {"region": "us-east-1"}}
    assert estimate([provider])["warnings"] == [
        "the stack is in us-east-1; the price table is for eu-west-1: figures are indicative"]
