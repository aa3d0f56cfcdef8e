"""Istio through its Helm charts, and the ingress gateway behind an AWS NLB."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.config.istio import REVISION_TAG, IstioRevision, IstioSettings
from components.documents import Document, DocumentView, merge_values
from components.platform.edge_tls import TLS_POLICY
from components.platform.helm import pinned_release
from components.platform.lifecycle import formerly

SYSTEM_NAMESPACE = "istio-system"
INGRESS_NAMESPACE = "istio-ingress"
GATEWAY_NAME = "istio-ingressgateway"
# The selector Gateway resources use to pick this gateway.
GATEWAY_SELECTOR = {"istio": "ingressgateway"}
STATUS_PORT = 15021
# The one Gateway every data product's route binds to, as "<namespace>/<name>".
SHARED_GATEWAY = "datamesh"
# What that Gateway serves; the NLB Service opens exactly these ports, nothing more
# (the NLB health-checks STATUS_PORT on the pods directly, without a listener).
SERVED_PORTS = ({"number": 80, "name": "http", "protocol": "HTTP"},)

NLB_ANNOTATIONS = {
    # "external" hands the Service to the load balancer controller, not the in-tree
    # cloud provider; it must be set at creation (changing it in place leaks the NLB), so
    # the Service is replaced when it changes (REPLACED_BY_ANNOTATIONS).
    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": "http",
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port": str(STATUS_PORT),
    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path": "/healthz/ready",
}
# What the load balancer controller reads only when the Service is created: a change replaces the
# Service (deleted first: its name is fixed), so the controller deletes the old NLB and makes a new one.
REPLACED_BY_ANNOTATIONS = (
    "service.beta.kubernetes.io/aws-load-balancer-type",
    "service.beta.kubernetes.io/aws-load-balancer-scheme",
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
)
# Zero-drop rollouts of the gateway (docs/operating.md, "Gateway rollouts without dropped requests").
# The NLB stops sending new connections to a deregistered target at once and waits this long for
# the ones it has; the pod keeps serving at least that long after its termination starts (preStop),
# then Envoy drains what is left before it exits.
DEREGISTRATION_DELAY_SECONDS = 30
PRE_STOP_SECONDS = DEREGISTRATION_DELAY_SECONDS + 5  # the controller's deregistration lags the pod's deletion
DRAIN_SECONDS = 10
TERMINATION_GRACE_SECONDS = PRE_STOP_SECONDS + DRAIN_SECONDS + 15
NLB_ANNOTATIONS["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"] = (
    f"deregistration_delay.timeout_seconds={DEREGISTRATION_DELAY_SECONDS}")
# The load balancer controller adds a readiness gate to pods in a namespace with this label: a new gateway
# pod is Ready only once the NLB reports it healthy, so a rollout never retires the old pods first.
READINESS_GATE_LABEL = {"elbv2.k8s.aws/pod-readiness-gate-inject": "enabled"}

# With TLS at the edge, the NLB's only traffic listener: TLS on 443 with the ACM certificate, forwarding
# the decrypted stream to the gateway's HTTP server. No listener on 80: plain HTTP never reaches a pod.
HTTPS_PORT = {"name": "https", "port": 443, "targetPort": 80, "protocol": "TCP"}


def tls_annotations(certificate_arn: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The load balancer controller's annotations for a TLS listener on the ``https`` port."""
    return {
        "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": certificate_arn,
        "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": str(HTTPS_PORT["name"]),
        "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy": TLS_POLICY,
    }


def chart_values(stable: IstioRevision) -> dict[str, Document]:
    """Default values of the three charts, keyed by chart (each istiod adds its own ``revision``)."""
    return {
        # The validating webhook every Istio resource goes through is the stable revision's.
        "base": {"defaultRevision": stable.label},
        "istiod": {
            # Top-level keys: the chart moved them out of "pilot:" in 1.24. Two replicas at
            # least, so the injection webhook (which fails closed) survives a node drain or
            # a spot interruption; the chart renders its PodDisruptionBudget only when
            # autoscaleMin > 1.
            "autoscaleEnabled": True,
            "autoscaleMin": 2,
            "autoscaleMax": 5,
            "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
            "pdb": {"minAvailable": 1},
            "meshConfig": {
                # Access logs are configured with the Telemetry API (components/governance/observability.py).
                "enablePrometheusMerge": True,
                # Egress closed: a proxy reaches only hosts in the registry (Services, and the ServiceEntries
                # products declare in `egress:`), not any external address.
                "outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                # Export Envoy's local rate limiter counters (rate_limited, ok, ...) with the proxy metrics.
                "defaultConfig": {"proxyStatsMatcher": {"inclusionRegexps": [".*http_local_rate_limit.*"]}},
            },
            # No holdApplicationUntilProxyStarts: not a 1.30 chart value, and with native
            # sidecars (ENABLE_NATIVE_SIDECARS=auto, on for the Kubernetes versions we
            # accept) the proxy starts before the application anyway.
        },
        "gateway": {
            # Injected through the revision tag, like the mesh namespaces: a restart moves it with the tag.
            "revision": REVISION_TAG,
            "labels": dict(GATEWAY_SELECTOR),
            # Named, so authorization policies can name the gateway's identity.
            "serviceAccount": {"create": True, "name": GATEWAY_NAME},
            # No chart Service: the NLB Service is a resource of its own, so Pulumi
            # waits for its deletion (the controller's finalizer) before the controller goes.
            "service": {"type": "None"},
            "autoscaling": {"minReplicas": 2},
            # Rendered only when set and with more than one replica: keeps one gateway through a drain.
            "podDisruptionBudget": {"minAvailable": 1},
            # A new pod first (it becomes Ready only once the NLB says it is healthy), then an old one goes.
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            # Across zones first, then across nodes: a zone or a node going takes at most one replica.
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                 "labelSelector": {"matchLabels": dict(GATEWAY_SELECTOR)}}
                for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
            ],
            # Keep serving while the NLB deregisters the pod, then let Envoy drain, within the grace period.
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
            "podAnnotations": {"proxy.istio.io/config": json.dumps({"terminationDrainDuration": f"{DRAIN_SECONDS}s"})},
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        },
    }


def revision_tag_webhooks(target: IstioRevision, tag: str = REVISION_TAG) -> Document:
    """The revision tag: the injection webhooks of ``istio.io/rev=<tag>`` namespaces and pods, served by ``target``.

    The same webhooks as the istiod chart's ``revisionTags`` (templates/revision-tags-mwc.yaml at
    1.30.3: ``rev.namespace.`` and ``rev.object.sidecar-injector.istio.io``), but one object of the
    program's: with two revisions installed, the chart would make the tag a resource of one of two
    Helm releases, and moving it a delete plus a create, with pods admitted in between uninjected.
    Here moving it is one in-place update. The ``istio.io/rev`` label names the revision whose istiod
    fills in ``caBundle`` (pkg/webhooks/webhookpatch.go), which the program leaves to it.
    """
    def webhook(prefix: str, namespace_selector: list[Document], object_selector: list[Document]) -> Document:
        return {
            "name": f"{prefix}sidecar-injector.istio.io",
            "clientConfig": {"service": {"name": target.service, "namespace": SYSTEM_NAMESPACE, "path": "/inject", "port": 443}},
            "sideEffects": "None",
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "admissionReviewVersions": ["v1"],
            "namespaceSelector": {"matchExpressions": namespace_selector},
            "objectSelector": {"matchExpressions": object_selector},
        }

    not_opted_out = {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
    return {
        "metadata": {
            "name": f"istio-revision-tag-{tag}",
            "labels": {"istio.io/tag": tag, "istio.io/rev": target.label, "app": "sidecar-injector",
                       "app.kubernetes.io/name": "istiod", "app.kubernetes.io/part-of": "datamesh"},
        },
        "webhooks": [
            webhook("rev.namespace.", [{"key": "istio.io/rev", "operator": "In", "values": [tag]},
                                       {"key": "istio-injection", "operator": "DoesNotExist"}], [not_opted_out]),
            webhook("rev.object.", [{"key": "istio.io/rev", "operator": "DoesNotExist"},
                                    {"key": "istio-injection", "operator": "DoesNotExist"}],
                    [not_opted_out, {"key": "istio.io/rev", "operator": "In", "values": [tag]}]),
        ],
    }


@dataclass(frozen=True)
class IstioArgs:
    """Inputs of ``Istio``.

    Attributes:
        istio: the installed revisions (one or two, each its own istiod) and the one the ``stable``
            tag points at; the base chart is the newest revision's, the gateway chart the stable one's.
        load_balancer_controller: the controller's Helm release; the NLB Service and the gateway pods
            (whose readiness gate its webhook adds) wait for it. None on an existing cluster (no controller).
        values: per chart ("base", "istiod", "gateway") Helm values merged over the defaults.
        tls_certificate_arn: an issued ACM certificate: the NLB terminates TLS on 443 and has no
            port 80. None: plain HTTP on 80 (datamesh:allowPlainHttp).
        after: what the first chart (``base``) waits for: the EKS managed add-ons.
    """

    istio: IstioSettings
    load_balancer_controller: pulumi.Resource | None
    values: dict[str, Document] = field(default_factory=dict)
    tls_certificate_arn: pulumi.Input[str] | None = None
    after: tuple[pulumi.Resource, ...] = ()


class Istio(pulumi.ComponentResource):
    """Istio through its Helm charts, and the ingress gateway behind an NLB. Creates:

    - ``istio-system`` and ``istio-ingress``: the namespaces;
    - ``istio-base`` (CRDs, the newest installed release's), then per revision ``istiod`` or
      ``istiod-<revision>`` (one or two side by side), then ``istio-ingressgateway``: the chart
      releases, each waiting for the one before;
    - ``istio-revision-tag-stable``: the ``stable`` revision tag's injection webhooks, pointing at
      one revision's istiod and created after it; every mesh namespace and the gateway are
      injected through it, so moving the tag is one in-place update;
    - ``istio-ingressgateway``: the gateway's LoadBalancer Service, which the load balancer
      controller turns into an internet-facing NLB with IP targets, listening only on the
      ports the shared Gateway serves. It depends on the controller's release, so it is
      created after the controller serves its webhook and deleted, NLB and all, before the
      controller is removed. With a certificate, the NLB terminates TLS on 443 and listens
      on nothing else for traffic; without, it serves HTTP on 80;
    - ``datamesh``: the shared Gateway (the gateway's HTTP server on port 80, any host)
      that data products bind their routes to.
    """

    istiod: k8s.helm.v3.Release  # the stable revision's
    revisions: dict[str, k8s.helm.v3.Release]  # every installed istiod, by revision ("" for the default)
    injector: k8s.admissionregistration.v1.MutatingWebhookConfiguration  # the stable tag
    gateway: k8s.helm.v3.Release
    gateway_service: k8s.core.v1.Service
    shared_gateway: k8s.apiextensions.CustomResource
    shared_gateway_ref: str
    gateway_host: pulumi.Output[str]  # the NLB's DNS name

    def __init__(self, name: str, args: IstioArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:Istio", name, None, formerly("datamesh:istio:Istio", opts))
        self._args = args
        self._k8s_opts = pulumi.ResourceOptions(parent=self)
        defaults = chart_values(args.istio.stable)
        self._values = {chart: merge_values(defaults[chart], args.values.get(chart, {})) for chart in defaults}
        system_ns = k8s.core.v1.Namespace(SYSTEM_NAMESPACE, metadata={"name": SYSTEM_NAMESPACE}, opts=self._k8s_opts)
        ingress_ns = k8s.core.v1.Namespace(
            INGRESS_NAMESPACE, metadata={"name": INGRESS_NAMESPACE, "labels": dict(READINESS_GATE_LABEL)}, opts=self._k8s_opts)
        base = self._chart("istio-base", args.istio.newest.chart("base"), system_ns, self._values["base"], list(args.after))
        self.revisions = {r.name: self._istiod(r, system_ns, base) for r in args.istio.revisions}
        self.istiod = self.revisions[args.istio.stable.name]
        self.injector = self._revision_tag(self.istiod)
        # Gateway pods are injected through the tag, so its istiod must be serving first; and their NLB readiness
        # gate is added by the load balancer controller's pod webhook, so it must be serving too.
        gateway = self.gateway = self._chart(GATEWAY_NAME, args.istio.stable.release.chart("gateway"), ingress_ns,
                                             self._values["gateway"], [self.injector, *self._controller()])
        self.gateway_service = self._gateway_service(ingress_ns, gateway)
        self.gateway_host = self.gateway_service.status.load_balancer.ingress[0].hostname
        self.shared_gateway_ref = f"{INGRESS_NAMESPACE}/{SHARED_GATEWAY}"
        # Its CRD comes with the base chart; the gateway pods it configures with the gateway chart.
        after = pulumi.ResourceOptions(depends_on=[base, gateway])
        self.shared_gateway = gateway_resource(ingress_ns.metadata.name, pulumi.ResourceOptions.merge(self._k8s_opts, after))
        self.register_outputs({
            "istiod": self.istiod.name,
            "revisions": {r.label: r.release.version for r in args.istio.revisions},
            "stableRevision": args.istio.stable.label,
            "gateway": gateway.name,
            "gatewayHostname": self.gateway_host,
        })

    def _controller(self) -> list[pulumi.Resource]:
        return [] if self._args.load_balancer_controller is None else [self._args.load_balancer_controller]

    def _istiod(self, revision: IstioRevision, namespace: k8s.core.v1.Namespace, base: pulumi.Resource) -> k8s.helm.v3.Release:
        """One revision's istiod (``istiod`` or ``istiod-<revision>``): its Deployment, Service and own webhooks."""
        values = {**({"revision": revision.name} if revision.name else {}), **self._values["istiod"]}
        return self._chart(revision.helm_release, revision.release.chart("istiod"), namespace, values, [base])

    def _revision_tag(self, istiod: pulumi.Resource) -> k8s.admissionregistration.v1.MutatingWebhookConfiguration:
        """The ``stable`` tag, after the istiod it points at: moving it is one update, never a gap."""
        tag = revision_tag_webhooks(self._args.istio.stable)
        return k8s.admissionregistration.v1.MutatingWebhookConfiguration(
            tag["metadata"]["name"], metadata=tag["metadata"], webhooks=tag["webhooks"],
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=[istiod])))

    def _chart(self, release: str, chart: versions.Chart, namespace: k8s.core.v1.Namespace,
               values: DocumentView, after: list[pulumi.Resource]) -> k8s.helm.v3.Release:
        return pinned_release(
            release,
            chart=chart,
            namespace=namespace.metadata.name,
            values=values,
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=after)),
        )

    def _gateway_service(self, ingress_ns: k8s.core.v1.Namespace, gateway: k8s.helm.v3.Release) -> k8s.core.v1.Service:
        """The gateway's LoadBalancer Service: the NLB, TLS on 443 with a certificate, else HTTP on 80."""
        args = self._args
        certificate_arn = args.tls_certificate_arn
        tls = certificate_arn is not None
        # Only the certificate's ARN waits for ACM: the other keys stay known in a preview, for the policy pack.
        annotations = {**NLB_ANNOTATIONS, **(tls_annotations(certificate_arn) if certificate_arn is not None else {})}
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        return k8s.core.v1.Service(  # type: ignore[call-overload]
            GATEWAY_NAME,
            metadata={
                "name": GATEWAY_NAME,
                "namespace": ingress_ns.metadata.name,
                "labels": {"app": GATEWAY_NAME, **GATEWAY_SELECTOR},
                "annotations": annotations,
            },
            spec={
                "type": "LoadBalancer",
                "selector": dict(GATEWAY_SELECTOR),
                "ports": [
                    HTTPS_PORT,
                ] if tls else [
                    {"name": p["name"], "port": p["number"], "targetPort": p["number"], "protocol": "TCP"}
                    for p in SERVED_PORTS
                ],
            },
            # The controller first: its webhook must serve before the Service is made,
            # and on destroy this Service (awaited until its finalizer clears, i.e. the
            # NLB is gone) is deleted before the controller.
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(
                depends_on=[*self._controller(), gateway],
                replace_on_changes=[f'metadata.annotations["{key}"]' for key in REPLACED_BY_ANNOTATIONS],
                delete_before_replace=True,
            )),
        )


def gateway_resource(namespace: pulumi.Input[str], opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """The one Istio Gateway every product's VirtualService binds to: the ingress gateway's pods, every served port."""
    return k8s.apiextensions.CustomResource(
        SHARED_GATEWAY,
        api_version="networking.istio.io/v1",
        kind="Gateway",
        metadata={"name": SHARED_GATEWAY, "namespace": namespace},
        spec={"selector": dict(GATEWAY_SELECTOR), "servers": [{"port": dict(port), "hosts": ["*"]} for port in SERVED_PORTS]},
        opts=opts,
    )
