"""Versions with an end: no pin past its end of life, and EKS's own upgrade of a STANDARD cluster seen coming.

``test_no_pin_is_past_its_end_of_life`` is dated on purpose: it goes red the day a pinned
version's end of life passes, so the pin is moved before it deploys unsupported software.
"""

from datetime import date, timedelta

import pytest

from components import versions
from components.config import groups
from tests.conftest import render_variant


def test_no_pin_is_past_its_end_of_life():
    today = date.today()
    for release in versions.ISTIO_RELEASES.values():
        assert date.fromisoformat(release.end_of_life) > today, f"Istio {release.version} reached end of life"
    for k8s, ends in versions.KUBERNETES_EXTENDED_SUPPORT_ENDS.items():
        assert date.fromisoformat(ends) > today, f"EKS ended all support for Kubernetes {k8s} on {ends}"


def test_every_pin_names_its_source():
    charts = [value for name, value in vars(versions).items() if name.endswith("_CHART")]
    assert charts
    for chart in [*charts, *(r.chart("istiod") for r in versions.ISTIO_RELEASES.values())]:
        assert chart.source.strip(), f"{chart.name} {chart.version}: no source recorded"
        assert chart.version in chart.source or "tag" in chart.source or "commit" in chart.source, chart
    for release in versions.ISTIO_RELEASES.values():
        assert release.version in release.source


def test_standard_support_ended_is_judged_by_the_date(monkeypatch):
    k8s, ends = next(iter(versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items()))
    last = date.fromisoformat(ends)
    assert not versions.standard_support_ended(k8s, last - timedelta(days=1))
    assert versions.standard_support_ended(k8s, last)


@pytest.mark.parametrize("support", ["STANDARD", "EXTENDED"])
def test_standard_support_near_its_end_warns_naming_the_date(monkeypatch, support):
    k8s, ends = list(versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items())[-1]
    day = date.fromisoformat(ends) - timedelta(days=versions.SUPPORT_WARNING_DAYS)
    monkeypatch.setenv("DATAMESH_TODAY", day.isoformat())
    warnings = groups.support_warnings(k8s, support)
    if support == "EXTENDED":
        assert warnings == ()
        return
    [warning] = warnings
    assert warning.startswith("datamesh:eksSupportType: STANDARD") and ends in warning and k8s in warning
    monkeypatch.setenv("DATAMESH_TODAY", (day - timedelta(days=1)).isoformat())
    assert groups.support_warnings(k8s, support) == ()


def test_the_render_logs_the_support_warning(tmp_path, monkeypatch):
    k8s = "1.35"
    ends = versions.KUBERNETES_STANDARD_SUPPORT_ENDS[k8s]
    monkeypatch.setenv("DATAMESH_TODAY", (date.fromisoformat(ends) - timedelta(days=30)).isoformat())
    result = render_variant(tmp_path, {"datamesh:kubernetesVersion": k8s, "datamesh:eksSupportType": "STANDARD"})
    assert any(ends in w and "eksSupportType" in w for w in result.warnings), result.warnings


def test_standard_past_its_end_is_refused_on_that_day(monkeypatch):
    k8s, ends = list(versions.KUBERNETES_STANDARD_SUPPORT_ENDS.items())[-1]
    monkeypatch.setenv("DATAMESH_TODAY", ends)
    from components.config import ConfigError, load_settings

    good = {"kubernetesVersion": k8s, "istioVersion": next(r.version for r in versions.ISTIO_RELEASES.values()
                                                           if k8s in r.kubernetes),
            "availabilityZones": '["eu-west-1a", "eu-west-1b"]', "allowPlainHttp": "true"}
    with pytest.raises(ConfigError, match=f"left standard support on {ends}"):
        load_settings(good, "qa", "eu-west-1")
    assert load_settings({**good, "eksSupportType": "EXTENDED"}, "qa", "eu-west-1").eks_support_type == "EXTENDED"
