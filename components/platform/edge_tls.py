"""TLS at the edge: an ACM certificate for the gateway's DNS name, validated through Route 53, and that name.

The certificate is terminated at the NLB (docs/governance.md, "TLS at the edge",
says why): ACM renews it by itself as long as its validation record stays in
the hosted zone, and its private key never leaves AWS. ``EdgeCertificate``
comes before the gateway's Service (which names the certificate);
``EdgeDnsName`` after it (it points at the NLB the Service gets).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.platform.lifecycle import formerly

# Both TLS 1.3 and 1.2, nothing older (the ELB policy of that name).
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
DNS_TTL = 300


@dataclass(frozen=True)
class EdgeCertificateArgs:
    """Inputs of ``EdgeCertificate``.

    Attributes:
        domain: the DNS name clients use, e.g. api.example.com.
        hosted_zone_id: the Route 53 public hosted zone holding ``domain``; "" with ``certificate_arn``.
        certificate_arn: an issued ACM certificate for ``domain`` to use instead of requesting one; or "".
        tags: AWS tags for the certificate.
    """

    domain: str
    hosted_zone_id: str
    certificate_arn: str
    tags: dict[str, str]


class EdgeCertificate(pulumi.ComponentResource):
    """The gateway's TLS certificate. Creates, unless given an issued certificate's ARN:

    - ``<name>-certificate``: an ACM certificate for the domain, with DNS validation;
    - ``<name>-validation-record``: its validation CNAME in the hosted zone;
    - ``<name>-validation``: the CertificateValidation that waits until ACM has issued it.

    ``certificate_arn`` resolves only once the certificate is issued, so the
    NLB listener that names it is never created with a pending certificate.
    """

    certificate_arn: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeCertificateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:EdgeCertificate", name, None, formerly("datamesh:edge:EdgeCertificate", opts))
        child = pulumi.ResourceOptions(parent=self)
        if args.certificate_arn:
            self.certificate_arn = pulumi.Output.from_input(args.certificate_arn)
        else:
            # On a domain change, Pulumi's default create-before-delete issues the new one before the old goes.
            certificate = aws.acm.Certificate(
                f"{name}-certificate", domain_name=args.domain, validation_method="DNS", tags=args.tags, opts=child,
            )
            option = certificate.domain_validation_options[0]
            record = aws.route53.Record(
                f"{name}-validation-record",
                zone_id=args.hosted_zone_id,
                name=option.resource_record_name,
                type=option.resource_record_type,
                records=[option.resource_record_value],
                ttl=60,
                # ACM reuses the same record for renewals; it must stay for the certificate to renew itself.
                allow_overwrite=True,
                opts=child,
            )
            validation = aws.acm.CertificateValidation(
                f"{name}-validation", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn], opts=child,
            )
            self.certificate_arn = validation.certificate_arn
        self.register_outputs({"certificateArn": self.certificate_arn})


@dataclass(frozen=True)
class EdgeDnsNameArgs:
    """Inputs of ``EdgeDnsName``.

    Attributes:
        domain: the gateway's DNS name (not the zone apex: it is a CNAME).
        hosted_zone_id: the Route 53 public hosted zone holding it.
        target: the NLB's DNS name (the gateway Service's load balancer hostname).
    """

    domain: str
    hosted_zone_id: str
    target: pulumi.Input[str]


class EdgeDnsName(pulumi.ComponentResource):
    """The gateway's DNS name. Creates:

    - ``<name>-record``: the CNAME ``domain`` -> the gateway NLB's DNS name in the hosted zone.
    """

    def __init__(self, name: str, args: EdgeDnsNameArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:EdgeDnsName", name, None, formerly("datamesh:edge:EdgeDnsName", opts))
        record = aws.route53.Record(
            f"{name}-record", zone_id=args.hosted_zone_id, name=args.domain, type="CNAME", ttl=DNS_TTL,
            records=[args.target], opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"fqdn": record.fqdn})
