"""AWS Load Balancer Controller: IAM policy, IRSA trust, Helm release."""

import hashlib
import json

from components import versions
from components.platform.load_balancer_controller import IAM_POLICY_PATH

RELEASE = "kubernetes:helm.sh/v3:Release"


def test_policy_file_is_the_pinned_upstream_one():
    digest = hashlib.sha256(IAM_POLICY_PATH.read_bytes()).hexdigest()
    assert digest == versions.LBC_IAM_POLICY_SHA256, "the controller's IAM policy was edited; it must stay verbatim"
    assert versions.LBC_APP_VERSION.lstrip("v") in IAM_POLICY_PATH.name


def test_registered_policy_is_the_file_and_is_not_widened(dev):
    policy = dev.one("aws:iam/policy:Policy", "aws-load-balancer-controller-policy")
    document = json.loads(policy.inputs["policy"])
    assert document == json.loads(IAM_POLICY_PATH.read_text())
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert statement["Effect"] == "Allow"
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
    actions = {a for s in document["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    # What the controller needs for an NLB, present; IAM administration, absent.
    assert {"elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
            "elasticloadbalancing:CreateTargetGroup", "ec2:DescribeSubnets"} <= actions
    assert not {a for a in actions if a.startswith("iam:") and a != "iam:CreateServiceLinkedRole"
                and not a.startswith("iam:Get") and not a.startswith("iam:List")}
    create_lb = next(s for s in document["Statement"]
                     if "elasticloadbalancing:CreateLoadBalancer" in s["Action"])
    assert "aws:RequestTag/elbv2.k8s.aws/cluster" in json.dumps(create_lb["Condition"])


def test_irsa_trust_pins_audience_and_exactly_the_charts_service_account(dev):
    role = dev.one("aws:iam/role:Role", "aws-load-balancer-controller-irsa")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    [statement] = trust["Statement"]
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/PLACEHOLDER"
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::000000000000:oidc-provider/{issuer}"}
    assert statement["Condition"] == {"StringEquals": {
        f"{issuer}:aud": "sts.amazonaws.com",
        f"{issuer}:sub": "system:serviceaccount:kube-system:aws-load-balancer-controller",
    }}
    # The service account the chart runs as is the one the trust policy names.
    values = dev.one(RELEASE, "aws-load-balancer-controller").inputs["values"]
    assert values["serviceAccount"]["name"] == "aws-load-balancer-controller"
    assert values["serviceAccount"]["create"] is True
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == f"arn:aws:iam:eu-west-1:000000000000:{role.name}"
    assert dev.one(RELEASE, "aws-load-balancer-controller").inputs["namespace"] == "kube-system"


def test_release_is_pinned_and_told_its_cluster_region_and_vpc(dev):
    release = dev.one(RELEASE, "aws-load-balancer-controller").inputs
    assert release["chart"] == "aws-load-balancer-controller"
    assert release["version"] == versions.LBC_CHART.version
    assert release["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    values = release["values"]
    assert values["clusterName"] == "datamesh-dev"
    assert values["region"] == "eu-west-1"
    assert values["vpcId"] == "network-vpc-PLACEHOLDER-id"
    assert values["image"]["tag"] == versions.LBC_APP_VERSION
    assert values["enableServiceMutatorWebhook"] is False
    assert release["skipAwait"] is False and release["atomic"] is True


def test_release_waits_for_its_permissions(dev):
    release = dev.one(RELEASE, "aws-load-balancer-controller")
    attachment = dev.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws-load-balancer-controller-policy")
    assert attachment.urn in release.dependencies


def test_crds_are_vendored_verbatim_and_applied_before_the_chart(dev):
    import hashlib

    from components.platform.load_balancer_controller import CRDS_PATH

    assert hashlib.sha256(CRDS_PATH.read_bytes()).hexdigest() == versions.LBC_CRDS_SHA256
    assert versions.LBC_APP_VERSION in CRDS_PATH.name
    crds = dev.of_type("kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition")
    names = {c.inputs["metadata"]["name"] for c in crds}
    assert {"targetgroupbindings.elbv2.k8s.aws", "ingressclassparams.elbv2.k8s.aws"} <= names
    release = dev.one(RELEASE, "aws-load-balancer-controller")
    lbc_crds = [c for c in crds if c.inputs["metadata"]["name"].endswith((".elbv2.k8s.aws", ".aga.k8s.aws"))]
    assert len(lbc_crds) == 4
    assert {c.urn for c in lbc_crds} <= set(release.dependencies)
    assert release.inputs["skipCrds"] is True  # Helm would install them once and never upgrade them


def test_everything_the_controller_creates_carries_the_stacks_tags(dev):
    """The NLB, its target groups and security groups are the controller's, not Pulumi's: without defaultTags
    nothing ties them to the stack, and a leak after destroy could not be found by tag."""
    import yaml

    from tests.conftest import ROOT

    tags = dev.one(RELEASE, "aws-load-balancer-controller").inputs["values"]["defaultTags"]
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert tags["environment"] == config["datamesh:tags"]["environment"]
    assert tags["datamesh:stack"] == "dev" and tags["datamesh:cluster"] == "datamesh-dev"
