"""One parser per settings group; each raises ``ConfigError`` naming the key."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Mapping
from datetime import date

from components import versions
from components.cidr import CidrError, overlaps, plan_subnets
from components.config.schema import (
    ADAPTERS,
    ADDON_VERSION_PATTERN,
    CACHE_NODE_TYPE_PATTERN,
    CAPACITY_TYPES,
    CLUSTER_NAME_PATTERN,
    DOMAIN_PATTERN,
    HOSTED_ZONE_PATTERN,
    IAM_PRINCIPAL_PATTERN,
    INSTANCE_TYPE_PATTERN,
    LOG_TYPES,
    MAX_PRIVATE_ACCESS_SOURCES,
    NAT_MODES,
    RATE_LIMIT_FAILURE,
    RATE_LIMIT_MODES,
    RATE_LIMIT_REDIS,
    REDIS_AUTH_TOKEN_PATTERN,
    REGION_PATTERN,
    RESERVED_NAMESPACES,
    SCHEMA,
    SECRET_KEYS,
    SECURITY_GROUP_PATTERN,
    SOURCE_URL_PATTERN,
    TAG_KEY_PATTERN,
    TAG_VALUE_PATTERN,
    UNDECRYPTED,
)
from components.config.settings import (
    EdgeSettings,
    EndpointSettings,
    GovernanceSettings,
    JsonMap,
    NetworkSettings,
    NodeSettings,
    RateLimitSettings,
    is_graviton,
)
from components.config.values import (
    Values,
    cidr,
    config_error,
    each,
    fail,
    flag,
    int_range,
    mapping,
    strings,
    text,
    unique,
    whole,
)
from components.inputs import show as _show
from components.names import is_dns_label, is_name
from components.problems import Problem, did_you_mean


def check_keys(raw: Mapping[str, str], secret: frozenset[str]) -> None:
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        shown = unknown[0] if re.fullmatch(r"[\w.:/-]{1,100}", unknown[0], re.ASCII) else _show(unknown[0])
        close = difflib.get_close_matches(unknown[0], SCHEMA, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise fail(shown, f"is not a known key ({hint}every key is in docs/reference.md and Pulumi.yaml)")
    # First, before any message could quote a value: a secure: value on a key datamesh does not
    # handle as a secret would reach plain outputs, tags and messages once decrypted. Refuse it.
    not_secret = sorted(set(secret) - SECRET_KEYS)
    if not_secret:
        raise fail(not_secret[0], "is set with --secret (secure:), but datamesh handles it as plain text and would "
                    f"show it; only {', '.join(sorted(SECRET_KEYS))} may be secret (value hidden)")


def region(region: str | None) -> str:
    if not region:
        raise config_error(Problem("aws:region", "is required (pulumi config set aws:region <region>)"))
    if not REGION_PATTERN.fullmatch(region):
        raise config_error(Problem("aws:region", f"{_show(region)} is not an AWS region name"))
    return region


def cluster_name(v: Values, stack: str) -> str:
    cluster_name = text(v, "clusterName") or f"datamesh-{stack}"
    if not CLUSTER_NAME_PATTERN.fullmatch(cluster_name):
        raise fail("clusterName", f"{_show(cluster_name)} must start with a letter and hold only letters, digits and '-' (100 at most)")
    return cluster_name


def today() -> date:
    """The date support windows are judged on: ``DATAMESH_TODAY`` (ISO, for tests and rehearsals) or today."""
    override = os.environ.get("DATAMESH_TODAY", "")
    return date.fromisoformat(override) if override else date.today()


def support_warnings(k8s: str, support: str) -> tuple[str, ...]:
    """A warning when STANDARD support ends soon: EKS then upgrades the control plane on its own."""
    days = versions.days_of_standard_support(k8s, today())
    if support != "STANDARD" or days > versions.SUPPORT_WARNING_DAYS:
        return ()
    ends = versions.KUBERNETES_STANDARD_SUPPORT_ENDS[k8s]
    return (f"datamesh:eksSupportType: STANDARD: EKS ends standard support for Kubernetes {k8s} on {ends} ({days} days) and "
            "then upgrades the control plane by itself, leaving the nodes, add-ons and the pinned kubernetesVersion "
            "behind (the next up after a refresh fails). Upgrade kubernetesVersion before that date "
            "(docs/operating.md, \"Kubernetes, one minor up\"), or set EXTENDED (billed extra).",)


def releases(v: Values, eks: bool = True) -> tuple[str, str, dict[str, str]]:
    """Kubernetes, the EKS support type and the add-on pins (Istio's revisions: components/config/istio.py).

    An existing cluster (``eks=False``) names its Kubernetes minor only: it has no EKS support type or add-ons."""
    k8s = text(v, "kubernetesVersion")
    if k8s not in versions.KUBERNETES_VERSIONS:
        raise fail("kubernetesVersion", f"{_show(k8s)} is not supported; supported: {', '.join(versions.KUBERNETES_VERSIONS)}")
    if not eks:
        return k8s, text(v, "eksSupportType"), {}
    support = text(v, "eksSupportType")
    if support not in versions.EKS_SUPPORT_TYPES:
        raise fail("eksSupportType", f"must be one of {', '.join(versions.EKS_SUPPORT_TYPES)}, got {_show(support)}")
    if support == "STANDARD" and versions.standard_support_ended(k8s, today()):
        ends = versions.KUBERNETES_STANDARD_SUPPORT_ENDS[k8s]
        raise fail("eksSupportType", f"STANDARD: Kubernetes {k8s} left standard support on {ends}; "
                    "set EXTENDED until the cluster is upgraded")
    addon_versions: dict[str, str] = {}
    for addon, version in mapping(v, "eksAddonVersions").items():
        if addon not in versions.EKS_MANAGED_ADDONS:
            raise fail("eksAddonVersions", f"{_show(addon)} is not a managed add-on ({', '.join(versions.EKS_MANAGED_ADDONS)})"
                                          f"{did_you_mean(str(addon), versions.EKS_MANAGED_ADDONS)}")
        if not isinstance(version, str) or not ADDON_VERSION_PATTERN.fullmatch(version):
            raise fail(f"eksAddonVersions.{addon}", f"{_show(version)} is not an EKS add-on version like v1.19.2-eksbuild.1")
        release = tuple(int(n) for n in version[1:].split("-")[0].split("."))
        if addon == "vpc-cni" and release < versions.VPC_CNI_NETWORK_POLICY_SINCE:
            since = "v" + ".".join(map(str, versions.VPC_CNI_NETWORK_POLICY_SINCE))
            raise fail(f"eksAddonVersions.{addon}", f"{version} cannot enforce NetworkPolicies and admit the kubelet's probes "
                                                       f"(from {since}); pin {since} or later")
        addon_versions[addon] = version
    return k8s, support, addon_versions


def network(v: Values, region: str) -> NetworkSettings:
    vpc_cidr = cidr("vpcCidr", text(v, "vpcCidr"))
    if ipaddress.IPv4Network(vpc_cidr).prefixlen > 24:
        raise fail("vpcCidr", f"{vpc_cidr} is too small; use /16 to /24")
    service_cidr = cidr("serviceCidr", text(v, "serviceCidr"))
    if overlaps(vpc_cidr, service_cidr):
        raise fail("serviceCidr", f"{service_cidr} overlaps vpcCidr {vpc_cidr}")
    zones = unique("availabilityZones", strings(v, "availabilityZones"))
    if not zones:  # required for EKS; the default is empty only for existing-cluster stacks (cluster_kind.EKS_ONLY)
        raise fail("availabilityZones", f"is required ({SCHEMA['availabilityZones'].description})")
    if not 2 <= len(zones) <= 6:
        raise fail("availabilityZones", f"EKS needs 2 to 6 zones, got {len(zones)}")
    for zone in zones:
        if not re.fullmatch(re.escape(region) + r"[a-z]", zone):
            raise fail("availabilityZones", f"{_show(zone)} is not a zone of aws:region {region}")
    try:
        subnets = tuple(plan_subnets(vpc_cidr, list(zones)))
    except CidrError as exc:
        raise fail("vpcCidr", str(exc)) from None
    nat = text(v, "natGateways")
    if nat not in NAT_MODES:
        raise fail("natGateways", f"must be one of {', '.join(NAT_MODES)}, got {_show(nat)}")
    return NetworkSettings(vpc_cidr=vpc_cidr, service_cidr=service_cidr, subnets=subnets, nat_gateways=nat)


def nodes(v: Values) -> NodeSettings:
    capacity = text(v, "nodeCapacityType")
    if capacity not in CAPACITY_TYPES:
        raise fail("nodeCapacityType", f"must be one of {', '.join(CAPACITY_TYPES)}, got {_show(capacity)}")
    instance_types = unique("nodeInstanceTypes", each(
        "nodeInstanceTypes", strings(v, "nodeInstanceTypes"), INSTANCE_TYPE_PATTERN.fullmatch, "an EC2 instance type like m6i.large"))
    if not instance_types:
        raise fail("nodeInstanceTypes", "must list at least one instance type")
    graviton = [t for t in instance_types if is_graviton(t)]
    if graviton and len(graviton) != len(instance_types):
        raise fail("nodeInstanceTypes", f"mixes Graviton (arm64: {', '.join(graviton)}) and x86_64 types; one node group "
                                        "runs one architecture (its AMI)")
    low = int_range("nodeMinSize", whole(v, "nodeMinSize"), 1, 100)
    high = int_range("nodeMaxSize", whole(v, "nodeMaxSize"), 1, 100)
    if low > high:
        raise fail("nodeMinSize", f"{low} is above nodeMaxSize {high}")
    desired = int_range("nodeDesiredSize", whole(v, "nodeDesiredSize"), low, high)
    disk = int_range("nodeDiskSize", whole(v, "nodeDiskSize"), 20, 1000)
    return NodeSettings(capacity_type=capacity, instance_types=instance_types, min_size=low,
                        desired_size=desired, max_size=high, disk_size=disk)


def endpoint(v: Values) -> EndpointSettings:
    public, private = flag(v, "endpointPublicAccess"), flag(v, "endpointPrivateAccess")
    public_cidrs = unique("publicAccessCidrs", [cidr("publicAccessCidrs", c) for c in strings(v, "publicAccessCidrs")])
    if not public and not private:
        raise fail("endpointPublicAccess", "and endpointPrivateAccess are both false: nothing could reach the API")
    if public and not public_cidrs:
        raise fail("publicAccessCidrs", "is empty while endpointPublicAccess is true")
    logs = unique("controlPlaneLogs", each(
        "controlPlaneLogs", strings(v, "controlPlaneLogs"), LOG_TYPES.__contains__, f"one of {', '.join(LOG_TYPES)}"))
    admins = unique("adminPrincipalArns", each(
        "adminPrincipalArns", strings(v, "adminPrincipalArns"), IAM_PRINCIPAL_PATTERN.fullmatch, "an IAM role or user ARN"))
    cidrs, groups = private_access_sources(v, private)
    return EndpointSettings(public_access=public, private_access=private,
                            public_access_cidrs=public_cidrs if public else (),
                            control_plane_logs=logs, admin_principal_arns=admins,
                            private_access_cidrs=cidrs, private_access_security_groups=groups)


def private_access_sources(v: Values, private: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``privateAccessSources``: private CIDRs and security group IDs allowed on the API's 443."""
    key = "privateAccessSources"
    sources = list(unique(key, strings(v, key)))
    if sources and not private:
        raise fail(key, "is set while endpointPrivateAccess is false: there is no private endpoint to reach")
    if len(sources) > MAX_PRIVATE_ACCESS_SOURCES:
        raise fail(key, f"lists {len(sources)} sources; {MAX_PRIVATE_ACCESS_SOURCES} at most (each is a security group rule)")
    cidrs, groups = [], []
    for source in sources:
        if source.startswith("sg-"):
            if not SECURITY_GROUP_PATTERN.fullmatch(source):
                raise fail(key, f"{_show(source)} is not a security group ID: 'sg-' and 8 or 17 lowercase hex digits")
            groups.append(source)
            continue
        network = ipaddress.IPv4Network(cidr(key, source))
        if not network.is_private or network.prefixlen == 0:
            raise fail(key, f"{_show(source)} is not a private network: the private endpoint is reached only from the "
                            "VPC and networks routed to it (use publicAccessCidrs for public addresses)")
        cidrs.append(str(network))
    return tuple(cidrs), tuple(groups)


def mesh_namespaces(v: Values) -> tuple[str, ...]:
    namespaces = unique("meshNamespaces", each(
        "meshNamespaces", strings(v, "meshNamespaces"), is_dns_label,
        "a DNS label (lowercase letters, digits, '-', 63 at most)"))
    for ns in namespaces:
        if ns in RESERVED_NAMESPACES:
            raise fail("meshNamespaces", f"{_show(ns)} is reserved for the platform")
    return namespaces


def tags(v: Values) -> tuple[tuple[str, str], ...]:
    tags = mapping(v, "tags")
    if len(tags) > 40:  # AWS allows 50 per resource; datamesh adds its own
        raise fail("tags", f"has {len(tags)} tags; 40 at most")
    for tag_key, tag_value in tags.items():
        if not TAG_KEY_PATTERN.fullmatch(tag_key) or tag_key.lower().startswith("aws:"):
            raise fail("tags", f"{_show(tag_key)} is not a usable AWS tag key")
        if not isinstance(tag_value, str):
            raise fail(f"tags.{tag_key}", f"the value must be a string, got {_show(tag_value)}")
        if not TAG_VALUE_PATTERN.fullmatch(tag_value):
            raise fail(f"tags.{tag_key}", f"{_show(tag_value)} is not a usable AWS tag value")
    return tuple(sorted((k, str(value)) for k, value in tags.items()))


def products(v: Values) -> tuple[tuple[str, ...], bool | frozenset[str]]:
    """The selected products (names, never paths: each selects products/<name>.yaml) and the wildcard-IAM allowance."""
    products = unique("products", each("products", strings(v, "products"), is_name,
                                         "a product name (lowercase letters, digits, '-'; no paths)"))
    wildcard_products = unique("allowWildcardIamProducts", each(
        "allowWildcardIamProducts", strings(v, "allowWildcardIamProducts"), is_name, "a product name"))
    for name in wildcard_products:
        if name not in products:
            raise fail("allowWildcardIamProducts", f"{name} is not a selected product{did_you_mean(name, products)}")
    return products, True if flag(v, "allowWildcardIam") else frozenset(wildcard_products)


def governance(v: Values, raw: Mapping[str, str], secret: frozenset[str]) -> GovernanceSettings:
    for key in sorted(SECRET_KEYS):
        # The CLI passes Pulumi.yaml's defaults (empty) as plain values; only a value that was set must be secret.
        if key in raw and key not in secret and v[key] != SCHEMA[key].default:
            raise fail(key, f"must be a secret: pulumi config set --secret datamesh:{key} ...")
    adapter = text(v, "governanceAdapter")
    if adapter not in ADAPTERS:
        raise fail("governanceAdapter", f"must be one of {', '.join(ADAPTERS)}, got {_show(adapter)}")
    return GovernanceSettings(
        adapter=adapter, observability=flag(v, "observability"), consumers=mapping(v, "consumers"),
        rate_limit_tiers=mapping(v, "rateLimitTiers"), anypoint=mapping(v, "anypoint"), api_keys=mapping(v, "apiKeys"),
        anypoint_client_id=text(v, "anypointClientId"), anypoint_client_secret=text(v, "anypointClientSecret"),
        rate_limits=rate_limits(v, adapter),
    )


def rate_limits(v: Values, adapter: str) -> RateLimitSettings:
    """datamesh:rateLimits and, for global mode, its failure policy and Redis (the token is checked, never quoted)."""
    mode, failure, redis = text(v, "rateLimits"), text(v, "rateLimitFailure"), text(v, "rateLimitRedis")
    for key, value, allowed in (("rateLimits", mode, RATE_LIMIT_MODES), ("rateLimitFailure", failure, RATE_LIMIT_FAILURE),
                                ("rateLimitRedis", redis, RATE_LIMIT_REDIS)):
        if value not in allowed:
            raise fail(key, f"must be one of {', '.join(allowed)}, got {_show(value)}")
    node_type, token = text(v, "rateLimitRedisNodeType"), text(v, "rateLimitRedisAuthToken")
    if not CACHE_NODE_TYPE_PATTERN.fullmatch(node_type):
        raise fail("rateLimitRedisNodeType", f"{_show(node_type)} is not an ElastiCache node type like cache.t4g.small")
    if mode == "global" and adapter != "istio":
        raise fail("rateLimits", "global needs governanceAdapter istio (the Anypoint adapter applies its own policies)")
    if mode == "global" and redis == "elasticache":
        if not token:
            raise fail("rateLimitRedisAuthToken", "is required with rateLimits global and rateLimitRedis elasticache: "
                       "pulumi config set --secret datamesh:rateLimitRedisAuthToken \"$(openssl rand -hex 32)\"")
        if not token.startswith(UNDECRYPTED) and not REDIS_AUTH_TOKEN_PATTERN.fullmatch(token):
            raise fail("rateLimitRedisAuthToken", "must be 16 to 128 printable characters without '/', '\"', '@' or space")
    return RateLimitSettings(mode, failure, redis, node_type, token)


def overrides(v: Values) -> dict[str, JsonMap]:
    # Shapes are checked against the declarations by components.products; a non-map entry stays as given.
    return mapping(v, "productOverrides")  # type: ignore[return-value]


def source_url(url: str) -> str:
    if url and not SOURCE_URL_PATTERN.fullmatch(url):
        raise fail("sourceUrl", f"{_show(url)} is not an https:// address of a folder (ending in '/')")
    return url


def edge(v: Values, region: str) -> EdgeSettings:
    """TLS at the edge: a domain with a way to a certificate, or plain HTTP asked for by name."""
    domain, zone, arn = text(v, "domain"), text(v, "hostedZoneId"), text(v, "certificateArn")
    if not domain:
        for key in ("hostedZoneId", "certificateArn"):
            if v[key]:
                raise fail(key, "is set but domain is not: set datamesh:domain, the name the certificate is for")
        if not v["allowPlainHttp"]:
            raise fail("domain", "is required for HTTPS at the gateway; set it with hostedZoneId or certificateArn, "
                        "or set datamesh:allowPlainHttp: true to serve plain HTTP (keys then cross the network in clear)")
        return EdgeSettings(allow_plain_http=True)
    if not DOMAIN_PATTERN.fullmatch(domain):
        raise fail("domain", f"{_show(domain)} is not a DNS name like api.example.com (lowercase, no wildcard, no trailing dot)")
    if domain.count(".") < 2:
        # The gateway's name is a CNAME to the NLB, and Route 53 refuses a CNAME at a zone's apex.
        # A two-label name is almost always an apex; a deeper apex (example.co.uk) is not caught here.
        raise fail("domain", f"{_show(domain)} looks like a zone apex, where Route 53 allows no CNAME; "
                    "use a name below it, e.g. api.example.com")
    if v["allowPlainHttp"]:
        raise fail("allowPlainHttp", "must be false when domain is set: with TLS the gateway serves no plain HTTP")
    if not zone and not arn:
        raise fail("domain", "needs hostedZoneId (to validate a new ACM certificate) or certificateArn (an issued one)")
    if zone and not HOSTED_ZONE_PATTERN.fullmatch(zone):
        raise fail("hostedZoneId", f"{_show(zone)} is not a Route 53 hosted zone ID like Z0123456789ABCDEFGHIJ")
    if arn and not re.fullmatch(rf"arn:aws[a-z-]*:acm:{re.escape(region)}:\d{{12}}:certificate/"
                                 r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", arn):
        raise fail("certificateArn", f"{_show(arn)} is not an ACM certificate ARN in aws:region {region} (the NLB's region)")
    return EdgeSettings(domain=domain, hosted_zone_id=zone, certificate_arn=arn)
