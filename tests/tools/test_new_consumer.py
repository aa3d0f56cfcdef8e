"""tools.new_consumer: a consumer onboarded without the Pulumi CLI, in a copy of the repository."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import copy_repository


def run(repo, *args):
    return subprocess.run([sys.executable, "-m", "tools.new_consumer", *args], cwd=repo, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return copy_repository(tmp_path_factory.mktemp("consumer") / "repo")


def test_a_consumer_is_added_with_a_placeholder_key_and_the_stack_renders(repo, tmp_path):
    before = (repo / "Pulumi.dev.yaml").read_text()
    config = yaml.safe_load(before)["config"]
    product = config["datamesh:products"][0]
    tier = sorted(config["datamesh:rateLimitTiers"])[0]
    done = run(repo, "crm-app", "--products", product, "--tier", tier)
    assert done.returncode == 0, done.stderr
    assert "pulumi config set --stack dev --secret --path 'datamesh:apiKeys.crm-app[0]'" in done.stdout
    after = (repo / "Pulumi.dev.yaml").read_text()
    edited = yaml.safe_load(after)["config"]
    assert edited["datamesh:consumers"]["crm-app"] == {"products": [product], "tier": tier}
    assert edited["datamesh:apiKeys"]["crm-app"] == [{"secure": "v1:REPLACE-BEFORE-PULUMI-UP:crm-app-0"}]
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)  # a person's edit: comments stay
    rendered = subprocess.run([sys.executable, "-m", "tools.render", "--stack", "dev", "--out", str(tmp_path / "r")],
                              cwd=repo, capture_output=True, text=True, timeout=600)
    assert rendered.returncode == 0, rendered.stderr
    policy = (tmp_path / "r" / "manifests" / "authorizationpolicy-istio-ingress-datamesh-api-keys.yaml").read_text()
    assert "crm-app" in policy


@pytest.mark.parametrize(("args", "named"), [
    (["Bad_Name", "--products", "{product}"], "NAME"),
    (["analytics-2", "--products", "{product}x"], "did you mean '{product}'?"),
    (["analytics-3", "--products", "{product}", "--tier", "gold"], "--tier: 'gold' is not a tier"),
    (["{existing}", "--products", "{product}"], "already a consumer"),
    (["analytics-4", "--products", "{product}", "--stack", "nowhere"], "Pulumi.nowhere.yaml does not exist"),
])
def test_refusals_are_one_line_and_write_nothing(repo, args, named):
    before = (repo / "Pulumi.dev.yaml").read_text()
    config = yaml.safe_load(before)["config"]
    fill = {"product": config["datamesh:products"][0], "existing": sorted(config["datamesh:consumers"])[0]}
    done = run(repo, *[a.format(**fill) for a in args])
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and named.format(**fill) in done.stderr, done.stderr
    assert (repo / "Pulumi.dev.yaml").read_text() == before
