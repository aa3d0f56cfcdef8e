"""datamesh: a governed data mesh on EKS and Istio. Reads top to bottom like the architecture."""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.addons.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.addons.eks_addons import ManagedAddons, ManagedAddonsArgs
from components.addons.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.addons.metrics_server import MetricsServer, MetricsServerArgs
from components.config import from_pulumi
from components.governance.access import key_salt, stack_access, uncalled_products
from components.governance.anypoint import AnypointAdapter, AnypointAdapterArgs, parse_anypoint
from components.governance.api_governance import ApiGovernance, ApiGovernanceArgs
from components.governance.observability import Observability, ObservabilityArgs
from components.governance.zero_trust import ZeroTrust, ZeroTrustArgs
from components.platform.cluster import Cluster, ClusterArgs
from components.platform.edge_tls import EdgeCertificate, EdgeCertificateArgs, EdgeDnsName, EdgeDnsNameArgs
from components.platform.existing import existing_cluster
from components.platform.istio import Istio, IstioArgs
from components.platform.istio_existing import ExistingIstio, ExistingIstioArgs
from components.platform.load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.platform.mesh_namespaces import MeshNamespaces, MeshNamespacesArgs
from components.platform.network import Network, NetworkArgs
from components.products import catalog
from components.products.aws_access import refuse_without_oidc
from components.products.data_product import DataProduct, DataProductArgs
from components.products.declarations import load_products

# All configuration and every product declaration are validated here,
# before the first resource is registered.
settings = from_pulumi()
products = load_products(Path(__file__).parent / "products", settings.products, settings.product_overrides,
                         allow_wildcard_iam=settings.allow_wildcard_iam)
gov = settings.governance
access = stack_access(settings, products)  # in global mode, every limit's period is checked too
for warning in (*settings.warnings, *uncalled_products(access, [p.name for p in products])):
    pulumi.log.warn(warning)
anypoint = parse_anypoint(gov.anypoint, gov.anypoint_client_id, gov.anypoint_client_secret, products) if gov.adapter == "anypoint" else None
refuse_without_oidc(products, settings.cluster)  # on an existing cluster, AWS access needs its OIDC provider
aws_provider = aws.Provider("aws", region=settings.region, default_tags={"tags": settings.tag_map}) if settings.uses_aws else None
aws_opts = pulumi.ResourceOptions(providers=[aws_provider] if aws_provider else [])
edge, network, eks, core_addons = settings.edge, None, None, tuple[pulumi.Resource, ...]()
if settings.cluster.existing:  # 1-3. A cluster someone else runs, from its kubeconfig: no network, EKS, add-ons or LB controller.
    ctx = existing_cluster(settings, aws_provider)
else:
    # 1. Network: VPC, public subnets for the NLB, private subnets for nodes.
    network = Network("network", NetworkArgs(settings.cluster_name, settings.network, settings.tag_map, settings.protect), aws_opts)
    # 2. EKS cluster with private managed nodes; its context carries the providers to everything on it.
    eks = Cluster("cluster", ClusterArgs(
        cluster_name=settings.cluster_name, region=settings.region, kubernetes_version=settings.kubernetes_version,
        support_type=settings.eks_support_type, network=network, service_cidr=settings.network.service_cidr,
        endpoint=settings.endpoint, nodes=settings.nodes, tags=settings.tag_map, protect=settings.protect,
    ), aws_opts)
    ctx = eks.context
    # 2b. Add-ons: EKS-managed VPC CNI, kube-proxy, CoreDNS; metrics-server; the Cluster Autoscaler.
    core_addons = tuple(ManagedAddons("eks-addons", ManagedAddonsArgs(ctx, settings.eks_addon_versions), aws_opts).addons.values())
    MetricsServer("metrics-server", MetricsServerArgs(after=core_addons), ctx.opts())
    ClusterAutoscaler("cluster-autoscaler", ClusterAutoscalerArgs(ctx, after=core_addons), ctx.opts())
# 2c. The External Secrets Operator when a product takes values from Secrets Manager (it may read those only).
secret_names = tuple(s.name for p in products for s in p.secrets)
external_secrets = ExternalSecrets("external-secrets", ExternalSecretsArgs(secret_names, tuple(
    p.namespace for p in products if p.secrets), ctx, after=core_addons), ctx.opts()) if secret_names else None
# 3. AWS Load Balancer Controller, so Services can get NLBs (once the managed add-ons, the VPC CNI first, are up).
lbc = LoadBalancerController("aws-load-balancer-controller", LoadBalancerControllerArgs(
    ctx, network.vpc_id, after=core_addons), ctx.opts()).release if network else None

# 4. Istio: base, istiod revisions, their `stable` tag, the gateway behind an NLB (TLS with datamesh:domain); or as found.
certificate = EdgeCertificate("edge", EdgeCertificateArgs(
    edge.domain, edge.hosted_zone_id, edge.certificate_arn, settings.tag_map), aws_opts) if edge.domain else None
istio = ExistingIstio("istio", ExistingIstioArgs(settings.istio.stable, settings.kubernetes_version), ctx.opts()) \
    if settings.istio.existing else Istio("istio", IstioArgs(
        settings.istio, lbc, tls_certificate_arn=certificate.certificate_arn if certificate else None, after=core_addons), ctx.opts())
if edge.domain and edge.hosted_zone_id:
    EdgeDnsName("edge", EdgeDnsNameArgs(domain=edge.domain, hosted_zone_id=edge.hosted_zone_id, target=istio.gateway_host), aws_opts)

# 5. Namespaces for data products (one per domain), injected through the `stable` tag once it serves.
namespaces = tuple(dict.fromkeys([*settings.mesh_namespaces, *(p.domain for p in products)]))
mesh = MeshNamespaces("mesh", MeshNamespacesArgs(namespaces, settings.injection_label, istio.injector), ctx.opts())

# 6. Zero trust: mTLS STRICT, and each product namespace denies unless a policy allows.
zero_trust = ZeroTrust("zero-trust", ZeroTrustArgs(products, None if anypoint else access.consumers, mesh.namespaces,
                                                  istio.istiod), ctx.opts())

# 7. Data products, each routed from the gateway under its prefix; they start only once
#    their namespace's policies exist, so no product ever serves unprotected.
by_name = {p.name: p for p in products}
data_products = {p.name: DataProduct(p.name, DataProductArgs(
    product=p, upstreams=tuple(by_name[u] for u in p.consumes), namespace=mesh.namespaces[p.domain],
    gateway=istio.shared_gateway_ref, gateway_resource=istio.shared_gateway, after=tuple(zero_trust.guards[p.name]),
    cluster=ctx, tags=settings.tags, secrets=external_secrets), ctx.opts()) for p in products}

# 8. API governance: keys and rate limits at the gateway, or Anypoint's adapter bound to the products.
if anypoint is None:
    ApiGovernance("api-governance", ApiGovernanceArgs(products, access.consumers, key_salt(settings.cluster_name), access.tiers,
                                                      istio.gateway, mesh.namespaces, gov.rate_limits, eks, network), ctx.opts())
else:
    AnypointAdapter("anypoint", AnypointAdapterArgs(anypoint, products, mesh.namespaces, data_products), ctx.opts())

# 9. Observability: access logs, metrics per product and consumer, Prometheus and Kiali.
Observability("observability", ObservabilityArgs(gov.observability, istio.istiod), ctx.opts())

# 10. Discovery: every product's external URL and the Backstage catalog.
gateway_url = pulumi.Output.from_input(f"https://{edge.domain}") if edge.domain else istio.gateway_host.apply(
    lambda host: f"http://{host}")
product_urls = gateway_url.apply(lambda base: {p.name: f"{base}{p.route_prefix}" for p in products})
for key, value in {
    "productUrls": product_urls,
    "catalog": product_urls.apply(lambda urls: catalog.entities(products, urls, pulumi.get_stack(), settings.source_url)),
    "clusterName": settings.cluster_name,
    **({} if eks is None or network is None else {  # an existing cluster: its kubeconfig is its owner's; no VPC of ours
        "kubeconfig": eks.kubeconfig,  # secret: `pulumi stack output kubeconfig --show-secrets`
        "vpcId": network.vpc_id, "publicSubnetIds": network.public_subnet_ids, "privateSubnetIds": network.private_subnet_ids}),
    "oidcProviderArn": ctx.oidc_provider_arn, "istioVersion": settings.istio.version,
    "meshNamespaces": list(mesh.namespaces), "ingressGatewayHostname": istio.gateway_host, "gatewayUrl": gateway_url,
    "consumers": {c.name: {"products": list(c.products), "tier": c.tier} for c in access.consumers},  # no keys
}.items():
    pulumi.export(key, value)
