"""One NAT instance instead of a NAT gateway: the cheap egress for a stack that can live with it.

``datamesh:natGateways: instance``. A NAT gateway costs about $43 a month with its address; a
``t4g.nano`` NAT instance about $8. What that gives up (docs/operating.md, "What it costs"): AWS
runs a NAT gateway highly available inside its zone and scales it to 100 Gbps; this instance
is one machine in one zone, with a few Gbps at most, and its operating system is the stack's to
patch (``pulumi up --replace`` on it takes the current Amazon Linux 2023 image). If it stops,
the nodes lose egress (image pulls, AWS APIs) until it is back; running pods keep serving.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws

INSTANCE_TYPE = "t4g.nano"
ROOT_VOLUME_GB = 8  # the Amazon Linux 2023 image's own size
# AWS's public parameter for the current Amazon Linux 2023 image; read when the instance is created.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
USER_DATA = Path(__file__).with_name("nat") / "user-data.sh"


def nat_instance(name: str, vpc_id: pulumi.Input[str], vpc_cidr: str, subnet: aws.ec2.Subnet,
                 tags: dict[str, str], after: list[pulumi.Resource]) -> tuple[aws.ec2.Instance, aws.ec2.SecurityGroup]:
    """The instance (in ``subnet``, a public one, with a public address) and its security group.

    It forwards what comes from ``vpc_cidr`` and accepts nothing else; IMDSv2 only; an
    encrypted root volume; source/destination check off, as forwarding needs.
    """
    group = aws.ec2.SecurityGroup(
        name, vpc_id=vpc_id, description="NAT instance: forwards the VPC's egress",
        ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=[vpc_cidr],
                                                  description="Anything from the VPC, to forward")],
        egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                                                description="Forwarded egress")],
        tags=tags, opts=pulumi.ResourceOptions(parent=subnet),
    )
    ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER, opts=pulumi.InvokeOutputOptions(parent=subnet))
    instance = aws.ec2.Instance(
        name,
        ami=ami.value,
        instance_type=INSTANCE_TYPE,
        subnet_id=subnet.id,
        associate_public_ip_address=True,
        source_dest_check=False,
        vpc_security_group_ids=[group.id],
        metadata_options=aws.ec2.InstanceMetadataOptionsArgs(http_tokens="required", http_endpoint="enabled"),
        root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(volume_size=ROOT_VOLUME_GB, volume_type="gp3", encrypted=True),
        user_data=USER_DATA.read_text(),
        user_data_replace_on_change=True,
        tags=tags,
        # The image is read once: a newer one replaces the instance only when asked (pulumi up --replace).
        opts=pulumi.ResourceOptions(parent=subnet, depends_on=after, ignore_changes=["ami"]),
    )
    return instance, group
