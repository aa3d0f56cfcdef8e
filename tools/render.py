"""Offline render: run the real program under Pulumi's mock runtime and write what it declares.

    python -m tools.render --stack dev --out DIR [--config FILE] [--policy-config FILE]
    python -m tools.render --diff OLD_DIR NEW_DIR [--format text|markdown] [--exit-code]

Writes DIR/resources.json (every registered resource: urn, type, name, parent,
provider, dependencies, inputs with secrets as "[secret]"), DIR/manifests/
(every Kubernetes object the program declares itself, as YAML),
DIR/catalog/ (the data products' Backstage entities and OpenAPI definitions),
DIR/outputs.json (stack outputs, secrets masked), DIR/graph.dot and
DIR/graph.mmd (the dependency graph, clustered by component), DIR/policy-report.json
(the policy pack's rules over every resource), DIR/cost.json (a monthly list-price
estimate), DIR/lineage.mmd and DIR/lineage.dot (domains, products, who consumes
whom, which consumers may call what), then prints a summary with the monthly total.
Exit 0 on success; 1 when a mandatory policy fails (everything is still
written, and each failure is named on stderr); 2 on bad arguments or invalid
input (stack file, declarations, policy config, --out), with one line on
stderr and nothing written; 3 on an internal error (one line; please report).
--diff prints the identity-keyed diff of two renders, led by access, AWS access,
secrets and env, and exposure (tools.engine.review_headlines), then resources, stack
outputs, policy report, monthly cost: exit 0, or 2 on a bad render folder; with
--exit-code it exits 0 when nothing changed, 2 when something did (a policy
finding alone included) and 1 on an
error (as `terraform plan -detailed-exitcode`); --graph-out DIR draws NEW_DIR's
dependency graph with the added and changed resources highlighted. No Pulumi CLI,
cloud credentials or network are used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pulumi

from components.inputs import InputError, read_text
from policies.rules import MANDATORY, Violation
from tools.cli import Exit, OneLineParser, OutputPathError, check_output_dir, check_output_file, is_stack_name
from tools.engine.graph_views import write_views
from tools.engine.graphs import graph_dot, graph_mermaid
from tools.engine.mockrun import DuplicateResourceError, RunResult
from tools.engine.render import (
    check_policies,
    cost_summary,
    load_policy_config,
    render_stack,
    summary,
    write_render,
)
from tools.engine.review import compare_renders, format_markdown, format_text
from tools.engine.stackconfig import StackConfigError

MAX_RENDER_BYTES = 256 * 1024 * 1024  # a resources.json to diff: renders of big meshes run to tens of MiB


class _BadInputError(Exception):
    """A one-line user mistake found by the command line itself."""


def _render_resources(folder: Path) -> None:
    """Check that ``folder/resources.json`` is a render's, before diffing it."""
    path = folder / "resources.json"
    try:
        doc: Any = json.loads(read_text(path, limit=MAX_RENDER_BYTES))
    except InputError as exc:
        hint = " (is it a render folder?)" if str(exc) == "no such file" else ""
        raise _BadInputError(f"{path}: {exc}{hint}") from None
    except (json.JSONDecodeError, RecursionError):
        raise _BadInputError(f"{path}: not valid JSON (a truncated or edited render?)") from None
    fields = ("urn", "type", "name")
    if not isinstance(doc, list) or not all(isinstance(r, dict) and all(isinstance(r.get(f), str) for f in fields)
                                            for r in doc):
        raise _BadInputError(f"{path}: not a render's resources.json (a list of resources with urn, type and name)")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    # --diff --exit-code answers as terraform plan -detailed-exitcode: every error is 1, 2 only "changes".
    detailed = "--diff" in arguments and "--exit-code" in arguments
    try:
        return _main(argv)
    except _BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.DIFF_ERROR if detailed else Exit.BAD_INPUT
    except DuplicateResourceError as exc:  # a bug in the program, found before anything is written
        print(f"error: {exc}", file=sys.stderr)
        return Exit.DIFF_ERROR if detailed else Exit.CANNOT_FINISH
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return Exit.DIFF_ERROR if detailed else Exit.CANNOT_FINISH
    except Exception as exc:  # a bug, not a user mistake: still one line, and no content from the input
        print(f"error: internal error ({type(exc).__name__}); please report it", file=sys.stderr)
        return Exit.DIFF_ERROR if detailed else Exit.CANNOT_FINISH


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m tools.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack name, e.g. dev or prod")
    parser.add_argument("--out", type=Path, help="folder to write the render into")
    parser.add_argument("--config", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--test-keys", type=Path, metavar="FILE",
                        help="offline verification only: give each undecrypted API key a fresh random test key, "
                             "written to FILE (mode 0600) for tools.verify --keys; never apply such a render")
    parser.add_argument("--policy-config", type=Path,
                        help="policy pack config (JSON); default policies/config/<stack>.json when it exists")
    parser.add_argument("--diff", nargs=2, type=Path, metavar=("OLD_DIR", "NEW_DIR"), help="diff two renders and exit")
    parser.add_argument("--format", choices=("text", "markdown"), default="text", help="--diff output format")
    parser.add_argument("--graph-out", type=Path, metavar="DIR",
                        help="with --diff: write NEW_DIR's dependency graph with what changed highlighted, DIR/changes.{dot,mmd}")
    parser.add_argument("--exit-code", action="store_true",
                        help="with --diff: exit 0 when nothing changed, 2 when something did, 1 on an error")
    return parser


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    arguments = sys.argv[1:] if argv is None else argv
    if "--diff" in arguments and "--exit-code" in arguments:
        parser.usage_exit = Exit.DIFF_ERROR  # 2 means "changes" there
    args = parser.parse_args(argv)
    if args.diff:
        return _diff(args)
    _check_render_arguments(parser, args)
    try:
        policy_config = load_policy_config(args.stack, args.policy_config)
        result = render_stack(args.stack, args.config, test_keys=args.test_keys)
    except (StackConfigError, pulumi.RunError) as exc:  # ConfigError, DeclarationError: user mistakes
        print(f"error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    return _write(args, result, check_policies(result, policy_config))


def _diff(args: argparse.Namespace) -> int:
    """--diff OLD_DIR NEW_DIR: the diff printed, and with --graph-out the changes highlighted in the graph."""
    try:
        for folder in args.diff:
            _render_resources(folder)
    except _BadInputError as exc:
        if not args.exit_code:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return Exit.DIFF_ERROR
    if args.graph_out:
        try:
            check_output_dir(args.graph_out)
        except OutputPathError as exc:
            raise _BadInputError(f"--graph-out: {exc}") from None
    diff = compare_renders(*args.diff)
    print(format_markdown(diff) if args.format == "markdown" else format_text(diff), end="")
    if args.graph_out:
        resources = json.loads((args.diff[1] / "resources.json").read_text())
        args.graph_out.mkdir(parents=True, exist_ok=True)
        (args.graph_out / "changes.dot").write_text(graph_dot(resources, diff.changed_urns))
        (args.graph_out / "changes.mmd").write_text(graph_mermaid(resources, diff.changed_urns))
        write_views(resources, args.graph_out / "changes", frozenset(diff.changed_urns), only_changed=True)
    return Exit.CHANGES if args.exit_code and not diff.empty else Exit.OK


def _check_render_arguments(parser: OneLineParser, args: argparse.Namespace) -> None:
    """A render's arguments, checked before the program runs."""
    if not args.stack or not args.out:
        parser.error("--stack and --out are required (or --diff OLD_DIR NEW_DIR)")
    for flag, given in (("--format", args.format != "text"), ("--graph-out", args.graph_out), ("--exit-code", args.exit_code)):
        if given:
            parser.error(f"{flag} goes with --diff OLD_DIR NEW_DIR")
    if not is_stack_name(args.stack):
        parser.error("--stack: a stack name holds only letters, digits, '-', '_' and '.'")
    try:
        check_output_dir(args.out)  # before the program runs, not after
    except OutputPathError as exc:
        raise _BadInputError(f"--out: {exc}") from None
    if args.test_keys is not None:
        try:
            check_output_file(args.test_keys)
        except OutputPathError as exc:
            raise _BadInputError(f"--test-keys: {exc}") from None
        if args.test_keys.resolve().is_relative_to(args.out.resolve()):
            raise _BadInputError("--test-keys: must be outside --out (a render holds no key)")


def _write(args: argparse.Namespace, result: RunResult, violations: list[Violation]) -> int:
    """The render written, its summary printed; 1 with a mandatory policy violation."""
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        counts = write_render(result, args.out, violations)
    except OSError as exc:
        raise _BadInputError(f"--out: {args.out}: cannot be written ({exc.strerror})") from None
    print(f"rendered stack {args.stack} into {args.out}")
    if args.test_keys is not None:
        print(f"warning: test keys in {args.test_keys}: this render's gateway accepts only them; verify it "
              "(tools.verify --keys), never apply it", file=sys.stderr)
    print(summary(counts))
    estimate = json.loads((args.out / "cost.json").read_text())
    print(cost_summary(estimate, args.out / "cost.json"))
    for problem in estimate["warnings"]:
        print(f"warning: cost: {problem}", file=sys.stderr)
    for v in violations:
        print(f"policy {v.level}: {v.rule}: {v.message} ({v.urn})", file=sys.stderr)
    mandatory = [v for v in violations if v.level == MANDATORY]
    if mandatory:
        print(f"error: {len(mandatory)} mandatory policy violation(s); see {args.out / 'policy-report.json'}", file=sys.stderr)
        return Exit.FAILED
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
