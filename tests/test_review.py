"""Pull-request review: render diffs, dependency graphs, and the workflows that publish them."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, write_stack
from tools.engine.review import changed_properties, diff_renders
from tools.render import main as render_main

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


@pytest.fixture(scope="module")
def dev_render(tmp_path_factory):
    out = tmp_path_factory.mktemp("dev")
    assert render_main(["--stack", "dev", "--out", str(out)]) == 0
    return out


def test_replica_change_diffs_to_exactly_that_change(dev_render, tmp_path, capsys):
    overrides = {"customer-features": {"replicas": 3}, "revenue-predictor": {"autoscaling": {"minReplicas": 1, "maxReplicas": 2}}}
    stack = write_stack(tmp_path, {"datamesh:productOverrides": overrides})
    new = tmp_path / "new"
    assert render_main(["--stack", "dev", "--config", str(stack), "--out", str(new)]) == 0
    capsys.readouterr()
    assert render_main(["--diff", str(dev_render), str(new)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "~ kubernetes:apps/v1:Deployment customer-features",
        "    spec.replicas: 2 -> 3",
        "0 to add, 1 to change, 0 to delete",
    ]


def test_identical_renders_have_no_diff(dev_render):
    assert diff_renders(dev_render, dev_render) == "0 to add, 0 to change, 0 to delete\n"


def test_added_and_removed_resources_and_masked_secrets(tmp_path):
    def write(folder, resources):
        folder.mkdir()
        (folder / "resources.json").write_text(json.dumps(resources))

    base = {"urn": "u1", "type": "t:a", "name": "a", "parent": None, "provider": None, "providers": {}, "dependencies": []}
    write(tmp_path / "old", [{**base, "inputs": {"key": "[secret]", "n": 1}}, {**base, "urn": "u2", "name": "gone", "inputs": {}}])
    write(tmp_path / "new", [{**base, "inputs": {"key": "[secret]", "n": 2, "added": True}},
                             {**base, "urn": "u3", "name": "new", "inputs": {}}])
    text = diff_renders(tmp_path / "old", tmp_path / "new")
    assert "+ t:a new" in text and "- t:a gone" in text
    assert "    added: (absent) -> true" in text and "    n: 1 -> 2" in text
    assert "key" not in text  # an unchanged (masked) secret does not show
    assert text.endswith("1 to add, 1 to change, 1 to delete\n")


def test_changed_properties_walks_lists():
    assert changed_properties({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == [("a[1].b", 2, 3)]


def test_diff_of_a_folder_that_is_not_a_render(tmp_path, capsys):
    assert render_main(["--diff", str(tmp_path), str(tmp_path)]) == 2
    assert "resources.json: no such file" in capsys.readouterr().err


def test_graph_files_draw_every_resource_and_dependency(dev_render):
    resources = json.loads((dev_render / "resources.json").read_text())
    dot = (dev_render / "graph.dot").read_text()
    mermaid = (dev_render / "graph.mmd").read_text()
    assert dot.startswith("strict digraph datamesh {") and dot.rstrip().endswith("}")
    assert mermaid.startswith("graph LR")
    edges = sum(len(r["dependencies"]) for r in resources)
    assert dot.count(" -> ") - dot.count("style=dotted") == edges
    assert mermaid.count(" --> ") == edges
    assert dot.count("[label=") == len(resources)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflows_are_valid_github_workflows(workflow):
    # The GitHub workflow schema; tests/test_workflows.py also runs actionlint over them.
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pull_request_workflow_tests_renders_diffs_and_previews():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    text = json.dumps(wf)
    assert "bash .ci/run" in text and "actionlint" in text
    assert wf["jobs"]["render"]["strategy"]["matrix"]["stack"] == sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert "tools.render --diff" in text and "GITHUB_STEP_SUMMARY" in text
    preview = next(s for s in wf["jobs"]["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert preview["with"]["command"] == "preview" and preview["with"]["policyPacks"] == "policies"
    assert preview["with"]["comment-on-pr"] is True and preview["with"]["diff"] is True
    assert wf["jobs"]["preview"]["if"] == "vars.AWS_ROLE_ARN != ''"


def test_main_deploys_dev_then_prod_behind_an_environment():
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    up = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi-up.yml").read_text())
    assert deploy[True] == {"push": {"branches": ["main"]}}  # YAML 1.1 reads the key `on` as True
    assert deploy["jobs"]["up-dev"]["with"] == {"stack": "dev"}
    assert deploy["jobs"]["up-prod"]["needs"] == "up-dev" and deploy["jobs"]["up-prod"]["with"] == {"stack": "prod"}
    assert up["jobs"]["up"]["environment"] == "${{ inputs.stack }}"
    step = next(s for s in up["jobs"]["up"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert step["with"]["command"] == "up" and step["with"]["policyPacks"] == "policies"
