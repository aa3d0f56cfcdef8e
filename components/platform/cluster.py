"""The EKS cluster, its worker nodes, and the Kubernetes provider every later component uses."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.config import EndpointSettings, NodeSettings
from components.platform.context import ClusterContext
from components.platform.lifecycle import formerly
from components.platform.network import Network

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

# Control-plane logs (api, audit, ...) kept this long; CloudWatch's default is forever.
CONTROL_PLANE_LOG_RETENTION_DAYS = 90


@dataclass(frozen=True)
class ClusterArgs:
    """Inputs of ``Cluster``.

    Attributes:
        cluster_name: the EKS cluster's name.
        region: its AWS region (for the context add-ons read).
        kubernetes_version: EKS minor version, e.g. ``1.35``.
        support_type: EKS upgrade policy, ``STANDARD`` or ``EXTENDED`` (set explicitly:
            left unset, EKS bills extended support once standard support ends).
        network: the ``Network``; nodes go in its private subnets, and the node group waits
            for its ``egress_path`` (what nodes need to reach the internet and AWS APIs), so
            that is created first and deleted last.
        service_cidr: the Kubernetes Service CIDR.
        endpoint: API endpoint exposure, control-plane logs and admin principals.
        nodes: the managed node group.
        tags: tags for every resource.
        protect: protect the KMS key and the EKS cluster (``datamesh:protect``).
    """

    cluster_name: str
    region: str
    kubernetes_version: str
    support_type: str
    network: Network
    service_cidr: str
    endpoint: EndpointSettings
    nodes: NodeSettings
    tags: dict[str, str]
    protect: bool = False


def _admin_entries(admin_principal_arns: tuple[str, ...]) -> dict[str, eks.AccessEntryArgs]:
    return {
        f"admin-{i}": eks.AccessEntryArgs(
            principal_arn=arn,
            access_policies={
                "cluster-admin": eks.AccessPolicyAssociationArgs(
                    policy_arn=CLUSTER_ADMIN_POLICY,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                )
            },
        )
        for i, arn in enumerate(admin_principal_arns)
    }


class Cluster(pulumi.ComponentResource):
    """An EKS cluster with private managed nodes and a Kubernetes provider for it. Creates:

    - ``<name>-secrets``: a KMS key (with rotation) for envelope encryption of Kubernetes
      Secrets, and its alias (``<name>-secrets``, child of the key);
    - ``<name>-eks``: the ``eks:index:Cluster`` (API access entries only, one per admin
      principal, an IAM OIDC provider for IRSA, control-plane logs, the EKS-created security
      group, an explicit upgrade policy, no default node group and no add-ons of its own);
    - ``<name>-nodes``: the node security group, and as its children the rules (node to node,
      all egress, control plane to kubelet, 443 and the webhook ports 15017 and 9443, nodes
      to the API);
    - ``<name>-api-from-<source>``: per ``datamesh:privateAccessSources`` entry (a private CIDR
      or a security group, e.g. a CI runner's), 443 on the control plane's security group;
    - ``<name>-nodes``: the node IAM role, and its three managed policy attachments;
    - ``<name>-nodes``: a launch template requiring IMDSv2, with an encrypted root volume;
    - ``<name>-nodes``: the managed node group in the private subnets, at the cluster's
      Kubernetes version, after the security-group rules and the network path;
    - ``<name>-k8s``: the Kubernetes provider, which waits for the node group so that
      nothing is scheduled on a cluster without nodes.

    ``context`` is what add-ons and products take (``ClusterContext``); the AWS provider
    must come through ``opts``.
    """

    cluster_name: str
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    provider: k8s.Provider
    node_group: aws.eks.NodeGroup
    api_access_rules: list[aws.ec2.SecurityGroupRule]
    context: ClusterContext

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:Cluster", name, None, formerly("datamesh:cluster:Cluster", opts))
        aws_provider = self.get_provider("aws:eks/cluster:Cluster")
        if aws_provider is None:
            raise ValueError("Cluster: give the AWS provider through opts (providers=[...])")
        self._name, self._args = name, args
        secrets_key = self._secrets_key()
        self.eks = self._control_plane(secrets_key)
        rules, node_sg = self._node_security_group(self.eks.cluster_security_group_id)
        self.api_access_rules = self._api_access_rules(self.eks.cluster_security_group_id)
        attachments, node_role = self._node_role()
        launch_template = self._launch_template(node_sg)
        self.node_group = self._node_group(node_role, launch_template, [self.eks, *attachments, *rules])
        self.cluster_name = args.cluster_name
        self.node_security_group_id = node_sg.id  # what may reach the nodes' neighbours (the rate-limit Redis)
        self.kubeconfig = pulumi.Output.secret(self.eks.kubeconfig_json)
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_issuer = self.eks.oidc_issuer
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Server-side apply lets the Helm releases and our patches share objects safely.
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.node_group]),
        )
        self.context = ClusterContext(
            name=args.cluster_name, region=args.region, kubernetes_version=args.kubernetes_version,
            oidc_provider_arn=self.oidc_provider_arn, oidc_issuer=self.oidc_issuer, tags=dict(args.tags),
            aws_provider=aws_provider, kubernetes=self.provider, node_group=self.node_group,
        )
        self.register_outputs({
            "clusterName": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidcProviderArn": self.oidc_provider_arn,
            "nodeGroup": self.node_group.node_group_name,
        })

    def _secrets_key(self) -> aws.kms.Key:
        name, args = self._name, self._args
        secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes Secrets in {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.kms.Alias(
            f"{name}-secrets",
            name=f"alias/{args.cluster_name}-secrets",
            target_key_id=secrets_key.key_id,
            # A fixed name: a replacement must delete the old alias first. Not protected itself
            # (children inherit protect): it holds no data.
            opts=pulumi.ResourceOptions(parent=secrets_key, protect=False, delete_before_replace=True),
        )
        return secrets_key

    def _control_plane_logs(self) -> list[pulumi.Resource]:
        """The log group EKS writes control-plane logs to, made first: left to EKS it has no retention and no
        tags, and outlives the cluster after a destroy."""
        args = self._args
        if not args.endpoint.control_plane_logs:
            return []
        return [aws.cloudwatch.LogGroup(
            f"{self._name}-control-plane-logs",
            name=f"/aws/eks/{args.cluster_name}/cluster",  # the name EKS writes to; fixed
            retention_in_days=CONTROL_PLANE_LOG_RETENTION_DAYS,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )]

    def _control_plane(self, secrets_key: aws.kms.Key) -> eks.Cluster:
        args, endpoint = self._args, self._args.endpoint
        logs = self._control_plane_logs()
        # Read from plain outputs (kubeconfigJson, oidcProvider*, clusterSecurityGroupId)
        # rather than cluster.core: they are what a real deployment and the mocks both give.
        return eks.Cluster(
            f"{self._name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=args.support_type),
            vpc_id=args.network.vpc_id,
            public_subnet_ids=args.network.public_subnet_ids,
            private_subnet_ids=args.network.private_subnet_ids,
            kubernetes_service_ip_address_range=args.service_cidr,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=_admin_entries(endpoint.admin_principal_arns) or None,
            create_oidc_provider=True,
            encryption_config_key_arn=secrets_key.arn,
            enabled_cluster_log_types=list(endpoint.control_plane_logs),
            endpoint_public_access=endpoint.public_access,
            endpoint_private_access=endpoint.private_access,
            public_access_cidrs=list(endpoint.public_access_cidrs) or None,
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
            # A fixed name: EKS refuses a second cluster of the same name, so a replacement deletes first.
            # After its log group, so EKS finds it and does not make its own; deleted before it.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, delete_before_replace=True, depends_on=logs),
        )

    def _node_security_group(
        self, control_plane_sg: pulumi.Output[str],
    ) -> tuple[list[aws.ec2.SecurityGroupRule], aws.ec2.SecurityGroup]:
        name, args = self._name, self._args
        node_sg = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=args.network.vpc_id,
            description=f"Worker nodes of {args.cluster_name}",
            tags={**args.tags, f"kubernetes.io/cluster/{args.cluster_name}": "owned"},
            opts=pulumi.ResourceOptions(parent=self),
        )

        def rule(suffix: str, args: aws.ec2.SecurityGroupRuleArgs) -> aws.ec2.SecurityGroupRule:
            return aws.ec2.SecurityGroupRule(f"{name}-{suffix}", args, opts=pulumi.ResourceOptions(parent=node_sg))

        # Every rule is a dependency of the node group: created before the nodes
        # start, deleted only after everything on them (the controller deleting the NLB).
        rules = [rule("nodes-self", aws.ec2.SecurityGroupRuleArgs(
            type="ingress", protocol="-1", from_port=0, to_port=0,
            security_group_id=node_sg.id, source_security_group_id=node_sg.id, description="Node to node and pod to pod",
        )), rule("nodes-egress", aws.ec2.SecurityGroupRuleArgs(
            type="egress", protocol="-1", from_port=0, to_port=0, security_group_id=node_sg.id,
            cidr_blocks=["0.0.0.0/0"], description="Image pulls, AWS APIs, the control plane",
        ))]
        for purpose, port in CONTROL_PLANE_TO_NODE_PORTS.items():
            rules.append(rule(f"control-plane-{purpose}", aws.ec2.SecurityGroupRuleArgs(
                type="ingress", protocol="tcp", from_port=port, to_port=port,
                security_group_id=node_sg.id, source_security_group_id=control_plane_sg,
                description=f"Control plane to {purpose} on {port}",
            )))
        rules.append(rule("nodes-to-api", aws.ec2.SecurityGroupRuleArgs(
            type="ingress", protocol="tcp", from_port=443, to_port=443,
            security_group_id=control_plane_sg, source_security_group_id=node_sg.id,
            description="Nodes to the Kubernetes API",
        )))
        return rules, node_sg

    def _api_access_rules(self, control_plane_sg: pulumi.Output[str]) -> list[aws.ec2.SecurityGroupRule]:
        """443 on the control plane's security group from each of ``datamesh:privateAccessSources``."""
        endpoint = self._args.endpoint

        def rule(suffix: str, cidr: str | None = None, group: str | None = None) -> aws.ec2.SecurityGroupRule:
            return aws.ec2.SecurityGroupRule(
                f"{self._name}-api-from-{suffix}", type="ingress", protocol="tcp", from_port=443, to_port=443,
                security_group_id=control_plane_sg, cidr_blocks=[cidr] if cidr else None, source_security_group_id=group,
                description="Private access to the Kubernetes API (privateAccessSources)",
                opts=pulumi.ResourceOptions(parent=self))

        return [*(rule(f"cidr-{c.replace('/', '-')}", cidr=c) for c in endpoint.private_access_cidrs),
                *(rule(g, group=g) for g in endpoint.private_access_security_groups)]

    def _node_role(self) -> tuple[list[aws.iam.RolePolicyAttachment], aws.iam.Role]:
        name = self._name
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
            tags=self._args.tags,
            opts=pulumi.ResourceOptions(parent=self),
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
        return attachments, node_role

    def _launch_template(self, node_sg: aws.ec2.SecurityGroup) -> aws.ec2.LaunchTemplate:
        args = self._args
        return aws.ec2.LaunchTemplate(
            f"{self._name}-nodes",
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
                    volume_size=args.nodes.disk_size, volume_type="gp3", encrypted="true",
                ),
            )],
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(
                resource_type="instance", tags={**args.tags, "Name": f"{args.cluster_name}-node"},
            )],
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _node_group(self, node_role: aws.iam.Role, launch_template: aws.ec2.LaunchTemplate,
                    after: list[pulumi.Resource]) -> aws.eks.NodeGroup:
        args, nodes = self._args, self._args.nodes
        return aws.eks.NodeGroup(
            f"{self._name}-nodes",
            cluster_name=args.cluster_name,
            node_role_arn=node_role.arn,
            subnet_ids=args.network.private_subnet_ids,
            capacity_type=nodes.capacity_type,
            instance_types=list(nodes.instance_types),
            ami_type=nodes.ami_type,  # Graviton types take the arm64 AMI
            # Follows the control plane: raising kubernetesVersion rolls the nodes too
            # (after the control plane, which the node group depends on).
            version=args.kubernetes_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=nodes.min_size, desired_size=nodes.desired_size, max_size=nodes.max_size,
            ),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=launch_template.id, version=launch_template.latest_version.apply(str),
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=args.tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*after, *args.network.egress_path],
                # The autoscaler (or a person) moves desiredSize; don't fight it on every up.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )
