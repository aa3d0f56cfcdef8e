"""Creation and deletion order, read from the resource graph the engine would receive.

The engine creates a resource after everything it depends on (and its
provider) and deletes it before them. So "A waits for B" proves both that B
exists before A on `pulumi up` and that A is gone before B on `pulumi destroy`.
"""

from tests.conftest import closure, waits_for

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
    assert sorted(r.name for r in injected) == ["customer", "sales"]
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
