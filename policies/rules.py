"""datamesh's policy rules: plain functions over resources, so one rule set serves three places.

The Pulumi policy pack (``policies/__main__.py``) adapts them for
``pulumi preview --policy-pack policies``; the offline render runs them over
what it registered; the tests call them directly. A rule sees resources as
the engine does: a type token, a name, a URN and the input properties.
This module is the catalogue; ``policies.framework`` holds what a rule is, its
config and its evaluation (its names are importable from here too).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from components.documents import Document, DocumentView
from components.images import image_pin_problem
from components.istio_protocol import UNSUPPORTED_PROTOCOL, convert_protocol
from components.istio_protocol import suggest_port_name as name_for
from components.names import PLATFORM_NAMESPACES
from policies import framework
from policies.framework import ADVISORY, LEVELS, MANDATORY, Context, PolicyConfigError, Resource, Rule, Violation, config_schema, run_rule

# The framework's names the pack, the render and the tests take from here.
__all__ = ["ADVISORY", "LEVELS", "MANDATORY", "PLATFORM_NAMESPACES", "RULES", "RULES_BY_NAME", "Context", "PolicyConfigError",
           "Resource", "Rule", "Violation", "config_schema", "evaluate", "rule_configs", "run_rule"]

INJECTION_LABELS = ("istio-injection", "istio.io/rev")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


# --- istio-port-naming -------------------------------------------------------


def istio_protocol(port: DocumentView) -> str | None:
    """The protocol Istio selects for a Service port (as in a Kubernetes manifest), or None when it would sniff."""
    number = port.get("port")
    app = port.get("appProtocol")
    found = convert_protocol(
        number if isinstance(number, int) else 0,
        str(port.get("name") or ""),
        str(port.get("protocol") or "TCP"),
        None if app is None else str(app),
    )
    return None if found == UNSUPPORTED_PROTOCOL else found


def suggest_port_name(port: DocumentView) -> str:
    """A name selecting the protocol the port number suggests, keeping the given name's other words."""
    number = port.get("port")
    protocol = "https" if number == 443 else "grpc" if number in (9090, 50051) else "http" if number in (80, 8080, 12000) else "tcp"
    given = re.sub(r"[^a-z0-9]+", "-", str(port.get("name") or "").lower()).strip("-")
    return name_for(given, protocol) if given else f"{protocol}-api"


def mesh_namespaces(resources: list[Resource], ctx: Context) -> set[str]:
    labelled = {
        r.k8s_name for r in resources
        if r.is_k8s("Namespace") and any(k in (r.metadata.get("labels") or {}) for k in INJECTION_LABELS)
    }
    return labelled | set(ctx.setting("meshNamespaces", []))


def check_port_naming(resources: list[Resource], ctx: Context) -> Iterator[tuple[Resource, str]]:
    mesh = mesh_namespaces(resources, ctx)
    for svc in resources:
        if not svc.is_k8s("Service") or svc.namespace not in mesh:
            continue
        for index, port in enumerate(svc.spec.get("ports") or []):
            if not isinstance(port, Mapping):
                continue
            if istio_protocol(port) is None:
                label = f"port {port.get('name')!r}" if port.get("name") else f"unnamed port {index} ({port.get('port')})"
                yield svc, (
                    f"Service {svc.namespace}/{svc.k8s_name} {label} does not select an Istio protocol: "
                    f"name it '<protocol>[-<suffix>]', e.g. {suggest_port_name(port)!r}, or set appProtocol "
                    "(which, once set, alone decides); "
                    "otherwise Istio treats it as opaque TCP or sniffs, and HTTP authorization, rate limits "
                    "and telemetry stop applying to it"
                )


# --- resource rules ----------------------------------------------------------


def check_subnet_role_tags(r: Resource, ctx: Context) -> Iterator[str]:
    if r.type != "aws:ec2/subnet:Subnet":
        return
    tags = r.props.get("tags") or {}
    roles = [k for k in ("kubernetes.io/role/elb", "kubernetes.io/role/internal-elb") if tags.get(k) == "1"]
    if len(roles) != 1:
        yield (f"subnet {r.name} must carry exactly one of kubernetes.io/role/elb=1 (public) or "
               f"kubernetes.io/role/internal-elb=1 (private) so the load balancer controller can place NLBs; has {roles or 'none'}")


def check_load_balancers(r: Resource, ctx: Context) -> Iterator[str]:
    if r.is_k8s("Service") and r.spec.get("type") == "LoadBalancer":
        allowed = ctx.setting("allowed", ["istio-ingress/istio-ingressgateway"])
        if f"{r.namespace}/{r.k8s_name}" not in allowed:
            yield (f"Service {r.namespace}/{r.k8s_name} is type LoadBalancer; only the ingress gateway "
                   f"({', '.join(allowed)}) may be: expose products through the gateway instead")


_LB = "service.beta.kubernetes.io/aws-load-balancer-"


def check_gateway_tls(r: Resource, ctx: Context) -> Iterator[str]:
    """A LoadBalancer Service's listeners all terminate TLS (the health-check port aside)."""
    if not (r.is_k8s("Service") and r.spec.get("type") == "LoadBalancer"):
        return
    where = f"LoadBalancer Service {r.namespace}/{r.k8s_name}"
    annotations = r.metadata.get("annotations") or {}
    # Presence, not the value: in a first preview the certificate's ARN is not known yet.
    if _LB + "ssl-cert" not in set(annotations):  # set(): a policy proxy raises on reading an unknown value
        yield f"{where} terminates no TLS: set datamesh:domain with hostedZoneId or certificateArn"
        return
    # The controller makes every port TLS when ssl-ports is absent.
    tls = {p.strip() for p in str(annotations.get(_LB + "ssl-ports") or "").split(",") if p.strip()}
    plain_allowed = ctx.setting("plainPorts", ["status-port"])
    for port in r.spec.get("ports") or []:
        name, number = str(port.get("name", "")), str(port.get("port", ""))
        if tls and name not in tls and number not in tls and name not in plain_allowed:
            yield f"{where} serves port {number} ({name or 'unnamed'}) without TLS: keys would cross the internet in clear"


def check_namespace_injection(r: Resource, ctx: Context) -> Iterator[str]:
    if not r.is_k8s("Namespace"):
        return
    if r.k8s_name in ctx.setting("platformNamespaces", list(PLATFORM_NAMESPACES)):
        return
    labels = r.metadata.get("labels") or {}
    if labels.get("istio-injection") != "enabled" and not labels.get("istio.io/rev"):
        yield f"namespace {r.k8s_name} must be labelled istio-injection=enabled (or istio.io/rev=<revision>) so its pods join the mesh"


def pod_spec(r: Resource) -> DocumentView:
    if r.kind == "Pod":
        return r.spec
    template = r.spec.get("jobTemplate", {}).get("spec", r.spec) if r.kind == "CronJob" else r.spec
    return (template.get("template") or {}).get("spec") or {}


def containers(r: Resource) -> Iterator[DocumentView]:
    spec = pod_spec(r)
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def check_pinned_images(r: Resource, ctx: Context) -> Iterator[str]:
    if not r.is_k8s(*WORKLOAD_KINDS):
        return
    for c in containers(r):
        image = str(c.get("image", ""))
        if image_pin_problem(image):
            yield (f"{r.kind} {r.namespace}/{r.k8s_name} container {c.get('name')!r} image {image!r} is not pinned: "
                   "use a version tag or @sha256 digest, never latest")


def check_container_hardening(r: Resource, ctx: Context) -> Iterator[str]:
    if not r.is_k8s(*WORKLOAD_KINDS):
        return
    pod_sc = pod_spec(r).get("securityContext") or {}
    for c in containers(r):
        where = f"{r.kind} {r.namespace}/{r.k8s_name} container {c.get('name')!r}"
        resources = c.get("resources") or {}
        for part in ("requests", "limits"):
            missing = [q for q in ("cpu", "memory") if q not in (resources.get(part) or {})]
            if missing:
                yield f"{where} has no {part} for {', '.join(missing)}"
        sc = c.get("securityContext") or {}
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            yield f"{where} must run as non-root (securityContext.runAsNonRoot: true)"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{where} must set securityContext.allowPrivilegeEscalation: false"


def check_eks_hardening(r: Resource, ctx: Context) -> Iterator[str]:
    if r.type != "eks:index:Cluster":
        return
    if not r.props.get("encryptionConfigKeyArn"):
        yield f"EKS cluster {r.name} must encrypt Kubernetes Secrets with a KMS key (encryptionConfigKeyArn)"
    if not r.props.get("enabledClusterLogTypes"):
        yield f"EKS cluster {r.name} must send control-plane logs to CloudWatch (enabledClusterLogTypes)"


def check_eks_public_endpoint(r: Resource, ctx: Context) -> Iterator[str]:
    if r.type != "eks:index:Cluster":
        return
    public = r.props.get("endpointPublicAccess", True)  # EKS's own default is public
    cidrs = r.props.get("publicAccessCidrs") or ["0.0.0.0/0"]
    if public and "0.0.0.0/0" in cidrs:
        yield f"EKS cluster {r.name} exposes its API endpoint to 0.0.0.0/0: restrict publicAccessCidrs or turn public access off"


# --- product-governed (stack) --------------------------------------------------


def check_products_governed(resources: list[Resource], ctx: Context) -> Iterator[tuple[Resource, str]]:
    services = [r for r in resources if r.is_k8s("Service")
                and (r.metadata.get("labels") or {}).get("app.kubernetes.io/component") == "data-product"]
    policies = [r for r in resources if r.is_k8s("AuthorizationPolicy") and r.spec.get("action", "ALLOW") == "ALLOW"]
    limited: set[tuple[str, str]] = set()
    for r in resources:
        if r.is_k8s("EnvoyFilter"):
            for patch in r.spec.get("configPatches") or []:
                route = (((patch.get("match") or {}).get("routeConfiguration") or {}).get("vhost") or {}).get("route") or {}
                value = (patch.get("patch") or {}).get("value") or {}
                local = "envoy.filters.http.local_ratelimit" in (value.get("typed_per_filter_config") or {})
                global_ = bool((value.get("route") or {}).get("rate_limits"))  # rateLimits: global
                if route.get("name") and (local or global_):
                    limited.add(("*", route["name"]))  # gateway routes are named after their product
        elif r.is_k8s("ServiceBinding"):  # Anypoint: API Manager applies the rate limit
            limited.add((r.namespace, str((r.spec.get("parameters") or {}).get("service"))))
    for svc in services:
        selector = svc.spec.get("selector") or {}
        covered = any(
            p.namespace == svc.namespace and (
                ((p.spec.get("selector") or {}).get("matchLabels") or {}).items() <= selector.items())
            for p in policies
        )
        if not covered:
            yield svc, f"data product Service {svc.namespace}/{svc.k8s_name} is not covered by an ALLOW AuthorizationPolicy"
        if ("*", svc.k8s_name) not in limited and (svc.namespace, svc.k8s_name) not in limited:
            yield svc, f"data product Service {svc.namespace}/{svc.k8s_name} has no rate limit (gateway route limit or Anypoint binding)"


RULES: tuple[Rule, ...] = (
    Rule("istio-port-naming", "Service ports in mesh namespaces select an Istio protocol by name (<protocol>[-<suffix>]) "
         "or appProtocol, so HTTP policy and telemetry apply.", MANDATORY, stack_check=check_port_naming,
         settings={"meshNamespaces": {"type": "array", "items": {"type": "string"}}}),
    Rule("subnet-role-tags", "Subnets carry the load balancer role tag for their kind (public elb, private internal-elb).",
         MANDATORY, resource_check=check_subnet_role_tags),
    Rule("loadbalancer-only-gateway", "Only the ingress gateway's Service is of type LoadBalancer.", MANDATORY,
         resource_check=check_load_balancers, settings={"allowed": {"type": "array", "items": {"type": "string"}}}),
    Rule("mesh-namespace-injection", "Namespaces other than the platform's carry the sidecar injection label.", MANDATORY,
         resource_check=check_namespace_injection, settings={"platformNamespaces": {"type": "array", "items": {"type": "string"}}}),
    Rule("pinned-images", "Container images are pinned to a version tag or digest, never latest or untagged.", MANDATORY,
         resource_check=check_pinned_images),
    Rule("container-hardening", "Containers set requests and limits, run as non-root and cannot escalate privileges.",
         MANDATORY, resource_check=check_container_hardening),
    Rule("product-governed", "Every data-product Service is covered by an authorization policy and a rate limit.",
         MANDATORY, stack_check=check_products_governed),
    Rule("eks-hardening", "EKS encrypts Secrets with KMS and sends control-plane logs.", MANDATORY,
         resource_check=check_eks_hardening),
    Rule("eks-public-endpoint", "The EKS API endpoint is not open to 0.0.0.0/0 (mandatory for prod through its config).",
         ADVISORY, resource_check=check_eks_public_endpoint),
    Rule("gateway-tls", "The gateway's load balancer terminates TLS on every traffic port (mandatory for prod through its config).",
         ADVISORY, resource_check=check_gateway_tls, settings={"plainPorts": {"type": "array", "items": {"type": "string"}}}),
)
RULES_BY_NAME = {r.name: r for r in RULES}


def rule_configs(config: object) -> dict[str, Document]:
    """Normalise Pulumi policy config (``{"all": level, "<rule>": level | {...}}``) per datamesh rule.

    Anything the rules' schemas do not allow is an error, never ignored: a
    malformed exemption must not exempt everything.
    """
    return framework.rule_configs(config, RULES_BY_NAME)


def evaluate(resources: list[Resource], config: DocumentView | None = None) -> list[Violation]:
    """Every datamesh rule over ``resources``, with levels and exemptions from ``config``."""
    return framework.evaluate(RULES, resources, config)
