"""Existing clusters as a stack kind (datamesh:cluster: existing): what is made, what is not, and what is refused."""

from __future__ import annotations

import dataclasses

import pytest

from components.config import ConfigError, load_settings
from components.platform.existing import SKIP_AWAIT
from components.products.aws_access import refuse_without_oidc
from components.products.model import AwsAccess, SecretRef
from tests.conftest import render_variant, write_stack
from tools.engine.render import render_stack
from tools.render import main as render_main

ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"
EXISTING = {"datamesh:cluster": "existing", "datamesh:kubeconfig": {"secure": "v1:PLACEHOLDER:kubeconfig"}}
# dev's keys that configure what only an EKS stack has.
EKS_KEYS = ("datamesh:availabilityZones", "datamesh:natGateways", "datamesh:nodeCapacityType", "datamesh:nodeInstanceTypes",
            "datamesh:nodeDiskSize", "datamesh:nodeMinSize", "datamesh:nodeDesiredSize", "datamesh:nodeMaxSize",
            "datamesh:controlPlaneLogs")


@pytest.fixture(scope="module")
def local():
    return render_stack("local")


def _kubernetes_objects(result):
    return [r for r in result.resources if r.custom and r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:")]


def test_local_makes_nothing_on_aws_and_no_platform_of_its_own(local):
    types = {r.type for r in local.resources}
    assert not [t for t in types if t.startswith(("aws:", "eks:", "pulumi:providers:aws"))], sorted(types)
    assert not [t for t in types if t.startswith("kubernetes:helm.sh/")], "an existing Istio: no chart is installed"
    for absent in ("datamesh:platform:Network", "datamesh:platform:Cluster", "datamesh:addons:ManagedAddons",
                   "datamesh:platform:LoadBalancerController", "datamesh:platform:Istio"):
        assert absent not in types
    assert {"datamesh:platform:ExistingCluster", "datamesh:platform:ExistingIstio"} <= types


def test_the_provider_comes_from_the_secret_kubeconfig(local):
    provider = local.one("pulumi:providers:kubernetes", "cluster-k8s")
    assert provider.inputs["kubeconfig"] == "[secret]"
    assert all(r.provider and "cluster-k8s" in r.provider for r in _kubernetes_objects(local))


def test_above_the_platform_is_the_same_code(local, demo):
    """Namespaces, products, governance and the catalog: the demo's objects, less Istio's install, the add-ons and
    the charts (local has no Prometheus or Kiali: datamesh:observability is off without nodes)."""
    def above(result):
        return {(r.type, r.name) for r in _kubernetes_objects(result) if not r.type.startswith("kubernetes:helm.sh/")
                and not r.urn.split("::")[2].startswith(("datamesh:platform:Istio", "datamesh:addons", "datamesh:platform:Cluster",
                                                       "datamesh:platform:LoadBalancer"))}
    local_objects, demo_objects = above(local), above(demo)
    assert demo_objects - local_objects == set(), "an object of the EKS stack above the platform is missing"
    assert local.outputs["catalog"] and set(local.outputs["productUrls"]) == set(demo.outputs["productUrls"])


def test_namespaces_take_the_revision_as_given(local):
    for ns in local.of_type("kubernetes:core/v1:Namespace"):
        assert ns.inputs["metadata"]["labels"]["istio.io/rev"] == "default"


def test_the_shared_gateway_is_the_programs_and_waits_for_the_live_istiod(local):
    gateway = local.one("kubernetes:networking.istio.io/v1:Gateway", "datamesh")
    assert gateway.inputs["metadata"]["namespace"] == "istio-ingress"
    assert local.outputs["gatewayUrl"] == "http://istio-ingressgateway.istio-ingress.svc.cluster.local"


def test_skip_await_is_stated_on_every_object_of_a_local_stack_only(local, dev):
    objects = _kubernetes_objects(local)
    assert objects and all(r.inputs["metadata"]["annotations"][SKIP_AWAIT] == "true" for r in objects)
    assert not [r.name for r in _kubernetes_objects(dev) if SKIP_AWAIT in ((r.inputs.get("metadata") or {}).get("annotations") or {})]


def test_outputs_of_an_existing_cluster_have_no_vpc_nor_kubeconfig(local):
    assert not {"vpcId", "kubeconfig", "publicSubnetIds", "privateSubnetIds"} & set(local.outputs)


def test_istio_installed_on_an_existing_cluster_without_load_balancer_controller(tmp_path):
    result = render_variant(tmp_path, {**EXISTING, "datamesh:istio": "install"}, drop=EKS_KEYS)
    types = {r.type for r in result.resources}
    assert "datamesh:platform:Istio" in types and "datamesh:platform:LoadBalancerController" not in types
    assert not [t for t in types if t.startswith("aws:")]
    assert {r.name for r in result.of_type("kubernetes:helm.sh/v3:Release")} >= {"istio-base", "istiod", "istio-ingressgateway"}


def _refused(tmp_path, capsys, overrides, drop=EKS_KEYS) -> str:
    stack = write_stack(tmp_path, overrides, drop=drop)
    out = tmp_path / "render"
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists(), err
    return err


@pytest.mark.parametrize(("overrides", "drop", "expected"), [
    ({"datamesh:cluster": "gke"}, (), "error: datamesh:cluster: must be one of eks, existing"),
    ({"datamesh:cluster": "existing"}, EKS_KEYS, "error: datamesh:kubeconfig: is required with cluster existing"),
    ({"datamesh:cluster": "existing", "datamesh:kubeconfig": "apiVersion: v1"}, EKS_KEYS,
     "error: datamesh:kubeconfig: must be a secret"),
    ({**EXISTING}, (), "error: datamesh:availabilityZones: applies only to an EKS stack"),
    ({**EXISTING, "datamesh:domain": "api.example.com"}, EKS_KEYS, "error: datamesh:domain: applies only to an EKS stack"),
    ({"datamesh:skipAwait": True}, (), "error: datamesh:skipAwait: applies only with datamesh:cluster existing"),
    ({"datamesh:istio": "existing"}, (), "error: datamesh:istio: existing needs datamesh:cluster existing"),
    ({**EXISTING, "datamesh:oidcProviderArn": "arn:aws:iam::1:role/x"}, EKS_KEYS,
     "error: datamesh:oidcProviderArn: 'arn:aws:iam::1:role/x' is not an IAM OIDC provider ARN"),
    ({**EXISTING, "datamesh:istio": "existing", "datamesh:istioVersion": "", "datamesh:istioRevisions": {"1-30": "1.30.5"}},
     EKS_KEYS, "error: datamesh:istioRevisions: with istio existing, name the one revision"),
    ({**EXISTING, "datamesh:rateLimits": "global", "datamesh:rateLimitRedis": "in-cluster"}, EKS_KEYS,
     "error: datamesh:rateLimits: global needs datamesh:cluster eks"),
])
def test_bad_existing_configuration_is_refused_naming_the_key(tmp_path, capsys, overrides, drop, expected):
    assert _refused(tmp_path, capsys, overrides, drop).startswith(expected)


def test_a_secret_kubeconfig_is_never_shown(tmp_path, capsys):
    err = _refused(tmp_path, capsys, {"datamesh:cluster": "existing", "datamesh:kubeconfig": "token: hunter2"})
    assert "hunter2" not in err


def _settings(**extra: str) -> object:
    raw = {"cluster": "existing", "kubeconfig": "apiVersion: v1", "kubernetesVersion": "1.35", "istioVersion": "1.30.5",
           "allowPlainHttp": "true", **extra}
    return load_settings(raw, "local", None, frozenset({"kubeconfig"}))


def test_an_existing_cluster_needs_no_aws_region_unless_products_use_aws():
    settings = _settings()
    assert settings.cluster.existing and settings.region == "" and not settings.uses_aws
    with pytest.raises(ConfigError, match=r"^aws:region: is required with datamesh:oidcProviderArn"):
        _settings(oidcProviderArn=ARN)
    with_arn = load_settings({"cluster": "existing", "kubeconfig": "x", "kubernetesVersion": "1.35", "istioVersion": "1.30.5",
                              "allowPlainHttp": "true", "oidcProviderArn": ARN}, "local", "eu-west-1", frozenset({"kubeconfig"}))
    assert with_arn.uses_aws and with_arn.cluster.oidc_issuer == "oidc.eks.eu-west-1.amazonaws.com/id/ABCDEF0123456789"


def test_defaults_of_the_other_kind_pass_as_the_cli_sends_them():
    """The CLI passes Pulumi.yaml's defaults: an EKS key at its default is no error on an existing stack, and
    an empty secret key (its default, in plain text) is none either (found running the real engine)."""
    assert _settings(vpcCidr="10.0.0.0/16", natGateways="single", protect="false", availabilityZones="[]",
                     anypointClientId="", anypointClientSecret="", apiKeys="{}").cluster.existing
    with pytest.raises(ConfigError, match=r"^datamesh:anypointClientId: must be a secret"):
        _settings(anypointClientId="abc")


def test_aws_access_without_an_oidc_provider_is_refused_naming_product_and_key():
    from components.products.declarations import load_products
    from tests.conftest import ROOT

    product = load_products(ROOT / "products", ["revenue-predictor"], {})[0]
    settings = _settings()
    for changed, what in ((dataclasses.replace(product, aws=AwsAccess((), ((("s3:GetObject",), ("arn:aws:s3:::b/*",)),))), "aws:"),
                          (dataclasses.replace(product, secrets=(SecretRef("TOKEN", "prod/token", None),)), "secrets:")):
        with pytest.raises(ConfigError) as info:
            refuse_without_oidc([changed], settings.cluster)
        message = str(info.value)
        assert message.startswith("datamesh:oidcProviderArn: is required on an existing cluster")
        assert "revenue-predictor" in message and what in message
    refuse_without_oidc([product], settings.cluster)  # no AWS access: nothing to refuse
    with_arn = load_settings({"cluster": "existing", "kubeconfig": "x", "kubernetesVersion": "1.35", "istioVersion": "1.30.5",
                              "allowPlainHttp": "true", "oidcProviderArn": ARN}, "local", "eu-west-1", frozenset({"kubeconfig"}))
    refuse_without_oidc([changed], with_arn.cluster)  # with the cluster's OIDC provider, products may use AWS


@pytest.mark.parametrize(("image", "problem"), [
    ("docker.io/istio/pilot:1.30.5", None),
    ("docker.io/istio/pilot:1.30.2-distroless", None),
    (None, None),  # not known yet (a preview): the read at up decides
    ("docker.io/istio/pilot:1.29.1", "it runs Istio 1.29.1, not 1.30.5"),
    ("registry.example.com/pilot@sha256:abc", "carries no Istio version tag"),
])
def test_the_live_istiod_must_run_the_configured_minor(image, problem):
    from components.platform.istio_existing import live_version_problem

    revision = _settings(istio="existing").istio.stable
    found = live_version_problem(image, revision, "1.35")
    assert found is None if problem is None else (found is not None and problem in found)
