"""The support matrix: every version this program deploys, pinned in one place.

Sources (checked 2026-11): Istio's "officially supported on Kubernetes versions"
line in each release announcement (istio.io news/releases/<minor>.x/announcing-<minor>);
the Amazon EKS Kubernetes versions page (standard and extended support); the
aws-load-balancer-controller release and its eks-charts chart. docs/reference.md's
version matrix is generated from this module's data and a test keeps it in step.
"""

from __future__ import annotations

from dataclasses import dataclass

# EKS Kubernetes versions the program accepts, oldest first, with the end of
# EKS standard support (extended support runs 12 months more, at $0.60 instead
# of $0.10 per cluster-hour). Source: the EKS Kubernetes versions page, via
# endoflife.date products/amazon-eks.md (2026-08-22). 1.33 is accepted only to
# upgrade away from it: its standard support has ended.
KUBERNETES_STANDARD_SUPPORT_ENDS = {
    "1.33": "2026-07-29",
    "1.34": "2026-12-02",
    "1.35": "2027-03-27",
    "1.36": "2027-08-02",
}
# EKS upgrade policies (aws.eks.Cluster upgradePolicy.supportType). pulumi-eks
# 4.4.0 leaves it to EKS, whose default is EXTENDED: billed extra once standard
# support ends. STANDARD instead auto-upgrades the control plane at that date.
EKS_SUPPORT_TYPES = ("STANDARD", "EXTENDED")
# Accepted versions whose standard support has already ended (as of 2026-11):
# only EXTENDED support applies to them. Move a version here when its date passes.
KUBERNETES_PAST_STANDARD_SUPPORT = ("1.33",)
KUBERNETES_VERSIONS = tuple(KUBERNETES_STANDARD_SUPPORT_ENDS)


@dataclass(frozen=True)
class Chart:
    """One pinned Helm chart: its name, exact version and repository."""

    name: str
    version: str
    repository: str


@dataclass(frozen=True)
class IstioRelease:
    """One pinned Istio patch release and the Kubernetes minors Istio supports it on."""

    version: str
    kubernetes: tuple[str, ...]

    def chart(self, name: str) -> Chart:
        """One of Istio's charts (base, istiod, gateway): its version is the release's."""
        return Chart(name, self.version, ISTIO_CHART_REPO)


def _k8s_range(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"1.{m}" for m in range(first, last + 1))


# Chart version == Istio version for the base, istiod and gateway charts.
ISTIO_RELEASES = {
    r.version: r
    for r in (
        IstioRelease("1.28.10", _k8s_range(30, 34)),
        IstioRelease("1.29.8", _k8s_range(31, 35)),
        IstioRelease("1.30.5", _k8s_range(32, 36)),
    )
}
ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"

# AWS Load Balancer Controller: from 3.0.0 the chart version equals the
# controller version (appVersion v3.X.Y). The IAM policy file is the
# controller's docs/install/iam_policy.json of exactly this version, verbatim
# (kubernetes-sigs/aws-load-balancer-controller v3.5.0, commit 11eb202c; the same
# bytes as at v2.17.1: unchanged since 2025-03-27); its digest is pinned so an
# edit, say a widened action, fails the tests. Helm never upgrades a chart's
# CRDs, so crds/ holds the chart's crds/crds.yaml (aws/eks-charts 5239609,
# identical at the controller's v3.5.0 tag), applied by Pulumi before the chart.
# The chart's gateway-crds.yaml is left out: only its Gateway API feature needs it.
LBC_CHART = Chart("aws-load-balancer-controller", "3.5.0", "https://aws.github.io/eks-charts")
LBC_APP_VERSION = "v3.5.0"
LBC_IAM_POLICY_FILE = "aws-load-balancer-controller-v3.5.0.json"
LBC_IAM_POLICY_SHA256 = "16f232c9d9f79366fe949c4550ad517a202380058a9e48d45a4e215044a20a6a"
LBC_CRDS_FILE = "aws-load-balancer-controller-v3.5.0.yaml"
LBC_CRDS_SHA256 = "cb00e9a8ee22cc51307bbed799faff306ab4d23a9fd201d26fcd53ab035777d9"


class UnsupportedVersionError(ValueError):
    """A version, or a pair of versions, outside the matrix."""


def istio_release(version: str, kubernetes_version: str) -> IstioRelease:
    """The pinned Istio release ``version``, if it supports ``kubernetes_version``."""
    release = ISTIO_RELEASES.get(version)
    if release is None:
        raise UnsupportedVersionError(f"{version!r} is not a pinned Istio release; pinned: {', '.join(ISTIO_RELEASES)}")
    if kubernetes_version not in release.kubernetes:
        fits = [r.version for r in ISTIO_RELEASES.values() if kubernetes_version in r.kubernetes]
        raise UnsupportedVersionError(
            f"Istio {version} does not support Kubernetes {kubernetes_version} "
            f"(it supports {release.kubernetes[0]} to {release.kubernetes[-1]}); "
            f"releases that do: {', '.join(fits) or 'none'}"
        )
    return release

# Observability add-ons (datamesh:observability). Kiali follows Istio's supported
# releases; 2.33 is the newest kiali-server chart stored when this was pinned.
PROMETHEUS_CHART = Chart("prometheus", "28.10.0", "https://prometheus-community.github.io/helm-charts")  # Prometheus v3.10.0
KIALI_CHART = Chart("kiali-server", "2.33.0", "https://kiali.org/helm-charts")

# Cluster add-ons (components/addons/). The EKS managed add-ons' versions are not
# pinned here: each is looked up for the cluster's Kubernetes version at deploy
# time (aws.eks.get_addon_version, most recent), so they follow the cluster.
EKS_MANAGED_ADDONS = ("vpc-cni", "kube-proxy", "coredns")
# metrics-server: kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1 (app 0.8.1).
METRICS_SERVER_CHART = Chart("metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/")
# Cluster Autoscaler: chart 9.59.0 (kubernetes/autoscaler, 2026-07-21) ships app
# 1.35.0; the autoscaler's minor must match the cluster's, so the image tag is
# chosen per Kubernetes minor: the newest patch tagged in kubernetes/autoscaler
# (cluster-autoscaler-1.<minor>.<patch>, all tagged 2026-07-22).
CLUSTER_AUTOSCALER_CHART = Chart("cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler")
CLUSTER_AUTOSCALER_IMAGE_TAGS = {
    "1.33": "v1.33.6",
    "1.34": "v1.34.5",
    "1.35": "v1.35.2",
    "1.36": "v1.36.1",
}
# External Secrets Operator (products' `secrets`): external-secrets/external-secrets tag
# helm-chart-2.9.0 (commit cc5bfbc2, 2026-08-08), app v2.9.0; its CRDs are chart templates
# (installCRDs), so Helm upgrades them with the chart. Serves external-secrets.io/v1.
EXTERNAL_SECRETS_CHART = Chart("external-secrets", "2.9.0", "https://charts.external-secrets.io")
