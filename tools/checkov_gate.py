"""Fail on checkov findings that the reviewed baseline does not accept.

    python -m tools.checkov_gate REPORT.json [REPORT.json ...] [--baseline policies/checkov/baseline.yaml]

REPORT.json is checkov's `-o json` output (one framework: an object; several: a list).
Prints each finding the baseline does not accept and exits 1 if there is one; prints
baseline entries that matched nothing as stale (a warning, exit 0); exits 2 when a
report or the baseline cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

BASELINE = Path(__file__).resolve().parents[1] / "policies" / "checkov" / "baseline.yaml"


def failed_checks(report: Any) -> list[dict[str, Any]]:
    """Every failed check of a checkov JSON report."""
    reports = report if isinstance(report, list) else [report]
    return [f for r in reports for f in (r.get("results") or {}).get("failed_checks", [])]


def gate(findings: list[dict[str, Any]], accepted: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(findings no entry accepts, entries that accepted nothing)."""
    used: set[int] = set()
    open_findings = []
    for f in findings:
        match = next((i for i, a in enumerate(accepted)
                      if a["check"] == f["check_id"] and fnmatchcase(f["resource"], a["resources"])), None)
        if match is None:
            open_findings.append(f)
        else:
            used.add(match)
    return open_findings, [a for i, a in enumerate(accepted) if i not in used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.checkov_gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    try:
        accepted = yaml.safe_load(args.baseline.read_text())["accepted"]
        for entry in accepted:
            if not {"check", "resources", "reason"} <= set(entry) or not str(entry["reason"]).strip():
                raise ValueError(f"every entry needs check, resources and a reason: {entry}")
        findings = [f for path in args.reports for f in failed_checks(json.loads(path.read_text()))]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    open_findings, stale = gate(findings, accepted)
    for entry in stale:
        print(f"stale: {entry['check']} {entry['resources']}: matched no finding in these reports "
              f"(remove it from {args.baseline} once no stack's render needs it)")
    for f in open_findings:
        print(f"error: {f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']}): "
              f"fix it, or justify it in {args.baseline}", file=sys.stderr)
    print(f"checkov: {len(findings)} finding(s), {len(findings) - len(open_findings)} accepted by the baseline, "
          f"{len(open_findings)} open")
    return 1 if open_findings else 0


if __name__ == "__main__":
    sys.exit(main())
