"""Revision-based Istio upgrades, step by step: add a revision, move the `stable` tag, remove the old one.

Each step is rendered from the dev stack with the step's configuration; the Istio version and the
mesh's namespaces come from the stack and the render, not from this file. At every step each mesh
namespace and the gateway are injected through the tag, the tag points at an istiod of the same
render and is created after it, and nothing that stays is replaced.
"""

import json

import pytest

from components.config.istio import REVISION_TAG
from tests.conftest import render_variant, stack_file, write_render, write_stack
from tools.engine.istio_cluster import load_render
from tools.engine.order import Graph
from tools.render import main as render_main

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
WEBHOOKS = "kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration"
TAG = f"istio-revision-tag-{REVISION_TAG}"
NEXT = "canary-next"  # any DNS label: the revision the upgrade adds
sequence_folders: list = []  # the render folder of each step, once the sequence is rendered


def _version() -> str:
    return str(stack_file("dev")["config"]["datamesh:istioVersion"])


def _steps() -> list[tuple[str, dict, tuple[str, ...]]]:
    version = _version()
    both = {"datamesh:istioRevisions": {"default": version, NEXT: version}}
    return [
        ("one revision", {}, ()),
        ("add the next", {**both, "datamesh:istioStableRevision": "default"}, ("datamesh:istioVersion",)),
        ("move the tag", {**both, "datamesh:istioStableRevision": NEXT}, ("datamesh:istioVersion",)),
        ("remove the old", {"datamesh:istioRevisions": {NEXT: version}}, ("datamesh:istioVersion",)),
    ]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    rendered, folders = [], []
    sequence_folders.clear()
    for name, overrides, drop in _steps():
        folder = tmp_path_factory.mktemp(name.replace(" ", "-"))
        result = render_variant(folder, overrides, drop=drop)
        write_render(result, folder / "render")
        graph = Graph(json.loads((folder / "render" / "resources.json").read_text()))
        rendered.append((name, result, graph))
        folders.append(folder / "render")
    sequence_folders.extend(folders)
    return rendered


def _istiods(result) -> dict[str, object]:
    """Every istiod release of a render, by the Service its chart gives it (istiod or istiod-<revision>)."""
    found = {}
    for r in result.of_type(RELEASE):
        if r.inputs["chart"] == "istiod":
            revision = r.inputs["values"].get("revision", "")
            found[f"istiod-{revision}" if revision else "istiod"] = r
    return found


def _mesh_namespaces(result) -> list:
    return [n for n in result.of_type(NAMESPACE) if "istio.io/rev" in n.inputs["metadata"].get("labels", {})
            or "istio-injection" in n.inputs["metadata"].get("labels", {})]


def test_every_step_leaves_every_mesh_namespace_and_the_gateway_with_a_control_plane(sequence):
    for step, result, graph in sequence:
        tag = result.one(WEBHOOKS, TAG)
        services = {w["clientConfig"]["service"]["name"] for w in tag.inputs["webhooks"]}
        assert len(services) == 1, step
        [service] = services
        istiods = _istiods(result)
        assert service in istiods, f"{step}: the tag points at {service}, not installed ({sorted(istiods)})"
        serving = istiods[service]
        # istiod fills in the caBundle of webhook configurations labelled with its revision.
        assert tag.inputs["metadata"]["labels"]["istio.io/rev"] == (serving.inputs["values"].get("revision") or "default")
        namespaces = _mesh_namespaces(result)
        assert namespaces, step
        gateway = result.one(RELEASE, "istio-ingressgateway")
        assert gateway.inputs["values"]["revision"] == REVISION_TAG, step
        for dependant in [*namespaces, gateway]:
            labels = dependant.inputs.get("metadata", {}).get("labels", {})
            assert dependant is gateway or labels == {**labels, "istio.io/rev": REVISION_TAG}, (step, dependant.name)
            assert "istio-injection" not in labels, (step, dependant.name)
            # Created only once the tag serves, which is once its istiod is ready.
            assert {tag.urn, serving.urn} <= graph.closure(dependant.urn), (step, dependant.name)
        # Istio's validation of every Istio resource goes to the same istiod.
        assert result.one(RELEASE, "istio-base").inputs["values"]["defaultRevision"] == \
            tag.inputs["metadata"]["labels"]["istio.io/rev"], step


def test_each_istiod_waits_for_the_crds(sequence):
    for step, result, graph in sequence:
        base = result.one(RELEASE, "istio-base")
        for istiod in _istiods(result).values():
            assert base.urn in graph.closure(istiod.urn), step


def test_adding_a_revision_installs_a_second_istiod_and_touches_nothing_else(sequence):
    (_, before, _), (_, after, _) = sequence[0], sequence[1]
    old, new = _istiods(before), _istiods(after)
    assert len(old) == 1 and len(new) == 2 and set(old) < set(new)
    [kept] = old
    assert new[kept].urn == old[kept].urn and new[kept].inputs == old[kept].inputs
    assert after.one(WEBHOOKS, TAG).inputs == before.one(WEBHOOKS, TAG).inputs
    for ns in _mesh_namespaces(before):
        assert after.one(NAMESPACE, ns.name).inputs == ns.inputs


def test_moving_the_tag_updates_one_object_in_place_and_no_namespace(sequence):
    (_, before, _), (_, after, _) = sequence[1], sequence[2]
    old_tag, new_tag = before.one(WEBHOOKS, TAG), after.one(WEBHOOKS, TAG)
    assert old_tag.urn == new_tag.urn  # same object: an update, not a delete and a create
    assert old_tag.inputs["metadata"]["name"] == new_tag.inputs["metadata"]["name"]
    assert old_tag.inputs["webhooks"] != new_tag.inputs["webhooks"]
    assert {w["clientConfig"]["service"]["name"] for w in new_tag.inputs["webhooks"]} == {f"istiod-{NEXT}"}
    for ns in _mesh_namespaces(before):
        assert after.one(NAMESPACE, ns.name).inputs == ns.inputs
    assert {k: r.urn for k, r in _istiods(before).items()} == {k: r.urn for k, r in _istiods(after).items()}


def test_removing_the_old_revision_once_nothing_points_at_it(sequence):
    (_, before, _), (_, after, _) = sequence[2], sequence[3]
    gone = set(_istiods(before)) - set(_istiods(after))
    assert gone == {"istiod"}
    pointed = {w["clientConfig"]["service"]["name"] for w in before.one(WEBHOOKS, TAG).inputs["webhooks"]}
    assert not gone & pointed, "the step before removal must already have moved the tag off the removed revision"
    assert _istiods(after)[f"istiod-{NEXT}"].urn == _istiods(before)[f"istiod-{NEXT}"].urn


def test_the_verify_harness_serves_the_mesh_from_the_istiod_the_tag_points_at(sequence):
    for (step, result, _), folder in zip(sequence, sequence_folders, strict=True):
        tag = result.one(WEBHOOKS, TAG).inputs["metadata"]["labels"]["istio.io/rev"]
        chosen = load_render(folder).injecting_istiod()
        assert chosen is not None and (chosen["inputs"]["values"].get("revision") or "default") == tag, step


def _refused(tmp_path, capsys, overrides: dict, drop: tuple[str, ...]) -> str:
    stack = write_stack(tmp_path, overrides, drop=drop)
    out = tmp_path / "render"
    code = render_main(["--stack", "dev", "--config", str(stack), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists(), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_removing_the_revision_the_tag_points_at_is_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, {"datamesh:istioRevisions": {NEXT: _version()},
                                      "datamesh:istioStableRevision": "default"}, ("datamesh:istioVersion",))
    assert err.startswith("error: datamesh:istioStableRevision: 'default' is not an installed revision"), err
    assert "move" in err


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    ({"datamesh:istioRevisions": {"a": "V", "b": "V", "c": "V"}}, "datamesh:istioRevisions", "at most 2"),
    ({"datamesh:istioRevisions": {"default": "V", NEXT: "V"}}, "datamesh:istioStableRevision", "required with two"),
    ({"datamesh:istioRevisions": {"stable": "V"}}, "datamesh:istioRevisions.stable", "the revision tag's own name"),
    ({"datamesh:istioRevisions": {"Rev": "V"}}, "datamesh:istioRevisions.Rev", "DNS label"),
    ({"datamesh:istioRevisions": {NEXT: "1.11.5"}}, f"datamesh:istioRevisions.{NEXT}", "not a pinned Istio release"),
])
def test_bad_revision_sets_are_refused(tmp_path, capsys, overrides, key, problem):
    version = _version()
    revisions = {k: (version if v == "V" else v) for k, v in overrides["datamesh:istioRevisions"].items()}
    err = _refused(tmp_path, capsys, {**overrides, "datamesh:istioRevisions": revisions}, ("datamesh:istioVersion",))
    assert err.startswith(f"error: {key}: "), err
    assert problem in err, err


def test_the_shorthand_and_the_list_together_are_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, {"datamesh:istioRevisions": {NEXT: _version()}}, ())
    assert err.startswith("error: datamesh:istioVersion: is set together with istioRevisions"), err
