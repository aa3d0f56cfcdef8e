"""Creation and deletion order, read from the resource graph the engine would receive.

The engine creates a resource after everything it depends on (and its
provider) and deletes it before them. So "A waits for B" proves both that B
exists before A on `pulumi up` and that A is gone before B on `pulumi destroy`.
"""

import json

import pytest

from tests.conftest import closure, declared, selected, waits_for
from tools.engine.order import Graph
from tools.engine.render import write_render

RELEASE = "kubernetes:helm.sh/v3:Release"


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
    nodes = dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")
    for r in dev.resources:
        if r.type.startswith("kubernetes:"):
            assert waits_for(dev, r, nodes), r.name


def test_closure_follows_dependencies_and_providers(dev):
    # The helper itself: a resource with no dependencies reaches only its provider.
    vpc = dev.one("aws:ec2/vpc:Vpc", "network-vpc")
    assert closure(dev, vpc.urn) == {dev.one("pulumi:providers:aws", "aws").urn}


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
