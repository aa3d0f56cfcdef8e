"""The support matrix: pinned versions, valid pairs, and docs/reference.md in step with the code."""

import re

import pytest

from components import versions
from components.versions import UnsupportedVersionError, istio_release
from tests.conftest import ROOT, stack_file


def test_every_supported_kubernetes_version_has_an_istio_release():
    for k8s in versions.KUBERNETES_VERSIONS:
        assert any(k8s in r.kubernetes for r in versions.ISTIO_RELEASES.values()), k8s


def test_istio_releases_are_exact_patch_versions():
    for version in versions.ISTIO_RELEASES:
        assert re.fullmatch(r"1\.\d+\.\d+", version)
    assert re.fullmatch(r"\d+\.\d+\.\d+", versions.LBC_CHART.version)
    # From chart 3.0.0 the chart version is the controller version.
    assert versions.LBC_APP_VERSION == "v" + versions.LBC_CHART.version
    assert versions.LBC_CHART.version.startswith("3.")


def test_matrix_facts():
    # EKS standard support calendar and Istio's minimum Kubernetes, as researched (docs/reference.md names the sources).
    assert versions.KUBERNETES_STANDARD_SUPPORT_ENDS["1.36"] == "2027-08-02"
    assert set(versions.KUBERNETES_PAST_STANDARD_SUPPORT) == {
        k for k, ends in versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items() if ends < "2026-11-01"}
    assert versions.ISTIO_RELEASES["1.28.10"].kubernetes[0] == "1.30"
    assert istio_release("1.30.5", "1.36").version == "1.30.5"
    with pytest.raises(UnsupportedVersionError):
        istio_release("1.28.10", "1.29")


def test_unsupported_pair_names_the_releases_that_fit():
    with pytest.raises(UnsupportedVersionError, match=r"releases that do: 1\.29\.8, 1\.30\.5"):
        istio_release("1.28.10", "1.35")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stacks_use_a_supported_pair(stack):
    config = stack_file(stack)["config"]
    release = istio_release(config["datamesh:istioVersion"], config["datamesh:kubernetesVersion"])
    assert config["datamesh:kubernetesVersion"] in release.kubernetes


def test_documented_matrix_matches_the_code():
    reference = (ROOT / "docs" / "reference.md").read_text()
    for release in versions.ISTIO_RELEASES.values():
        row = f"| Istio {release.version} | {release.kubernetes[0]} to {release.kubernetes[-1]} |"
        assert row in reference, row
    for k8s, ends in versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items():
        assert f"| Kubernetes {k8s} | {ends} |" in reference, k8s
    assert f"aws-load-balancer-controller chart {versions.LBC_CHART.version} (controller {versions.LBC_APP_VERSION})" in reference
    assert f"| Prometheus | prometheus {versions.PROMETHEUS_CHART.version} (prometheus-community) |" in reference
    assert f"| Kiali | kiali-server {versions.KIALI_CHART.version} |" in reference
    assert f"metrics-server chart {versions.METRICS_SERVER_CHART.version}" in reference
    assert f"external-secrets chart {versions.EXTERNAL_SECRETS_CHART.version}" in reference
    tags = versions.CLUSTER_AUTOSCALER_IMAGE_TAGS
    assert (f"cluster-autoscaler chart {versions.CLUSTER_AUTOSCALER_CHART.version}, image {' / '.join(tags.values())}"
            f" for Kubernetes {' / '.join(tags)} |") in reference


def test_pulumi_yaml_and_config_reference_are_generated_from_the_schema():
    from tools import schema_docs

    assert schema_docs.main([]) == 0, "run: python -m tools.schema_docs --write"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "requirements-test.txt" in line and line.startswith("python3"))
    assert command in (ROOT / ".ci" / "run").read_text()
