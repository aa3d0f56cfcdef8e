"""The configuration schema: every ``datamesh:*`` key, its type, default and meaning, and the allowed values."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from components.names import PLATFORM_NAMESPACES

NAMESPACE = "datamesh"


class ConfigError(pulumi.RunError):
    """A user mistake in stack configuration. Pulumi prints RunError without a traceback."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its Pulumi.yaml type, default (None: required) and meaning."""

    type: str  # string | integer | boolean | array | object
    description: str
    default: object = None


SCHEMA: dict[str, Key] = {
    "cluster": Key("string", "Stack kind: 'eks' (the program makes the network, the EKS cluster, its add-ons and the load "
                   "balancer controller) or 'existing' (a cluster you already run, reached through kubeconfig; "
                   "docs/existing-clusters.md).", "eks"),
    "kubeconfig": Key("string", "Secret. With cluster existing: the kubeconfig (its contents) the program deploys with. "
                      "Set with --secret.", ""),
    "istio": Key("string", "'install' (the program installs Istio's charts) or 'existing' (with cluster existing: Istio is "
                 "already there; istioVersion and istioRevision name the revision, checked against the live istiod at up).",
                 "install"),
    "oidcProviderArn": Key("string", "With cluster existing: the cluster's IAM OIDC provider ARN, for products' AWS access "
                           "(IRSA). Empty: a product declaring aws: or secrets: is refused on that stack.", ""),
    "skipAwait": Key("boolean", "With cluster existing: annotate every Kubernetes object pulumi.com/skipAwait, so the "
                     "provider does not wait for readiness; only for a control plane without nodes (a local one).", False),
    "clusterName": Key("string", "EKS cluster name; also names the VPC and tags. Empty: datamesh-<stack>.", ""),
    "kubernetesVersion": Key("string", "EKS Kubernetes minor version, e.g. 1.35. Must be in the support matrix."),
    "istioVersion": Key("string", "Istio release installed through Helm, e.g. 1.30.5. Must support kubernetesVersion. "
                        "Shorthand for one revision; empty when istioRevisions is set.", ""),
    "eksSupportType": Key("string", "EKS upgrade policy: STANDARD (auto-upgrade when standard support ends) or EXTENDED (billed extra).",
                          "STANDARD"),
    "eksAddonVersions": Key("object", "Pins for the EKS managed add-ons: {vpc-cni|kube-proxy|coredns: v1.2.3-eksbuild.4}. "
                            "Unpinned ones take EKS's default version for kubernetesVersion; vpc-cni v1.15.1 or later "
                            "(it enforces NetworkPolicies).", {}),
    "istioRevision": Key("string", "With istioVersion: the revision's name (e.g. 1-30; empty: Istio's default revision). "
                         "With istioRevisions: the revision whose Helm release is named plain istiod.", ""),
    "istioRevisions": Key("object", "One or two Istio revisions side by side, revision -> version, e.g. "
                          "{1-30: 1.30.5, 1-31: 1.31.2} ('default': Istio's unnamed revision). Empty: one, from istioVersion.", {}),
    "istioStableRevision": Key("string", "The revision the 'stable' tag points at; every mesh namespace and the gateway "
                               "use the tag. Required with two revisions.", ""),
    "vpcCidr": Key("string", "IPv4 CIDR of the VPC, /16 to /24.", "10.0.0.0/16"),
    "serviceCidr": Key("string", "Kubernetes Service CIDR; must not overlap the VPC.", "172.20.0.0/16"),
    "availabilityZones": Key("array", "Availability zones of aws:region to spread subnets and nodes over (2 to 6). "
                             "Required for an EKS stack; empty by default only so that an existing-cluster stack needs none.", []),
    "natGateways": Key("string", "Egress of the private subnets: 'single' (one NAT gateway), 'perAz' (one per zone, highly "
                       "available) or 'instance' (one t4g.nano NAT instance: cheapest, one machine; docs/operating.md).", "single"),
    "nodeCapacityType": Key("string", "Managed node group capacity: ON_DEMAND or SPOT.", "ON_DEMAND"),
    "nodeInstanceTypes": Key("array", "EC2 instance types for worker nodes (more than one helps SPOT).", ["m6i.large"]),
    "nodeMinSize": Key("integer", "Minimum worker nodes (1 to 100).", 2),
    "nodeDesiredSize": Key("integer", "Desired worker nodes, between nodeMinSize and nodeMaxSize.", 2),
    "nodeMaxSize": Key("integer", "Maximum worker nodes (1 to 100).", 4),
    "nodeDiskSize": Key("integer", "Worker root volume in GiB (20 to 1000).", 50),
    "endpointPublicAccess": Key("boolean", "Expose the Kubernetes API endpoint publicly (restricted by publicAccessCidrs).", True),
    "endpointPrivateAccess": Key("boolean", "Expose the Kubernetes API endpoint inside the VPC.", True),
    "publicAccessCidrs": Key("array", "CIDRs allowed to reach the public API endpoint.", ["0.0.0.0/0"]),
    "privateAccessSources": Key("array", "Who else may reach the private API endpoint on 443: private CIDRs (a VPN, a "
                                "peered VPC) or security group IDs (sg-..., e.g. a CI runner's in the VPC). Needs "
                                "endpointPrivateAccess. The nodes always may.", []),
    "controlPlaneLogs": Key("array", "EKS control-plane log types sent to CloudWatch.", []),
    "adminPrincipalArns": Key("array", "IAM principals given cluster-admin through EKS access entries.", []),
    "meshNamespaces": Key("array", "Extra namespaces with sidecar injection, beyond the one per product domain.", []),
    "tags": Key("object", "Extra AWS tags put on every resource (map of string to string).", {}),
    "products": Key("array", "Data products this stack runs, by name: products/<name>.yaml.", []),
    "productOverrides": Key("object", "Per product, values replacing its declaration's replicas, autoscaling, "
                            "resources, rateLimit, releases or mirror.", {}),
    "allowWildcardIam": Key("boolean", "Let products' AWS access use wildcard actions or resources (\"*\", \"s3:*\").", False),
    "allowWildcardIamProducts": Key("array", "Products whose AWS access may use wildcards, when allowWildcardIam is false.", []),
    "consumers": Key("object", "API consumers: name -> {products: [...], tier: <rateLimitTiers key>}.", {}),
    "apiKeys": Key("object", "Secret. Consumer name -> list of API keys (several allow rotation). Set with --secret.", {}),
    "rateLimitTiers": Key("object", "Per-consumer rate limits: tier -> {requests: N, period: 1m}.", {}),
    "rateLimits": Key("string", "Where rate limits are counted: 'local' (each gateway replica and sidecar keeps its own "
                      "buckets: approximate across replicas) or 'global' (the rate-limit service and Redis: exact across "
                      "every replica and sidecar).", "local"),
    "rateLimitFailure": Key("string", "With rateLimits global, what the gateway and sidecars answer when the rate-limit "
                            "service or its Redis is down: 'open' (admit) or 'closed' (refuse with 503).", "open"),
    "rateLimitRedis": Key("string", "With rateLimits global, the rate-limit service's Redis: 'elasticache' (created by the "
                          "program: TLS, encryption at rest, AUTH, private subnets) or 'in-cluster' (one pod, no "
                          "persistence: dev only).", "elasticache"),
    "rateLimitRedisNodeType": Key("string", "With rateLimitRedis elasticache: the cache node type (one primary and, "
                                  "with two or more zones, one replica).", "cache.t4g.small"),
    "rateLimitRedisAuthToken": Key("string", "Secret. With rateLimitRedis elasticache: the Redis AUTH token (16 to 128 "
                                   "printable characters, no '/', '\"', '@' or space). Set with --secret.", ""),
    "governanceAdapter": Key("string", "Who governs the APIs: 'istio' (Istio resources only) or 'anypoint' (MuleSoft's adapter).", "istio"),
    "anypoint": Key("object", "With governanceAdapter anypoint: {plan: small|medium|large, replicas: N, apiIds: {product: id}}.", {}),
    "anypointClientId": Key("string", "Secret. Anypoint connected-app client id, with governanceAdapter anypoint.", ""),
    "anypointClientSecret": Key("string", "Secret. Anypoint connected-app client secret, with governanceAdapter anypoint.", ""),
    "observability": Key("boolean", "Install Prometheus and Kiali in the cluster (access logs and metrics are always on).", False),
    "domain": Key("string", "DNS name of the gateway, e.g. api.example.com (not a zone apex): HTTPS on 443 with an ACM "
                  "certificate, no plain HTTP. Empty: no TLS, which needs allowPlainHttp.", ""),
    "hostedZoneId": Key("string", "Route 53 public hosted zone holding domain: its ACM validation record and the "
                        "gateway's CNAME are created there.", ""),
    "certificateArn": Key("string", "An issued ACM certificate for domain in aws:region, used instead of requesting one.", ""),
    "allowPlainHttp": Key("boolean", "Serve plain HTTP on port 80 without TLS; only for a stack without domain, and "
                          "refused by the gateway-tls policy where it is mandatory (prod).", False),
    "protect": Key("boolean", "Protect the KMS key, the EKS cluster and the VPC: pulumi destroy, and any replacement "
                   "of them, fails until `pulumi state unprotect` (set it on stacks whose data must survive a mistake).", False),
    "sourceUrl": Key("string", "Web address of the repository folder holding products/, ending in '/', e.g. "
                     "https://github.com/acme/datamesh/tree/main/; the catalog's backstage.io/source-location. Empty: none.", ""),
}
# Keys whose values must come from `pulumi config set --secret`; no other key may.
SECRET_KEYS = frozenset({"apiKeys", "anypointClientId", "anypointClientSecret", "rateLimitRedisAuthToken", "kubeconfig"})
CLUSTER_KINDS = ("eks", "existing")
ISTIO_MODES = ("install", "existing")
ADAPTERS = ("istio", "anypoint")
# What an offline render sees in place of a secure: value it cannot decrypt (tools/engine/stackconfig.py).
UNDECRYPTED = "PLACEHOLDER-SECRET-NOT-DECRYPTED"
RATE_LIMIT_MODES = ("local", "global")
RATE_LIMIT_FAILURE = ("open", "closed")
RATE_LIMIT_REDIS = ("elasticache", "in-cluster")
CACHE_NODE_TYPE_PATTERN = re.compile(r"cache\.[a-z][a-z0-9]{1,10}\.[a-z0-9]{1,12}")
# ElastiCache AUTH tokens: printable ASCII, 16 to 128, without '/', '"', '@' or space.
REDIS_AUTH_TOKEN_PATTERN = re.compile(r"[!#-.0-?A-~]{16,128}")

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
NAT_MODES = ("single", "perAz", "instance")
RESERVED_NAMESPACES = frozenset(PLATFORM_NAMESPACES)
# Matched with fullmatch: a "$" anchor alone lets a trailing newline through.
CLUSTER_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,99}")
REGION_PATTERN = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d")
OIDC_PROVIDER_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[A-Za-z0-9.-]{1,253}(/[A-Za-z0-9._-]{1,128}){0,4}", re.ASCII)
IAM_PRINCIPAL_PATTERN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}", re.ASCII)
INSTANCE_TYPE_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,30}\.[a-z0-9]{1,30}")
TAG_KEY_PATTERN = re.compile(r"[\w .:/=+\-@]{1,128}")
TAG_VALUE_PATTERN = re.compile(r"[\w .:/=+\-@]{0,256}")
SOURCE_URL_PATTERN = re.compile(r"https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/[-A-Za-z0-9._~/%+@]{0,500}/")
DOMAIN_PATTERN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
ADDON_VERSION_PATTERN = re.compile(r"v[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}-eksbuild\.[0-9]{1,4}")
HOSTED_ZONE_PATTERN = re.compile(r"Z[A-Z0-9]{1,31}")
SECURITY_GROUP_PATTERN = re.compile(r"sg-([0-9a-f]{8}|[0-9a-f]{17})")
MAX_PRIVATE_ACCESS_SOURCES = 20
