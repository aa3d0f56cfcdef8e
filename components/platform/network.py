"""The VPC the cluster and its load balancers live in."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.cidr import SubnetPlan
from components.config import NetworkSettings
from components.platform.lifecycle import formerly
from components.platform.nat_instance import nat_instance


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of ``Network``.

    Attributes:
        cluster_name: the EKS cluster that will use the subnets; subnets carry
            ``kubernetes.io/cluster/<name>=shared`` so its load balancer controller finds them.
        plan: the VPC's IPv4 CIDR, one private/public CIDR pair per availability zone
            (``cidr.plan_subnets``), and ``nat_gateways``: ``single`` (one NAT gateway in the
            first zone), ``perAz``, or ``instance`` (one NAT instance in the first zone).
        tags: tags for every resource, on top of the provider's default tags.
        protect: protect the VPC (``datamesh:protect``): destroying or replacing it fails.
    """

    cluster_name: str
    plan: NetworkSettings
    tags: dict[str, str]
    protect: bool = False


class Network(pulumi.ComponentResource):
    """A VPC with a public and a private subnet in each availability zone. Creates:

    - ``<name>-vpc``: the VPC (protected with ``protect``), and as its children:
    - ``<name>-igw``: an internet gateway;
    - ``<name>-public``: the public route table, with ``<name>-public-default``, its default
      route to the internet gateway;
    - ``<name>-public-<zone>`` per zone: a public subnet (tagged ``kubernetes.io/role/elb=1``,
      for internet-facing load balancers) and its route-table association;
    - ``<name>-private-<zone>`` per zone: a private subnet (tagged
      ``kubernetes.io/role/internal-elb=1``, for nodes and internal load balancers);
    - ``<name>-nat-<zone>``: a NAT gateway and its Elastic IP, in the first zone only
      (``single``) or in each (``perAz``); or (``instance``) a NAT instance and its security
      group in the first zone (components/platform/nat_instance.py);
    - ``<name>-private-<zone>`` per zone: a private route table, with
      ``<name>-private-<zone>-default``, its default route through the zone's NAT gateway
      (or the instance's network interface), and the private subnet's association.

    ``egress_path`` lists the resources traffic to the internet and the AWS APIs
    passes through (internet gateway, NAT gateways or instance, routes, associations): the
    node group depends on them, so by the engine's rules they exist before any
    node starts and are deleted only after everything running on the nodes.
    """

    vpc_id: pulumi.Output[str]
    egress_path: list[pulumi.Resource]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:Network", name, None, formerly("datamesh:network:Network", opts))
        self._name, self._args = name, args
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.plan.vpc_cidr,
            enable_dns_hostnames=True,  # EKS nodes and private endpoint need DNS hostnames
            enable_dns_support=True,
            tags=self._tags("vpc"),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self._vpc = vpc
        # Children would inherit protect: only the VPC itself is protected.
        self._vpc_child = pulumi.ResourceOptions(parent=vpc, protect=False)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=self._tags("igw"), opts=self._vpc_child)
        public_rt, path = self._public_route_table(igw)
        public_subnets: list[aws.ec2.Subnet] = []
        private_subnets: list[aws.ec2.Subnet] = []
        targets: list[dict[str, pulumi.Output[str]]] = []
        for plan in args.plan.subnets:
            public, association = self._public_subnet(plan, public_rt)
            private = self._private_subnet(plan)
            path.append(association)
            if args.plan.nat_gateways == "perAz" or not targets:
                target, resources = self._egress(plan.availability_zone, public, [igw, association])
                targets.append(target)
                path += resources
            path += self._private_routing(plan.availability_zone, private, targets[-1])
            public_subnets.append(public)
            private_subnets.append(private)
        self.vpc_id = vpc.id
        self.zones = len(args.plan.subnets)
        self.egress_path = path
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.register_outputs({
            "vpcId": self.vpc_id,
            "publicSubnetIds": self.public_subnet_ids,
            "privateSubnetIds": self.private_subnet_ids,
        })

    def _tags(self, resource_name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**self._args.tags, "Name": f"{self._args.cluster_name}-{resource_name}", **(extra or {})}

    def _subnet_tags(self, resource_name: str, role: str) -> dict[str, str]:
        """A subnet's tags: the cluster may use it, for load balancers of ``role``."""
        return self._tags(resource_name, {f"kubernetes.io/cluster/{self._args.cluster_name}": "shared", role: "1"})

    def _public_route_table(self, igw: aws.ec2.InternetGateway) -> tuple[aws.ec2.RouteTable, list[pulumi.Resource]]:
        """The public route table, and the egress path so far: the internet gateway and its default route."""
        name = self._name
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=self._vpc.id, tags=self._tags("public"), opts=self._vpc_child)
        return public_rt, [igw, aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=pulumi.ResourceOptions(parent=public_rt),
        )]

    def _public_subnet(self, plan: SubnetPlan, public_rt: aws.ec2.RouteTable) -> tuple[aws.ec2.Subnet, pulumi.Resource]:
        zone = plan.availability_zone
        public = aws.ec2.Subnet(
            f"{self._name}-public-{zone}",
            vpc_id=self._vpc.id,
            cidr_block=plan.public_cidr,
            availability_zone=zone,
            # NAT gateways and NLBs have their own public IPs; nothing else should get one.
            map_public_ip_on_launch=False,
            tags=self._subnet_tags(f"public-{zone}", "kubernetes.io/role/elb"),
            opts=self._vpc_child,
        )
        return public, aws.ec2.RouteTableAssociation(
            f"{self._name}-public-{zone}",
            subnet_id=public.id,
            route_table_id=public_rt.id,
            opts=pulumi.ResourceOptions(parent=public),
        )

    def _private_subnet(self, plan: SubnetPlan) -> aws.ec2.Subnet:
        zone = plan.availability_zone
        return aws.ec2.Subnet(
            f"{self._name}-private-{zone}",
            vpc_id=self._vpc.id,
            cidr_block=plan.private_cidr,
            availability_zone=zone,
            tags=self._subnet_tags(f"private-{zone}", "kubernetes.io/role/internal-elb"),
            opts=self._vpc_child,
        )

    def _nat_gateway(self, zone: str, public: aws.ec2.Subnet, igw: pulumi.Resource) -> aws.ec2.NatGateway:
        eip = aws.ec2.Eip(
            f"{self._name}-nat-{zone}",
            domain="vpc",
            tags=self._tags(f"nat-{zone}"),
            opts=pulumi.ResourceOptions(parent=public),
        )
        return aws.ec2.NatGateway(
            f"{self._name}-nat-{zone}",
            allocation_id=eip.id,
            subnet_id=public.id,
            tags=self._tags(f"nat-{zone}"),
            # A NAT gateway without a route to the internet gateway cannot work.
            opts=pulumi.ResourceOptions(parent=public, depends_on=[igw]),
        )

    def _egress(self, zone: str, public: aws.ec2.Subnet,
                after: list[pulumi.Resource]) -> tuple[dict[str, pulumi.Output[str]], list[pulumi.Resource]]:
        """The zone's way out, as a default route's target, and what it is made of: a NAT gateway, or an instance."""
        if self._args.plan.nat_gateways == "instance":
            instance, group = nat_instance(f"{self._name}-nat-{zone}", self._vpc.id, self._args.plan.vpc_cidr, public,
                                           self._tags(f"nat-{zone}"), after)
            return {"network_interface_id": instance.primary_network_interface_id}, [group, instance]
        nat = self._nat_gateway(zone, public, after[0])
        return {"nat_gateway_id": nat.id}, [nat]

    def _private_routing(self, zone: str, private: aws.ec2.Subnet, target: dict[str, pulumi.Output[str]]) -> list[pulumi.Resource]:
        """The zone's private route table: its default route through ``target``, and the private subnet's association."""
        name = self._name
        private_rt = aws.ec2.RouteTable(
            f"{name}-private-{zone}", vpc_id=self._vpc.id, tags=self._tags(f"private-{zone}"), opts=self._vpc_child
        )
        return [aws.ec2.Route(
            f"{name}-private-{zone}-default",
            route_table_id=private_rt.id,
            destination_cidr_block="0.0.0.0/0",
            **target,
            opts=pulumi.ResourceOptions(parent=private_rt),
        ), aws.ec2.RouteTableAssociation(
            f"{name}-private-{zone}",
            subnet_id=private.id,
            route_table_id=private_rt.id,
            opts=pulumi.ResourceOptions(parent=private),
        )]
