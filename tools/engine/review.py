"""What a reviewer reads in a pull request without cloud credentials: the render diff.

The diff matches things by identity, never by position:

- Kubernetes objects by apiVersion, kind, namespace and name (so a URN that moves
  under another component is the same object, with a note that Pulumi replaces it);
  every other resource by its URN.
- Values by ``tools.engine.valuediff``: items of a list by a key, JSON strings as JSON,
  multi-line strings line by line.

The graphs are ``tools.engine.graphs``; both modules' names are importable from here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.documents import Document
from tools.engine.graphs import STACK_TYPE, component_of, graph_dot, graph_mermaid
from tools.engine.valuediff import Change, diff_values, list_key

__all__ = [
    "STACK_TYPE", "Change", "Entry", "RenderDiff", "compare_renders", "component_of", "diff_renders", "diff_values",
    "entries", "format_markdown", "format_text", "graph_dot", "graph_mermaid", "list_key",
]


@dataclass
class Entry:
    """One resource of a render, under the identity the diff matches it by."""

    identity: str
    label: str
    group: str
    record: Document


def _k8s_identity(resource: Document) -> tuple[str, str] | None:
    inputs = resource.get("inputs") or {}
    meta = inputs.get("metadata")
    if not resource["type"].startswith("kubernetes:") or not isinstance(meta, dict) or "kind" not in inputs:
        return None
    ns = meta.get("namespace")
    name = meta.get("name", resource["name"])
    where = f"{ns}/{name}" if ns else str(name)
    return f"{inputs.get('apiVersion')}/{inputs['kind']}/{where}", f"{inputs['kind']} {where}"


def entries(resources: list[Document]) -> dict[str, Entry]:
    by_urn = {r["urn"]: r for r in resources}
    out: dict[str, Entry] = {}
    for r in resources:
        k8s = _k8s_identity(r)
        identity, label = k8s if k8s else (r["urn"], f"{r['type']} {r['name']}")
        out[identity] = Entry(identity, label, component_of(r, by_urn), r)
    return out


def _read(folder: Path, name: str, default: Any) -> Any:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else default


@dataclass
class RenderDiff:
    """Everything that differs between two renders, ready to print as text or markdown."""

    groups: dict[str, list[tuple[str, str, list[Change]]]] = field(default_factory=dict)
    added: int = 0
    changed: int = 0
    removed: int = 0
    outputs: list[Change] = field(default_factory=list)
    policy: list[str] = field(default_factory=list)
    cost_lines: list[tuple[str, float, float]] = field(default_factory=list)
    cost_total: tuple[float, float] = (0.0, 0.0)
    cost_missing: bool = False  # one side has no cost.json (a render older than the estimate)
    changed_urns: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.outputs or self.policy or self.cost_lines)

    def summary(self) -> str:
        before, after = self.cost_total
        cost = (f"cost not compared (a render without cost.json; ${after:,.2f} list price)" if self.cost_missing
                else f"cost {_money(after - before, signed=True)}/month (${after:,.2f} list price)")
        return (f"{self.added} to add, {self.changed} to change, {self.removed} to delete; "
                f"{len(self.outputs)} output change(s); {len(self.policy)} policy finding change(s); {cost}")


def _money(value: float, signed: bool = False) -> str:
    sign = ("+" if value >= 0 else "-") if signed else ""
    return f"{sign}${abs(value):,.2f}"


def _pulumi_fields(entry: Entry) -> Document:
    r = entry.record
    return {"inputs": r.get("inputs") or {}, "dependencies": sorted(r.get("dependencies") or []),
            "parent": r.get("parent"), "provider": r.get("provider"), "providers": r.get("providers") or {}}


def _resource_changes(old: Entry, new: Entry) -> list[Change]:
    before, after = _pulumi_fields(old), _pulumi_fields(new)
    changes = diff_values(before["inputs"], after["inputs"])
    for key in ("dependencies", "parent", "provider", "providers"):
        changes += [Change(f"({key}) {c.path}".rstrip(), c.op, c.old, c.new)
                    for c in diff_values(before[key], after[key])]
    if old.record["urn"] != new.record["urn"]:
        changes.append(Change("(urn) Pulumi replaces it unless aliased", "~", old.record["urn"], new.record["urn"]))
    return changes


def compare_renders(old_dir: Path, new_dir: Path) -> RenderDiff:
    """The identity-keyed diff of two render folders (resources, outputs, policy report, cost)."""
    result = RenderDiff()
    _diff_resources(result, entries(_read(old_dir, "resources.json", [])), entries(_read(new_dir, "resources.json", [])))
    result.outputs = diff_values(_read(old_dir, "outputs.json", {}), _read(new_dir, "outputs.json", {}))
    old_f, new_f = _findings(old_dir), _findings(new_dir)
    result.policy = ([f"+ {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(new_f.items()) if k not in old_f]
                     + [f"- {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(old_f.items()) if k not in new_f])
    _diff_cost(result, _read(old_dir, "cost.json", None), _read(new_dir, "cost.json", None))
    return result


def _diff_resources(result: RenderDiff, old: dict[str, Entry], new: dict[str, Entry]) -> None:
    """Each resource added, removed or changed, under its top-level component."""
    def put(group: str, sign: str, label: str, changes: list[Change]) -> None:
        result.groups.setdefault(group, []).append((sign, label, changes))

    for identity in sorted(set(old) | set(new), key=lambda i: (new.get(i) or old[i]).label):
        if identity not in old:
            result.added += 1
            put(new[identity].group, "+", new[identity].label, [])
            result.changed_urns.add(new[identity].record["urn"])
        elif identity not in new:
            result.removed += 1
            put(old[identity].group, "-", old[identity].label, [])
        else:
            changes = _resource_changes(old[identity], new[identity])
            if changes:
                result.changed += 1
                put(new[identity].group, "~", new[identity].label, changes)
                result.changed_urns.add(new[identity].record["urn"])


def _findings(folder: Path) -> dict[tuple[str, str], Document]:
    report = _read(folder, "policy-report.json", {})
    return {(v["rule"], v["urn"]): v for v in report.get("violations", [])}


def _diff_cost(result: RenderDiff, old_cost: Document | None, new_cost: Document | None) -> None:
    if old_cost is None or new_cost is None:  # a render from before cost.json: no delta to tell
        result.cost_missing = True
        result.cost_total = (0.0, (new_cost or {}).get("total", 0.0))
        return
    old_by = {c["urn"]: c for c in old_cost.get("resources", [])}
    new_by = {c["urn"]: c for c in new_cost.get("resources", [])}
    for urn in sorted(set(old_by) | set(new_by)):
        before = old_by.get(urn, {}).get("monthly", 0.0)
        after = new_by.get(urn, {}).get("monthly", 0.0)
        if round(before, 2) != round(after, 2):
            label = (new_by.get(urn) or old_by[urn])["label"]
            result.cost_lines.append((label, before, after))
    result.cost_total = (old_cost.get("total", 0.0), new_cost.get("total", 0.0))


def format_text(diff: RenderDiff) -> str:
    lines: list[str] = []
    for group in sorted(diff.groups):
        lines.append(f"== {group}")
        for sign, label, changes in diff.groups[group]:
            lines.append(f"{sign} {label}")
            lines += [f"    {line}" for c in changes for line in c.lines()]
    if diff.outputs:
        lines.append("== stack outputs")
        lines += [f"    {line}" for c in diff.outputs for line in c.lines()]
    if diff.policy:
        lines.append("== policy report")
        lines += [f"    {line}" for line in diff.policy]
    if diff.cost_lines:
        lines.append("== monthly cost (USD, list price)")
        lines += [f"    {_money(a - b, signed=True):>12}  {label} ({_money(b)} -> {_money(a)})" for label, b, a in diff.cost_lines]
        before, after = diff.cost_total
        lines.append(f"    {_money(after - before, signed=True):>12}  total ({_money(before)} -> {_money(after)})")
    lines.append(diff.summary())
    return "\n".join(lines) + "\n"


def format_markdown(diff: RenderDiff, title: str = "What this change does") -> str:
    """For a job summary or a pull-request comment: one diff block per component."""
    lines = [f"### {title}", "", f"**{diff.summary()}**", ""]
    for group in sorted(diff.groups):
        lines += [f"<details open><summary><b>{group}</b></summary>", "", "```diff"]
        for sign, label, changes in diff.groups[group]:
            lines.append(f"{sign} {label}")
            lines += [f"    {line}" if not line.startswith(("+", "-")) else f"{line[0]}   {line[1:]}"
                      for c in changes for line in c.lines()]
        lines += ["```", "", "</details>", ""]
    if diff.outputs:
        lines += ["**Stack outputs**", "", "```diff", *[line for c in diff.outputs for line in c.lines()], "```", ""]
    if diff.policy:
        lines += ["**Policy report**", "", "```diff", *diff.policy, "```", ""]
    if diff.cost_lines:
        lines += ["**Monthly cost** (USD, list price; see cost.json for the assumptions)", "",
                  "| resource | before | after | change |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {label} | {_money(b)} | {_money(a)} | {_money(a - b, signed=True)} |" for label, b, a in diff.cost_lines]
        before, after = diff.cost_total
        lines += [f"| **total** | {_money(before)} | {_money(after)} | {_money(after - before, signed=True)} |", ""]
    return "\n".join(lines) + "\n"


def diff_renders(old_dir: Path, new_dir: Path, fmt: str = "text") -> str:
    """The diff of two renders as text (a terminal, a ```diff block) or markdown."""
    diff = compare_renders(old_dir, new_dir)
    return format_markdown(diff) if fmt == "markdown" else format_text(diff)
