"""Validated settings, one typed group per concern: network, nodes, endpoint, edge, governance."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from components.cidr import SubnetPlan
from components.config.istio import IstioSettings

JsonMap = Mapping[str, object]


@dataclass(frozen=True)
class NetworkSettings:
    """The VPC: its CIDR, the planned subnets, NAT gateways, and the Kubernetes Service CIDR."""

    vpc_cidr: str
    service_cidr: str
    subnets: tuple[SubnetPlan, ...]
    nat_gateways: str

    @property
    def availability_zones(self) -> tuple[str, ...]:
        return tuple(s.availability_zone for s in self.subnets)


@dataclass(frozen=True)
class NodeSettings:
    """The managed node group: capacity type, instance types, bounds and disk."""

    capacity_type: str
    instance_types: tuple[str, ...]
    min_size: int
    desired_size: int
    max_size: int
    disk_size: int

    @property
    def architecture(self) -> str:
        """``arm64`` for Graviton instance types, else ``x86_64`` (one node group has one; config refuses a mix)."""
        return "arm64" if all(is_graviton(t) for t in self.instance_types) else "x86_64"

    @property
    def ami_type(self) -> str:
        """The EKS-optimized Amazon Linux 2023 AMI for the nodes' architecture (EKS picks the release)."""
        return "AL2023_ARM_64_STANDARD" if self.architecture == "arm64" else "AL2023_x86_64_STANDARD"


def is_graviton(instance_type: str) -> bool:
    """An AWS Graviton (arm64) type: a ``g`` right after the generation digit, as in t4g, m7g, c6gn, r8gd."""
    return re.fullmatch(r"[a-z]+[0-9]+g[a-z]*", instance_type.split(".")[0]) is not None


@dataclass(frozen=True)
class EndpointSettings:
    """Who reaches the Kubernetes API, as whom, and what the control plane logs."""

    public_access: bool
    private_access: bool
    public_access_cidrs: tuple[str, ...]
    control_plane_logs: tuple[str, ...]
    admin_principal_arns: tuple[str, ...]
    # Besides the nodes, who may reach the private endpoint on 443 (datamesh:privateAccessSources).
    private_access_cidrs: tuple[str, ...] = ()
    private_access_security_groups: tuple[str, ...] = ()


# An existing cluster's network, nodes and endpoint are its owner's: the program reads none of these.
NO_NETWORK = NetworkSettings(vpc_cidr="", service_cidr="", subnets=(), nat_gateways="")
NO_NODES = NodeSettings(capacity_type="", instance_types=(), min_size=0, desired_size=0, max_size=0, disk_size=0)
NO_ENDPOINT = EndpointSettings(public_access=False, private_access=False, public_access_cidrs=(), control_plane_logs=(),
                               admin_principal_arns=())


@dataclass(frozen=True)
class EdgeSettings:
    """TLS at the edge (components/platform/edge_tls.py): a domain, or plain HTTP said explicitly."""

    domain: str = ""
    hosted_zone_id: str = ""
    certificate_arn: str = ""
    allow_plain_http: bool = False


@dataclass(frozen=True)
class RateLimitSettings:
    """Where limits are counted (datamesh:rateLimits) and, in global mode, the failure policy and the Redis."""

    mode: str = "local"  # local | global
    failure: str = "open"  # open | closed: Envoy's failure_mode_deny is closed
    redis: str = "elasticache"  # elasticache | in-cluster
    redis_node_type: str = "cache.t4g.small"
    redis_auth_token: str = field(repr=False, default="")  # secret: never in a message, an output or a file

    @property
    def is_global(self) -> bool:
        return self.mode == "global"


@dataclass(frozen=True)
class ClusterSettings:
    """The stack's kind (components/config/cluster_kind.py): a cluster the program makes, or one it is given."""

    kind: str = "eks"  # eks | existing
    # existing only: the kubeconfig (secret), the IAM OIDC provider for products' AWS access, and skip-await.
    kubeconfig: str = field(repr=False, default="")
    oidc_provider_arn: str = ""
    skip_await: bool = False

    @property
    def existing(self) -> bool:
        return self.kind == "existing"

    @property
    def oidc_issuer(self) -> str:
        """The provider's issuer (without https://), as IRSA trust policies name it."""
        return self.oidc_provider_arn.partition(":oidc-provider/")[2]


@dataclass(frozen=True)
class GovernanceSettings:
    """Who governs the APIs, and the raw consumer, key, tier and Anypoint maps
    (checked against the products by components.governance.access and .anypoint)."""

    adapter: str
    observability: bool
    consumers: JsonMap
    rate_limit_tiers: JsonMap
    anypoint: JsonMap
    # Secret values: never in a message, an output or a rendered file. repr=False keeps them out of tracebacks.
    api_keys: JsonMap = field(repr=False, default_factory=dict)
    anypoint_client_id: str = field(repr=False, default="")
    anypoint_client_secret: str = field(repr=False, default="")
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings for one stack, by group."""

    stack: str
    region: str
    cluster_name: str
    kubernetes_version: str
    istio: IstioSettings
    network: NetworkSettings
    nodes: NodeSettings
    endpoint: EndpointSettings
    edge: EdgeSettings
    governance: GovernanceSettings
    mesh_namespaces: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    products: tuple[str, ...]
    product_overrides: Mapping[str, JsonMap]  # checked against the declarations by components.products
    # True, or the products whose AWS access may use wildcard actions or resources.
    allow_wildcard_iam: bool | frozenset[str]
    secret_keys: frozenset[str] = frozenset()
    eks_support_type: str = "STANDARD"
    eks_addon_versions: dict[str, str] = field(default_factory=dict)
    source_url: str = ""  # the catalog's source-location base; "" for none
    protect: bool = False  # protect the KMS key, the EKS cluster and the VPC (datamesh:protect)
    warnings: tuple[str, ...] = ()  # what is valid but needs the reader's attention, logged by the program
    cluster: ClusterSettings = field(default_factory=ClusterSettings)  # eks, or an existing cluster

    @property
    def availability_zones(self) -> tuple[str, ...]:
        return self.network.availability_zones

    @property
    def uses_aws(self) -> bool:
        """Whether the stack makes AWS resources: always on EKS; on an existing cluster only with an OIDC provider."""
        return not self.cluster.existing or bool(self.cluster.oidc_provider_arn)

    @property
    def tag_map(self) -> dict[str, str]:
        """Tags for every AWS resource: the stack's own plus ownership tags."""
        return {**dict(self.tags), "datamesh:stack": self.stack, "datamesh:cluster": self.cluster_name}

    @property
    def injection_label(self) -> tuple[str, str]:
        """The namespace label that turns on sidecar injection: the revision tag (components/config/istio.py)."""
        return self.istio.injection_label
