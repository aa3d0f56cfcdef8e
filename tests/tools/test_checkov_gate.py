"""The checkov gate: every finding on the rendered manifests is fixed or accepted, with a reason, in the baseline."""

import json

import pytest
import yaml

from tests.conftest import ROOT
from tools.checkov_gate import BASELINE, gate, main

ACCEPTED = yaml.safe_load(BASELINE.read_text())["accepted"]


def finding(check: str, resource: str) -> dict:
    # The fields of a failed check in checkov 3.3.30's `-o json` report that the gate reads.
    return {"check_id": check, "check_name": "n", "resource": resource, "file_path": "/x.yaml"}


def report(*findings: dict) -> dict:
    return {"check_type": "kubernetes", "results": {"passed_checks": [], "failed_checks": list(findings)},
            "summary": {"failed": len(findings)}}


def test_baseline_entries_are_reviewed():
    assert ACCEPTED and all(set(a) == {"check", "resources", "reason"} for a in ACCEPTED)
    assert all(a["check"].startswith(("CKV_K8S_", "CKV2_K8S_")) and len(a["reason"]) > 80 for a in ACCEPTED)
    assert "checkov==" in (ROOT / "policies" / "checkov" / "requirements.txt").read_text()


def test_accepted_findings_pass_and_others_fail(tmp_path, capsys):
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps(report(finding("CKV_K8S_43", "Deployment.sales.revenue-predictor"))))
    assert main([str(ok)]) == 0
    out = capsys.readouterr().out
    assert "1 finding(s), 1 accepted by the baseline, 0 open" in out
    assert "stale: CKV_K8S_15 Deployment.*" in out  # accepted, but nothing matched it this time

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([report(finding("CKV_K8S_43", "Deployment.sales.x")),
                               report(finding("CKV_K8S_20", "Deployment.sales.x"), finding("CKV_K8S_43", "Pod.sales.x"))]))
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("error: CKV_K8S_20 n: Deployment.sales.x (/x.yaml)")
    assert err[1].startswith("error: CKV_K8S_43 n: Pod.sales.x")  # accepted for Deployments only


def test_an_entry_without_a_reason_is_refused(tmp_path, capsys):
    baseline = tmp_path / "b.yaml"
    baseline.write_text(yaml.safe_dump({"accepted": [{"check": "CKV_K8S_43", "resources": "*"}]}))
    rep = tmp_path / "r.json"
    rep.write_text(json.dumps(report()))
    assert main([str(rep), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {baseline}: not a baseline (accepted: [{{check, resources, reason}}]) at accepted/0\n"


@pytest.mark.parametrize(("content", "problem"), [
    ("", "not valid JSON"),
    ("[1, 2", "not valid JSON"),
    ('{"results": 5}', "not a checkov JSON report at results"),
    ('{"results": {"failed_checks": [{"check_id": "CKV_K8S_1"}]}}', "not a checkov JSON report at results/failed_checks/0"),
    ("[]", "not a checkov JSON report at (top level)"),
])
def test_a_bad_report_is_one_line_naming_the_file(tmp_path, capsys, content, problem):
    rep = tmp_path / "r.json"
    rep.write_text(content)
    assert main([str(rep)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {rep}: {problem}" + ("" if problem.startswith("not a") else " (is it checkov's -o json output?)") + "\n"


def test_a_report_of_nothing_scanned_fails(tmp_path, capsys):
    rep = tmp_path / "r.json"
    rep.write_text(json.dumps(report()))
    assert main([str(rep)]) == 1
    assert "nothing was scanned" in capsys.readouterr().err


def test_gate_matches_check_and_resource_glob():
    findings = [finding("CKV2_K8S_6", "Pod.customer.customer-features.app-customer-features")]
    assert gate(findings, ACCEPTED)[0] == []
    assert gate(findings, [])[0] == findings


def test_pull_request_workflow_scans_manifests_with_checkov_in_its_own_venv():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    steps = wf["jobs"]["render"]["steps"]
    scan = next(s for s in steps if "checkov" in s.get("name", ""))
    assert "-m venv \"$RUNNER_TEMP/checkov-venv\"" in scan["run"]
    assert "pip\" install -r policies/checkov/requirements.txt" in scan["run"]
    assert "-d \"$RUNNER_TEMP/head/manifests\" --framework kubernetes" in scan["run"]
    assert "tools.checkov_gate" in scan["run"]
    publish = next(s for s in steps if s.get("name", "").startswith("Publish"))
    assert "--format markdown" in publish["run"] and "lineage.mmd" in publish["run"] and "```mermaid" in publish["run"]
