"""Offline render: run the real program under Pulumi's mock runtime and write what it declares.

    python -m tools.render --stack dev --out DIR [--config FILE] [--policy-config FILE]
    python -m tools.render --diff OLD_DIR NEW_DIR

Writes DIR/resources.json (every registered resource: urn, type, name, parent,
provider, dependencies, inputs with secrets as "[secret]"), DIR/manifests/
(every Kubernetes object the program declares itself, as YAML),
DIR/catalog/ (the data products' Backstage entities and OpenAPI definitions),
DIR/outputs.json (stack outputs, secrets masked), DIR/graph.dot and
DIR/graph.mmd (the dependency graph) and DIR/policy-report.json (the policy
pack's rules over every resource), then prints a summary.
Exit 0 on success; 1 when a mandatory policy fails (everything is still
written, and each failure is named on stderr); 2 on invalid configuration,
with one line on stderr and nothing written. --diff prints a resource-level
diff of two renders. No Pulumi CLI, cloud credentials or network are used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pulumi

from policies.rules import MANDATORY
from tools.engine.render import (
    EXIT_INVALID_CONFIG,
    EXIT_OK,
    EXIT_POLICY_FAILED,
    check_policies,
    load_policy_config,
    render_stack,
    summary,
    write_render,
)
from tools.engine.review import diff_renders
from tools.engine.stackconfig import StackConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="stack name, e.g. dev or prod")
    parser.add_argument("--out", type=Path, help="folder to write the render into")
    parser.add_argument("--config", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    parser.add_argument("--policy-config", type=Path,
                        help="policy pack config (JSON); default policies/config/<stack>.json when it exists")
    parser.add_argument("--diff", nargs=2, type=Path, metavar=("OLD_DIR", "NEW_DIR"), help="diff two renders and exit")
    args = parser.parse_args(argv)
    if args.diff:
        missing = [str(d / "resources.json") for d in args.diff if not (d / "resources.json").exists()]
        if missing:
            print(f"error: {missing[0]}: no such file (is it a render folder?)", file=sys.stderr)
            return EXIT_INVALID_CONFIG
        print(diff_renders(*args.diff), end="")
        return EXIT_OK
    if not args.stack or not args.out:
        parser.error("--stack and --out are required (or --diff OLD_DIR NEW_DIR)")

    try:
        policy_config = load_policy_config(args.stack, args.policy_config)
        result = render_stack(args.stack, args.config)
    except (StackConfigError, pulumi.RunError) as exc:  # ConfigError, DeclarationError: user mistakes
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_CONFIG
    violations = check_policies(result, policy_config)
    counts = write_render(result, args.out, violations)
    print(f"rendered stack {args.stack} into {args.out}")
    print(summary(counts))
    for v in violations:
        print(f"policy {v.level}: {v.rule}: {v.message} ({v.urn})", file=sys.stderr)
    mandatory = [v for v in violations if v.level == MANDATORY]
    if mandatory:
        print(f"error: {len(mandatory)} mandatory policy violation(s); see {args.out / 'policy-report.json'}", file=sys.stderr)
        return EXIT_POLICY_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
