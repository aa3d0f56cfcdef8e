"""Pinned Helm releases, shared by every add-on.

``helm.v3.Release`` rather than ``helm.v4.Chart`` for the platform charts: a
Release is installed atomically and waits until its workloads are ready, and
that readiness is the ordering signal the graph relies on (the load balancer
controller's webhook serving before a LoadBalancer Service exists, istiod
ready before injected workloads). ``v4.Chart`` renders children that policy
packs could see, but its preview orders CRDs badly for charts like Istio's.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.documents import DocumentView
from components.versions import Chart


def pinned_release(
    name: str,
    *,
    chart: Chart,
    namespace: pulumi.Input[str],
    values: DocumentView,
    opts: pulumi.ResourceOptions,
    skip_crds: bool = False,
) -> k8s.helm.v3.Release:
    """A Helm release of an exact chart version that waits for its workloads.

    ``skip_crds``: the chart's CRDs are applied as resources of their own (Helm
    installs a chart's crds/ once and never upgrades them).
    """
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=chart.name,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repository),
        namespace=namespace,
        values=dict(values),
        atomic=True,  # a failed install rolls back instead of leaving half a release
        cleanup_on_fail=True,
        skip_await=False,  # readiness is what dependants wait for
        timeout=600,
        skip_crds=skip_crds,
        opts=opts,
    )
