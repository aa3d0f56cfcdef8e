"""The Automation API step: tests/e2e/test_local_lifecycle.py, run with pytest against the local stack."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.engine.local_run import Project

TEST = "tests/e2e/test_local_lifecycle.py"


def automation_api(project: Project) -> str:
    """Run the Automation API test on ``project``'s stack; "ok" only when it ran and passed (not skipped)."""
    from tools.engine.local_run import ROOT, STACK, one_line

    spec = project.folder / "automation.json"
    spec.write_text(json.dumps({"project": str(project.dir), "stack": STACK, "env": dict(project.env),
                                "pulumiRoot": str(project.bin_dir.parent)}))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
                          cwd=ROOT, env={**project.env, "DATAMESH_LOCAL_ENGINE": str(spec)},
                          capture_output=True, text=True, timeout=1800, check=False)
    (project.folder / "automation.log").write_text(done.stdout + done.stderr)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode == 0 and "1 passed" in last:
        return "ok"
    return one_line(done.stdout + done.stderr) if done.returncode else f"did not run: {last}"
