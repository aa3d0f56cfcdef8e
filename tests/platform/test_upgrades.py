"""Every supported version pair renders: the upgrade path of docs/operating.md stays open.

One render per (Kubernetes, Istio) pair in components/versions.py, each with the
versions landing where an upgrade would put them.
"""

from datetime import date

import pytest

from components import versions
from tests.conftest import render_variant

PAIRS = [(k8s, istio.version) for k8s in versions.KUBERNETES_VERSIONS
         for istio in versions.ISTIO_RELEASES.values() if k8s in istio.kubernetes]


def test_the_matrix_has_pairs_for_every_kubernetes_version():
    assert {k8s for k8s, _ in PAIRS} == set(versions.KUBERNETES_VERSIONS)
    assert len(PAIRS) >= len(versions.KUBERNETES_VERSIONS)


@pytest.mark.parametrize(("k8s", "istio"), PAIRS, ids=[f"k8s{k}-istio{i}" for k, i in PAIRS])
def test_stack_renders_at(k8s, istio, tmp_path):
    extended = {"datamesh:eksSupportType": "EXTENDED"} if versions.standard_support_ended(k8s, date.today()) else {}
    result = render_variant(tmp_path, {"datamesh:kubernetesVersion": k8s, "datamesh:istioVersion": istio, **extended})
    assert result.one("eks:index:Cluster", "cluster-eks").inputs["version"] == k8s
    assert result.one("aws:eks/nodeGroup:NodeGroup", "cluster-nodes").inputs["version"] == k8s
    charts = {r.name: r.inputs for r in result.of_type("kubernetes:helm.sh/v3:Release")}
    assert {charts[n]["version"] for n in ("istio-base", "istiod", "istio-ingressgateway")} == {istio}
    assert charts["cluster-autoscaler"]["values"]["image"]["tag"] == versions.CLUSTER_AUTOSCALER_IMAGE_TAGS[k8s]
    assert {a.inputs["addonVersion"] for a in result.of_type("aws:eks/addon:Addon")} == {f"v0.0.0-PLACEHOLDER-for-{k8s}"}
