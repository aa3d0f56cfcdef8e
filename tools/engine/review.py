"""What a reviewer reads in a pull request without cloud credentials: the render diff.

The diff matches things by identity, never by position:

- Kubernetes objects by apiVersion, kind, namespace and name (so a URN that moves
  under another component is the same object, with a note that Pulumi replaces it);
  every other resource by its URN.
- Values by ``tools.engine.valuediff``: items of a list by a key, JSON strings as JSON,
  multi-line strings line by line.

Before the per-resource detail, the diff leads with what a reviewer must not miss
(``tools.engine.review_headlines``): who may now call what, AWS access, secrets and env
by name, and what is exposed.

The graphs are ``tools.engine.graphs``; both modules' names are importable from here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.documents import Document
from tools.engine.graphs import STACK_TYPE, component_of, graph_dot, graph_mermaid
from tools.engine.review_headlines import Headlines, headline_markdown, headline_text, headlines
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
    capacity: list[str] = field(default_factory=list)  # what the pods' requests need, before -> after
    changed_urns: set[str] = field(default_factory=set)
    headlines: Headlines = field(default_factory=Headlines)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed or self.outputs or self.policy or self.cost_lines
                    or not self.headlines.empty)

    def summary(self) -> str:
        before, after = self.cost_total
        share = next((line.split(": ", 1)[1].split("/month")[0] for line in self.capacity if "of node time" in line), "")
        cost = (f"cost not compared (a render without cost.json; ${after:,.2f} list price)" if self.cost_missing
                else f"cost {_money(after - before, signed=True)}/month (${after:,.2f} list price)"
                + (f" ({share} of node time)" if share else ""))
        return (f"{self.added} to add, {self.changed} to change, {self.removed} to delete; "
                f"{len(self.outputs)} output change(s); {len(self.policy)} policy finding change(s); {cost}")


def _money(value: float, signed: bool = False) -> str:
    sign = ("+" if value >= 0 else "-") if signed else ""
    return f"{sign}${abs(value):,.2f}"


def _pulumi_fields(entry: Entry) -> Document:
    r = entry.record
    return {"inputs": r.get("inputs") or {}, "dependencies": sorted(r.get("dependencies") or []),
            "parent": r.get("parent"), "provider": r.get("provider"), "providers": r.get("providers") or {}}


def _ignored(path: str, ignored: list[str]) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in ignored)


def _resource_changes(old: Entry, new: Entry) -> list[Change]:
    before, after = _pulumi_fields(old), _pulumi_fields(new)
    ignored = list(new.record.get("ignoreChanges") or [])
    # A change to an input the engine ignores on an existing resource applies only when it is created.
    changes = [Change(f"{c.path} (ignoreChanges: applies to a new stack only, not to this one)", c.op, c.old, c.new)
               if _ignored(c.path, ignored) else c for c in diff_values(before["inputs"], after["inputs"])]
    for key in ("dependencies", "parent", "provider", "providers"):
        changes += [Change(f"({key}) {c.path}".rstrip(), c.op, c.old, c.new)
                    for c in diff_values(before[key], after[key])]
    if old.record["urn"] != new.record["urn"]:
        changes.append(Change("(urn) Pulumi replaces it unless aliased", "~", old.record["urn"], new.record["urn"]))
    return changes


def compare_renders(old_dir: Path, new_dir: Path) -> RenderDiff:
    """The identity-keyed diff of two render folders (resources, outputs, policy report, cost)."""
    result = RenderDiff()
    old_res, new_res = _read(old_dir, "resources.json", []), _read(new_dir, "resources.json", [])
    old_out, new_out = _read(old_dir, "outputs.json", {}), _read(new_dir, "outputs.json", {})
    _diff_resources(result, entries(old_res), entries(new_res))
    result.headlines = headlines(old_res, new_res, old_out, new_out)
    result.outputs = diff_values(old_out, new_out)
    result.policy = diff_policy(_read(old_dir, "policy-report.json", {}), _read(new_dir, "policy-report.json", {}))
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


def diff_policy(old: Document, new: Document) -> list[str]:
    """Findings that appeared (+), went away (-) or changed level or message (~); rules the pack no longer
    runs or runs at another default level. Any of them is a change (``--exit-code`` answers 2)."""
    old_f = {(v["rule"], v["urn"]): v for v in old.get("violations", [])}
    new_f = {(v["rule"], v["urn"]): v for v in new.get("violations", [])}
    lines = [f"+ {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(new_f.items()) if k not in old_f]
    lines += [f"~ {old_f[k]['level']} -> {v['level']} {v['rule']}: {v['message']}"
              + (f" (was: {old_f[k]['message']})" if old_f[k]["message"] != v["message"] else "")
              for k, v in sorted(new_f.items()) if k in old_f and old_f[k] != v]
    lines += [f"- {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(old_f.items()) if k not in new_f]
    old_r = {r["name"]: r.get("defaultLevel") for r in old.get("rules", [])}
    new_r = {r["name"]: r.get("defaultLevel") for r in new.get("rules", [])}
    lines += [f"+ rule {name} ({level} by default)" for name, level in sorted(new_r.items()) if name not in old_r]
    lines += [f"~ rule {name}: {old_r[name]} -> {level} by default" for name, level in sorted(new_r.items())
              if name in old_r and old_r[name] != level]
    return lines + [f"- rule {name} (no longer run)" for name in sorted(set(old_r) - set(new_r))]


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
    result.capacity = capacity_lines(old_cost.get("capacity") or {}, new_cost.get("capacity") or {})


def capacity_lines(old: Document, new: Document) -> list[str]:
    """The pods' requests before and after, the nodes they need, and their share of node time in dollars."""
    if not old or not new or (old.get("requests"), old.get("nodes")) == (new.get("requests"), new.get("nodes")):
        return []
    (cpu0, mem0), (cpu1, mem1) = ((c["requests"]["cpuMillicores"], c["requests"]["memoryMiB"]) for c in (old, new))
    room = new["nodeAllocatable"]
    fill = float(new.get("packTo", 1.0))
    room_cpu = (room["cpuMillicores"] - new["perNode"]["cpuMillicores"]) * fill
    room_mem = (room["memoryMiB"] - new["perNode"]["memoryMiB"]) * fill
    share = max((cpu1 - cpu0) / room_cpu if room_cpu else 0.0, (mem1 - mem0) / room_mem if room_mem else 0.0,
                key=abs) if (cpu1 - cpu0 or mem1 - mem0) else 0.0
    lines = [f"pods {old['pods']} -> {new['pods']}; requests {cpu0}m CPU / {mem0}Mi -> {cpu1}m / {mem1}Mi "
             f"({cpu1 - cpu0:+d}m / {mem1 - mem0:+d}Mi)",
             f"{new['instanceType']} nodes the requests need: {old['nodesNeeded']} -> {new['nodesNeeded']} "
             f"(bounds {new['minSize']} to {new['maxSize']}; priced at {old['nodes']} -> {new['nodes']})"]
    if share:
        lines.append(f"{share:+.2f} of a node's room ({fill:.0%} of its allocatable): "
                     f"{_money(share * float(new.get('monthlyPerNode', 0.0)), signed=True)}/month of node time, "
                     "whether or not a node is added")
    return lines


def format_text(diff: RenderDiff) -> str:
    lines: list[str] = headline_text(diff.headlines)
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
    if diff.capacity:
        lines.append("== capacity (cost.json \"capacity\")")
        lines += [f"    {line}" for line in diff.capacity]
    if diff.cost_lines:
        lines.append("== monthly cost (USD, list price)")
        lines += [f"    {_money(a - b, signed=True):>12}  {label} ({_money(b)} -> {_money(a)})" for label, b, a in diff.cost_lines]
        before, after = diff.cost_total
        lines.append(f"    {_money(after - before, signed=True):>12}  total ({_money(before)} -> {_money(after)})")
    lines.append(diff.summary())
    return "\n".join(lines) + "\n"


def format_markdown(diff: RenderDiff, title: str = "What this change does") -> str:
    """For a job summary or a pull-request comment: one diff block per component."""
    lines = [f"### {title}", "", f"**{diff.summary()}**", "", *headline_markdown(diff.headlines)]
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
    if diff.capacity:
        lines += ["**Capacity** (the pods' requests and the nodes they need)", "", *[f"- {line}" for line in diff.capacity], ""]
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
