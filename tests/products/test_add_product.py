"""A product team's first pull request, done as docs/data-products.md says, renders.

In a copy of the repository: the scaffold, a 90/10 canary, the stack's list edits and a new
consumer with an offline placeholder key (tests/conftest.py, add_documented_product), then the
render as the README runs it. The expected names come from the helper's inputs and the stack
file, never from the render.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import add_documented_product, copy_repository


@pytest.fixture(scope="module")
def added(tmp_path_factory):
    repo = copy_repository(tmp_path_factory.mktemp("clone") / "datamesh")
    names = add_documented_product(repo)
    proc = subprocess.run([sys.executable, "-m", "tools.render", "--stack", "dev", "--out", "render/dev"],
                          cwd=repo, capture_output=True, text=True, timeout=600)
    return repo, names, proc


def manifest(repo, kind, namespace, name):
    path = repo / "render" / "dev" / "manifests" / f"{kind.lower()}-{namespace}-{name}.yaml"
    assert path.is_file(), f"no {kind} {namespace}/{name} in the render"
    return yaml.safe_load(path.read_text())


def test_the_scaffold_names_the_edits_it_leaves_to_the_team(added):
    _, names, _ = added
    out = names["scaffold_output"]
    assert f"add {names['product']} to datamesh:products" in out and "datamesh:consumers" in out


def test_the_render_passes(added):
    repo, _, proc = added
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
    assert "no consumer may call" not in proc.stderr, proc.stderr  # the new consumer calls it
    report = json.loads((repo / "render" / "dev" / "policy-report.json").read_text())
    assert not [v for v in report["violations"] if v["level"] == "mandatory"], report["violations"]


def test_the_new_product_is_routed_and_runs_its_canary(added):
    repo, names, _ = added
    product, namespace = names["product"], names["domain"]
    vs = manifest(repo, "VirtualService", namespace, product)
    [http] = vs["spec"]["http"]
    assert http["match"] == [{"uri": {"prefix": f"/public/api/v1/{product}/"}}]
    routed = {d["destination"]["subset"]: d["weight"] for d in http["route"]}
    assert routed == {f"v{version.replace('.', '-')}": weight for version, weight in names["releases"]}
    for version, _ in names["releases"]:
        deployment = manifest(repo, "Deployment", namespace, f"{product}-{version.replace('.', '-')}")
        assert deployment["spec"]["template"]["metadata"]["labels"]["version"] == version
    # It composes its upstream: the upstream's in-mesh URL is in every release's environment.
    upstream_var = f"UPSTREAM_{names['upstream'].upper().replace('-', '_')}_URL"
    env = manifest(repo, "Deployment", namespace, f"{product}-{names['releases'][0][0].replace('.', '-')}")[
        "spec"]["template"]["spec"]["containers"][0]["env"]
    assert upstream_var in {e["name"] for e in env}


def test_the_new_consumer_may_call_the_new_product_and_nothing_else(added):
    repo, names, _ = added
    policy = manifest(repo, "AuthorizationPolicy", "istio-ingress", "datamesh-api-keys")
    allowed = {rule["to"][0]["operation"]["paths"][0]: rule["when"][0]["values"] for rule in policy["spec"]["rules"]}
    may_call = sorted(path for path, consumers in allowed.items() if names["consumer"] in consumers)
    assert may_call == [f"/public/api/v1/{names['product']}/*"]
    lineage = (repo / "render" / "dev" / "lineage.mmd").read_text()
    consumer_node, product_node = (f"c_{names['consumer']}", f"p_{names['product']}")
    assert f"{consumer_node.replace('-', '_')} -.->|may call| {product_node.replace('-', '_')}" in lineage


def test_the_placeholder_key_is_a_secret_and_stays_out_of_the_render(added):
    repo, names, _ = added
    stack = yaml.safe_load(names["stack"].read_text())["config"]
    [key] = stack["datamesh:apiKeys"][names["consumer"]]
    assert set(key) == {"secure"}
    everything = "".join(p.read_text() for p in (repo / "render" / "dev").rglob("*") if p.is_file())
    assert key["secure"] not in everything and "REPLACE-BEFORE-PULUMI-UP" not in everything


def test_every_other_product_and_consumer_is_still_rendered(added):
    repo, names, _ = added
    stack = yaml.safe_load(names["stack"].read_text())["config"]
    urls = json.loads((repo / "render" / "dev" / "outputs.json").read_text())["productUrls"]
    assert set(urls) == set(stack["datamesh:products"]) and names["product"] in urls
    lineage = (repo / "render" / "dev" / "lineage.mmd").read_text()
    for consumer in stack["datamesh:consumers"]:
        assert f"c_{consumer.replace('-', '_')}" in lineage
