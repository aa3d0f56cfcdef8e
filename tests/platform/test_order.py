"""Creation and deletion order: the engine's rules (tools/engine/order.py), then the program's graph under them.

The engine creates a resource after everything it depends on (and its
provider) and deletes it before them. So "A waits for B" proves both that B
exists before A on `pulumi up` and that A is gone before B on `pulumi destroy`.

First the order model itself, on small hand-made graphs: each graph is a few
records shaped like the render's resources.json, so these tests pin the engine
rules the model claims (provider, parent, dependencies, deletedWith and a
component's earlier children are all edges, and deletion is creation reversed).
Then the stacks' own graphs: directly (``waits_for``, dependencies and providers)
and under the model's rounds.
"""

import json

import pytest

from tests.conftest import closure, declared, not_waiting_for, selected, waits_for
from tools.engine.order import Graph, node
from tools.engine.render import write_render

RELEASE = "kubernetes:helm.sh/v3:Release"


# --- The order model itself, on hand-made graphs ----------------------------------


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


# --- The stacks' graphs ----------------------------------------------------------


def test_nlb_service_is_created_after_and_deleted_before_the_controller(dev):
    service = dev.one("kubernetes:core/v1:Service", "istio-ingressgateway")
    controller = dev.one(RELEASE, "aws-load-balancer-controller")
    assert controller.urn in service.dependencies  # direct, not by luck of a longer path
    assert not waits_for(dev, controller, service), "a cycle would make the order meaningless"


def test_controller_outlives_every_loadbalancer_service(dev, prod):
    for result in (dev, prod):
        controller = result.one(RELEASE, "aws-load-balancer-controller")
        lb_services = [r for r in result.of_type("kubernetes:core/v1:Service") if r.inputs["spec"].get("type") == "LoadBalancer"]
        assert lb_services
        for svc in lb_services:
            assert waits_for(result, svc, controller), svc.name


def test_controller_permissions_outlive_the_controller(dev):
    controller = dev.one(RELEASE, "aws-load-balancer-controller")
    for needed in (dev.one("aws:iam/role:Role", "aws-load-balancer-controller-irsa"),
                   dev.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws-load-balancer-controller-policy"),
                   dev.one("aws:iam/policy:Policy", "aws-load-balancer-controller-policy")):
        assert waits_for(dev, controller, needed), needed.name


def test_nlb_is_gone_before_nodes_and_subnets(dev):
    service = dev.one("kubernetes:core/v1:Service", "istio-ingressgateway")
    after = closure(dev, service.urn)
    assert dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").urn in after
    for subnet in dev.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.urn in after


def test_istiod_before_every_injected_namespace_and_the_gateway(dev):
    istiod = dev.one(RELEASE, "istiod")
    injected = [r for r in dev.of_type("kubernetes:core/v1:Namespace")
                if {"istio-injection", "istio.io/rev"} & set(r.inputs["metadata"].get("labels", {}))]
    assert sorted(r.name for r in injected) == sorted({declared(name)["domain"] for name in selected("dev")})
    for ns in injected:
        assert waits_for(dev, ns, istiod)
    assert waits_for(dev, dev.one(RELEASE, "istio-ingressgateway"), istiod)
    assert waits_for(dev, istiod, dev.one(RELEASE, "istio-base"))


def test_every_kubernetes_resource_waits_for_the_node_group(dev):
    assert not_waiting_for(dev, "kubernetes:", dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")) == []


def test_closure_follows_dependencies_and_providers(dev):
    # The helper itself: a resource with no dependencies reaches only its provider.
    vpc = dev.one("aws:ec2/vpc:Vpc", "network-vpc")
    assert closure(dev, vpc.urn) == {dev.one("pulumi:providers:aws", "aws").urn}


def test_the_closure_helper_claims_no_order_the_engine_model_does_not(dev, tmp_path_factory):
    # waits_for (dependencies and providers) is what most tests ask; the model adds parents and
    # component children, so every order the helper finds must hold in the model too.
    graph = graph_from_render(dev, tmp_path_factory)
    for r in dev.resources:
        assert closure(dev, r.urn) <= graph.closure(r.urn), r.name


# --- The network path, on the engine's rules (tools/engine/order.py) --------------

# What the nodes and the load balancer controller need to reach AWS and the internet.
NETWORK_PATH = (
    "aws:ec2/route:Route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
)


def graph_from_render(result, tmp_path_factory) -> Graph:
    out = tmp_path_factory.mktemp("render")
    write_render(result, out)
    return Graph(json.loads((out / "resources.json").read_text()))


def must_go_first(graph: Graph) -> list[str]:
    """Every object in the cluster: the gateway Service, every Helm release, every product's resources.

    Components are left out: deleting one is a no-op that follows its children.
    """
    return [n.urn for n in graph.nodes.values() if n.type.startswith("kubernetes:")]


def descendants(graph: Graph, urn: str) -> set[str]:
    found, todo = set(), [urn]
    while todo:
        parent = todo.pop()
        kids = [n.urn for n in graph.nodes.values() if n.parent == parent]
        found.update(kids)
        todo.extend(kids)
    return found


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_cluster_contents_are_deleted_before_the_network_path(stack, request, tmp_path_factory):
    graph = graph_from_render(request.getfixturevalue(stack), tmp_path_factory)
    network = [u for t in NETWORK_PATH for u in graph.of_type(t)]
    first = must_go_first(graph)
    assert len(network) >= 10 and len(first) >= 10
    if selected(stack):
        products = graph.of_type("datamesh:products:DataProduct")
        assert len(products) == len(selected(stack))
        for product in products:
            assert descendants(graph, product) and descendants(graph, product) <= set(first)
    assert graph.find("kubernetes:core/v1:Service", "istio-ingressgateway") in first
    assert graph.of_type(RELEASE) and set(graph.of_type(RELEASE)) <= set(first)
    missing = sorted({(graph.nodes[a].name, graph.nodes[b].name) for a in first for b in network
                      if not graph.must_precede(a, b)})
    assert not missing, f"not ordered by the graph: {missing[:5]}"
    for schedule in ("engine", "eager"):
        wave = Graph.wave_of(graph.deletion_waves(schedule))
        assert max(wave[u] for u in first) < min(wave[u] for u in network), schedule


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_node_group_is_created_after_the_network_path(stack, request, tmp_path_factory):
    graph = graph_from_render(request.getfixturevalue(stack), tmp_path_factory)
    nodes = graph.find("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")
    controller = graph.find(RELEASE, "aws-load-balancer-controller")
    created = Graph.wave_of(graph.creation_waves())
    for t in NETWORK_PATH:
        for urn in graph.of_type(t):
            assert graph.must_precede(nodes, urn), graph.nodes[urn].name
            assert graph.must_precede(controller, urn), graph.nodes[urn].name
            assert created[urn] < created[nodes]
