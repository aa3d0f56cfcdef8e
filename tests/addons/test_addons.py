"""Cluster add-ons: EKS managed add-ons following the cluster, metrics-server, the Cluster Autoscaler."""

import json

import pulumi
import pytest

from components import versions
from tests.conftest import render_variant
from tools.engine.order import Graph

ADDON = "aws:eks/addon:Addon"
RELEASE = "kubernetes:helm.sh/v3:Release"
NODES = ("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")


def graph(result) -> Graph:
    return Graph([r.as_json() for r in result.resources])


def test_three_managed_addons_at_the_default_version_for_the_cluster(dev):
    addons = {a.inputs["addonName"]: a.inputs for a in dev.of_type(ADDON)}
    assert sorted(addons) == ["coredns", "kube-proxy", "vpc-cni"]
    for inputs in addons.values():
        assert inputs["addonVersion"] == "v0.0.0-PLACEHOLDER-for-1.35"  # what the mocked lookup answered for 1.35
        assert inputs["clusterName"] == "datamesh-dev"
        assert inputs["resolveConflictsOnCreate"] == inputs["resolveConflictsOnUpdate"] == "OVERWRITE"
        assert inputs["preserve"] is True
    lookups = [a for token, a in dev.invokes if token == "aws:eks/getAddonVersion:getAddonVersion"]
    assert sorted(a["addonName"] for a in lookups) == ["coredns", "kube-proxy", "vpc-cni"]
    # EKS's default version for the minor, not the newest build: it does not move between two `up` runs.
    assert all(a["kubernetesVersion"] == "1.35" and a["mostRecent"] is False for a in lookups)


def test_pinned_addon_versions_replace_the_lookup(tmp_path):
    result = render_variant(tmp_path, {"datamesh:eksAddonVersions": {"coredns": "v1.14.2-eksbuild.4"}})
    addons = {a.inputs["addonName"]: a.inputs["addonVersion"] for a in result.of_type(ADDON)}
    assert addons["coredns"] == "v1.14.2-eksbuild.4"
    assert addons["kube-proxy"] == addons["vpc-cni"] == "v0.0.0-PLACEHOLDER-for-1.35"
    lookups = [a["addonName"] for token, a in result.invokes if token == "aws:eks/getAddonVersion:getAddonVersion"]
    assert sorted(lookups) == ["kube-proxy", "vpc-cni"]


@pytest.mark.parametrize(("pins", "message"), [
    ({"cni": "v1.0.0-eksbuild.1"}, "datamesh:eksAddonVersions: 'cni' is not a managed add-on"),
    ({"coredns": "1.14.2"}, "datamesh:eksAddonVersions.coredns: '1.14.2' is not an EKS add-on version"),
    ({"coredns": "v1.14.2-eksbuild.4\n"}, "datamesh:eksAddonVersions.coredns:"),
    ({"coredns": 5}, "datamesh:eksAddonVersions.coredns: 5 is not"),
    ({"vpc-cni": "v1.15.0-eksbuild.2"}, "datamesh:eksAddonVersions.vpc-cni: v1.15.0-eksbuild.2 cannot enforce NetworkPolicies"),
])
def test_bad_addon_pins_are_refused(tmp_path, pins, message):
    with pytest.raises(pulumi.RunError) as caught:
        render_variant(tmp_path, {"datamesh:eksAddonVersions": pins})
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_vpc_cni_enforces_network_policies(stack, request):
    """The global rate limit's NetworkPolicies hold only where the CNI enforces them; AWS's value is a string."""
    addons = {a.inputs["addonName"]: a.inputs for a in request.getfixturevalue(stack).of_type(ADDON)}
    assert json.loads(addons["vpc-cni"]["configurationValues"]) == {"enableNetworkPolicy": "true"}
    assert "configurationValues" not in addons["coredns"] and "configurationValues" not in addons["kube-proxy"]


def test_a_vpc_cni_pin_with_network_policy_support_is_accepted(tmp_path):
    result = render_variant(tmp_path, {"datamesh:eksAddonVersions": {"vpc-cni": "v1.15.1-eksbuild.1"}})
    [cni] = [a for a in result.of_type(ADDON) if a.inputs["addonName"] == "vpc-cni"]
    assert cni.inputs["addonVersion"] == "v1.15.1-eksbuild.1"


def test_pulumi_eks_manages_no_addon_itself(dev):
    # Otherwise kube-proxy and the VPC CNI would have two owners (pulumi-eks 4.4.0 creates them by default).
    inputs = dev.one("eks:index:Cluster", "cluster-eks").inputs
    assert inputs["corednsAddonOptions"]["enabled"] is False
    assert inputs["kubeProxyAddonOptions"]["enabled"] is False
    assert inputs["useDefaultVpcCni"] is True


def test_a_version_bump_moves_nodes_addons_and_autoscaler(tmp_path):
    result = render_variant(tmp_path, {"datamesh:kubernetesVersion": "1.36"})
    assert result.one(*NODES).inputs["version"] == "1.36"
    assert {a.inputs["addonVersion"] for a in result.of_type(ADDON)} == {"v0.0.0-PLACEHOLDER-for-1.36"}
    ca = result.one(RELEASE, "cluster-autoscaler").inputs["values"]
    assert ca["image"]["tag"] == "v1.36.1"


def test_node_group_follows_the_cluster_version(dev, prod):
    for result in (dev, prod):
        eks_version = result.one("eks:index:Cluster", "cluster-eks").inputs["version"]
        assert result.one(*NODES).inputs["version"] == eks_version


def test_every_supported_kubernetes_version_has_an_autoscaler_of_its_minor():
    assert set(versions.CLUSTER_AUTOSCALER_IMAGE_TAGS) == set(versions.KUBERNETES_VERSIONS)
    for minor, tag in versions.CLUSTER_AUTOSCALER_IMAGE_TAGS.items():
        assert tag.startswith(f"v{minor}.")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_addons_wait_for_what_they_need_and_go_before_the_nodes(stack, request):
    result = request.getfixturevalue(stack)
    g = graph(result)
    nodes = g.find(*NODES)
    coredns = next(a.urn for a in result.of_type(ADDON) if a.inputs["addonName"] == "coredns")
    addons = [a.urn for a in result.of_type(ADDON)]
    releases = [g.find(RELEASE, "metrics-server"), g.find(RELEASE, "cluster-autoscaler")]
    for urn in addons + releases:
        assert g.must_precede(urn, nodes), g.nodes[urn].name  # created after, deleted before the nodes
    for urn in releases:
        assert g.must_precede(urn, coredns)
    ca = g.find(RELEASE, "cluster-autoscaler")
    assert g.must_precede(ca, g.find("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "cluster-autoscaler-policy"))
    deleted = Graph.wave_of(g.deletion_waves("eager"))
    assert max(deleted[u] for u in addons + releases) < deleted[nodes]


def test_metrics_server_is_highly_available(dev):
    values = dev.one(RELEASE, "metrics-server").inputs["values"]
    assert values["replicas"] == 2 and values["podDisruptionBudget"]["enabled"] is True
    assert dev.one(RELEASE, "metrics-server").inputs["version"] == versions.METRICS_SERVER_CHART.version


def test_autoscaler_scales_only_this_clusters_groups_through_irsa(dev):
    policy = json.loads(dev.one("aws:iam/policy:Policy", "cluster-autoscaler-policy").inputs["policy"])
    writes = [s for s in policy["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert writes == [next(s for s in policy["Statement"] if s.get("Sid") == "ScaleOwnGroups")]
    assert writes[0]["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/datamesh-dev": "owned"}}
    role = dev.one("aws:iam/role:Role", "cluster-autoscaler-irsa")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in trust.values()
    values = dev.one(RELEASE, "cluster-autoscaler").inputs["values"]
    assert values["autoDiscovery"] == {"clusterName": "datamesh-dev"}
    assert values["rbac"]["serviceAccount"]["name"] == "cluster-autoscaler"


def test_the_autoscaler_may_scale_in_nodes_running_injected_pods(dev):
    """Every injected pod has an emptyDir (istio-data); the autoscaler's default would pin every product's node."""
    values = dev.one("kubernetes:helm.sh/v3:Release", "cluster-autoscaler").inputs["values"]
    assert values["extraArgs"]["skip-nodes-with-local-storage"] is False
