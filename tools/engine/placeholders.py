"""What only the cloud would know, answered offline: visibly placeholders, never real-looking secrets or accounts."""

from __future__ import annotations

import json
from collections.abc import Mapping

from pulumi.runtime import mocks as pulumi_mocks

from components.documents import Document

PLACEHOLDER_ACCOUNT = "000000000000"


class PlaceholderMocks(pulumi_mocks.Mocks):
    """Answers for what only the cloud would know: visibly placeholders, never real-looking secrets."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.invokes: list[tuple[str, Document]] = []

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, Document]:
        id_, added = self.placeholders(args.typ, args.name, bool(args.custom), args.inputs)
        return id_, {**args.inputs, **added}

    def placeholders(self, typ: str, name: str, custom: bool, inputs: Mapping[str, object]) -> tuple[str | None, Document]:
        """The resource's id and what the cloud would add to its inputs (JSON values), reading only the inputs it needs."""
        if typ.startswith("pulumi:providers:"):
            return f"{name}-provider-id", {}
        if typ == "eks:index:Cluster":
            issuer = f"oidc.eks.{self.region}.amazonaws.com/id/PLACEHOLDER"
            cluster = str(inputs.get("name") or name)
            return None, {
                "kubeconfigJson": json.dumps({
                    "apiVersion": "v1", "kind": "Config",
                    "clusters": [{"name": cluster, "cluster": {"server": f"https://PLACEHOLDER.{self.region}.eks.amazonaws.com"}}],
                }),
                "oidcIssuer": issuer,
                "oidcProviderUrl": f"https://{issuer}",
                "oidcProviderArn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:oidc-provider/{issuer}",
                "clusterSecurityGroupId": "sg-PLACEHOLDER-cluster",
                "nodeSecurityGroupId": "sg-PLACEHOLDER-cluster",
            }
        if not custom:
            return None, {}
        added: Document = {}
        if typ.startswith("aws:"):
            service = typ.split(":")[1].split("/")[0]
            if "arn" not in inputs:
                added["arn"] = f"arn:aws:{service}:{self.region}:{PLACEHOLDER_ACCOUNT}:{name}"
            if typ in ("aws:iam/role:Role", "aws:iam/policy:Policy") and "name" not in inputs:
                added["name"] = f"{name}-PLACEHOLDER"
            if typ == "aws:ec2/launchTemplate:LaunchTemplate":
                added["latestVersion"] = 1
            if typ == "aws:kms/key:Key":
                added["keyId"] = f"{name}-PLACEHOLDER-key-id"
            if typ == "aws:ec2/instance:Instance":
                added["primaryNetworkInterfaceId"] = f"eni-{name}-PLACEHOLDER"
            if typ == "aws:eks/nodeGroup:NodeGroup" and "nodeGroupName" not in inputs:
                added["nodeGroupName"] = f"{name}-PLACEHOLDER"
            if typ == "aws:acm/certificate:Certificate":
                domain = inputs.get("domainName")
                added["domainValidationOptions"] = [{
                    "domainName": domain, "resourceRecordType": "CNAME",
                    "resourceRecordName": f"_PLACEHOLDER.{domain}.",
                    "resourceRecordValue": "_PLACEHOLDER.acm-validations.aws.",
                }]
            if typ == "aws:route53/record:Record":
                added["fqdn"] = inputs.get("name")
            if typ == "aws:elasticache/replicationGroup:ReplicationGroup":
                added["primaryEndpointAddress"] = f"master.{name}-PLACEHOLDER.cache.amazonaws.com"
        if typ == "kubernetes:core/v1:Service":
            spec = inputs.get("spec")
            if isinstance(spec, dict) and spec.get("type") == "LoadBalancer":
                added["status"] = {"loadBalancer": {"ingress": [
                    {"hostname": f"PLACEHOLDER-{name}.elb.{self.region}.amazonaws.com"}
                ]}}
        return f"{name}-PLACEHOLDER-id", added

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[Document, list[tuple[str, str]] | None]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:eks/getAddonVersion:getAddonVersion":
            # EKS answers with the default (or, with mostRecent, the newest) build for that Kubernetes version.
            addon, k8s = args.args["addonName"], args.args["kubernetesVersion"]
            return {"addonName": addon, "kubernetesVersion": k8s, "mostRecent": args.args.get("mostRecent"),
                    "version": f"v0.0.0-PLACEHOLDER-for-{k8s}", "id": f"{addon}-PLACEHOLDER-id"}, []
        if args.token == "aws:ssm/getParameter:getParameter":
            # AWS's public parameters (the current Amazon Linux image): a placeholder value of the right kind.
            name = args.args["name"]
            return {"name": name, "type": "String", "value": "ami-0PLACEHOLDER0", "id": name, "arn": name,
                    "insecureValue": "ami-0PLACEHOLDER0", "version": 1}, []
        # Any other invoke is a new cloud lookup the render must learn to fake.
        raise NotImplementedError(f"offline render has no answer for invoke {args.token}")
