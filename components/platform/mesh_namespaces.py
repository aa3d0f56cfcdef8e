"""Namespaces where data products run with Istio sidecars."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.platform.lifecycle import formerly


@dataclass(frozen=True)
class MeshNamespacesArgs:
    """Inputs of ``MeshNamespaces``.

    Attributes:
        names: the namespaces to create.
        injection_label: the label that turns on injection, ``("istio.io/rev", "stable")``: the revision tag.
        istiod: what serves their injection (the `stable` revision tag); the namespaces wait for it.

    The cluster's Kubernetes provider comes through ``opts``.
    """

    names: tuple[str, ...]
    injection_label: tuple[str, str]
    istiod: pulumi.Resource


class MeshNamespaces(pulumi.ComponentResource):
    """The product namespaces. Creates:

    - ``<namespace>`` per name: a Namespace labelled for sidecar injection.

    Each depends on the revision tag's webhooks, which wait for the istiod they point at
    (whose release waits until it is ready): the label only appears once the injector can
    serve, so no pod in these namespaces ever starts without its sidecar.
    """

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: MeshNamespacesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:platform:MeshNamespaces", name, None, formerly("datamesh:mesh:MeshNamespaces", opts))
        key, value = args.injection_label
        self.namespaces = {
            ns: k8s.core.v1.Namespace(
                ns,
                metadata={
                    "name": ns,
                    "labels": {key: value, "app.kubernetes.io/part-of": "datamesh"},
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[args.istiod]),
            )
            for ns in args.names
        }
        self.register_outputs({"namespaces": list(self.namespaces)})
