"""Stack configuration: one schema, parsed and validated before any resource exists.

Every ``datamesh:*`` key the program reads is declared once, in ``SCHEMA``, with
its type, default and description (``Pulumi.yaml`` declares the same keys for
the CLI; a test keeps the two in step). ``load_settings`` turns the raw strings
Pulumi hands the program into an immutable ``Settings``; any bad value raises
``ConfigError`` with one line naming the key. Only ``SECRET_KEYS`` may be (and
must be) secret: a ``secure:`` value on any other key is refused before a
message could quote it (docs/reference.md, "Secrets: the secure: rule").
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import versions
from components.cidr import CidrError, SubnetPlan, overlaps, plan_subnets
from components.inputs import show as _show
from components.names import is_dns_label, is_name

NAMESPACE = "datamesh"


class ConfigError(pulumi.RunError):
    """A user mistake in stack configuration. Pulumi prints RunError without a traceback."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its Pulumi.yaml type, default (None: required) and meaning."""

    type: str  # string | integer | boolean | array | object
    description: str
    default: Any = None


SCHEMA: dict[str, Key] = {
    "clusterName": Key("string", "EKS cluster name; also names the VPC and tags. Empty: datamesh-<stack>.", ""),
    "kubernetesVersion": Key("string", "EKS Kubernetes minor version, e.g. 1.35. Must be in the support matrix."),
    "istioVersion": Key("string", "Istio release installed through Helm, e.g. 1.30.5. Must support kubernetesVersion."),
    "eksSupportType": Key("string", "EKS upgrade policy: STANDARD (auto-upgrade when standard support ends) or EXTENDED (billed extra).",
                          "STANDARD"),
    "eksAddonVersions": Key("object", "Pins for the EKS managed add-ons: {vpc-cni|kube-proxy|coredns: v1.2.3-eksbuild.4}. "
                            "Unpinned ones take EKS's default version for kubernetesVersion.", {}),
    "istioRevision": Key("string", "Istio revision name (e.g. 1-30). Empty: the default revision and istio-injection=enabled.", ""),
    "vpcCidr": Key("string", "IPv4 CIDR of the VPC, /16 to /24.", "10.0.0.0/16"),
    "serviceCidr": Key("string", "Kubernetes Service CIDR; must not overlap the VPC.", "172.20.0.0/16"),
    "availabilityZones": Key("array", "Availability zones of aws:region to spread subnets and nodes over (2 to 6)."),
    "natGateways": Key("string", "NAT gateways: 'single' (one, cheap) or 'perAz' (one per zone, highly available).", "single"),
    "nodeCapacityType": Key("string", "Managed node group capacity: ON_DEMAND or SPOT.", "ON_DEMAND"),
    "nodeInstanceTypes": Key("array", "EC2 instance types for worker nodes (more than one helps SPOT).", ["m6i.large"]),
    "nodeMinSize": Key("integer", "Minimum worker nodes (1 to 100).", 2),
    "nodeDesiredSize": Key("integer", "Desired worker nodes, between nodeMinSize and nodeMaxSize.", 2),
    "nodeMaxSize": Key("integer", "Maximum worker nodes (1 to 100).", 4),
    "nodeDiskSize": Key("integer", "Worker root volume in GiB (20 to 1000).", 50),
    "endpointPublicAccess": Key("boolean", "Expose the Kubernetes API endpoint publicly (restricted by publicAccessCidrs).", True),
    "endpointPrivateAccess": Key("boolean", "Expose the Kubernetes API endpoint inside the VPC.", True),
    "publicAccessCidrs": Key("array", "CIDRs allowed to reach the public API endpoint.", ["0.0.0.0/0"]),
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
    "sourceUrl": Key("string", "Web address of the repository folder holding products/, ending in '/', e.g. "
                     "https://github.com/acme/datamesh/tree/main/; the catalog's backstage.io/source-location. Empty: none.", ""),
}
# Keys whose values must come from `pulumi config set --secret`; no other key may.
SECRET_KEYS = frozenset({"apiKeys", "anypointClientId", "anypointClientSecret"})
ADAPTERS = ("istio", "anypoint")

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
NAT_MODES = ("single", "perAz")
RESERVED_NAMESPACES = frozenset(
    {"default", "kube-system", "kube-public", "kube-node-lease", "istio-system", "istio-ingress"}
)
# Matched with fullmatch: a "$" anchor alone lets a trailing newline through.
_CLUSTER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,99}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d")
_IAM_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}", re.ASCII)
_INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]{0,30}\.[a-z0-9]{1,30}")
_TAG_KEY = re.compile(r"[\w .:/=+\-@]{1,128}")
_TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}")
_SOURCE_URL = re.compile(r"https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?/[-A-Za-z0-9._~/%+@]{0,500}/")
_DOMAIN = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_ADDON_VERSION = re.compile(r"v[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}-eksbuild\.[0-9]{1,4}")
_HOSTED_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings for one stack."""

    stack: str
    region: str
    cluster_name: str
    kubernetes_version: str
    istio: versions.IstioRelease
    istio_revision: str
    vpc_cidr: str
    service_cidr: str
    subnets: tuple[SubnetPlan, ...]
    nat_gateways: str
    node_capacity_type: str
    node_instance_types: tuple[str, ...]
    node_min_size: int
    node_desired_size: int
    node_max_size: int
    node_disk_size: int
    endpoint_public_access: bool
    endpoint_private_access: bool
    public_access_cidrs: tuple[str, ...]
    control_plane_logs: tuple[str, ...]
    admin_principal_arns: tuple[str, ...]
    mesh_namespaces: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    products: tuple[str, ...]
    product_overrides: Any  # checked against the declarations by components.products
    # True, or the products whose AWS access may use wildcard actions or resources.
    allow_wildcard_iam: bool | frozenset[str]
    governance_adapter: str
    observability: bool
    # Checked against the products by components.access and components.anypoint:
    consumers: Any
    rate_limit_tiers: Any
    anypoint: Any
    # Secret values: never in a message, an output or a rendered file. repr=False keeps them out of tracebacks.
    api_keys: Any = field(repr=False, default=None)
    secret_keys: frozenset[str] = frozenset()
    anypoint_client_id: str = field(repr=False, default="")
    anypoint_client_secret: str = field(repr=False, default="")
    eks_support_type: str = "STANDARD"
    eks_addon_versions: dict[str, str] = field(default_factory=dict)
    # TLS at the edge (components/platform/edge_tls.py): a domain, or plain HTTP said explicitly.
    domain: str = ""
    source_url: str = ""  # the catalog's source-location base; "" for none
    hosted_zone_id: str = ""
    certificate_arn: str = ""
    allow_plain_http: bool = False

    @property
    def availability_zones(self) -> tuple[str, ...]:
        return tuple(s.availability_zone for s in self.subnets)

    @property
    def tag_map(self) -> dict[str, str]:
        """Tags for every AWS resource: the stack's own plus ownership tags."""
        return {**dict(self.tags), "datamesh:stack": self.stack, "datamesh:cluster": self.cluster_name}

    @property
    def injection_label(self) -> tuple[str, str]:
        """The namespace label that turns on sidecar injection for this revision."""
        if self.istio_revision:
            return ("istio.io/rev", self.istio_revision)
        return ("istio-injection", "enabled")


# --- raw value parsing -------------------------------------------------------


def _fail(key: str, problem: str) -> ConfigError:
    return ConfigError(f"{NAMESPACE}:{key}: {problem}")


def _parse(key: str, spec: Key, raw: str | None) -> Any:
    """Turn the string Pulumi passes into the declared type, or the default."""
    if raw is not None and key in SECRET_KEYS:
        try:
            return _parse_value(key, spec, raw)
        except ConfigError:
            # Never echo a secret: say what is wrong with it, not what it is.
            raise _fail(key, f"is not a valid {'map' if spec.type == 'object' else spec.type} (value hidden)") from None
    return _parse_value(key, spec, raw)


def _parse_value(key: str, spec: Key, raw: str | None) -> Any:
    if raw is None:
        if spec.default is None:
            raise _fail(key, f"is required ({spec.description})")
        return spec.default
    if spec.type == "string":
        return raw
    if spec.type == "integer":
        try:
            return int(raw, 10)
        except ValueError:
            raise _fail(key, f"must be a whole number, got {_show(raw)}") from None
    if spec.type == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise _fail(key, f"must be true or false, got {_show(raw)}")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise _fail(key, f"must be a YAML {'list' if spec.type == 'array' else 'map'}, got {_show(raw)}") from None
    if spec.type == "array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(key, f"must be a list of strings, got {_show(value)}")
        return value
    if not isinstance(value, dict):
        raise _fail(key, f"must be a map, got {_show(value)}")
    return value


def _cidr(key: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise _fail(key, f"{_show(value)} is not a valid IPv4 network CIDR") from None


def _int_range(key: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise _fail(key, f"must be between {low} and {high}, got {value}")
    return value


def _unique(key: str, values: list[str]) -> tuple[str, ...]:
    seen = set()
    for v in values:
        if v in seen:
            raise _fail(key, f"lists {_show(v)} twice")
        seen.add(v)
    return tuple(values)


def _each(key: str, values: list[str], ok: Callable[[str], bool], what: str) -> list[str]:
    for v in values:
        if not ok(v):
            raise _fail(key, f"{_show(v)} is not {what}")
    return values


# --- the whole stack ---------------------------------------------------------


def load_settings(raw: Mapping[str, str], stack: str, region: str | None, secret: frozenset[str] = frozenset()) -> Settings:
    """Validate the ``datamesh:*`` config map (``raw``, keys without namespace; ``secret``: which are secrets) and ``aws:region``."""
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        shown = unknown[0] if re.fullmatch(r"[\w.:/-]{1,100}", unknown[0], re.ASCII) else _show(unknown[0])
        close = difflib.get_close_matches(unknown[0], SCHEMA, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise _fail(shown, f"is not a known key ({hint}every key is in docs/reference.md and Pulumi.yaml)")
    # First, before any message could quote a value: a secure: value on a key datamesh does not
    # handle as a secret would reach plain outputs, tags and messages once decrypted. Refuse it.
    not_secret = sorted(set(secret) - SECRET_KEYS)
    if not_secret:
        raise _fail(not_secret[0], "is set with --secret (secure:), but datamesh handles it as plain text and would "
                    f"show it; only {', '.join(sorted(SECRET_KEYS))} may be secret (value hidden)")
    v = {key: _parse(key, spec, raw.get(key)) for key, spec in SCHEMA.items()}

    if not region:
        raise ConfigError("aws:region: is required (pulumi config set aws:region <region>)")
    if not _REGION.fullmatch(region):
        raise ConfigError(f"aws:region: {_show(region)} is not an AWS region name")

    cluster_name = v["clusterName"] or f"datamesh-{stack}"
    if not _CLUSTER_NAME.fullmatch(cluster_name):
        raise _fail("clusterName", f"{_show(cluster_name)} must start with a letter and hold only letters, digits and '-' (100 at most)")

    k8s = v["kubernetesVersion"]
    if k8s not in versions.KUBERNETES_VERSIONS:
        raise _fail("kubernetesVersion", f"{_show(k8s)} is not supported; supported: {', '.join(versions.KUBERNETES_VERSIONS)}")
    try:
        istio = versions.istio_release(v["istioVersion"], k8s)
    except versions.UnsupportedVersionError as exc:
        raise _fail("istioVersion", str(exc)) from None
    if v["eksSupportType"] not in versions.EKS_SUPPORT_TYPES:
        raise _fail("eksSupportType", f"must be one of {', '.join(versions.EKS_SUPPORT_TYPES)}, got {_show(v['eksSupportType'])}")
    if v["eksSupportType"] == "STANDARD" and k8s in versions.KUBERNETES_PAST_STANDARD_SUPPORT:
        ends = versions.KUBERNETES_STANDARD_SUPPORT_ENDS[k8s]
        raise _fail("eksSupportType", f"STANDARD: Kubernetes {k8s} left standard support on {ends}; "
                    "set EXTENDED until the cluster is upgraded")
    addon_versions = v["eksAddonVersions"]
    for addon, version in addon_versions.items():
        if addon not in versions.EKS_MANAGED_ADDONS:
            raise _fail("eksAddonVersions", f"{_show(addon)} is not a managed add-on ({', '.join(versions.EKS_MANAGED_ADDONS)})")
        if not isinstance(version, str) or not _ADDON_VERSION.fullmatch(version):
            raise _fail(f"eksAddonVersions.{addon}", f"{_show(version)} is not an EKS add-on version like v1.19.2-eksbuild.1")
    revision = v["istioRevision"]
    if revision and not is_dns_label(revision):
        raise _fail("istioRevision", f"{_show(revision)} must be a DNS label (lowercase letters, digits, '-'), e.g. 1-30")

    vpc_cidr = _cidr("vpcCidr", v["vpcCidr"])
    if ipaddress.IPv4Network(vpc_cidr).prefixlen > 24:
        raise _fail("vpcCidr", f"{vpc_cidr} is too small; use /16 to /24")
    service_cidr = _cidr("serviceCidr", v["serviceCidr"])
    if overlaps(vpc_cidr, service_cidr):
        raise _fail("serviceCidr", f"{service_cidr} overlaps vpcCidr {vpc_cidr}")

    zones = _unique("availabilityZones", v["availabilityZones"])
    if not 2 <= len(zones) <= 6:
        raise _fail("availabilityZones", f"EKS needs 2 to 6 zones, got {len(zones)}")
    for zone in zones:
        if not re.fullmatch(re.escape(region) + r"[a-z]", zone):
            raise _fail("availabilityZones", f"{_show(zone)} is not a zone of aws:region {region}")
    try:
        subnets = tuple(plan_subnets(vpc_cidr, list(zones)))
    except CidrError as exc:
        raise _fail("vpcCidr", str(exc)) from None

    if v["natGateways"] not in NAT_MODES:
        raise _fail("natGateways", f"must be one of {', '.join(NAT_MODES)}, got {_show(v['natGateways'])}")
    if v["nodeCapacityType"] not in CAPACITY_TYPES:
        raise _fail("nodeCapacityType", f"must be one of {', '.join(CAPACITY_TYPES)}, got {_show(v['nodeCapacityType'])}")
    instance_types = _unique("nodeInstanceTypes", _each(
        "nodeInstanceTypes", v["nodeInstanceTypes"], _INSTANCE_TYPE.fullmatch, "an EC2 instance type like m6i.large"))
    if not instance_types:
        raise _fail("nodeInstanceTypes", "must list at least one instance type")
    low = _int_range("nodeMinSize", v["nodeMinSize"], 1, 100)
    high = _int_range("nodeMaxSize", v["nodeMaxSize"], 1, 100)
    if low > high:
        raise _fail("nodeMinSize", f"{low} is above nodeMaxSize {high}")
    desired = _int_range("nodeDesiredSize", v["nodeDesiredSize"], low, high)
    disk = _int_range("nodeDiskSize", v["nodeDiskSize"], 20, 1000)

    public_cidrs = _unique("publicAccessCidrs", [_cidr("publicAccessCidrs", c) for c in v["publicAccessCidrs"]])
    if not v["endpointPublicAccess"] and not v["endpointPrivateAccess"]:
        raise _fail("endpointPublicAccess", "and endpointPrivateAccess are both false: nothing could reach the API")
    if v["endpointPublicAccess"] and not public_cidrs:
        raise _fail("publicAccessCidrs", "is empty while endpointPublicAccess is true")
    logs = _unique("controlPlaneLogs", _each(
        "controlPlaneLogs", v["controlPlaneLogs"], LOG_TYPES.__contains__, f"one of {', '.join(LOG_TYPES)}"))
    admins = _unique("adminPrincipalArns", _each(
        "adminPrincipalArns", v["adminPrincipalArns"], _IAM_PRINCIPAL.fullmatch, "an IAM role or user ARN"))

    namespaces = _unique("meshNamespaces", _each(
        "meshNamespaces", v["meshNamespaces"], is_dns_label,
        "a DNS label (lowercase letters, digits, '-', 63 at most)"))
    for ns in namespaces:
        if ns in RESERVED_NAMESPACES:
            raise _fail("meshNamespaces", f"{_show(ns)} is reserved for the platform")

    if len(v["tags"]) > 40:  # AWS allows 50 per resource; datamesh adds its own
        raise _fail("tags", f"has {len(v['tags'])} tags; 40 at most")
    for tag_key, tag_value in v["tags"].items():
        if not _TAG_KEY.fullmatch(tag_key) or tag_key.lower().startswith("aws:"):
            raise _fail("tags", f"{_show(tag_key)} is not a usable AWS tag key")
        if not isinstance(tag_value, str):
            raise _fail("tags", f"{tag_key}: the value must be a string, got {_show(tag_value)}")
        if not _TAG_VALUE.fullmatch(tag_value):
            raise _fail("tags", f"{tag_key}: {_show(tag_value)} is not a usable AWS tag value")
    # Names, never paths: each selects products/<name>.yaml.
    products = _unique("products", _each("products", v["products"], is_name,
                                         "a product name (lowercase letters, digits, '-'; no paths)"))
    wildcard_products = _unique("allowWildcardIamProducts", _each(
        "allowWildcardIamProducts", v["allowWildcardIamProducts"], is_name, "a product name"))
    for name in wildcard_products:
        if name not in products:
            raise _fail("allowWildcardIamProducts", f"{name}: is not a selected product")
    for key in sorted(SECRET_KEYS):
        if key in raw and key not in secret:
            raise _fail(key, f"must be a secret: pulumi config set --secret datamesh:{key} ...")
    if v["governanceAdapter"] not in ADAPTERS:
        raise _fail("governanceAdapter", f"must be one of {', '.join(ADAPTERS)}, got {_show(v['governanceAdapter'])}")
    _check_edge(v, region)

    return Settings(
        stack=stack,
        region=region,
        cluster_name=cluster_name,
        kubernetes_version=k8s,
        eks_support_type=v["eksSupportType"],
        eks_addon_versions=dict(addon_versions),
        istio=istio,
        istio_revision=revision,
        vpc_cidr=vpc_cidr,
        service_cidr=service_cidr,
        subnets=subnets,
        nat_gateways=v["natGateways"],
        node_capacity_type=v["nodeCapacityType"],
        node_instance_types=instance_types,
        node_min_size=low,
        node_desired_size=desired,
        node_max_size=high,
        node_disk_size=disk,
        endpoint_public_access=v["endpointPublicAccess"],
        endpoint_private_access=v["endpointPrivateAccess"],
        public_access_cidrs=public_cidrs if v["endpointPublicAccess"] else (),
        control_plane_logs=logs,
        admin_principal_arns=admins,
        mesh_namespaces=namespaces,
        tags=tuple(sorted(v["tags"].items())),
        products=products,
        product_overrides=v["productOverrides"],
        allow_wildcard_iam=True if v["allowWildcardIam"] else frozenset(wildcard_products),
        governance_adapter=v["governanceAdapter"],
        observability=v["observability"],
        consumers=v["consumers"],
        rate_limit_tiers=v["rateLimitTiers"],
        anypoint=v["anypoint"],
        api_keys=v["apiKeys"],
        secret_keys=frozenset(k for k in secret if k in SECRET_KEYS),
        anypoint_client_id=v["anypointClientId"],
        anypoint_client_secret=v["anypointClientSecret"],
        domain=v["domain"],
        hosted_zone_id=v["hostedZoneId"],
        certificate_arn=v["certificateArn"],
        allow_plain_http=v["allowPlainHttp"],
        source_url=_source_url(v["sourceUrl"]),
    )


def _source_url(url: str) -> str:
    if url and not _SOURCE_URL.fullmatch(url):
        raise _fail("sourceUrl", f"{_show(url)} is not an https:// address of a folder (ending in '/')")
    return url


def _check_edge(v: Mapping[str, Any], region: str) -> None:
    """TLS at the edge: a domain with a way to a certificate, or plain HTTP asked for by name."""
    domain, zone, arn = v["domain"], v["hostedZoneId"], v["certificateArn"]
    if not domain:
        for key in ("hostedZoneId", "certificateArn"):
            if v[key]:
                raise _fail(key, "is set but domain is not: set datamesh:domain, the name the certificate is for")
        if not v["allowPlainHttp"]:
            raise _fail("domain", "is required for HTTPS at the gateway; set it with hostedZoneId or certificateArn, "
                        "or set datamesh:allowPlainHttp: true to serve plain HTTP (keys then cross the network in clear)")
        return
    if not _DOMAIN.fullmatch(domain):
        raise _fail("domain", f"{_show(domain)} is not a DNS name like api.example.com (lowercase, no wildcard, no trailing dot)")
    if domain.count(".") < 2:
        # The gateway's name is a CNAME to the NLB, and Route 53 refuses a CNAME at a zone's apex.
        # A two-label name is almost always an apex; a deeper apex (example.co.uk) is not caught here.
        raise _fail("domain", f"{_show(domain)} looks like a zone apex, where Route 53 allows no CNAME; "
                    "use a name below it, e.g. api.example.com")
    if v["allowPlainHttp"]:
        raise _fail("allowPlainHttp", "must be false when domain is set: with TLS the gateway serves no plain HTTP")
    if not zone and not arn:
        raise _fail("domain", "needs hostedZoneId (to validate a new ACM certificate) or certificateArn (an issued one)")
    if zone and not _HOSTED_ZONE.fullmatch(zone):
        raise _fail("hostedZoneId", f"{_show(zone)} is not a Route 53 hosted zone ID like Z0123456789ABCDEFGHIJ")
    if arn and not re.fullmatch(rf"arn:aws[a-z-]*:acm:{re.escape(region)}:\d{{12}}:certificate/"
                                 r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", arn):
        raise _fail("certificateArn", f"{_show(arn)} is not an ACM certificate ARN in aws:region {region} (the NLB's region)")


def raw_config(namespace: str = NAMESPACE) -> dict[str, str]:
    """Every ``<namespace>:*`` value the Pulumi runtime was given, keys without the namespace.

    ``pulumi.Config`` cannot list keys, and unknown keys must be refused, so this
    reads the same two places ``pulumi.Config`` reads from.
    """
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{namespace}:"
    return {k[len(prefix):]: str(v) for k, v in merged.items() if k.startswith(prefix)}


def secret_config_keys(namespace: str = NAMESPACE) -> frozenset[str]:
    """The ``<namespace>:*`` keys the runtime was told are secrets, without the namespace."""
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    prefix = f"{namespace}:"
    return frozenset(k[len(prefix):] for k in keys if k.startswith(prefix))


def from_pulumi() -> Settings:
    """Settings for the running stack, from the Pulumi runtime's configuration."""
    return load_settings(raw_config(), pulumi.get_stack(), pulumi.Config("aws").get("region"), secret_config_keys())
