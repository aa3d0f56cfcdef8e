"""What a reviewer reads in a pull request without cloud credentials: render diffs and graphs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_MISSING = object()


def _flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf values by dotted path; list items by index."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def changed_properties(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(path, old, new) for every leaf that differs; a missing side is ``_MISSING``."""
    before, after = dict(_flatten(old)), dict(_flatten(new))
    return [(p, before.get(p, _MISSING), after.get(p, _MISSING))
            for p in sorted(set(before) | set(after)) if before.get(p, _MISSING) != after.get(p, _MISSING)]


def _show(value: Any) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value)


def diff_renders(old_dir: Path, new_dir: Path) -> str:
    """A resource-level diff of two renders: added, removed, changed (with the changed properties).

    Secrets are already "[secret]" in both renders, so a changed secret does not show.
    """
    def load(folder: Path) -> dict[str, dict[str, Any]]:
        return {r["urn"]: r for r in json.loads((folder / "resources.json").read_text())}

    old, new = load(old_dir), load(new_dir)
    lines: list[str] = []
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = []
    for urn in sorted(set(old) & set(new)):
        fields = {k: (old[urn].get(k), new[urn].get(k)) for k in ("inputs", "dependencies", "parent", "provider", "providers")}
        props = []
        for key, (before, after) in fields.items():
            if before != after:
                prefix = "" if key == "inputs" else f"({key}) "
                if isinstance(before, dict) and isinstance(after, dict):
                    props += [(prefix + p, b, a) for p, b, a in changed_properties(before, after)]
                else:
                    props.append((prefix.strip() or key, before, after))
        if props:
            changed.append((urn, props))
    for urn in added:
        lines.append(f"+ {new[urn]['type']} {new[urn]['name']}")
    for urn in removed:
        lines.append(f"- {old[urn]['type']} {old[urn]['name']}")
    for urn, props in changed:
        lines.append(f"~ {new[urn]['type']} {new[urn]['name']}")
        lines += [f"    {path}: {_show(before)} -> {_show(after)}" for path, before, after in props]
    lines.append(f"{len(added)} to add, {len(changed)} to change, {len(removed)} to delete")
    return "\n".join(lines) + "\n"


def _label(resource: dict[str, Any]) -> str:
    return f"{resource['type']}\\n{resource['name']}"


def graph_dot(resources: list[dict[str, Any]]) -> str:
    """The dependency graph as Graphviz DOT: dependencies solid, parents dotted (as `pulumi stack graph`)."""
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(resources)}
    lines = ["strict digraph datamesh {", "  rankdir=LR;", '  node [shape=box, fontsize=10];']
    lines += [f'  {ids[r["urn"]]} [label="{_label(r)}"];' for r in resources]
    for r in resources:
        lines += [f"  {ids[r['urn']]} -> {ids[d]};" for d in r["dependencies"] if d in ids]
        if r["parent"] in ids:
            lines.append(f"  {ids[r['urn']]} -> {ids[r['parent']]} [style=dotted, arrowhead=none];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_mermaid(resources: list[dict[str, Any]]) -> str:
    """The same graph for Mermaid (renders inline in GitHub markdown)."""
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(resources)}
    lines = ["graph LR"]
    lines += [f'  {ids[r["urn"]]}["{r["type"]}<br/>{r["name"]}"]' for r in resources]
    for r in resources:
        lines += [f"  {ids[r['urn']]} --> {ids[d]}" for d in r["dependencies"] if d in ids]
        if r["parent"] in ids:
            lines.append(f"  {ids[r['urn']]} -.- {ids[r['parent']]}")
    return "\n".join(lines) + "\n"
