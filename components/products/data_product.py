"""One data product in the mesh: workload, Service, scaling, routing, discovery."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.products.declarations import Product, upstream_env_name

# Any non-root UID works for these images; a fixed one keeps file ownership predictable.
RUN_AS = 65532
FILES_MOUNT = "/app"


def labels(product: Product) -> dict[str, str]:
    """The labels Istio (app, version) and Kubernetes tooling (app.kubernetes.io/*) look for."""
    return {
        "app": product.name,
        "version": product.version,
        "app.kubernetes.io/name": product.name,
        "app.kubernetes.io/version": product.version,
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


def container(product: Product, upstreams: tuple[Product, ...]) -> dict:
    env = {**product.env, **{upstream_env_name(u.name): u.mesh_url for u in upstreams}}
    mounts = [{"name": "tmp", "mountPath": "/tmp"}]
    if product.files:
        mounts.append({"name": "files", "mountPath": FILES_MOUNT, "readOnly": True})
    spec = {
        "name": "product",
        "image": product.image,
        # Unnamed: Istio reads the Service port's name, and probes use the number.
        "ports": [{"containerPort": product.port, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
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
        provider: the cluster's Kubernetes provider.
        after: resources every object of the product waits for (the namespace's
            authorization policies). Children do not inherit a component's depends_on.
    """

    product: Product
    upstreams: tuple[Product, ...]
    namespace: k8s.core.v1.Namespace
    gateway: str
    gateway_resource: pulumi.Resource
    provider: k8s.Provider
    after: tuple[pulumi.Resource, ...] = ()


class DataProduct(pulumi.ComponentResource):
    """Creates, in the product's namespace: a ServiceAccount; a ConfigMap with
    its mounted files (when it declares some); a ConfigMap with its OpenAPI
    definition (discovery: ``kubectl get cm -A -l datamesh.io/catalog=api``);
    the Deployment (non-root, read-only root filesystem, no privilege
    escalation, requests and limits, probes on the health path); a Service
    whose port is named for Istio protocol selection; a PodDisruptionBudget;
    a HorizontalPodAutoscaler when it autoscales; a VirtualService routing its
    prefix from the ingress gateway (rewriting it to "/" when the product serves bare paths); a DestinationRule (mutual TLS, outlier
    detection); per external host it declares in ``egress``, a ServiceEntry
    visible in its namespace only (the mesh is REGISTRY_ONLY: nothing else
    outside is reachable); and a Sidecar that scopes its proxy to its upstreams
    and those hosts.
    """

    def __init__(self, name: str, args: DataProductArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:product:DataProduct", name, None, opts)
        p = args.product
        ns = args.namespace.metadata.name
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=list(args.after))
        meta = {"name": p.name, "namespace": ns, "labels": labels(p), "annotations": annotations(p)}

        sa = k8s.core.v1.ServiceAccount(
            p.name, metadata=meta, automount_service_account_token=False, opts=k8s_opts
        )
        volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
        pod_annotations = {}
        if p.files:
            files = k8s.core.v1.ConfigMap(
                f"{p.name}-files", metadata={**meta, "name": f"{p.name}-files"}, data=dict(p.files), opts=k8s_opts
            )
            volumes.append({"name": "files", "configMap": {"name": files.metadata.name}})
            pod_annotations["datamesh.io/files-sha256"] = files_digest(p)
        k8s.core.v1.ConfigMap(
            f"{p.name}-openapi",
            metadata={**meta, "name": f"{p.name}-openapi",
                      "labels": {**labels(p), "datamesh.io/catalog": "api"}},
            data={"openapi.yaml": p.openapi_text},
            opts=k8s_opts,
        )

        selector = {"app": p.name}
        deployment_spec: dict = {
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels(p), "annotations": pod_annotations},
                "spec": {
                    "serviceAccountName": sa.metadata.name,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container(p, args.upstreams)],
                    "volumes": volumes,
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector},
                    }],
                },
            },
        }
        if p.autoscaling is None:
            deployment_spec["replicas"] = p.replicas  # with an HPA, the HPA owns the count
        deployment = k8s.apps.v1.Deployment(p.name, metadata=meta, spec=deployment_spec, opts=k8s_opts)

        service_port = {"port": p.port, "targetPort": p.port, "protocol": "TCP"}
        if p.port_name:
            service_port["name"] = p.port_name
        if p.app_protocol:
            service_port["appProtocol"] = p.app_protocol
        k8s.core.v1.Service(p.name, metadata=meta, spec={"selector": selector, "ports": [service_port]}, opts=k8s_opts)
        k8s.policy.v1.PodDisruptionBudget(
            p.name, metadata=meta, spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}}, opts=k8s_opts
        )
        if p.autoscaling is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                p.name,
                metadata=meta,
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name},
                    "minReplicas": p.autoscaling.min_replicas,
                    "maxReplicas": p.autoscaling.max_replicas,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": p.autoscaling.target_cpu}}}],
                },
                opts=k8s_opts,
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
                    "route": [{"destination": {"host": p.service_host, "port": {"number": p.port}}}],
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
            },
            opts=k8s_opts,
        )
        for host, port in p.egress:
            k8s.apiextensions.CustomResource(
                f"{p.name}-egress-{host}",
                api_version="networking.istio.io/v1",
                kind="ServiceEntry",
                metadata={**meta, "name": f"{p.name}-egress-{host.replace('.', '-')}"},
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
