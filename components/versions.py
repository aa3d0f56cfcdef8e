"""The support matrix: every version this program deploys, pinned in one place.

Sources (checked 2026-11): Istio's "officially supported on Kubernetes versions"
line in each release announcement (istio.io news/releases/<minor>.x/announcing-<minor>);
the Amazon EKS Kubernetes versions page (standard and extended support); the
aws-load-balancer-controller release and its eks-charts chart. docs/reference.md's
version matrix is generated from this module's data and a test keeps it in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# EKS Kubernetes versions the program accepts, oldest first, with the end of EKS standard
# support and of extended support (12 months more, at $0.60 instead of $0.10 per
# cluster-hour). Sources: the Amazon EKS Kubernetes versions page, through endoflife.date
# products/amazon-eks.md (1.33 and 1.34: commit 05b554b2; 1.35 and 1.36: its 2026-08-22
# version). A version whose standard support has ended is accepted with EXTENDED only, to
# upgrade away from it (components/config/groups.py decides by the date, not a list).
KUBERNETES_STANDARD_SUPPORT_ENDS = {
    "1.33": "2026-07-29",
    "1.34": "2026-12-02",
    "1.35": "2027-03-27",
    "1.36": "2027-08-02",
}
KUBERNETES_EXTENDED_SUPPORT_ENDS = {
    "1.33": "2027-07-29",
    "1.34": "2027-12-02",
    "1.35": "2028-03-27",
    "1.36": "2028-08-02",
}
# EKS upgrade policies (aws.eks.Cluster upgradePolicy.supportType). pulumi-eks
# 4.4.0 leaves it to EKS, whose default is EXTENDED: billed extra once standard
# support ends. STANDARD instead auto-upgrades the control plane at that date.
EKS_SUPPORT_TYPES = ("STANDARD", "EXTENDED")
# STANDARD with a version this close to its end of standard support: the render warns, naming the date.
SUPPORT_WARNING_DAYS = 120
KUBERNETES_VERSIONS = tuple(KUBERNETES_STANDARD_SUPPORT_ENDS)


def standard_support_ended(kubernetes_version: str, today: date) -> bool:
    """True once EKS standard support for ``kubernetes_version`` has ended."""
    return date.fromisoformat(KUBERNETES_STANDARD_SUPPORT_ENDS[kubernetes_version]) <= today


def days_of_standard_support(kubernetes_version: str, today: date) -> int:
    """Days left until EKS ends standard support for ``kubernetes_version`` (negative once past)."""
    return (date.fromisoformat(KUBERNETES_STANDARD_SUPPORT_ENDS[kubernetes_version]) - today).days


@dataclass(frozen=True)
class Chart:
    """One pinned Helm chart: its name, exact version, repository, and where that version was read."""

    name: str
    version: str
    repository: str
    source: str = ""  # the tag or commit whose chart the version, the values and the keys were checked against


@dataclass(frozen=True)
class IstioRelease:
    """One pinned Istio patch release, the Kubernetes minors Istio supports it on, its end of life and source."""

    version: str
    kubernetes: tuple[str, ...]
    end_of_life: str  # ISO date; a test fails once it has passed
    source: str

    def chart(self, name: str) -> Chart:
        """One of Istio's charts (base, istiod, gateway): its version is the release's."""
        return Chart(name, self.version, ISTIO_CHART_REPO, self.source)


def _k8s_range(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"1.{m}" for m in range(first, last + 1))


# Chart version == Istio version for the base, istiod and gateway charts. End of life: Istio
# supports a minor until 6 weeks after the N+2 minor's release (istio.io, "Supported Releases").
# 1.28 (EOL 2026-05-31) and 1.29 (EOL 2026-08-31, endoflife.date products/istio.md) are gone.
# 1.30's date is an estimate, to re-check: 1.32.0 was not out when this was pinned (1.31.0: 2026-08-31),
# so 1.30 ends no earlier than 6 weeks after it; 2027-01-15 is the earliest likely date.
ISTIO_RELEASES = {
    r.version: r
    for r in (
        IstioRelease("1.30.5", _k8s_range(32, 36), "2027-01-15",
                     "istio/istio tag 1.30.5; charts read at tag 1.30.3 (tests/data/charts/*-1.30.5.txt name the commit)"),
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
LBC_CHART = Chart("aws-load-balancer-controller", "3.5.0", "https://aws.github.io/eks-charts",
                  "kubernetes-sigs/aws-load-balancer-controller tag v3.5.0 (commit 11eb202c); aws/eks-charts 5239609")
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
PROMETHEUS_CHART = Chart("prometheus", "28.10.0", "https://prometheus-community.github.io/helm-charts",
                         "prometheus-community/helm-charts tag prometheus-28.10.0, commit f49497ea (2026-02-26), app v3.10.0")
# Kiali: 2.29.0, the newest release whose chart could be read (2.33.0 is listed in the chart index, but its
# chart was not readable, so it was never checked: it was dropped for the version that was).
KIALI_CHART = Chart("kiali-server", "2.29.0", "https://kiali.org/helm-charts",
                    "kiali/helm-charts docs/kiali-server-2.29.0.tgz, added in commit d900c268 (2026-07-13)")

# Cluster add-ons (components/addons/). The EKS managed add-ons' versions are not
# pinned here: each is looked up for the cluster's Kubernetes version at deploy
# time (aws.eks.get_addon_version, EKS's default build), so they follow the cluster.
EKS_MANAGED_ADDONS = ("vpc-cni", "kube-proxy", "coredns")
# Add-on configuration values. The VPC CNI enforces Kubernetes NetworkPolicies (the global rate limit's,
# docs/governance.md) only when told to, through its node agent (from v1.14.0); AWS's value is the string "true".
# Pins below v1.15.1 are refused: before it the agent also dropped the kubelet's probes from the node
# (aws/amazon-vpc-cni-k8s#2571, aws/aws-network-policy-agent#56).
EKS_ADDON_CONFIGURATION: dict[str, dict[str, str]] = {"vpc-cni": {"enableNetworkPolicy": "true"}}
VPC_CNI_NETWORK_POLICY_SINCE = (1, 15, 1)
# metrics-server: kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1 (app 0.8.1).
METRICS_SERVER_CHART = Chart("metrics-server", "3.13.1", "https://kubernetes-sigs.github.io/metrics-server/",
                             "kubernetes-sigs/metrics-server tag metrics-server-helm-chart-3.13.1")
# Cluster Autoscaler: chart 9.59.0 (kubernetes/autoscaler, 2026-07-21) ships app
# 1.35.0; the autoscaler's minor must match the cluster's, so the image tag is
# chosen per Kubernetes minor: the newest patch tagged in kubernetes/autoscaler
# (cluster-autoscaler-1.<minor>.<patch>, all tagged 2026-07-22).
CLUSTER_AUTOSCALER_CHART = Chart("cluster-autoscaler", "9.59.0", "https://kubernetes.github.io/autoscaler",
                                 "kubernetes/autoscaler tag cluster-autoscaler-chart-9.59.0 (2026-07-21)")
CLUSTER_AUTOSCALER_IMAGE_TAGS = {
    "1.33": "v1.33.6",
    "1.34": "v1.34.5",
    "1.35": "v1.35.2",
    "1.36": "v1.36.1",
}
# External Secrets Operator (products' `secrets`): external-secrets/external-secrets tag
# helm-chart-2.9.0 (commit cc5bfbc2, 2026-08-08), app v2.9.0; its CRDs are chart templates
# (installCRDs), so Helm upgrades them with the chart. Serves external-secrets.io/v1.
EXTERNAL_SECRETS_CHART = Chart("external-secrets", "2.9.0", "https://charts.external-secrets.io",
                               "external-secrets/external-secrets tag helm-chart-2.9.0, commit cc5bfbc2 (2026-08-08)")

# The global rate limit's parts (datamesh:rateLimits: global; components/governance/rate_limit_service.py).
# envoyproxy/ratelimit has no releases after v1.4.0: its .github/workflows/main.yaml pushes, for every commit
# on main, docker.io/envoyproxy/ratelimit:<the commit's short SHA> (Makefile: git rev-parse --short=8). The
# pin is commit 3fb702589d36 (2026-01-22, "bump go version 1.25.6"), the same commit tools/ratelimit/go.mod
# builds for tools.verify (v1.4.1-0.20260122083618-3fb702589d36, the newest the Go module proxy served);
# a test keeps the two in step. Its digest could not be read from here (no registry access, and no public page
# found that records it): `crane digest docker.io/envoyproxy/ratelimit:3fb70258` gives it; append @sha256:<it>.
RATELIMIT_COMMIT = "3fb702589d36ba7cb46ca33ba462a13e35ffc048"
RATELIMIT_IMAGE = f"docker.io/envoyproxy/ratelimit:{RATELIMIT_COMMIT[:8]}"
# dev's in-cluster Redis: Docker's official image, docker-library/official-images library/redis at
# commit 32dbe4eb (2026-08-18): "Tags: 8.10.1-alpine, 8.10-alpine, 8-alpine, ...".
REDIS_IMAGE = "docker.io/library/redis:8.10.1-alpine"
# prod's ElastiCache replication group: Redis OSS 7.1, the newest Redis OSS engine ElastiCache offers
# (its "Supported Redis OSS versions" page); TLS in transit and AUTH need 6.0 or later.
ELASTICACHE_ENGINE_VERSION = "7.1"
