"""The order model itself (tools/engine/order.py), on small hand-made graphs.

Each graph is a few records shaped like the render's resources.json, so these
tests pin the engine rules the model claims: provider, parent, dependencies,
deletedWith and a component's earlier children are all edges, and deletion is
creation reversed.
"""

import pytest

from tools.engine.order import Graph, node


def rec(name, *, deps=(), parent=None, provider=None, custom=True, type_="test:index:Thing", deleted_with=None):
    return {"urn": f"urn:{name}", "type": type_, "name": name, "custom": custom, "parent": parent and f"urn:{parent}",
            "provider": provider and f"urn:{provider}::{provider}-id", "dependencies": [f"urn:{d}" for d in deps],
            "deletedWith": deleted_with and f"urn:{deleted_with}"}


def names(waves):
    return [sorted(u.removeprefix("urn:") for u in wave) for wave in waves]


def test_a_chain_is_created_bottom_up_and_deleted_top_down():
    g = Graph([rec("c"), rec("b", deps=["c"]), rec("a", deps=["b"])])
    assert names(g.creation_waves()) == [["c"], ["b"], ["a"]]
    assert names(g.deletion_waves()) == [["a"], ["b"], ["c"]]
    assert names(g.deletion_waves("eager")) == [["a"], ["b"], ["c"]]


def test_provider_parent_and_deleted_with_are_edges():
    g = Graph([rec("stack", custom=False), rec("prov", parent="stack"),
               rec("user", parent="stack", provider="prov"), rec("kid", parent="user"),
               rec("tied", parent="stack", deleted_with="kid")])
    assert g.must_precede("urn:user", "urn:prov")  # the provider outlives what it serves
    assert g.must_precede("urn:kid", "urn:user")  # a parent outlives its children
    assert g.must_precede("urn:tied", "urn:kid")
    assert names(g.deletion_waves("eager")) == [["tied"], ["kid"], ["user"], ["prov"], ["stack"]]


def test_a_component_dependency_stands_for_its_earlier_children_only():
    # As for a remote component: "r" names only the component "comp"; "early" was
    # registered before r, "late" after, and only "early" must outlive r.
    g = Graph([rec("comp", custom=False), rec("early", parent="comp"), rec("r", deps=["comp"]), rec("late", parent="comp")])
    assert g.must_precede("urn:r", "urn:early")
    assert not g.must_precede("urn:r", "urn:late")


def test_the_engine_layering_can_hide_a_missing_edge_that_eager_deletion_shows():
    # The defect in miniature: a route nothing depends on, and a Service
    # reached through the provider -> node group chain. The engine's layering
    # happens to delete the route after the Service; the eager schedule, which the
    # graph also allows, deletes it first. Only an edge makes the order certain.
    records = [rec("vpc"), rec("route", deps=["vpc"]), rec("nodes", deps=["vpc"]), rec("k8s", deps=["nodes"]),
               rec("svc", provider="k8s")]
    g = Graph(records)
    engine, eager = Graph.wave_of(g.deletion_waves()), Graph.wave_of(g.deletion_waves("eager"))
    assert engine["urn:svc"] < engine["urn:route"]
    assert eager["urn:route"] == 0 == eager["urn:svc"]
    assert not g.must_precede("urn:svc", "urn:route")

    records[2] = rec("nodes", deps=["vpc", "route"])
    fixed = Graph(records)
    assert fixed.must_precede("urn:svc", "urn:route")
    eager = Graph.wave_of(fixed.deletion_waves("eager"))
    assert eager["urn:svc"] < eager["urn:route"]


def test_input_order_does_not_matter():
    records = [rec("a", deps=["b"]), rec("b", deps=["c"]), rec("c")]
    assert names(Graph(records).deletion_waves()) == [["a"], ["b"], ["c"]]


def test_a_cycle_is_reported():
    with pytest.raises(ValueError, match="cycle"):
        Graph([rec("a", deps=["b"]), rec("b", deps=["a"])])


def test_records_without_a_custom_field_infer_components_by_type():
    record = rec("x", type_="datamesh:platform:Network")
    del record["custom"]
    assert node(record).custom is False
    assert node({"urn": "u", "type": "aws:ec2/vpc:Vpc", "name": "v"}).custom is True
    assert node({"urn": "u", "type": "t", "name": "n", "provider": "urn:pulumi:s::p::pulumi:providers:aws::aws::id"}).provider \
        == "urn:pulumi:s::p::pulumi:providers:aws::aws"
