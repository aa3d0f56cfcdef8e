"""The EKS cluster, its worker nodes, and the Kubernetes provider every later component uses."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

# Ports the control plane must reach on the nodes: admission webhooks served
# from pods. Without these rules the API server times out calling them and
# every pod or Service creation in a webhook's scope fails.
WEBHOOK_PORTS = {
    "istio-sidecar-injector": 15017,
    "aws-load-balancer-controller": 9443,
}
# The kubelet API (logs, exec, metrics) and the standard webhook port.
CONTROL_PLANE_TO_NODE_PORTS = {"kubelet": 10250, "https": 443, **WEBHOOK_PORTS}

NODE_MANAGED_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
)
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of ``Cluster``.

    Attributes:
        cluster_name: the EKS cluster's name.
        kubernetes_version: EKS minor version, e.g. ``1.35``.
        support_type: EKS upgrade policy, ``STANDARD`` or ``EXTENDED`` (set explicitly:
            left unset, EKS bills extended support once standard support ends).
        vpc_id, public_subnet_ids, private_subnet_ids: from ``Network``; nodes go in the private ones.
        service_cidr: the Kubernetes Service CIDR.
        endpoint_public_access, endpoint_private_access, public_access_cidrs: API endpoint exposure.
        control_plane_logs: EKS log types sent to CloudWatch.
        admin_principal_arns: IAM principals given cluster-admin through access entries.
        node_capacity_type, node_instance_types, node_min_size, node_desired_size,
        node_max_size, node_disk_size: the managed node group.
        tags: tags for every resource.
        network_path: what nodes need to reach the internet and AWS APIs (``Network.egress_path``);
            the node group waits for it, so it is created first and deleted last.
    """

    cluster_name: str
    kubernetes_version: str
    support_type: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]
    service_cidr: str
    endpoint_public_access: bool
    endpoint_private_access: bool
    public_access_cidrs: tuple[str, ...]
    control_plane_logs: tuple[str, ...]
    admin_principal_arns: tuple[str, ...]
    node_capacity_type: str
    node_instance_types: tuple[str, ...]
    node_min_size: int
    node_desired_size: int
    node_max_size: int
    node_disk_size: int
    tags: dict[str, str]
    network_path: tuple[pulumi.Resource, ...] = ()


class Cluster(pulumi.ComponentResource):
    """An EKS cluster with private managed nodes and a Kubernetes provider for it.

    Creates: a KMS key (with rotation) and alias for envelope encryption of
    Kubernetes Secrets; the ``eks:index:Cluster`` (API access entries only, an
    IAM OIDC provider for IRSA, control-plane logs, the EKS-created security
    group, an explicit upgrade policy, no default node group and no add-ons of
    its own) with an access entry per admin principal; the node security group
    with its rules (node to node, nodes to the API, control plane to kubelet,
    443 and the webhook ports 15017 and 9443, all egress); the node IAM role and
    its three managed policy attachments; a launch template requiring IMDSv2;
    the managed node group in the private subnets, at the cluster's Kubernetes
    version, after the security-group rules and the network path; and the
    Kubernetes provider, which waits for the node group so that nothing is
    scheduled on a cluster without nodes.
    """

    cluster_name: str
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    provider: k8s.Provider
    node_group: aws.eks.NodeGroup

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:cluster:Cluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes Secrets in {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-secrets",
            name=f"alias/{args.cluster_name}-secrets",
            target_key_id=secrets_key.key_id,
            opts=pulumi.ResourceOptions(parent=secrets_key),
        )

        admin_entries = {
            f"admin-{i}": eks.AccessEntryArgs(
                principal_arn=arn,
                access_policies={
                    "cluster-admin": eks.AccessPolicyAssociationArgs(
                        policy_arn=CLUSTER_ADMIN_POLICY,
                        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    )
                },
            )
            for i, arn in enumerate(args.admin_principal_arns)
        }

        # Read from plain outputs (kubeconfigJson, oidcProvider*, clusterSecurityGroupId)
        # rather than cluster.core: they are what a real deployment and the mocks both give.
        self.eks = eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=args.support_type),
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            kubernetes_service_ip_address_range=args.service_cidr,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=admin_entries or None,
            create_oidc_provider=True,
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=list(args.control_plane_logs),
            endpoint_public_access=args.endpoint_public_access,
            endpoint_private_access=args.endpoint_private_access,
            public_access_cidrs=list(args.public_access_cidrs) or None,
            skip_default_node_group=True,
            # CoreDNS, kube-proxy and the VPC CNI are EKS managed add-ons owned by
            # components/addons/eks_addons.py, created once nodes exist; left on,
            # pulumi-eks would create kube-proxy and the CNI itself, twice-managed.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
            use_default_vpc_cni=True,
            # The control plane keeps only the EKS-created security group; nodes get their own below.
            skip_default_security_groups=True,
            tags=args.tags,
            opts=child,
        )
        control_plane_sg = self.eks.cluster_security_group_id

        node_sg = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=args.vpc_id,
            description=f"Worker nodes of {args.cluster_name}",
            tags={**args.tags, f"kubernetes.io/cluster/{args.cluster_name}": "owned"},
            opts=child,
        )
        sg_child = pulumi.ResourceOptions(parent=node_sg)
        # Every rule is a dependency of the node group: created before the nodes
        # start, deleted only after everything on them (the controller deleting the NLB).
        rules = [aws.ec2.SecurityGroupRule(
            f"{name}-nodes-self",
            type="ingress", protocol="-1", from_port=0, to_port=0,
            security_group_id=node_sg.id, source_security_group_id=node_sg.id,
            description="Node to node and pod to pod", opts=sg_child,
        ), aws.ec2.SecurityGroupRule(
            f"{name}-nodes-egress",
            type="egress", protocol="-1", from_port=0, to_port=0,
            security_group_id=node_sg.id, cidr_blocks=["0.0.0.0/0"],
            description="Image pulls, AWS APIs, the control plane", opts=sg_child,
        )]
        for purpose, port in CONTROL_PLANE_TO_NODE_PORTS.items():
            rules.append(aws.ec2.SecurityGroupRule(
                f"{name}-control-plane-{purpose}",
                type="ingress", protocol="tcp", from_port=port, to_port=port,
                security_group_id=node_sg.id, source_security_group_id=control_plane_sg,
                description=f"Control plane to {purpose} on {port}", opts=sg_child,
            ))
        rules.append(aws.ec2.SecurityGroupRule(
            f"{name}-nodes-to-api",
            type="ingress", protocol="tcp", from_port=443, to_port=443,
            security_group_id=control_plane_sg, source_security_group_id=node_sg.id,
            description="Nodes to the Kubernetes API", opts=sg_child,
        ))

        node_role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            }),
            tags=args.tags,
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{arn.rsplit('/', 1)[1]}",
                role=node_role.name,
                policy_arn=arn,
                opts=pulumi.ResourceOptions(parent=node_role),
            )
            for arn in NODE_MANAGED_POLICIES
        ]

        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            description=f"Worker nodes of {args.cluster_name}: IMDSv2 only, encrypted root volume",
            # Only the node group's own security group, so the rules above are the whole story.
            vpc_security_group_ids=[node_sg.id],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                # 1 hop: pods cannot borrow the node's role; they use IRSA.
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=args.node_disk_size, volume_type="gp3", encrypted="true",
                ),
            )],
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type="instance", tags={**args.tags, "Name": f"{args.cluster_name}-node"},
            )],
            tags=args.tags,
            opts=child,
        )

        node_group = self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=args.cluster_name,
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            capacity_type=args.node_capacity_type,
            instance_types=list(args.node_instance_types),
            ami_type="AL2023_x86_64_STANDARD",
            # Follows the control plane: raising kubernetesVersion rolls the nodes too
            # (after the control plane, which the node group depends on).
            version=args.kubernetes_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.node_min_size,
                desired_size=args.node_desired_size,
                max_size=args.node_max_size,
            ),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str),
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.eks, *attachments, *rules, *args.network_path],
                # The autoscaler (or a person) moves desiredSize; don't fight it on every up.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

        self.cluster_name = args.cluster_name
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_issuer = self.eks.oidc_issuer
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Server-side apply lets the Helm releases and our patches share objects safely.
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_group]),
        )
        self.register_outputs({
            "clusterName": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidcProviderArn": self.oidc_provider_arn,
            "nodeGroup": node_group.node_group_name,
        })
