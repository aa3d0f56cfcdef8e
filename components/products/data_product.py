"""One data product in the mesh: workload, Service, scaling, routing, discovery."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.addons.external_secrets import ExternalSecrets
from components.platform.context import ClusterContext
from components.platform.lifecycle import formerly
from components.products import aws_access
from components.products.declarations import Product, Release, upstream_env_name

# Any non-root UID works for these images; a fixed one keeps file ownership predictable.
RUN_AS = 65532
FILES_MOUNT = "/app"


def labels(product: Product, version: str | None = None) -> dict[str, str]:
    """The labels Istio (app, version) and Kubernetes tooling (app.kubernetes.io/*) look for.

    ``version`` is a release's: Istio's sidecar injector takes the canonical revision, which
    its metrics report as destination_version, from app.kubernetes.io/version, then version.
    """
    version = version or product.version
    return {
        "app": product.name,
        "version": version,
        "app.kubernetes.io/name": product.name,
        "app.kubernetes.io/version": version,
        "app.kubernetes.io/component": "data-product",
        "app.kubernetes.io/part-of": "datamesh",
        "datamesh.io/domain": product.domain,
    }


def annotations(product: Product) -> dict[str, str]:
    return {
        "datamesh.io/owner": product.owner,
        "datamesh.io/description": product.description,
        "datamesh.io/lifecycle": product.lifecycle,
        "datamesh.io/route-prefix": product.route_prefix,
        "datamesh.io/consumes": ",".join(product.consumes),
    }


def probe(product: Product, period: int) -> dict:
    if product.protocol == "tcp":
        action: dict = {"tcpSocket": {"port": product.port}}
    elif product.protocol == "grpc":
        action = {"grpc": {"port": product.port}}
    else:
        action = {"httpGet": {"path": product.health_path, "port": product.port}}
    return {**action, "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3}


def container(product: Product, upstreams: tuple[Product, ...], image: str | None = None) -> dict:
    env = {**product.env, **{upstream_env_name(u.name): u.mesh_url for u in upstreams}}
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if product.files:
        mounts.append({"name": "files", "mountPath": FILES_MOUNT, "readOnly": True})
    if product.aws:
        mounts.append(aws_access.token_mount())
    spec = {
        "name": "product",
        "image": image or product.image,
        # Unnamed: Istio reads the Service port's name, and probes use the number.
        "ports": [{"containerPort": product.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())] + aws_access.secret_env(product),
        "resources": {"requests": dict(product.resources["requests"]), "limits": dict(product.resources["limits"])},
        "readinessProbe": {**probe(product, 5), "initialDelaySeconds": 2},
        "livenessProbe": {**probe(product, 15), "initialDelaySeconds": 10},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    if product.command:
        spec["command"] = list(product.command)
    if product.args:
        spec["args"] = list(product.args)
    return spec


def files_digest(product: Product) -> str:
    """Changes when a mounted file changes, so the Deployment rolls."""
    h = hashlib.sha256()
    for name, content in sorted(product.files.items()):
        h.update(name.encode() + b"\0" + content.encode() + b"\0")
    return h.hexdigest()


def egress_entry_name(product: str, host: str) -> str:
    """The ServiceEntry's name for one external host: readable, and distinct for distinct hosts.

    Dots become dashes for a readable name, so ``a.b-c.com`` and ``a-b.c.com`` would collide;
    a short digest of the host keeps them apart, and the cut keeps the name under 253 characters.
    """
    digest = hashlib.sha256(host.encode()).hexdigest()[:8]
    return f"{product}-egress-{host.replace('.', '-')[:180]}-{digest}"


def subset(release: Release) -> str:
    """The DestinationRule subset of a release (a DNS label)."""
    return f"v{release.slug}"


def route(product: Product) -> list[dict]:
    """The gateway route's destinations: the Service, or each release with traffic by its weight."""
    destination = {"host": product.service_host, "port": {"number": product.port}}
    if not product.releases:
        return [{"destination": destination}]
    return [{"destination": {**destination, "subset": subset(r)}, "weight": r.weight}
            for r in product.releases if r.weight]


def mirror(product: Product) -> dict:
    """Shadow traffic: a copy of a share of the requests to a release whose answers are dropped."""
    if product.mirror is None:
        return {}
    release = next(r for r in product.releases if r.version == product.mirror.version)
    return {"mirror": {"host": product.service_host, "subset": subset(release), "port": {"number": product.port}},
            "mirrorPercentage": {"value": product.mirror.percent}}


@dataclass(frozen=True)
class DataProductArgs:
    """Inputs of ``DataProduct``.

    Attributes:
        product: the validated declaration, overrides applied.
        upstreams: the products it consumes; their in-mesh URLs go into its environment
            and its proxy learns only their hosts.
        namespace: its domain's namespace (labelled for injection, after istiod).
        gateway: the shared Istio Gateway its route binds to, as ``<namespace>/<name>``.
        gateway_resource: that Gateway, so the route waits for it.
        after: resources every object of the product waits for (the namespace's
            authorization policies). Children do not inherit a component's depends_on.
        cluster: the cluster; its OIDC provider is needed when the product declares
            ``aws`` access (its role trusts its service account through it).
        tags: tags for the IAM role (the stack's own; the provider adds the ownership tags).

    The providers come through ``opts`` (``ClusterContext.opts``).
        secrets: the External Secrets Operator (when a product declares secrets): its
            ExternalSecret reads from the operator's ClusterSecretStore and waits for it.
    """

    product: Product
    upstreams: tuple[Product, ...]
    namespace: k8s.core.v1.Namespace
    gateway: str
    gateway_resource: pulumi.Resource
    after: tuple[pulumi.Resource, ...] = ()
    cluster: ClusterContext | None = None
    tags: tuple[tuple[str, str], ...] = ()
    secrets: ExternalSecrets | None = None


class DataProduct(pulumi.ComponentResource):
    """Creates, when it declares ``aws`` access, an IAM role trusted only by its
    service account (IRSA), with an inline policy of its statements and an
    attachment per managed policy; in the product's namespace: a ServiceAccount
    (annotated with that role); a ConfigMap with
    its mounted files (when it declares some); an ExternalSecret (when it
    declares secrets) that the External Secrets Operator turns into a Secret;
    a ConfigMap with its OpenAPI
    definition (discovery: ``kubectl get cm -A -l datamesh.io/catalog=api``);
    the Deployment, or one per declared release (non-root, read-only root filesystem, no privilege
    escalation, requests and limits, probes on the health path), waiting for the
    role's grants and the ExternalSecret; a Service
    whose port is named for Istio protocol selection; a PodDisruptionBudget;
    a HorizontalPodAutoscaler per Deployment when it autoscales; a VirtualService routing its
    prefix from the ingress gateway (weighted per release, mirrored when declared, rewriting
    the prefix to "/" when the product serves bare paths); a DestinationRule (mutual TLS,
    outlier detection, a subset per release); per external host it declares in ``egress``, a ServiceEntry
    visible in its namespace only (the mesh is REGISTRY_ONLY: nothing else
    outside is reachable); and a Sidecar that scopes its proxy to its upstreams
    and those hosts.
    """

    def __init__(self, name: str, args: DataProductArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:products:DataProduct", name, None, formerly("datamesh:product:DataProduct", opts))
        p = args.product
        ns = args.namespace.metadata.name
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        meta = {"name": p.name, "namespace": ns, "labels": labels(p), "annotations": annotations(p)}

        sa_meta = dict(meta)
        waits: list[pulumi.Resource] = []  # what the Deployments wait for: the role's grants, the secrets
        if p.aws is not None:
            if args.cluster is None:
                raise ValueError(f"{p.name}: declares aws access but the cluster's OIDC provider was not given")
            role, grants = aws_access.product_role(p, args.cluster.oidc_provider_arn, args.cluster.oidc_issuer,
                                                   dict(args.tags), pulumi.ResourceOptions(parent=self))
            waits.extend(grants)
            sa_meta["annotations"] = {**meta["annotations"], aws_access.ROLE_ANNOTATION: role.arn}
        sa = k8s.core.v1.ServiceAccount(
            # The Kubernetes API token stays unmounted; an AWS product gets only the STS token (below).
            p.name, metadata=sa_meta, automount_service_account_token=False, opts=k8s_opts
        )
        volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
        if p.aws is not None:
            volumes.append(aws_access.token_volume())
        pod_annotations = {}
        if p.files:
            files = k8s.core.v1.ConfigMap(
                f"{p.name}-files", metadata={**meta, "name": f"{p.name}-files"}, data=dict(p.files), opts=k8s_opts
            )
            volumes.append({"name": "files", "configMap": {"name": files.metadata.name}})
            pod_annotations["datamesh.io/files-sha256"] = files_digest(p)
        if p.secrets:
            if args.secrets is None:
                raise ValueError(f"{p.name}: declares secrets but no secret store was given")
            waits.append(k8s.apiextensions.CustomResource(
                f"{p.name}-secrets",
                api_version="external-secrets.io/v1",
                kind="ExternalSecret",
                metadata={**meta, "name": aws_access.secret_name(p)},
                spec=aws_access.external_secret_spec(p, args.secrets.store_name),
                # The operator's CRDs and store first: its release is created before any ExternalSecret.
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[args.secrets.store])),
            ))
        k8s.core.v1.ConfigMap(
            f"{p.name}-openapi",
            metadata={**meta, "name": f"{p.name}-openapi",
                      "labels": {**labels(p), "datamesh.io/catalog": "api"}},
            data={"openapi.yaml": p.openapi_text},
            opts=k8s_opts,
        )

        selector = {"app": p.name}
        workload_opts = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=waits))

        def deployment(release: Release | None) -> k8s.apps.v1.Deployment:
            """The single Deployment (no releases declared), or one release's."""
            name = p.name if release is None else f"{p.name}-{release.slug}"
            pod_labels = labels(p, release.version if release else None)
            match = selector if release is None else {**selector, "version": release.version}
            spec: dict = {
                "selector": {"matchLabels": match},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                    "spec": {
                        "serviceAccountName": sa.metadata.name,
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": RUN_AS,
                            "fsGroup": RUN_AS,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container(p, args.upstreams, release.image if release else None)],
                        "volumes": volumes,
                        "topologySpreadConstraints": [{
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": match},
                        }],
                    },
                },
            }
            if p.autoscaling is None:
                spec["replicas"] = p.replicas  # with an HPA, the HPA owns the count
            workload = k8s.apps.v1.Deployment(
                name, metadata={**meta, "name": name, "labels": pod_labels}, spec=spec, opts=workload_opts)
            if p.autoscaling is not None:
                # One HPA per Deployment: each release scales on its own share of the traffic.
                k8s.autoscaling.v2.HorizontalPodAutoscaler(
                    name,
                    metadata={**meta, "name": name, "labels": pod_labels},
                    spec={
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.metadata.name},
                        "minReplicas": p.autoscaling.min_replicas,
                        "maxReplicas": p.autoscaling.max_replicas,
                        "metrics": [{"type": "Resource", "resource": {
                            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": p.autoscaling.target_cpu}}}],
                    },
                    opts=k8s_opts,
                )
            return workload

        for release in p.releases or (None,):
            deployment(release)

        service_port = {"port": p.port, "targetPort": p.port, "protocol": "TCP"}
        if p.port_name:
            service_port["name"] = p.port_name
        if p.app_protocol:
            service_port["appProtocol"] = p.app_protocol
        k8s.core.v1.Service(p.name, metadata=meta, spec={"selector": selector, "ports": [service_port]}, opts=k8s_opts)
        # One budget over every release: at most one of the product's pods is evicted at a time.
        k8s.policy.v1.PodDisruptionBudget(
            p.name, metadata=meta, spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=k8s_opts
        )
        istio = pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[args.gateway_resource]))
        k8s.apiextensions.CustomResource(
            f"{p.name}-route",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata=meta,
            spec={
                "hosts": ["*"],
                "gateways": [args.gateway],
                "http": [{
                    "name": p.name,
                    "match": [{"uri": {"prefix": p.route_prefix}}],
                    # The product serves bare paths (its OpenAPI servers URL is the prefix): strip the prefix.
                    **({"rewrite": {"uri": "/"}} if p.route_rewrite else {}),
                    "route": route(p),
                    **mirror(p),
                    "timeout": "30s",
                    # Only failures that never reached the product are retried: predictions are POSTs.
                    "retries": {"attempts": 2, "perTryTimeout": "10s", "retryOn": "connect-failure,refused-stream"},
                }],
            },
            opts=istio,
        )
        k8s.apiextensions.CustomResource(
            f"{p.name}-destination",
            api_version="networking.istio.io/v1",
            kind="DestinationRule",
            metadata=meta,
            spec={
                "host": p.service_host,
                "trafficPolicy": {
                    "tls": {"mode": "ISTIO_MUTUAL"},
                    "outlierDetection": {"consecutive5xxErrors": 5, "interval": "30s",
                                         "baseEjectionTime": "30s", "maxEjectionPercent": 50},
                },
                **({"subsets": [{"name": subset(r), "labels": {"version": r.version}} for r in p.releases]}
                   if p.releases else {}),
            },
            opts=k8s_opts,
        )
        for host, port in p.egress:
            k8s.apiextensions.CustomResource(
                f"{p.name}-egress-{host}",
                api_version="networking.istio.io/v1",
                kind="ServiceEntry",
                metadata={**meta, "name": egress_entry_name(p.name, host)},
                spec={
                    "hosts": [host],
                    "ports": [{"number": port, "name": f"tls-{port}", "protocol": "TLS"}],
                    "resolution": "DNS",
                    "location": "MESH_EXTERNAL",
                    # Its namespace only; and only this product's Sidecar lists the host.
                    "exportTo": ["."],
                },
                opts=k8s_opts,
            )
        k8s.apiextensions.CustomResource(
            f"{p.name}-sidecar",
            api_version="networking.istio.io/v1",
            kind="Sidecar",
            metadata=meta,
            spec={
                "workloadSelector": {"labels": selector},
                # The proxy learns istiod's namespace, its own upstreams and its declared external
                # hosts, nothing else: its configuration grows with its dependencies, not with the mesh.
                "egress": [{"hosts": ["istio-system/*", *(f"{u.namespace}/{u.service_host}" for u in args.upstreams),
                                      *(f"./{host}" for host, _ in p.egress)]}],
            },
            opts=k8s_opts,
        )
        self.register_outputs({"meshUrl": p.mesh_url, "routePrefix": p.route_prefix})
