"""The render engine: run the program under the mocks, check policies, and write what it declares.

``tools.render`` is the command line over this module; the tests use it directly.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from components.documents import Document
from components.inputs import YAML_DUMPER, InputError, read_text
from components.problems import Problem, field_path, message
from policies.rules import (
    LEVELS,
    MANDATORY,
    RULES,
    PolicyConfigError,
    Resource,
    Violation,
    config_schema,
    evaluate,
    rule_configs,
)
from tools.engine import cost, lineage
from tools.engine.graph_views import write_views
from tools.engine.graphs import graph_dot, graph_mermaid
from tools.engine.mockrun import PROJECT_ROOT, SECRET, DuplicateResourceError, Registration, RunResult, run_program
from tools.engine.stackconfig import StackConfigError, load_stack_config, with_test_keys

POLICY_CONFIG_DIR = PROJECT_ROOT / "policies" / "config"

# Kubernetes types the program does not declare object by object.
_NOT_MANIFESTS = re.compile(r"^kubernetes:helm\.sh/|^pulumi:providers:")



def render_stack(stack: str, config_file: Path | None = None, project_dir: Path = PROJECT_ROOT,
                 test_keys: Path | None = None) -> RunResult:
    """Run the program for ``stack``; raises ``StackConfigError`` or a ``pulumi.RunError`` for bad input.

    With ``test_keys``, undecrypted API keys become fresh test keys, written to that file (``with_test_keys``).
    """
    cfg = load_stack_config(project_dir, stack, config_file)
    if test_keys is not None:
        cfg = with_test_keys(cfg, test_keys)
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


def manifest(reg: Registration) -> Document:
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


def manifest_filename(obj: Document) -> str:
    meta = obj.get("metadata", {})
    parts = [obj.get("kind", "object").lower(), meta.get("namespace") or "cluster", meta.get("name", "unnamed")]
    return "-".join(re.sub(r"[^a-z0-9.-]+", "-", str(p).lower()) for p in parts) + ".yaml"


def check_policies(result: RunResult, config: Document) -> list[Violation]:
    """The policy pack's rules over every registered resource (the stack itself aside)."""
    resources = [Resource(r.urn, r.type, r.name, r.inputs) for r in result.resources if r.type != "pulumi:pulumi:Stack"]
    return evaluate(resources, config)


def policy_config_schema() -> Document:
    """A whole policy config file's JSON Schema, built from each rule's (the schemas the pack declares to Pulumi).

    Stricter than Pulumi in one way: a property no rule declares is an error, not ignored.
    """
    def entry(properties: Document) -> Document:
        return {"oneOf": [{"enum": list(LEVELS)}, {
            "type": "object", "additionalProperties": False,
            "properties": {"enforcementLevel": {"enum": list(LEVELS)}, **properties}}]}

    rules = {r.name: entry(config_schema(r)["properties"]) for r in RULES}
    return {"type": "object", "additionalProperties": False,
            "properties": {"all": entry({"exemptions": config_schema(RULES[0])["properties"]["exemptions"]}), **rules}}


def load_policy_config(stack: str, path: Path | None) -> Document:
    """``path``, or ``policies/config/<stack>.json`` when there is one: the pack's config format, validated."""
    path = path if path is not None else POLICY_CONFIG_DIR / f"{stack}.json"
    if path.parent == POLICY_CONFIG_DIR and not path.exists():
        return {}
    try:
        config = json.loads(read_text(path))
        rule_configs(config)  # names, levels and settings, with the standard library (as the pack does)
    except InputError as exc:
        raise StackConfigError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise StackConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise StackConfigError(f"{path}: not valid JSON (nested too deeply)") from None
    except PolicyConfigError as exc:
        raise StackConfigError(message([exc.problem], str(path))) from None
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(policy_config_schema()).iter_errors(config))
    if error is not None:  # the same schemas, checked by the JSON Schema library too
        problem = Problem(field_path(error.absolute_path), f"does not match the policy's config schema ({error.validator})")
        raise StackConfigError(message([problem], str(path)))
    return config


def write_render(result: RunResult, out: Path, violations: list[Violation] | None = None) -> dict[str, int]:
    """Write the render into ``out`` (resources, graphs, policy report, outputs, cost, lineage, manifests,
    catalog); return resources per type."""
    resources = sorted(result.resources, key=lambda r: r.urn)
    # Every object is checked before anything is written.
    objects: dict[str, Document] = {}
    for reg in resources:
        if is_manifest(reg):
            obj = manifest(reg)
            filename = manifest_filename(obj)
            if filename in objects:  # two resources for one kind/namespace/name: the second apply would fail
                raise DuplicateResourceError(f"{obj.get('kind')} {obj.get('metadata', {}).get('namespace') or '-'}/"
                                             f"{obj.get('metadata', {}).get('name')} is declared twice")
            objects[filename] = obj
    out.mkdir(parents=True, exist_ok=True)
    as_json = [_sorted(r.as_json()) for r in resources]
    (out / "resources.json").write_text(json.dumps(as_json, indent=2) + "\n")
    (out / "graph.dot").write_text(graph_dot(as_json))
    (out / "graph.mmd").write_text(graph_mermaid(as_json))
    write_views(as_json, out / "graphs")
    found = violations or []
    (out / "policy-report.json").write_text(json.dumps({
        "passed": not any(v.level == MANDATORY for v in found),
        "rules": [{"name": r.name, "description": r.description, "defaultLevel": r.level} for r in RULES],
        "violations": [v.as_json() for v in found],
    }, indent=2) + "\n")
    (out / "outputs.json").write_text(json.dumps(result.outputs, indent=2, sort_keys=True) + "\n")
    (out / "cost.json").write_text(json.dumps(cost.estimate(as_json), indent=2) + "\n")
    mesh = lineage.build(as_json, result.outputs)
    (out / "lineage.mmd").write_text(lineage.mermaid(mesh))
    (out / "lineage.dot").write_text(lineage.dot(mesh))

    manifests = out / "manifests"
    if manifests.exists():
        shutil.rmtree(manifests)  # a stale object from an older render would mislead a diff
    manifests.mkdir()
    for filename, obj in objects.items():
        (manifests / filename).write_text(yaml.dump(obj, Dumper=YAML_DUMPER, sort_keys=False))
    write_catalog(result.outputs.get("catalog") or [], out / "catalog")
    return dict(Counter(r.type for r in resources))


def write_catalog(entities: list[Document], folder: Path) -> None:
    """The Backstage entities as one catalog-info.yaml, and each API's OpenAPI definition on its own."""
    if folder.exists():
        shutil.rmtree(folder)
    if not entities:
        return
    (folder / "openapi").mkdir(parents=True)
    (folder / "catalog-info.yaml").write_text(yaml.dump_all(entities, Dumper=YAML_DUMPER, sort_keys=False))
    for entity in entities:
        if entity["kind"] == "API":
            (folder / "openapi" / f"{entity['metadata']['name']}.yaml").write_text(entity["spec"]["definition"])


def cost_summary(c: Document, path: Path) -> str:
    """The render's monthly estimate ``c`` (the cost.json ``write_render`` wrote at ``path``) in one line."""
    low, high = c["totalRange"]
    spread = f" (range ${low:,.2f} to ${high:,.2f} with spot prices)" if low != high else ""
    return (f"monthly cost estimate: ${c['total']:,.2f} {c['currency']} at {c['region']} list prices{spread}; "
            f"see {path}")


def summary(counts: dict[str, int]) -> str:
    width = max(len(t) for t in counts)
    lines = [f"{t:<{width}}  {n}" for t, n in sorted(counts.items())]
    lines.append(f"{'total':<{width}}  {sum(counts.values())}")
    return "\n".join(lines)
