"""Releases side by side: a Deployment per release, subsets, weighted routes, mirroring, and their validation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.products.declarations import DeclarationError, load_products
from tests.conftest import DEMO, ROOT, copy_program
from tools.engine.render import check_policies, load_policy_config, render_stack, write_render

DEV_PRODUCTS = ["customer-features", "revenue-predictor", "customer-revenue"]
IMAGE = "python:3.12.10-slim-bookworm"
CANDIDATE = "python:3.12.11-slim-bookworm"


def canary(stable: int, candidate: int, mirror: bool = True) -> dict:
    """The predictor's releases: 1.0.0 and 1.1.0 sharing the traffic, 1.2.0 shadowed."""
    releases = [{"version": "1.0.0", "image": IMAGE, "weight": stable},
                {"version": "1.1.0", "image": CANDIDATE, "weight": candidate}]
    if mirror:
        releases.append({"version": "1.2.0", "image": CANDIDATE, "weight": 0})
    return {"releases": releases, **({"mirror": {"version": "1.2.0", "percent": 20}} if mirror else {})}


def project_with(tmp_path: Path, fields: dict) -> Path:
    """A copy of the program whose revenue-predictor declaration has ``fields`` instead of its image."""
    project = copy_program(tmp_path / "project", base=DEMO)
    decl = project / "products" / "revenue-predictor.yaml"
    doc = yaml.safe_load(decl.read_text())
    doc.pop("image")
    doc.update(fields)
    decl.write_text(yaml.safe_dump(doc, sort_keys=False))
    return project


@pytest.fixture(scope="module")
def canary_run(tmp_path_factory):
    return render_stack("dev", project_dir=project_with(tmp_path_factory.mktemp("canary"), canary(90, 10)))


def named(result, kind: str, name: str):
    [reg] = [r for r in result.resources if r.type.endswith(f":{kind}") and r.inputs.get("metadata", {}).get("name") == name]
    return reg


def test_a_deployment_per_release_with_its_version_labels(canary_run):
    deployments = {r.inputs["metadata"]["name"]: r for r in canary_run.resources if r.type.endswith(":Deployment")
                   and r.inputs["metadata"]["name"].startswith("revenue-predictor")}
    assert set(deployments) == {"revenue-predictor-1-0-0", "revenue-predictor-1-1-0", "revenue-predictor-1-2-0"}
    for version, image in (("1.0.0", IMAGE), ("1.1.0", CANDIDATE), ("1.2.0", CANDIDATE)):
        spec = deployments[f"revenue-predictor-{version.replace('.', '-')}"].inputs["spec"]
        pod_labels = spec["template"]["metadata"]["labels"]
        # Istio's canonical revision (destination_version in its metrics) comes from these labels.
        assert pod_labels["version"] == version and pod_labels["app.kubernetes.io/version"] == version
        assert spec["selector"]["matchLabels"] == {"app": "revenue-predictor", "version": version}
        assert spec["template"]["spec"]["containers"][0]["image"] == image


def test_each_release_scales_on_its_own(canary_run):
    hpas = {r.inputs["metadata"]["name"]: r.inputs["spec"]["scaleTargetRef"]["name"]
            for r in canary_run.resources if r.type.endswith(":HorizontalPodAutoscaler")}
    assert {k: v for k, v in hpas.items() if k.startswith("revenue-predictor")} == {
        f"revenue-predictor-{v}": f"revenue-predictor-{v}" for v in ("1-0-0", "1-1-0", "1-2-0")}
    # One budget over all releases, and one Service selecting them all.
    pdb = named(canary_run, "PodDisruptionBudget", "revenue-predictor").inputs["spec"]
    assert pdb["selector"] == {"matchLabels": {"app": "revenue-predictor"}}
    assert named(canary_run, "Service", "revenue-predictor").inputs["spec"]["selector"] == {"app": "revenue-predictor"}


def test_subsets_weighted_routes_and_the_mirror(canary_run):
    subsets = named(canary_run, "DestinationRule", "revenue-predictor").inputs["spec"]["subsets"]
    assert subsets == [{"name": f"v{v}", "labels": {"version": v.replace("-", ".")}} for v in ("1-0-0", "1-1-0", "1-2-0")]
    [http] = named(canary_run, "VirtualService", "revenue-predictor").inputs["spec"]["http"]
    host = "revenue-predictor.sales.svc.cluster.local"
    assert http["route"] == [
        {"destination": {"host": host, "port": {"number": 12000}, "subset": "v1-0-0"}, "weight": 90},
        {"destination": {"host": host, "port": {"number": 12000}, "subset": "v1-1-0"}, "weight": 10},
    ]
    assert http["mirror"] == {"host": host, "subset": "v1-2-0", "port": {"number": 12000}}
    assert http["mirrorPercentage"] == {"value": 20}


def test_the_catalog_lists_the_releases(canary_run):
    [component] = [e for e in canary_run.outputs["catalog"]
                   if e["kind"] == "Component" and e["metadata"]["name"] == "revenue-predictor"]
    assert component["metadata"]["annotations"]["datamesh.io/releases"] == "1.0.0=90%, 1.1.0=10%, 1.2.0=0% (mirror 20%)"


def test_the_canary_renders_and_passes_the_policies(canary_run):
    findings = check_policies(canary_run, load_policy_config("dev", None))
    assert not [f for f in findings if f.level == "mandatory"], findings


def test_single_image_form_is_unchanged(demo):
    assert named(demo, "Deployment", "revenue-predictor").inputs["spec"]["selector"] == {"matchLabels": {"app": "revenue-predictor"}}
    assert "subsets" not in named(demo, "DestinationRule", "revenue-predictor").inputs["spec"]


def render_to(project: Path, out: Path) -> Path:
    result = render_stack("dev", project_dir=project)
    write_render(result, out, check_policies(result, load_policy_config("dev", None)))
    return out


def test_shifting_weights_diffs_to_exactly_the_two_weights(tmp_path):
    old = render_to(project_with(tmp_path / "a", canary(90, 10, mirror=False)), tmp_path / "old")
    new_project = project_with(tmp_path / "b", canary(90, 10, mirror=False))
    decl = new_project / "products" / "revenue-predictor.yaml"
    before = decl.read_text()
    after = before.replace("weight: 90", "weight: 75").replace("weight: 10", "weight: 25")
    # The pull request: two lines of one declaration.
    assert sum(a != b for a, b in zip(before.splitlines(), after.splitlines(), strict=True)) == 2
    decl.write_text(after)
    new = render_to(new_project, tmp_path / "new")
    proc = subprocess.run([sys.executable, "-m", "tools.render", "--diff", str(old), str(new), "--exit-code"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and not proc.stderr, proc.stderr
    route = "spec.http[revenue-predictor].route[revenue-predictor.sales.svc.cluster.local"
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        "== DataProduct revenue-predictor",
        "~ VirtualService sales/revenue-predictor",
        f"      {route} v1-0-0].weight: 90 -> 75",
        f"      {route} v1-1-0].weight: 10 -> 25",
    ]
    # Besides the two weights, only the exported catalog's annotation changes.
    assert lines[4:6] == ["== stack outputs", lines[5]] and "datamesh.io/releases" in lines[5], lines
    assert lines[-1].startswith("0 to add, 1 to change, 0 to delete; 1 output change(s)") and len(lines) == 7, lines


@pytest.fixture
def products_dir(tmp_path):
    folder = tmp_path / "products"
    shutil.copytree(ROOT / "products", folder)
    return folder


def releases_of(products_dir: Path, fields: dict) -> Path:
    path = products_dir / "revenue-predictor.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.pop("image")
    doc.update(fields)
    path.write_text(yaml.safe_dump(doc))
    return path


def r(version: str, weight: int, image: str = IMAGE) -> dict:
    return {"version": version, "image": image, "weight": weight}


BAD_RELEASES = [
    ({"releases": [r("1.0.0", 90), r("1.1.0", 20)]}, "releases", "add up to 110, not 100"),
    ({"releases": [r("1.0.0", 50), r("1.0.0", 50)]}, "releases[1].version", "'1.0.0' is declared twice"),
    ({"releases": [r("1.0.0", 25), r("1.1.0", 25), r("1.2.0", 25), r("1.3.0", 25)]}, "releases", "is not valid"),
    ({"releases": [r("1.0.0", 90), r("1.1.0", 10, "python:latest")]}, "releases[1].image", "moving tag"),
    ({"releases": [r("1.0.0", 90), r("1.1.0", 10)], "mirror": {"version": "2.0.0", "percent": 5}},
     "mirror.version", "'2.0.0' is not a declared release"),
    ({"releases": [r("1.0.0", 90), r("1.1.0", 10)], "mirror": {"version": "1.1.0", "percent": 5}},
     "mirror.version", "a mirrored release answers no one, so its weight is 0"),
    ({"releases": [r("1.0.0", 100.5)]}, "releases[0].weight", "must be an integer"),
    ({"releases": [r("1.0.0+build", 100)]}, "releases[0].version", "is not a release version like 1.4.0"),
    ({"image": IMAGE, "releases": [r("1.0.0", 100)]}, "releases", "either image or releases, not both"),
    ({}, "image", "'image' is a required property (or 'releases')"),
]


@pytest.mark.parametrize(("fields", "field", "problem"), BAD_RELEASES, ids=[c[2] for c in BAD_RELEASES])
def test_bad_releases_name_the_file_and_field(products_dir, fields, field, problem):
    path = releases_of(products_dir, fields)
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {})
    message = str(caught.value)
    assert message.startswith(f"{path}: {field}: ") and problem in message and "\n" not in message, message


def test_mirror_needs_releases(products_dir):
    path = products_dir / "revenue-predictor.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mirror"] = {"version": "1.0.0", "percent": 5}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(DeclarationError, match=r"revenue-predictor\.yaml: mirror: needs releases"):
        load_products(products_dir, DEV_PRODUCTS, {})


def test_render_json_has_no_weight_outside_the_route(canary_run):
    # The weights live in the route only: the Deployments do not change when traffic shifts.
    for reg in canary_run.resources:
        if reg.type.endswith(":Deployment"):
            assert '"weight"' not in json.dumps(reg.inputs)


def test_a_stack_may_run_other_releases_than_the_declaration(products_dir):
    # dev runs the declared canary; prod overrides releases to stay on 1.0.0 until promoted.
    releases_of(products_dir, canary(90, 10))
    [dev] = [p for p in load_products(products_dir, DEV_PRODUCTS, {}) if p.name == "revenue-predictor"]
    assert [(r.version, r.weight) for r in dev.releases] == [("1.0.0", 90), ("1.1.0", 10), ("1.2.0", 0)]
    prod_override = {"revenue-predictor": {"releases": [r("1.0.0", 100)]}}
    [prod] = [p for p in load_products(products_dir, DEV_PRODUCTS, prod_override) if p.name == "revenue-predictor"]
    assert [(r.version, r.weight) for r in prod.releases] == [("1.0.0", 100)] and prod.mirror is None
    # The single-image form can be overridden with releases too.
    [plain] = [p for p in load_products(ROOT / "products", DEV_PRODUCTS, prod_override) if p.name == "revenue-predictor"]
    assert [r.version for r in plain.releases] == ["1.0.0"]
    # A wrong override is the stack's mistake: test_a_release_problem_from_the_stack_names_the_stack_key.


def test_the_release_workloads_are_valid_kubernetes(canary_run):
    import kubernetes_validate

    api = {"Deployment": "apps/v1", "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1"}
    checked = 0
    for reg in canary_run.resources:
        kind = reg.type.rsplit(":", 1)[-1]
        if kind in api and reg.inputs["metadata"]["name"].startswith("revenue-predictor"):
            kubernetes_validate.validate({"apiVersion": api[kind], "kind": kind, **reg.inputs}, "1.35", strict=True)
            checked += 1
    assert checked == 7  # three Deployments, three HPAs, one budget


def test_a_bare_path_canary_has_the_rewrite_the_weights_and_the_mirror_together(tmp_path):
    # Both halves build one VirtualService rule: neither may drop the other's fields.
    project = project_with(tmp_path, canary(90, 10))
    spec_path = project / "products" / "openapi" / "revenue-predictor.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    prefix = "/public/api/v1/revenue-predictor"
    spec["servers"] = [{"url": prefix}]
    spec["paths"] = {path.removeprefix(prefix): item for path, item in spec["paths"].items()}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = render_stack("dev", project_dir=project)
    [http] = named(result, "VirtualService", "revenue-predictor").inputs["spec"]["http"]
    assert http["rewrite"] == {"uri": "/"}
    assert [d["weight"] for d in http["route"]] == [90, 10]
    assert http["mirror"]["subset"] == "v1-2-0" and http["mirrorPercentage"] == {"value": 20}


def test_a_release_problem_from_the_stack_names_the_stack_key(products_dir):
    # The override replaces the declaration's releases; its weights are the stack's mistake.
    bad = {"releases": [r("1.0.0", 50)]}
    with pytest.raises(DeclarationError) as caught:
        load_products(products_dir, DEV_PRODUCTS, {"revenue-predictor": bad})
    message = str(caught.value)
    assert message.startswith("datamesh:productOverrides.revenue-predictor: releases: the weights add up to 50"), message
    assert "revenue-predictor.yaml" not in message
