"""End to end on the local control plane, through the Automation API: up, no change, destroy.

`python -m tools.local_engine` runs this as its `automation_api` step, after its own CLI steps, with
DATAMESH_LOCAL_ENGINE naming a JSON file: the project folder (a copy of the program with the local
stack initialised, docs/existing-clusters.md), the environment every command gets (PATH with the
local builds, the file backend, the passphrase) and the root of the Pulumi CLI it built. Skipped,
with the reason, anywhere else (`.ci/run` collects it and never runs it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SPEC = os.environ.get("DATAMESH_LOCAL_ENGINE", "")

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not SPEC or not Path(SPEC).is_file(),
    reason="local engine: run through `python -m tools.local_engine`, which sets DATAMESH_LOCAL_ENGINE")]


def test_local_stack_up_unchanged_destroy():
    from pulumi import automation as auto

    spec = json.loads(Path(SPEC).read_text())
    command = auto.PulumiCommand(root=spec["pulumiRoot"], skip_version_check=True)
    workspace = auto.LocalWorkspace(work_dir=spec["project"], env_vars=spec["env"], pulumi_command=command)
    stack = auto.Stack.select(spec["stack"], workspace)
    up = stack.up()
    assert up.summary.result == "succeeded"
    assert (up.summary.resource_changes or {}).get("create", 0) > 0, up.summary.resource_changes
    again = stack.preview()
    assert {op for op, n in again.change_summary.items() if n and op not in ("same", "read")} == set(), again.change_summary
    down = stack.destroy()
    assert down.summary.result == "succeeded"
    assert (down.summary.resource_changes or {}).get("delete", 0) == (up.summary.resource_changes or {}).get("create", 0)
