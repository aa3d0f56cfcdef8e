"""Keep Pulumi.yaml's config declarations and docs/reference.md's reference table in step with the schema.

    python -m tools.schema_docs          # exit 1 and say what is stale
    python -m tools.schema_docs --write  # rewrite both from components/config.py

``components/config.py`` (``SCHEMA``) is the one place keys, types, defaults and
descriptions live; this writes the two copies the CLI and readers need.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from components.config import SCHEMA

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path("docs") / "reference.md"
TABLE_BEGIN = "<!-- config-reference:begin (python -m tools.schema_docs --write) -->"
TABLE_END = "<!-- config-reference:end -->"
YAML_MARKER = "config:\n"


def _flow(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...")


def pulumi_yaml_config() -> str:
    """The ``config:`` block: every key except maps, which project config cannot type."""
    lines = [YAML_MARKER.rstrip("\n")]
    for key, spec in SCHEMA.items():
        if spec.type == "object":
            continue
        lines += [f"  {key}:", f"    type: {spec.type}"]
        if spec.type == "array":
            lines += ["    items:", "      type: string"]
        lines.append(f"    description: {_flow(spec.description)}")
        if spec.default is not None:
            lines.append(f"    default: {_flow(spec.default)}")
    return "\n".join(lines) + "\n"


def reference_table() -> str:
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, spec in SCHEMA.items():
        if spec.default is None:
            default = "required"
        elif isinstance(spec.default, str):
            default = f"`{spec.default}`" if spec.default else '`""`'
        else:
            default = f"`{json.dumps(spec.default)}`"
        rows.append(f"| `datamesh:{key}` | {spec.type} | {default} | {spec.description} |")
    return "\n".join(rows) + "\n"


def rendered() -> dict[Path, str]:
    """What Pulumi.yaml and docs/reference.md should hold."""
    pulumi_yaml = (ROOT / "Pulumi.yaml").read_text()
    head = pulumi_yaml[: pulumi_yaml.index(YAML_MARKER)]
    reference = (ROOT / REFERENCE).read_text()
    before, rest = reference.split(TABLE_BEGIN, 1)
    after = rest.split(TABLE_END, 1)[1]
    return {
        ROOT / "Pulumi.yaml": head + pulumi_yaml_config(),
        ROOT / REFERENCE: before + TABLE_BEGIN + "\n" + reference_table() + TABLE_END + after,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.schema_docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the stale files")
    args = parser.parse_args(argv)
    stale = [path for path, text in rendered().items() if path.read_text() != text]
    if args.write:
        for path, text in rendered().items():
            path.write_text(text)
        return 0
    for path in stale:
        print(f"{path.name} is out of date: run python -m tools.schema_docs --write", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
