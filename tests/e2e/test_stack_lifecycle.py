"""End to end, on AWS: a throwaway stack goes up, serves, and comes down leaving nothing behind.

Through the Pulumi Automation API: create a stack with a unique name from dev's
configuration, `up`, wait for the gateway's NLB to answer, run tools.smoke and a
refusal check on every product, `destroy`, then ask the Resource Groups Tagging
API for anything still tagged with the stack's name, or with the cluster's name by the
load balancer controller (its NLB, target groups and security groups), KMS keys already
pending deletion aside (tests/e2e/leaks.py). Costs about an hour of a
dev-sized stack. Skipped, with the reason, without the Pulumi CLI, boto3 or AWS
credentials, and unless DATAMESH_E2E=1: `.ci/run` collects it and never runs it.

    pip install -r tests/e2e/requirements.txt
    DATAMESH_E2E=1 python -m pytest tests/e2e -ra
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.e2e.leaks import CONTROLLER_CLUSTER_TAG, STACK_TAG, leftovers, tagged

ROOT = Path(__file__).resolve().parents[2]
BASE_STACK = "dev"


def why_not() -> str | None:
    """The reason this test cannot run here, or None."""
    if shutil.which("pulumi") is None:
        return "Pulumi CLI not found on PATH (https://www.pulumi.com/docs/iac/download-install/)"
    try:
        import boto3
    except ImportError:
        return "boto3 not installed: pip install -r tests/e2e/requirements.txt"
    if boto3.Session().get_credentials() is None:
        return "no AWS credentials (environment, profile or role)"
    if os.environ.get("DATAMESH_E2E") != "1":
        return "creates and destroys a real stack on AWS: set DATAMESH_E2E=1 to run it"
    return None


pytestmark = [pytest.mark.e2e, pytest.mark.skipif(why_not() is not None, reason=f"end-to-end: {why_not()}")]


def _wait_for_http(host: str, minutes: float = 15) -> None:
    deadline = time.monotonic() + minutes * 60
    while True:
        try:
            urllib.request.urlopen(f"http://{host}/", timeout=10)
            return
        except urllib.error.HTTPError:
            return  # the gateway answered (404 for an unknown path is an answer)
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(15)


def _left(stack: str, cluster: str, region: str) -> list[str]:
    import boto3

    tags, kms = boto3.client("resourcegroupstaggingapi", region_name=region), boto3.client("kms", region_name=region)
    arns = tagged(tags, STACK_TAG, stack) + tagged(tags, CONTROLLER_CLUSTER_TAG, cluster)
    return leftovers(arns, lambda arn: kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"])


def test_up_smoke_destroy_leaves_nothing(tmp_path):
    from pulumi import automation as auto

    base = yaml.safe_load((ROOT / f"Pulumi.{BASE_STACK}.yaml").read_text())["config"]
    region = base["aws:region"]
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    # A copy of the project, so the throwaway Pulumi.<stack>.yaml never lands in the checkout.
    work = tmp_path / "project"
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", ".venv", "render", "Pulumi.*.yaml"))
    if (ROOT / ".venv").exists():
        (work / ".venv").symlink_to(ROOT / ".venv")
    # dev's configuration, typed as in its stack file, without its placeholder API keys;
    # `stack init` keeps an existing stack file and adds its encryption salt.
    config = {k: v for k, v in base.items() if k != "datamesh:apiKeys"}
    (work / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))
    stack = auto.create_stack(name, work_dir=str(work))
    cluster = f"datamesh-{name}" if not config.get("datamesh:clusterName") else str(config["datamesh:clusterName"])
    keys = {"analytics": secrets.token_hex(24), "partner-portal": secrets.token_hex(24)}
    try:
        for consumer, key in keys.items():
            stack.set_config(f"datamesh:apiKeys.{consumer}[0]", auto.ConfigValue(key, secret=True), path=True)

        outputs = stack.up(on_output=print).outputs
        host = outputs["ingressGatewayHostname"].value
        _wait_for_http(host)

        # Full governance checks on the revenue predictor: partner-portal may not call it.
        env = {**os.environ, "SMOKE_KEY": keys["analytics"], "SMOKE_OTHER_KEY": keys["partner-portal"]}
        smoke = subprocess.run([sys.executable, "-m", "tools.smoke", "--gateway", host], cwd=ROOT, env=env)
        assert smoke.returncode == 0, "tools.smoke failed"
        # Every product is routed and refuses a caller without a key.
        for product, url in outputs["productUrls"].value.items():
            try:
                urllib.request.urlopen(url, timeout=10)
                status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
            assert status in (401, 403), f"{product}: HTTP {status} without a key"
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack(name)

    deadline = time.monotonic() + 600  # the tagging API lags deletions by minutes
    while (left := _left(name, cluster, region)) and time.monotonic() < deadline:
        time.sleep(30)
    assert not left, f"still tagged {STACK_TAG}={name} or {CONTROLLER_CLUSTER_TAG}={cluster}: {left}"
