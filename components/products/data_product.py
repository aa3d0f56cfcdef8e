"""One data product in the mesh: workload, Service, scaling, routing, discovery."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.addons.external_secrets import ExternalSecrets
from components.documents import Document
from components.platform.context import ClusterContext
from components.platform.lifecycle import formerly
from components.products import aws_access
from components.products.declarations import Product, Release
from components.products.workload import (
    egress_entry_name,
    files_digest,
    labels,
    match_labels,
    mirror,
    pod_spec,
    product_annotations,
    route,
    selector,
    subset,
)


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
        secrets: the External Secrets Operator (when a product declares secrets): its
            ExternalSecret reads from the operator's ClusterSecretStore and waits for it.

    The providers come through ``opts`` (``ClusterContext.opts``).
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
    """One data product in its domain's namespace. Creates:

    - ``<product>-irsa`` (when it declares ``aws`` access): an IAM role trusted only by its
      service account (IRSA), an inline policy of its statements and an attachment per
      managed policy (``aws_access.product_role``);
    - ``<product>``: a ServiceAccount, annotated with that role, without a Kubernetes API token;
    - ``<product>-files`` (when it declares files): a ConfigMap with its mounted files;
    - ``<product>-secrets`` (when it declares secrets): an ExternalSecret that the External
      Secrets Operator turns into a Secret, after the operator's ClusterSecretStore;
    - ``<product>-openapi``: a ConfigMap with its OpenAPI definition (discovery:
      ``kubectl get cm -A -l datamesh.io/catalog=api``);
    - ``<product>``, or ``<product>-<release>`` per declared release: the Deployment (non-root,
      read-only root filesystem, no privilege escalation, requests and limits, probes on the
      health path), waiting for the role's grants and the ExternalSecret, and with autoscaling
      a HorizontalPodAutoscaler per Deployment;
    - ``<product>``: a Service whose port is named for Istio protocol selection, and a
      PodDisruptionBudget over every release;
    - ``<product>-route``: a VirtualService routing its prefix from the ingress gateway
      (weighted per release, mirrored when declared, rewriting the prefix to "/" when the
      product serves bare paths);
    - ``<product>-destination``: a DestinationRule (mutual TLS, outlier detection, a subset per release);
    - ``<product>-egress-<host>`` per external host it declares: a ServiceEntry visible in its
      namespace only (the mesh is REGISTRY_ONLY: nothing else outside is reachable);
    - ``<product>-sidecar``: a Sidecar that scopes its proxy to its upstreams and those hosts.
    """

    def __init__(self, name: str, args: DataProductArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:products:DataProduct", name, None, formerly("datamesh:product:DataProduct", opts))
        p = self._product = args.product
        self._args = args
        self._k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        self._meta: Document = {"name": p.name, "namespace": args.namespace.metadata.name, "labels": labels(p),
                      "annotations": product_annotations(p)}
        waits: list[pulumi.Resource] = []  # what the Deployments wait for: the role's grants, the secrets
        account = self._service_account(waits)
        volumes, pod_annotations = self._files()
        if p.secrets:
            waits.append(self._external_secret())
        self._openapi()
        workload_opts = pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=waits))
        for release in p.releases or (None,):
            self._deployment(release, pod_spec(p, args.upstreams, release, account, volumes),
                             pod_annotations, workload_opts)
        self._service()
        self._route()
        self._destination_rule()
        self._egress()
        self._sidecar()
        self.register_outputs({"meshUrl": p.mesh_url, "routePrefix": p.route_prefix})

    def _service_account(self, waits: list[pulumi.Resource]) -> k8s.core.v1.ServiceAccount:
        """The ServiceAccount; with ``aws`` access, first the IAM role it is annotated with (its grants into ``waits``)."""
        p, args, meta = self._product, self._args, self._meta
        sa_meta = dict(meta)
        if p.aws is not None:
            if args.cluster is None:
                raise ValueError(f"{p.name}: declares aws access but the cluster's OIDC provider was not given")
            role, grants = aws_access.product_role(p, args.cluster.oidc_provider_arn, args.cluster.oidc_issuer,
                                                   dict(args.tags), pulumi.ResourceOptions(parent=self))
            waits.extend(grants)
            sa_meta["annotations"] = {**meta["annotations"], aws_access.ROLE_ANNOTATION: role.arn}
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        return k8s.core.v1.ServiceAccount(  # type: ignore[call-overload]
            # The Kubernetes API token stays unmounted; an AWS product gets only the STS token (below).
            p.name, metadata=sa_meta, automount_service_account_token=False, opts=self._k8s_opts
        )

    def _files(self) -> tuple[list[dict], dict[str, str]]:
        """The pod's volumes and annotations; with declared files, their ConfigMap."""
        p = self._product
        volumes: list[dict] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
        if p.aws is not None:
            volumes.append(aws_access.token_volume())
        pod_annotations = {}
        if p.files:
            # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
            files = k8s.core.v1.ConfigMap(  # type: ignore[call-overload]
                f"{p.name}-files", metadata={**self._meta, "name": f"{p.name}-files"}, data=dict(p.files),
                opts=self._k8s_opts,
            )
            volumes.append({"name": "files", "configMap": {"name": files.metadata.name}})
            pod_annotations["datamesh.io/files-sha256"] = files_digest(p)
        return volumes, pod_annotations

    def _external_secret(self) -> k8s.apiextensions.CustomResource:
        p, store = self._product, self._args.secrets
        if store is None:
            raise ValueError(f"{p.name}: declares secrets but no secret store was given")
        return k8s.apiextensions.CustomResource(
            f"{p.name}-secrets",
            api_version="external-secrets.io/v1",
            kind="ExternalSecret",
            metadata={**self._meta, "name": aws_access.secret_name(p)},
            spec=aws_access.external_secret_spec(p, store.store_name),
            # The operator's CRDs and store first: its release is created before any ExternalSecret.
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=[store.store])),
        )

    def _openapi(self) -> None:
        p = self._product
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        k8s.core.v1.ConfigMap(  # type: ignore[call-overload]
            f"{p.name}-openapi",
            metadata={**self._meta, "name": f"{p.name}-openapi",
                      "labels": {**labels(p), "datamesh.io/catalog": "api"}},
            data={"openapi.yaml": p.openapi_text},
            opts=self._k8s_opts,
        )

    def _deployment(self, release: Release | None, pod: dict, pod_annotations: dict[str, str],
                    opts: pulumi.ResourceOptions) -> k8s.apps.v1.Deployment:
        """The single Deployment (no releases declared), or one release's; with autoscaling, its HPA."""
        p = self._product
        name = p.name if release is None else f"{p.name}-{release.slug}"
        pod_labels = labels(p, release.version if release else None)
        spec: dict = {
            "selector": {"matchLabels": match_labels(p, release)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": pod_labels, "annotations": pod_annotations}, "spec": pod},
        }
        if p.autoscaling is None:
            spec["replicas"] = p.replicas  # with an HPA, the HPA owns the count
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        workload = k8s.apps.v1.Deployment(  # type: ignore[call-overload]
            name, metadata={**self._meta, "name": name, "labels": pod_labels}, spec=spec, opts=opts)
        if p.autoscaling is not None:
            # One HPA per Deployment: each release scales on its own share of the traffic.
            # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
            k8s.autoscaling.v2.HorizontalPodAutoscaler(  # type: ignore[call-overload]
                name,
                metadata={**self._meta, "name": name, "labels": pod_labels},
                spec={
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload.metadata.name},
                    "minReplicas": p.autoscaling.min_replicas,
                    "maxReplicas": p.autoscaling.max_replicas,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": p.autoscaling.target_cpu}}}],
                },
                opts=self._k8s_opts,
            )
        return workload

    def _service(self) -> None:
        """The Service, and one budget over every release: at most one of the product's pods is evicted at a time."""
        p, meta = self._product, self._meta
        service_port = {"port": p.port, "targetPort": p.port, "protocol": "TCP"}
        if p.port_name:
            service_port["name"] = p.port_name
        if p.app_protocol:
            service_port["appProtocol"] = p.app_protocol
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        k8s.core.v1.Service(p.name, metadata=meta, spec={"selector": selector(p), "ports": [service_port]},  # type: ignore[call-overload]
                            opts=self._k8s_opts)
        # Plain-dict metadata and spec: the SDK's overloads accept only its own TypedDicts.
        k8s.policy.v1.PodDisruptionBudget(  # type: ignore[call-overload]
            p.name, metadata=meta, spec={"maxUnavailable": 1, "selector": {"matchLabels": selector(p)}}, opts=self._k8s_opts
        )

    def _route(self) -> None:
        p, args = self._product, self._args
        k8s.apiextensions.CustomResource(
            f"{p.name}-route",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata=self._meta,
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
            opts=pulumi.ResourceOptions.merge(self._k8s_opts, pulumi.ResourceOptions(depends_on=[args.gateway_resource])),
        )

    def _destination_rule(self) -> None:
        p = self._product
        k8s.apiextensions.CustomResource(
            f"{p.name}-destination",
            api_version="networking.istio.io/v1",
            kind="DestinationRule",
            metadata=self._meta,
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
            opts=self._k8s_opts,
        )

    def _egress(self) -> None:
        p = self._product
        for host, port in p.egress:
            k8s.apiextensions.CustomResource(
                f"{p.name}-egress-{host}",
                api_version="networking.istio.io/v1",
                kind="ServiceEntry",
                metadata={**self._meta, "name": egress_entry_name(p.name, host)},
                spec={
                    "hosts": [host],
                    "ports": [{"number": port, "name": f"tls-{port}", "protocol": "TLS"}],
                    "resolution": "DNS",
                    "location": "MESH_EXTERNAL",
                    # Its namespace only; and only this product's Sidecar lists the host.
                    "exportTo": ["."],
                },
                opts=self._k8s_opts,
            )

    def _sidecar(self) -> None:
        p = self._product
        k8s.apiextensions.CustomResource(
            f"{p.name}-sidecar",
            api_version="networking.istio.io/v1",
            kind="Sidecar",
            metadata=self._meta,
            spec={
                "workloadSelector": {"labels": selector(p)},
                # The proxy learns istiod's namespace, its own upstreams and its declared external
                # hosts, nothing else: its configuration grows with its dependencies, not with the mesh.
                "egress": [{"hosts": ["istio-system/*", *(f"{u.namespace}/{u.service_host}" for u in self._args.upstreams),
                                      *(f"./{host}" for host, _ in p.egress)]}],
            },
            opts=self._k8s_opts,
        )
