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
    # EKS's calendar and Istio's Kubernetes range, as researched (components/versions.py names the sources).
    assert versions.KUBERNETES_STANDARD_SUPPORT_ENDS["1.36"] == "2027-08-02"
    assert versions.ISTIO_RELEASES["1.30.5"].kubernetes == ("1.32", "1.33", "1.34", "1.35", "1.36")
    assert istio_release("1.30.5", "1.36").version == "1.30.5"
    with pytest.raises(UnsupportedVersionError):
        istio_release("1.30.5", "1.31")


def test_extended_support_is_standard_plus_twelve_months():
    for k8s, ends in versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items():
        year, rest = ends.split("-", 1)
        assert versions.KUBERNETES_EXTENDED_SUPPORT_ENDS[k8s] == f"{int(year) + 1}-{rest}", k8s


def test_unsupported_pair_names_the_releases_that_fit():
    release = next(iter(versions.ISTIO_RELEASES.values()))
    below = f"1.{int(release.kubernetes[0].split('.')[1]) - 1}"
    fits = [r.version for r in versions.ISTIO_RELEASES.values() if below in r.kubernetes]
    with pytest.raises(UnsupportedVersionError, match=f"releases that do: {re.escape(', '.join(fits) or 'none')}"):
        istio_release(release.version, below)


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
    assert f"image `{versions.RATELIMIT_IMAGE}`" in reference and f"Redis `{versions.REDIS_IMAGE}`" in reference
    assert f"ElastiCache Redis OSS {versions.ELASTICACHE_ENGINE_VERSION}" in reference
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
