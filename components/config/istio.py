"""The Istio group: one or two control-plane revisions side by side, and the ``stable`` tag the mesh uses.

Revision-based upgrades are the program's own procedure (docs/operating.md, "Istio, by
revision"): add a revision (a second istiod beside the first), move the tag, let the
workloads restart on their own schedule, then remove the old revision. Every mesh
namespace and the ingress gateway are labelled ``istio.io/rev: stable``, so moving the
tag is one update of one webhook configuration and no namespace ever changes label.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import versions
from components.config.values import Values, fail, mapping, text
from components.inputs import show as _show
from components.names import is_dns_label
from components.problems import did_you_mean

# The revision tag every mesh namespace and the gateway use: it points at one revision.
REVISION_TAG = "stable"
# How config writes Istio's unnamed revision (the chart's revision "").
DEFAULT_REVISION = "default"
MAX_REVISIONS = 2


@dataclass(frozen=True)
class IstioRevision:
    """One istiod: its revision name ("" for Istio's default revision), release and Helm release name."""

    name: str
    release: versions.IstioRelease
    helm_release: str

    @property
    def label(self) -> str:
        """The value of ``istio.io/rev`` on this revision's objects ("default" for the unnamed one)."""
        return self.name or DEFAULT_REVISION

    @property
    def service(self) -> str:
        """istiod's Service, which its webhooks call: ``istiod`` or ``istiod-<revision>`` (the chart's rule)."""
        return f"istiod-{self.name}" if self.name else "istiod"


@dataclass(frozen=True)
class IstioSettings:
    """The installed revisions (one or two) and the one the ``stable`` tag points at."""

    revisions: tuple[IstioRevision, ...]
    stable_name: str
    # datamesh:istio existing: the cluster already runs this one revision; the program installs no chart.
    existing: bool = False

    @property
    def stable(self) -> IstioRevision:
        return next(r for r in self.revisions if r.name == self.stable_name)

    @property
    def version(self) -> str:
        """The Istio version the mesh runs: the stable revision's."""
        return self.stable.release.version

    @property
    def newest(self) -> versions.IstioRelease:
        """The newest installed release: its base chart (the CRDs) serves every installed revision."""
        return max((r.release for r in self.revisions), key=lambda r: tuple(int(p) for p in r.version.split(".")))

    @property
    def injection_label(self) -> tuple[str, str]:
        """The label that puts a namespace in the mesh: the revision tag, whatever revision it points at
        (an existing Istio has no tag of the program's: its revision, as given)."""
        return ("istio.io/rev", self.stable.label if self.existing else REVISION_TAG)


def _revision_name(key: str, value: str) -> str:
    """Config's revision name to the chart's: "default" is the unnamed revision."""
    if value == DEFAULT_REVISION:
        return ""
    if value == REVISION_TAG:
        raise fail(key, f"{_show(value)} is the revision tag's own name; name the revision after its version, e.g. 1-30")
    if not is_dns_label(value):
        raise fail(key, f"{_show(value)} must be a DNS label (lowercase letters, digits and '-', starting and ending "
                        "with a letter or digit, 63 at most), e.g. 1-30, or 'default' for Istio's unnamed revision")
    return value


def _release(key: str, version: object, k8s: str) -> versions.IstioRelease:
    if not isinstance(version, str):
        raise fail(key, f"must be an Istio version like 1.30.5, got {_show(version)}")
    try:
        return versions.istio_release(version, k8s)
    except versions.UnsupportedVersionError as exc:
        raise fail(key, str(exc)) from None


def istio(v: Values, k8s: str, existing: bool = False) -> IstioSettings:
    """``istioRevisions`` + ``istioStableRevision``, or the one-revision shorthand ``istioVersion`` + ``istioRevision``.

    ``istioRevision`` also names the revision whose Helm release is plain ``istiod`` (the
    release made before revisions could be paired); every other one is ``istiod-<revision>``.
    """
    legacy = _revision_name("istioRevision", text(v, "istioRevision") or DEFAULT_REVISION)
    declared = mapping(v, "istioRevisions")
    version, stable = text(v, "istioVersion"), text(v, "istioStableRevision")
    if declared and version:
        raise fail("istioVersion", "is set together with istioRevisions; set each revision's version in istioRevisions only")
    if not declared:
        if not version:
            raise fail("istioVersion", "is required (or istioRevisions): the Istio release to install, e.g. 1.30.5")
        declared = {legacy or DEFAULT_REVISION: version}
    if len(declared) > MAX_REVISIONS:
        raise fail("istioRevisions", f"lists {len(declared)} revisions; at most {MAX_REVISIONS} run side by side "
                                     "(the current one and the next)")
    revisions = []
    for name, release_version in declared.items():
        chart_name = _revision_name(f"istioRevisions.{name}", name)
        release = _release("istioVersion" if version else f"istioRevisions.{name}", release_version, k8s)
        helm = "istiod" if chart_name == legacy else f"istiod-{chart_name}"
        revisions.append(IstioRevision(chart_name, release, helm))
    if not stable:
        if len(revisions) > 1:
            raise fail("istioStableRevision", f"is required with two revisions: the one the '{REVISION_TAG}' tag points at "
                                              f"({', '.join(r.label for r in revisions)})")
        return IstioSettings(tuple(revisions), revisions[0].name, existing)
    stable_name = _revision_name("istioStableRevision", stable)
    if stable_name not in {r.name for r in revisions}:
        raise fail("istioStableRevision", f"{_show(stable)} is not an installed revision "
                   f"({', '.join(r.label for r in revisions)}){did_you_mean(stable, [r.label for r in revisions])}. "
                   f"The '{REVISION_TAG}' tag every mesh namespace uses must "
                   "point at an installed istiod: a revision is removed only after the tag has moved off it and the "
                   "workloads have restarted (docs/operating.md, \"Istio, by revision\")")
    return IstioSettings(tuple(revisions), stable_name, existing)
