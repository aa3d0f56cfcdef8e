"""Observability: access logs and metrics through the Telemetry API, and optionally Prometheus and Kiali."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import versions
from components.governance.api_governance import CONSUMER_HEADER
from components.platform.helm import pinned_release
from components.platform.istio import SYSTEM_NAMESPACE
from components.platform.lifecycle import formerly

PROMETHEUS_URL = f"http://prometheus.{SYSTEM_NAMESPACE}:9090"


def telemetry_spec() -> dict:
    """Mesh-wide: Envoy access logs, and Istio's standard metrics tagged with the calling consumer."""
    return {
        "accessLogging": [{"providers": [{"name": "envoy"}]}],
        "metrics": [{
            "providers": [{"name": "prometheus"}],
            "overrides": [{
                "match": {"metric": "ALL_METRICS", "mode": "CLIENT_AND_SERVER"},
                # Set by the gateway's key filter from the API key, never by a client.
                "tagOverrides": {"consumer": {"operation": "UPSERT", "value": f"request.headers['{CONSUMER_HEADER}']"}},
            }],
        }],
    }


PROMETHEUS_VALUES = {
    # Only the server: it scrapes the pods Istio annotates (merged app and proxy metrics on :15020).
    "alertmanager": {"enabled": False},
    "kube-state-metrics": {"enabled": False},
    "prometheus-node-exporter": {"enabled": False},
    "prometheus-pushgateway": {"enabled": False},
    "server": {
        "fullnameOverride": "prometheus",
        "service": {"servicePort": 9090},
        "retention": "15d",
        "persistentVolume": {"enabled": False},
        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    },
}

KIALI_VALUES = {
    # A token login (kubectl -n istio-system create token kiali), no ingress: reach it with port-forward.
    "auth": {"strategy": "token"},
    "deployment": {"ingress": {"enabled": False}},
    "external_services": {"prometheus": {"url": PROMETHEUS_URL}},
}


@dataclass(frozen=True)
class ObservabilityArgs:
    """Inputs of ``Observability``.

    Attributes:
        addons: install Prometheus and Kiali (``datamesh:observability``).
        istiod: istiod's release; the Telemetry CRD and istio-system come with Istio.

    The cluster's Kubernetes provider comes through ``opts``.
    """

    addons: bool
    istiod: pulumi.Resource


class Observability(pulumi.ComponentResource):
    """Mesh observability. Creates:

    - ``mesh-telemetry``: the mesh-wide ``Telemetry`` (access logs; metrics tagged by consumer);
    - ``prometheus`` (when ``addons``): the Prometheus server's Helm release in istio-system;
    - ``kiali`` (when ``addons``): Kiali's Helm release in istio-system, after Prometheus.
    """

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("datamesh:governance:Observability", name, None, formerly("datamesh:observability:Observability", opts))
        k8s_opts = pulumi.ResourceOptions(parent=self, depends_on=[args.istiod])
        k8s.apiextensions.CustomResource(
            "mesh-telemetry",
            api_version="telemetry.istio.io/v1",
            kind="Telemetry",
            metadata={"name": "mesh-default", "namespace": SYSTEM_NAMESPACE},
            spec=telemetry_spec(),
            opts=k8s_opts,
        )
        if args.addons:
            prometheus = pinned_release(
                "prometheus", chart=versions.PROMETHEUS_CHART, namespace=SYSTEM_NAMESPACE, values=PROMETHEUS_VALUES,
                opts=k8s_opts,
            )
            pinned_release(
                "kiali", chart=versions.KIALI_CHART, namespace=SYSTEM_NAMESPACE, values=KIALI_VALUES,
                opts=pulumi.ResourceOptions.merge(k8s_opts, pulumi.ResourceOptions(depends_on=[prometheus])),
            )
        self.register_outputs({})
