"""Istio already on the cluster (``datamesh:istio: existing``): what the program reads of it, and its one Gateway."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.config import ConfigError
from components.config.istio import IstioRevision
from components.platform.istio import GATEWAY_NAME, INGRESS_NAMESPACE, SHARED_GATEWAY, SYSTEM_NAMESPACE, gateway_resource

# In-cluster address of the gateway Service of Istio's gateway chart, as installed in Istio's documented layout.
GATEWAY_HOST = f"{GATEWAY_NAME}.{INGRESS_NAMESPACE}.svc.cluster.local"
_TAG = re.compile(r":(\d+\.\d+\.\d+)(?:-[\w.]+)?$")


def live_version_problem(image: str | None, revision: IstioRevision, kubernetes_version: str) -> str | None:
    """Why the live istiod's image does not serve the configured revision (None when it does, or is unknown)."""
    if not image:
        return None
    found = _TAG.search(image)
    if found is None:
        return f"its image {image} carries no Istio version tag"
    live = found.group(1)
    # The configured release's support for kubernetesVersion was checked with the config; a patch of
    # the same minor is the same support line (the matrix pins one patch per minor).
    if live.split(".")[:2] != revision.release.version.split(".")[:2]:
        return (f"it runs Istio {live}, not {revision.release.version}'s minor (datamesh:istioVersion, supported with "
                f"Kubernetes {kubernetes_version})")
    return None


@dataclass(frozen=True)
class ExistingIstioArgs:
    """Inputs of ``ExistingIstio``.

    Attributes:
        revision: the revision the cluster runs (datamesh:istioVersion and istioRevision).
        kubernetes_version: the cluster's minor, for the support check of the live version.
    """

    revision: IstioRevision
    kubernetes_version: str


class ExistingIstio(pulumi.ComponentResource):
    """Istio installed by someone else. Reads, and creates:

    - ``istiod``: a read of the revision's Deployment (``istio-system/istiod[-<revision>]``); its image's version is
      checked against datamesh:istioVersion and the support matrix when it is read (preview and up), and what
      waits for Istio waits for this read;
    - ``datamesh``: the shared Gateway in ``istio-ingress`` that data products bind their routes to, selecting the
      gateway pods labelled ``istio: ingressgateway`` (the gateway chart's layout; the namespace must exist).

    No chart, webhook, tag or load balancer: mesh namespaces are labelled with the revision as given.
    """

    istiod: pulumi.Resource
    injector: pulumi.Resource
    gateway: pulumi.Resource
    shared_gateway: k8s.apiextensions.CustomResource
    shared_gateway_ref: str
    gateway_host: pulumi.Output[str]

    def __init__(self, name: str, args: ExistingIstioArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:ExistingIstio", name, None, opts)
        deployment = k8s.apps.v1.Deployment.get(
            "istiod", f"{SYSTEM_NAMESPACE}/{args.revision.service}", opts=pulumi.ResourceOptions(parent=self))
        checked = deployment.spec.apply(lambda spec: _check(spec, args))
        self.istiod = self.injector = self.gateway = deployment
        self.shared_gateway_ref = f"{INGRESS_NAMESPACE}/{SHARED_GATEWAY}"
        self.shared_gateway = gateway_resource(INGRESS_NAMESPACE, pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        self.gateway_host = pulumi.Output.from_input(GATEWAY_HOST)
        # The check's result is an output, so the engine waits for it: a wrong live version fails the deployment.
        self.register_outputs({"istiod": f"{SYSTEM_NAMESPACE}/{args.revision.service}", "istiodImage": checked,
                               "revision": args.revision.label, "version": args.revision.release.version})


def _check(spec: Any, args: ExistingIstioArgs) -> str:
    containers = ((spec or {}).get("template") or {}).get("spec", {}).get("containers") or [] if isinstance(spec, dict) else []
    image = next((c.get("image") for c in containers if c.get("name") == "discovery"), None)
    problem = live_version_problem(image, args.revision, args.kubernetes_version)
    if problem:
        raise ConfigError(f"datamesh:istioVersion: the cluster's istiod ({SYSTEM_NAMESPACE}/{args.revision.service}) "
                          f"does not serve this stack: {problem}")
    return image or ""
