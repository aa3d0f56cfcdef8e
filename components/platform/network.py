"""The VPC the cluster and its load balancers live in."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.config import NetworkSettings
from components.platform.lifecycle import formerly


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of ``Network``.

    Attributes:
        cluster_name: the EKS cluster that will use the subnets; subnets carry
            ``kubernetes.io/cluster/<name>=shared`` so its load balancer controller finds them.
        plan: the VPC's IPv4 CIDR, one private/public CIDR pair per availability zone
            (``cidr.plan_subnets``), and ``nat_gateways``: ``single`` (one NAT gateway in the
            first zone) or ``perAz``.
        tags: tags for every resource, on top of the provider's default tags.
        protect: protect the VPC (``datamesh:protect``): destroying or replacing it fails.
    """

    cluster_name: str
    plan: NetworkSettings
    tags: dict[str, str]
    protect: bool = False


class Network(pulumi.ComponentResource):
    """A VPC with a public and a private subnet in each availability zone.

    Creates: the VPC; an internet gateway; per zone a public subnet (tagged
    ``kubernetes.io/role/elb=1``, for internet-facing load balancers) and a
    private subnet (tagged ``kubernetes.io/role/internal-elb=1``, for nodes and
    internal load balancers); one public route table with a default route to
    the internet gateway and its associations; NAT gateways with their Elastic
    IPs (one, or one per zone); per zone a private route table with a default
    route through its NAT gateway, and its association.

    ``egress_path`` lists the resources traffic to the internet and the AWS APIs
    passes through (internet gateway, NAT gateways, routes, associations): the
    node group depends on them, so by the engine's rules they exist before any
    node starts and are deleted only after everything running on the nodes.
    """

    vpc_id: pulumi.Output[str]
    egress_path: list[pulumi.Resource]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:Network", name, None, formerly("datamesh:network:Network", opts))

        def tags(resource_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
            return {**args.tags, "Name": f"{args.cluster_name}-{resource_name}", **(extra or {})}

        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.plan.vpc_cidr,
            enable_dns_hostnames=True,  # EKS nodes and private endpoint need DNS hostnames
            enable_dns_support=True,
            tags=tags("vpc"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        # Children would inherit protect: only the VPC itself is protected.
        vpc_child = pulumi.ResourceOptions(parent=vpc, protect=False)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags("igw"), opts=vpc_child)

        path: list[pulumi.Resource] = [igw]
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id, tags=tags("public"), opts=vpc_child)
        path += [aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=pulumi.ResourceOptions(parent=public_rt),
        )]

        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        nat_ids: list[pulumi.Output[str]] = []
        for plan in args.plan.subnets:
            zone = plan.availability_zone
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                cidr_block=plan.public_cidr,
                availability_zone=zone,
                # NAT gateways and NLBs have their own public IPs; nothing else should get one.
                map_public_ip_on_launch=False,
                tags=tags(f"public-{zone}", {**cluster_tag, "kubernetes.io/role/elb": "1"}),
                opts=vpc_child,
            )
            path += [aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}",
                subnet_id=public.id,
                route_table_id=public_rt.id,
                opts=pulumi.ResourceOptions(parent=public),
            )]
            public_subnets.append(public)

            private = aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=plan.private_cidr,
                availability_zone=zone,
                tags=tags(f"private-{zone}", {**cluster_tag, "kubernetes.io/role/internal-elb": "1"}),
                opts=vpc_child,
            )
            private_subnets.append(private)

            if args.plan.nat_gateways == "perAz" or not nat_ids:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{zone}",
                    domain="vpc",
                    tags=tags(f"nat-{zone}"),
                    opts=pulumi.ResourceOptions(parent=public),
                )
                nat = aws.ec2.NatGateway(
                    f"{name}-nat-{zone}",
                    allocation_id=eip.id,
                    subnet_id=public.id,
                    tags=tags(f"nat-{zone}"),
                    # A NAT gateway without a route to the internet gateway cannot work.
                    opts=pulumi.ResourceOptions(parent=public, depends_on=[igw]),
                )
                nat_ids.append(nat.id)
                path.append(nat)

            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}", vpc_id=vpc.id, tags=tags(f"private-{zone}"), opts=vpc_child
            )
            path += [aws.ec2.Route(
                f"{name}-private-{zone}-default",
                route_table_id=private_rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat_ids[-1],
                opts=pulumi.ResourceOptions(parent=private_rt),
            ), aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=pulumi.ResourceOptions(parent=private),
            )]

        self.vpc_id = vpc.id
        self.egress_path = path
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )
