"""Lifecycle in options: one type-token scheme with aliases (no replacement for a stack deployed
under the old tokens), protect from config, and the options recorded in resources.json."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT, render_variant
from tools.engine.aliases import make_urn, plan
from tools.engine.mockrun import RunResult

LAYERS = ("platform", "addons", "products", "governance")
GATEWAY_SERVICE = "kubernetes:core/v1:Service"


def old_urns(stack: str) -> list[str]:
    text = (ROOT / "tests" / "data" / "urns" / f"{stack}.txt").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def records(result: RunResult) -> list[dict]:
    return [r.as_json() for r in result.resources]


# The configuration the URN sets were recorded under, where a stack file has changed since in a way that
# changes what exists (dev's NAT gateway became a NAT instance): that is a change of configuration, not a rename.
RECORDED_UNDER = {"dev": {"datamesh:natGateways": "single"}, "prod": {}}


@pytest.fixture(scope="module")
def as_recorded(request, tmp_path_factory):
    def render(stack: str) -> RunResult:
        if not RECORDED_UNDER[stack]:
            return request.getfixturevalue(stack)
        return render_variant(tmp_path_factory.mktemp(f"{stack}-recorded"), RECORDED_UNDER[stack], base=stack)
    return {stack: render(stack) for stack in RECORDED_UNDER}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_stack_deployed_under_the_old_type_tokens_replaces_nothing(stack, as_recorded):
    result = as_recorded[stack]
    found = plan(old_urns(stack), records(result))
    # Nothing of the old stack goes away, so nothing is replaced. What was added since the URNs were recorded
    # (issue 17's EnvoyFilters, a team's new product) is created: additions, none of them a renamed resource.
    assert found.deleted == [] and found.ambiguous == []
    assert len(found.kept) == len(old_urns(stack))
    assert len(found.kept) + len(found.created) == len(result.resources)


def test_without_the_aliases_the_renamed_components_and_their_children_would_be_replaced(as_recorded):
    dev = as_recorded["dev"]
    stripped = [{**r, "aliases": [a for a in r["aliases"] if not str(a.get("type", "")).startswith("datamesh:")]}
                for r in records(dev)]
    found = plan(old_urns("dev"), stripped)
    added = set(plan(old_urns("dev"), records(dev)).created)  # new since the URNs were recorded, aliases or not
    assert "urn:pulumi:dev::datamesh::datamesh:network:Network::network" in found.deleted
    assert "urn:pulumi:dev::datamesh::datamesh:network:Network$aws:ec2/vpc:Vpc::network-vpc" in found.deleted
    assert len(set(found.created) - added) == len(found.deleted) > 9


def test_engine_urns_carry_the_whole_parent_chain():
    stack = make_urn("dev", "datamesh", None, "pulumi:pulumi:Stack", "datamesh-dev")
    component = make_urn("dev", "datamesh", stack, "datamesh:platform:Network", "network")
    assert component == "urn:pulumi:dev::datamesh::datamesh:platform:Network::network"
    vpc = make_urn("dev", "datamesh", component, "aws:ec2/vpc:Vpc", "network-vpc")
    subnet = make_urn("dev", "datamesh", vpc, "aws:ec2/subnet:Subnet", "s")
    assert subnet == "urn:pulumi:dev::datamesh::datamesh:platform:Network$aws:ec2/vpc:Vpc$aws:ec2/subnet:Subnet::s"


def test_every_component_type_token_is_datamesh_layer_component(dev, prod):
    tokens = {r.type for result in (dev, prod) for r in result.resources if r.type.startswith("datamesh:")}
    assert tokens
    for token in tokens:
        assert re.fullmatch(rf"datamesh:({'|'.join(LAYERS)}):[A-Z][A-Za-z]+", token), token


def test_prod_protects_its_kms_key_cluster_and_vpc_and_nothing_else(prod, dev):
    protected = sorted((r.type, r.name) for r in prod.resources if r.protect)
    assert protected == [("aws:ec2/vpc:Vpc", "network-vpc"), ("aws:kms/key:Key", "cluster-secrets"),
                         ("eks:index:Cluster", "cluster-eks")]
    assert not [r.name for r in dev.resources if r.protect]


def test_fixed_names_delete_before_replacing_and_the_nlb_type_replaces_the_service(dev):
    assert dev.one("eks:index:Cluster", "cluster-eks").delete_before_replace
    assert dev.one("aws:kms/alias:Alias", "cluster-secrets").delete_before_replace
    service = dev.one(GATEWAY_SERVICE, "istio-ingressgateway")
    assert service.delete_before_replace
    assert 'metadata.annotations["service.beta.kubernetes.io/aws-load-balancer-type"]' in service.replace_on_changes


def test_resources_json_records_the_lifecycle_options(dev):
    for record in records(dev):
        assert {"protect", "replaceOnChanges", "deleteBeforeReplace", "retainOnDelete", "aliases"} <= set(record)
    network = next(r for r in records(dev) if r["type"] == "datamesh:platform:Network")
    assert network["aliases"] == [{"type": "datamesh:network:Network"}]
