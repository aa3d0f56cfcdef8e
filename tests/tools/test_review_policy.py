"""The review's exit code for a pull request that only weakens policy: the CI gate must not wave it through."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tools.render import main as render_main


def test_a_change_that_only_turns_a_policy_finding_off_exits_2(tmp_path):
    shipped = json.loads((ROOT / "policies" / "config" / "dev.json").read_text())
    assert shipped, "dev's policy config sets no rule level: nothing to weaken here"
    rule = sorted(shipped)[0]
    weakened = tmp_path / "dev-weakened.json"
    weakened.write_text(json.dumps({**shipped, rule: "disabled"}))
    old, new = tmp_path / "old", tmp_path / "new"
    assert render_main(["--stack", "dev", "--out", str(old)]) == 0
    assert render_main(["--stack", "dev", "--out", str(new), "--policy-config", str(weakened)]) == 0
    resources = [(old / "resources.json").read_text(), (new / "resources.json").read_text()]
    assert resources[0] == resources[1]  # the resources are the same: only the policy report differs
    proc = subprocess.run([sys.executable, "-m", "tools.render", "--diff", str(old), str(new), "--exit-code"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "== policy report" in proc.stdout and f"- advisory {rule}:" in proc.stdout
    assert "1 policy finding change(s)" in proc.stdout
