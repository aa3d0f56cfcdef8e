"""Cluster component: EKS, nodes, security groups and the Kubernetes provider."""

import json

from components.platform.cluster import NODE_MANAGED_POLICIES
from tests.conftest import stack_file

RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


def eks(result):
    return result.one("eks:index:Cluster", "cluster-eks")


def test_eks_uses_access_entries_oidc_and_kms_envelope_encryption(dev):
    inputs = eks(dev).inputs
    key = dev.one("aws:kms/key:Key", "cluster-secrets")
    assert key.inputs["enableKeyRotation"] is True
    assert inputs["authenticationMode"] == "API"
    assert inputs["createOidcProvider"] is True
    assert inputs["encryptionConfigKeyArn"] == f"arn:aws:kms:eu-west-1:000000000000:{key.name}"
    assert key.urn in eks(dev).dependencies
    assert inputs["version"] == "1.35"
    assert inputs["skipDefaultNodeGroup"] is True
    # Explicit: left unset, EKS moves the cluster to (billed) extended support.
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}


def test_kubernetes_136_renders_and_extended_support_is_a_choice(tmp_path):
    from tests.conftest import render_variant

    result = render_variant(tmp_path, {"datamesh:kubernetesVersion": "1.36", "datamesh:eksSupportType": "EXTENDED"})
    assert eks(result).inputs["version"] == "1.36"
    assert eks(result).inputs["upgradePolicy"] == {"supportType": "EXTENDED"}


def test_control_plane_logs_and_endpoint_follow_the_stack(dev, prod):
    assert eks(dev).inputs["enabledClusterLogTypes"] == ["api", "audit"]
    assert set(eks(prod).inputs["enabledClusterLogTypes"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert eks(prod).inputs["endpointPrivateAccess"] is True
    assert eks(prod).inputs["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_cluster_spans_both_subnet_kinds_and_nodes_are_private(dev):
    subnet_ids = lambda role: sorted(  # noqa: E731
        f"{s.name}-PLACEHOLDER-id" for s in dev.of_type("aws:ec2/subnet:Subnet") if f"kubernetes.io/role/{role}" in s.inputs["tags"]
    )
    assert sorted(eks(dev).inputs["privateSubnetIds"]) == subnet_ids("internal-elb")
    assert sorted(eks(dev).inputs["publicSubnetIds"]) == subnet_ids("elb")
    node_group = dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes")
    assert sorted(node_group.inputs["subnetIds"]) == subnet_ids("internal-elb")


def test_node_group_size_and_capacity_come_from_config(dev, prod):
    for result, stack in ((dev, "dev"), (prod, "prod")):
        config = stack_file(stack)["config"]
        ng = result.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").inputs
        assert ng["capacityType"] == config["datamesh:nodeCapacityType"]
        assert ng["instanceTypes"] == config["datamesh:nodeInstanceTypes"]
        assert ng["scalingConfig"] == {"minSize": config["datamesh:nodeMinSize"], "desiredSize": config["datamesh:nodeDesiredSize"],
                                       "maxSize": config["datamesh:nodeMaxSize"]}


def test_nodes_require_imdsv2_with_one_hop(dev):
    lt = dev.one("aws:ec2/launchTemplate:LaunchTemplate", "cluster-nodes").inputs
    assert lt["metadataOptions"]["httpTokens"] == "required"
    assert lt["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert lt["blockDeviceMappings"][0]["ebs"]["encrypted"] == "true"
    ng = dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").inputs
    assert ng["launchTemplate"]["id"] == "cluster-nodes-PLACEHOLDER-id"


def test_node_role_has_the_worker_policies(dev):
    role = dev.one("aws:iam/role:Role", "cluster-nodes")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {a.inputs["policyArn"] for a in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                if a.parent == role.urn}
    assert attached == set(NODE_MANAGED_POLICIES)


def test_control_plane_reaches_both_webhooks_on_the_nodes(dev):
    node_sg = dev.one("aws:ec2/securityGroup:SecurityGroup", "cluster-nodes")
    ingress = [r.inputs for r in dev.of_type(RULE) if r.inputs["type"] == "ingress"
               and r.inputs["securityGroupId"] == f"{node_sg.name}-PLACEHOLDER-id"]
    from_control_plane = {(r["fromPort"], r["toPort"]) for r in ingress
                          if r.get("sourceSecurityGroupId") == "sg-PLACEHOLDER-cluster" and r["protocol"] == "tcp"}
    assert (15017, 15017) in from_control_plane  # Istio sidecar injector
    assert (9443, 9443) in from_control_plane  # AWS Load Balancer Controller webhook
    assert (10250, 10250) in from_control_plane  # kubelet
    nodes_to_api = [r.inputs for r in dev.of_type(RULE) if r.inputs["securityGroupId"] == "sg-PLACEHOLDER-cluster"]
    assert nodes_to_api == [{**nodes_to_api[0], "fromPort": 443, "toPort": 443, "type": "ingress"}]
    lt = dev.one("aws:ec2/launchTemplate:LaunchTemplate", "cluster-nodes").inputs
    assert lt["vpcSecurityGroupIds"] == [f"{node_sg.name}-PLACEHOLDER-id"]


def test_admin_access_entries_from_config(tmp_path):
    from tests.conftest import render_variant

    arn = "arn:aws:iam::123456789012:role/platform-admins"
    result = render_variant(tmp_path, {"datamesh:adminPrincipalArns": [arn]})
    entries = eks(result).inputs["accessEntries"]
    assert [e["principalArn"] for e in entries.values()] == [arn]
    policy = next(iter(entries.values()))["accessPolicies"]["cluster-admin"]
    assert policy["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert policy["accessScope"] == {"type": "cluster"}


def test_kubernetes_provider_uses_the_kubeconfig_as_a_secret_and_waits_for_nodes(dev):
    provider = dev.one("pulumi:providers:kubernetes", "cluster-k8s")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert dev.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").urn in provider.dependencies
    for r in dev.resources:
        if r.type.startswith("kubernetes:"):
            assert r.provider and r.provider.startswith(provider.urn + "::"), r.urn


def test_kubeconfig_is_a_secret_stack_output(dev):
    assert dev.outputs["kubeconfig"] == "[secret]"
    assert dev.outputs["clusterName"] == "datamesh-dev"


def test_the_control_plane_log_group_is_the_programs_made_before_the_cluster(dev, prod):
    """Left to EKS, /aws/eks/<cluster>/cluster has no retention or tags and survives a destroy."""
    from tests.conftest import waits_for

    for result, name in ((dev, "datamesh-dev"), (prod, "datamesh-prod")):
        [group] = [r for r in result.resources if r.type == "aws:cloudwatch/logGroup:LogGroup"]
        assert group.inputs["name"] == f"/aws/eks/{name}/cluster"
        assert 0 < group.inputs["retentionInDays"] <= 400 and group.inputs["tags"]["datamesh:cluster"] == name
        eks_cluster = next(r for r in result.resources if r.type == "eks:index:Cluster")
        assert waits_for(result, eks_cluster, group)  # created first, so deleted after the cluster


def test_the_controller_and_istio_wait_for_the_managed_addons(dev):
    """The VPC CNI is adopted (and restarts) as a managed add-on: no chart installs while it does."""
    from tests.conftest import waits_for

    addons = [r for r in dev.resources if r.type == "aws:eks/addon:Addon"]
    assert addons
    for release in ("aws-load-balancer-controller", "istio-base"):
        chart = dev.one("kubernetes:helm.sh/v3:Release", release)
        assert all(waits_for(dev, chart, addon) for addon in addons), release
