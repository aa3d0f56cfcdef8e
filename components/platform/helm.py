"""Pinned Helm releases, shared by every add-on.

``helm.v3.Release`` rather than ``helm.v4.Chart`` for the platform charts: a
Release is installed atomically and waits until its workloads are ready, and
that readiness is the ordering signal the graph relies on (the load balancer
controller's webhook serving before a LoadBalancer Service exists, istiod
ready before injected workloads). ``v4.Chart`` renders children that policy
packs could see, but its preview orders CRDs badly for charts like Istio's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.versions import Chart


def merge_values(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge Helm values: maps merge key by key, anything else in ``overrides`` wins."""
    merged: dict[str, Any] = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def pinned_release(
    name: str,
    *,
    chart: Chart,
    namespace: pulumi.Input[str],
    values: Mapping[str, Any],
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
