"""Fail on checkov findings that the reviewed baseline does not accept.

    python -m tools.checkov_gate REPORT.json [REPORT.json ...] [--baseline policies/checkov/baseline.yaml]

REPORT.json is checkov's `-o json` output (one framework: an object; several: a list).
Prints each finding the baseline does not accept and exits 1 if there is one; prints
baseline entries that matched nothing as stale (a warning, exit 0); exits 1 too when the
reports hold no check at all (checkov scanned nothing); exits 2, with one line naming the
file, when a report or the baseline cannot be read or has the wrong shape.
"""

from __future__ import annotations

import json
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import jsonschema

from components.documents import Document
from components.inputs import InputError, load_yaml, read_text
from tools.cli import Exit, OneLineParser

MAX_REPORT_BYTES = 64 * 1024 * 1024
_FINDING = {"type": "object", "required": ["check_id", "check_name", "resource", "file_path"],
            "properties": {k: {"type": "string"} for k in ("check_id", "check_name", "resource", "file_path")}}
_ONE_REPORT = {"type": "object", "required": ["results"], "properties": {"results": {
    "type": "object", "properties": {"failed_checks": {"type": "array", "items": _FINDING},
                                     "passed_checks": {"type": "array"}}}}}
# checkov -o json: one object per framework, or a list of them.
REPORT_SCHEMA = {"if": {"type": "array"}, "then": {"items": _ONE_REPORT, "minItems": 1}, "else": _ONE_REPORT}
BASELINE_SCHEMA = {"type": "object", "required": ["accepted"], "properties": {"accepted": {"type": "array", "items": {
    "type": "object", "required": ["check", "resources", "reason"], "additionalProperties": False,
    "properties": {"check": {"type": "string", "minLength": 1}, "resources": {"type": "string", "minLength": 1},
                   "reason": {"type": "string", "pattern": "\\S"}}}}}}

# A checkov JSON report: one object, or a list of them (one a framework) when several ran.
Report = Document | list[Document]

BASELINE = Path(__file__).resolve().parents[1] / "policies" / "checkov" / "baseline.yaml"


def failed_checks(report: Report) -> list[Document]:
    """Every failed check of a checkov JSON report."""
    reports = report if isinstance(report, list) else [report]
    return [f for r in reports for f in (r.get("results") or {}).get("failed_checks", [])]


def gate(findings: list[Document], accepted: list[Document]) -> tuple[list[Document], list[Document]]:
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


class GateInputError(ValueError):
    """A report or the baseline that cannot be read or has the wrong shape; the message names the file."""


def _load(path: Path, schema: Document, what: str, as_yaml: bool = False) -> Any:
    try:
        text = read_text(path, limit=MAX_REPORT_BYTES)
        doc = load_yaml(text) if as_yaml else json.loads(text)
    except InputError as exc:
        raise GateInputError(f"{path}: {exc}") from None
    except (json.JSONDecodeError, RecursionError):
        raise GateInputError(f"{path}: not valid JSON (is it checkov's -o json output?)") from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    if error is not None:  # the deepest error: "results/failed_checks/0", not just "does not match oneOf"
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise GateInputError(f"{path}: not {what} at {where}")
    return doc


def scanned(report: Report) -> int:
    """How many checks a report ran, passed or failed: zero means checkov scanned nothing."""
    reports = report if isinstance(report, list) else [report]
    return sum(len(r["results"].get(k) or []) for r in reports for k in ("passed_checks", "failed_checks"))


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.checkov_gate", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    args = parser.parse_args(argv)
    try:
        accepted = _load(args.baseline, BASELINE_SCHEMA, "a baseline (accepted: [{check, resources, reason}])",
                         as_yaml=True)["accepted"]
        reports = [_load(path, REPORT_SCHEMA, "a checkov JSON report") for path in args.reports]
    except GateInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    if not sum(scanned(r) for r in reports):
        print("error: checkov ran no check on these reports: nothing was scanned (wrong folder, or no manifests?)",
              file=sys.stderr)
        return Exit.FAILED
    findings = [f for r in reports for f in failed_checks(r)]
    open_findings, stale = gate(findings, accepted)
    for entry in stale:
        print(f"stale: {entry['check']} {entry['resources']}: matched no finding in these reports "
              f"(remove it from {args.baseline} once no stack's render needs it)")
    for f in open_findings:
        print(f"error: {f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']}): "
              f"fix it, or justify it in {args.baseline}", file=sys.stderr)
    print(f"checkov: {len(findings)} finding(s), {len(findings) - len(open_findings)} accepted by the baseline, "
          f"{len(open_findings)} open")
    return Exit.FAILED if open_findings else Exit.OK


if __name__ == "__main__":
    sys.exit(main())
