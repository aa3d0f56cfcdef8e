"""datamesh: a governed data mesh on EKS and Istio. Reads top to bottom like the architecture."""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.addons.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.addons.eks_addons import ManagedAddons, ManagedAddonsArgs
from components.addons.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.addons.metrics_server import MetricsServer, MetricsServerArgs
from components.config import from_pulumi
from components.governance.access import key_salt, load_access, uncalled_products
from components.governance.anypoint import AnypointAdapter, AnypointAdapterArgs, parse_anypoint
from components.governance.api_governance import ApiGovernance, ApiGovernanceArgs
from components.governance.observability import Observability, ObservabilityArgs
from components.governance.zero_trust import ZeroTrust, ZeroTrustArgs
from components.platform.cluster import Cluster, ClusterArgs
from components.platform.edge_tls import EdgeCertificate, EdgeCertificateArgs, EdgeDnsName, EdgeDnsNameArgs
from components.platform.istio import Istio, IstioArgs
from components.platform.load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.platform.mesh_namespaces import MeshNamespaces, MeshNamespacesArgs
from components.platform.network import Network, NetworkArgs
from components.products import catalog
from components.products.data_product import DataProduct, DataProductArgs
from components.products.declarations import load_products

# All configuration and every product declaration are validated here,
# before the first resource is registered.
settings = from_pulumi()
products = load_products(Path(__file__).parent / "products", settings.products, settings.product_overrides,
                         allow_wildcard_iam=settings.allow_wildcard_iam)
access = load_access(settings.governance.consumers, settings.governance.api_keys, settings.governance.rate_limit_tiers,
                      {p.name for p in products})
for warning in uncalled_products(access, [p.name for p in products]):
    pulumi.log.warn(warning)
anypoint = parse_anypoint(settings.governance.anypoint, settings.governance.anypoint_client_id, settings.governance.anypoint_client_secret,
                          products) if settings.governance.adapter == "anypoint" else None
aws_provider = aws.Provider("aws", region=settings.region, default_tags={"tags": settings.tag_map})
aws_opts = pulumi.ResourceOptions(providers=[aws_provider])

# 1. Network: VPC, public subnets for the NLB, private subnets for nodes.
network = Network("network", NetworkArgs(
    cluster_name=settings.cluster_name,
    vpc_cidr=settings.network.vpc_cidr,
    subnets=settings.network.subnets,
    nat_gateways=settings.network.nat_gateways,
    tags=settings.tag_map,
), aws_opts)

# 2. EKS cluster with private managed nodes, and the Kubernetes provider for it.
cluster = Cluster("cluster", ClusterArgs(
    cluster_name=settings.cluster_name,
    kubernetes_version=settings.kubernetes_version,
    support_type=settings.eks_support_type,
    vpc_id=network.vpc_id,
    public_subnet_ids=network.public_subnet_ids,
    private_subnet_ids=network.private_subnet_ids,
    service_cidr=settings.network.service_cidr,
    endpoint_public_access=settings.endpoint.public_access,
    endpoint_private_access=settings.endpoint.private_access,
    public_access_cidrs=settings.endpoint.public_access_cidrs,
    control_plane_logs=settings.endpoint.control_plane_logs,
    admin_principal_arns=settings.endpoint.admin_principal_arns,
    node_capacity_type=settings.nodes.capacity_type,
    node_instance_types=settings.nodes.instance_types,
    node_min_size=settings.nodes.min_size,
    node_desired_size=settings.nodes.desired_size,
    node_max_size=settings.nodes.max_size,
    node_disk_size=settings.nodes.disk_size,
    tags=settings.tag_map,
    network_path=tuple(network.egress_path),
), aws_opts)

# 2b. Cluster add-ons: EKS-managed VPC CNI, kube-proxy and CoreDNS (following the cluster
#     version), metrics-server for the HPAs, and the Cluster Autoscaler for the nodes.
addons = ManagedAddons("eks-addons", ManagedAddonsArgs(
    cluster_name=settings.cluster_name,
    kubernetes_version=settings.kubernetes_version,
    node_group=cluster.node_group,
    pinned=settings.eks_addon_versions,
    tags=settings.tag_map,
), aws_opts)
MetricsServer("metrics-server", MetricsServerArgs(provider=cluster.provider, after=tuple(addons.addons.values())))
ClusterAutoscaler("cluster-autoscaler", ClusterAutoscalerArgs(
    cluster_name=settings.cluster_name,
    region=settings.region,
    kubernetes_version=settings.kubernetes_version,
    oidc_provider_arn=cluster.oidc_provider_arn,
    oidc_issuer=cluster.oidc_issuer,
    provider=cluster.provider,
    tags=settings.tag_map,
    after=tuple(addons.addons.values()),
), aws_opts)

# The External Secrets Operator, when a product takes values from Secrets Manager: it may read those only.
secret_names = tuple(s.name for p in products for s in p.secrets)
external_secrets = ExternalSecrets("external-secrets", ExternalSecretsArgs(
    secret_names=secret_names,
    namespaces=tuple(p.namespace for p in products if p.secrets),
    region=settings.region,
    cluster_name=settings.cluster_name,
    oidc_provider_arn=cluster.oidc_provider_arn,
    oidc_issuer=cluster.oidc_issuer,
    provider=cluster.provider,
    tags=settings.tag_map,
    after=tuple(addons.addons.values()),
), aws_opts) if secret_names else None

# 3. AWS Load Balancer Controller, so Services can get NLBs.
lbc = LoadBalancerController("aws-load-balancer-controller", LoadBalancerControllerArgs(
    cluster_name=settings.cluster_name,
    region=settings.region,
    vpc_id=network.vpc_id,
    oidc_provider_arn=cluster.oidc_provider_arn,
    oidc_issuer=cluster.oidc_issuer,
    provider=cluster.provider,
    tags=settings.tag_map,
), aws_opts)

# 4. Istio: base, istiod, the ingress gateway behind an internet-facing NLB that terminates
#    TLS with an issued ACM certificate for datamesh:domain (plain HTTP only if the stack says so).
certificate = EdgeCertificate("edge", EdgeCertificateArgs(
    domain=settings.edge.domain, hosted_zone_id=settings.edge.hosted_zone_id,
    certificate_arn=settings.edge.certificate_arn, tags=settings.tag_map,
), aws_opts) if settings.edge.domain else None
istio = Istio("istio", IstioArgs(
    release=settings.istio,
    revision=settings.istio_revision,
    provider=cluster.provider,
    load_balancer_controller=lbc.release,
    tls_certificate_arn=certificate.certificate_arn if certificate else None,
))
gateway_host = istio.gateway_service.status.load_balancer.ingress[0].hostname
if settings.edge.domain and settings.edge.hosted_zone_id:
    EdgeDnsName("edge", EdgeDnsNameArgs(
        domain=settings.edge.domain, hosted_zone_id=settings.edge.hosted_zone_id, target=gateway_host), aws_opts)

# 5. Namespaces for data products (one per domain), injected once istiod is up.
mesh = MeshNamespaces("mesh", MeshNamespacesArgs(
    names=tuple(dict.fromkeys([*settings.mesh_namespaces, *(p.domain for p in products)])),
    injection_label=settings.injection_label,
    istiod=istio.istiod,
    provider=cluster.provider,
))

# 6. Zero trust: mTLS STRICT, and each product namespace denies unless a policy allows.
zero_trust = ZeroTrust("zero-trust", ZeroTrustArgs(
    products=products, namespaces=mesh.namespaces, istiod=istio.istiod, provider=cluster.provider,
))

# 7. Data products, each routed from the gateway under its prefix; they start only once
#    their namespace's policies exist, so no product ever serves unprotected.
by_name = {p.name: p for p in products}
data_products = {
    product.name: DataProduct(product.name, DataProductArgs(
        product=product,
        upstreams=tuple(by_name[u] for u in product.consumes),
        namespace=mesh.namespaces[product.domain],
        gateway=istio.shared_gateway_ref,
        gateway_resource=istio.shared_gateway,
        provider=cluster.provider,
        after=tuple(zero_trust.guards[product.name]),
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        aws_provider=aws_provider,
        tags=settings.tags,
        secret_store=external_secrets.store_name if external_secrets else None,
        secrets_after=(external_secrets.store,) if external_secrets else (),
    ))
    for product in products
}

# 8. API governance: keys and rate limits at the gateway, or Anypoint's adapter bound to the products.
if anypoint is None:
    ApiGovernance("api-governance", ApiGovernanceArgs(
        products=products, consumers=access.consumers, salt=key_salt(settings.cluster_name), tiers=access.tiers,
        gateway=istio.gateway, provider=cluster.provider,
    ))
else:
    AnypointAdapter("anypoint", AnypointAdapterArgs(
        settings=anypoint, products=products, namespaces=mesh.namespaces, provider=cluster.provider,
        services=data_products,
    ))

# 9. Observability: access logs, metrics per product and consumer, Prometheus and Kiali.
Observability("observability", ObservabilityArgs(
    addons=settings.governance.observability, istiod=istio.istiod, provider=cluster.provider,
))

# 10. Discovery: every product's external URL and the Backstage catalog.
gateway_url = pulumi.Output.from_input(f"https://{settings.edge.domain}") if settings.edge.domain else gateway_host.apply(
    lambda host: f"http://{host}")
product_urls = gateway_url.apply(lambda base: {p.name: f"{base}{p.route_prefix}" for p in products})
pulumi.export("productUrls", product_urls)
pulumi.export("catalog", product_urls.apply(
    lambda urls: catalog.entities(products, urls, pulumi.get_stack(), settings.source_url)))

pulumi.export("clusterName", settings.cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)  # secret: `pulumi stack output kubeconfig --show-secrets`
pulumi.export("vpcId", network.vpc_id)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
pulumi.export("istioVersion", settings.istio.version)
pulumi.export("meshNamespaces", list(mesh.namespaces))
pulumi.export("ingressGatewayHostname", gateway_host)
pulumi.export("gatewayUrl", gateway_url)
