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
import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import yaml

from policies.rules import MANDATORY, RULES, PolicyConfigError, Resource, Violation, evaluate, rule_configs
from tools.mockrun import PROJECT_ROOT, SECRET, Registration, RunResult, run_program
from tools.review import diff_renders, graph_dot, graph_mermaid
from tools.stackconfig import StackConfigError, load_stack_config

EXIT_OK = 0
EXIT_POLICY_FAILED = 1
EXIT_INVALID_CONFIG = 2
POLICY_CONFIG_DIR = PROJECT_ROOT / "policies" / "config"

# Kubernetes types the program does not declare object by object.
_NOT_MANIFESTS = re.compile(r"^kubernetes:helm\.sh/|^pulumi:providers:")


def render_stack(stack: str, config_file: Path | None = None, project_dir: Path = PROJECT_ROOT) -> RunResult:
    """Run the program for ``stack``; raises ``StackConfigError`` or a ``pulumi.RunError`` for bad input."""
    cfg = load_stack_config(project_dir, stack, config_file)
    return run_program(cfg.values, cfg.secret_keys, stack=stack, project=cfg.project,
                       program=project_dir / "__main__.py")


def is_manifest(reg: Registration) -> bool:
    return reg.type.startswith("kubernetes:") and reg.custom and not _NOT_MANIFESTS.search(reg.type)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def manifest(reg: Registration) -> dict[str, Any]:
    """The Kubernetes object a resource declares, as kubectl would take it, keys in a stable order."""
    obj = _sorted({k: v for k, v in reg.inputs.items() if not k.startswith("__")})
    head = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
    if head.get("kind") == "Secret":
        # The SDK masks a Secret's data whole; keep the manifest applicable, and say what is missing.
        withheld = sorted(k for k in ("data", "stringData") if obj.get(k) == SECRET)
        if withheld:
            obj.update({k: {} for k in withheld})
            meta = head.setdefault("metadata", {})
            meta["annotations"] = {**meta.get("annotations", {}),
                                   "datamesh.io/render": f"{', '.join(withheld)} withheld: secret values are not rendered"}
    return {**head, **obj}


def manifest_filename(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    parts = [obj.get("kind", "object").lower(), meta.get("namespace") or "cluster", meta.get("name", "unnamed")]
    return "-".join(re.sub(r"[^a-z0-9.-]+", "-", str(p).lower()) for p in parts) + ".yaml"


def check_policies(result: RunResult, config: dict[str, Any]) -> list[Violation]:
    """The policy pack's rules over every registered resource (the stack itself aside)."""
    resources = [Resource(r.urn, r.type, r.name, r.inputs) for r in result.resources if r.type != "pulumi:pulumi:Stack"]
    return evaluate(resources, config)


def load_policy_config(stack: str, path: Path | None) -> dict[str, Any]:
    """``path``, or ``policies/config/<stack>.json`` when there is one: the pack's config format."""
    path = path if path is not None else POLICY_CONFIG_DIR / f"{stack}.json"
    if not path.exists():
        if path.parent == POLICY_CONFIG_DIR:
            return {}
        raise StackConfigError(f"{path}: no such file")
    try:
        config = json.loads(path.read_text())
        rule_configs(config)  # names and levels are checked before anything runs
    except json.JSONDecodeError as exc:
        raise StackConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except PolicyConfigError as exc:
        raise StackConfigError(f"{path}: {exc}") from None
    return config


def write_render(result: RunResult, out: Path, violations: list[Violation] | None = None) -> dict[str, int]:
    """Write the render into ``out``; return resources per type."""
    resources = sorted(result.resources, key=lambda r: r.urn)
    out.mkdir(parents=True, exist_ok=True)
    as_json = [_sorted(r.as_json()) for r in resources]
    (out / "resources.json").write_text(json.dumps(as_json, indent=2) + "\n")
    (out / "graph.dot").write_text(graph_dot(as_json))
    (out / "graph.mmd").write_text(graph_mermaid(as_json))
    found = violations or []
    (out / "policy-report.json").write_text(json.dumps({
        "passed": not any(v.level == MANDATORY for v in found),
        "rules": [{"name": r.name, "description": r.description, "defaultLevel": r.level} for r in RULES],
        "violations": [v.as_json() for v in found],
    }, indent=2) + "\n")
    (out / "outputs.json").write_text(json.dumps(result.outputs, indent=2, sort_keys=True) + "\n")

    manifests = out / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)  # a stale object from an older render would mislead a diff
    manifests.mkdir()
    for reg in resources:
        if is_manifest(reg):
            obj = manifest(reg)
            (manifests / manifest_filename(obj)).write_text(yaml.safe_dump(obj, sort_keys=False))
    write_catalog(result.outputs.get("catalog") or [], out / "catalog")
    return dict(Counter(r.type for r in resources))


def write_catalog(entities: list[dict[str, Any]], folder: Path) -> None:
    """The Backstage entities as one catalog-info.yaml, and each API's OpenAPI definition on its own."""
    if folder.exists():
        shutil.rmtree(folder)
    if not entities:
        return
    (folder / "openapi").mkdir(parents=True)
    (folder / "catalog-info.yaml").write_text(yaml.safe_dump_all(entities, sort_keys=False))
    for entity in entities:
        if entity["kind"] == "API":
            (folder / "openapi" / f"{entity['metadata']['name']}.yaml").write_text(entity["spec"]["definition"])


def summary(counts: dict[str, int]) -> str:
    width = max(len(t) for t in counts)
    lines = [f"{t:<{width}}  {n}" for t, n in sorted(counts.items())]
    lines.append(f"{'total':<{width}}  {sum(counts.values())}")
    return "\n".join(lines)


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
