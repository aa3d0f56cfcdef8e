"""The stack's kind: a cluster the program makes on EKS, or an existing one it is given (docs/existing-clusters.md).

With ``datamesh:cluster: existing`` the program takes a kubeconfig (secret) and makes no
network, EKS cluster, add-ons or load balancer controller: the keys that configure those
are refused when set to anything but their default, as are the keys of an existing cluster
on an EKS stack. Istio is installed as on EKS or, with ``datamesh:istio: existing``, taken as
found (one revision, its version checked against the live istiod at ``up``).
"""

from __future__ import annotations

from collections.abc import Mapping

from components.config.schema import CLUSTER_KINDS, ISTIO_MODES, OIDC_PROVIDER_PATTERN, SCHEMA, ConfigError
from components.config.settings import ClusterSettings
from components.config.values import Values, fail, flag, parse, text
from components.inputs import show as _show

# What only an EKS stack configures: the network, the nodes, the API endpoint, EKS itself, protection of its
# KMS key, cluster and VPC, and TLS at the edge (an ACM certificate on the load balancer controller's NLB).
EKS_ONLY = (
    "vpcCidr", "serviceCidr", "availabilityZones", "natGateways", "nodeCapacityType", "nodeInstanceTypes", "nodeMinSize",
    "nodeDesiredSize", "nodeMaxSize", "nodeDiskSize", "endpointPublicAccess", "endpointPrivateAccess", "publicAccessCidrs",
    "privateAccessSources", "controlPlaneLogs", "adminPrincipalArns", "eksSupportType", "eksAddonVersions", "protect",
    "domain", "hostedZoneId", "certificateArn",
)
EXISTING_ONLY = ("kubeconfig", "oidcProviderArn", "skipAwait")


def kind(raw: Mapping[str, str]) -> str:
    """``eks`` or ``existing``, read first: which other keys a stack needs depends on it."""
    value = parse("cluster", SCHEMA["cluster"], raw.get("cluster"))
    if value not in CLUSTER_KINDS:
        raise fail("cluster", f"must be one of {', '.join(CLUSTER_KINDS)}, got {_show(value)}")
    return str(value)


def skipped(stack_kind: str) -> frozenset[str]:
    """The keys a stack of this kind does not read (each must be unset or at its default)."""
    return frozenset(EXISTING_ONLY if stack_kind == "eks" else EKS_ONLY)


def refuse_foreign_keys(stack_kind: str, raw: Mapping[str, str]) -> None:
    """A key of the other kind, set to anything but its default (the CLI passes Pulumi.yaml's defaults), is refused."""
    for key in sorted(skipped(stack_kind)):
        if key in raw and parse(key, SCHEMA[key], raw[key]) != SCHEMA[key].default:
            if stack_kind == "eks":
                raise fail(key, "applies only with datamesh:cluster existing; an EKS stack's cluster is the program's own")
            raise fail(key, "applies only to an EKS stack (datamesh:cluster eks): an existing cluster's network, nodes, "
                            "endpoint and load balancer are its owner's (docs/existing-clusters.md)")


def istio_mode(v: Values, stack_kind: str) -> str:
    mode = text(v, "istio")
    if mode not in ISTIO_MODES:
        raise fail("istio", f"must be one of {', '.join(ISTIO_MODES)}, got {_show(mode)}")
    if mode == "existing" and stack_kind == "eks":
        raise fail("istio", "existing needs datamesh:cluster existing: a cluster the program makes has no Istio but its own")
    if mode == "existing" and v.get("istioRevisions"):
        raise fail("istioRevisions", "with istio existing, name the one revision the cluster runs with istioVersion "
                                     "and istioRevision (revisions are moved by whoever installed Istio)")
    return mode


def cluster(v: Values, stack_kind: str, region: str) -> ClusterSettings:
    """The existing cluster's kubeconfig (required, secret), OIDC provider and skip-await; nothing for EKS."""
    if stack_kind == "eks":
        return ClusterSettings()
    if not text(v, "kubeconfig"):
        raise fail("kubeconfig", "is required with cluster existing: pulumi config set --secret datamesh:kubeconfig "
                                 "\"$(cat ~/.kube/config)\"")
    # Set as plain text it was refused already, as every secret key is (groups.governance).
    arn = text(v, "oidcProviderArn")
    if arn and not OIDC_PROVIDER_PATTERN.fullmatch(arn):
        raise fail("oidcProviderArn", f"{_show(arn)} is not an IAM OIDC provider ARN like "
                                      "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC")
    if arn and not region:
        raise ConfigError("aws:region: is required with datamesh:oidcProviderArn (products' IAM roles are made there)")
    if text(v, "rateLimits") == "global":
        raise fail("rateLimits", "global needs datamesh:cluster eks: the rate-limit service's Redis and its network are "
                                 "the program's own (docs/existing-clusters.md); an existing cluster runs local")
    return ClusterSettings("existing", text(v, "kubeconfig"), arn, flag(v, "skipAwait"))
