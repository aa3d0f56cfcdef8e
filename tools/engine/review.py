"""What a reviewer reads in a pull request without cloud credentials: render diffs and graphs.

The diff matches things by identity, never by position:

- Kubernetes objects by apiVersion, kind, namespace and name (so a URN that moves
  under another component is the same object, with a note that Pulumi replaces it);
  every other resource by its URN.
- Items of a list by a key (``list_key``): a named thing by its name, a port by its
  number, a mount by its path, a block device by its device name, an IAM statement by
  its Sid; for the unnamed lists this program writes, a key chosen per list (an
  EnvoyFilter patch by what it applies to and where, an AuthorizationPolicy rule by the
  paths it guards, a rate-limit descriptor by its entries, a route by its destination);
  anything else by a hash of its content, so a changed unnamed item reads as one
  removal and one addition. An insertion reads as one insertion, a reorder as "order only".
- Strings holding JSON (IAM policies) are compared as JSON; multi-line strings line by line.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_MISSING = object()
_SHOW_MAX = 120
STACK_TYPE = "pulumi:pulumi:Stack"


# --- values ------------------------------------------------------------------


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= _SHOW_MAX else text[:_SHOW_MAX - 1] + "…"


def _names_in(value: Any) -> Iterator[str]:
    """The names and port numbers inside an EnvoyFilter ``match``, outermost first."""
    if isinstance(value, dict):
        for key in sorted(value):
            if key in ("name", "portNumber") and isinstance(value[key], (str, int)):
                yield str(value[key])
        for key in sorted(value):
            yield from _names_in(value[key])


def _content_hash(item: Any) -> str:
    return "#" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()[:8]


def list_key(list_name: str, item: dict[str, Any]) -> str:
    """The identity of one item of the list ``list_name`` (the field holding the list)."""
    meta = item.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):  # Kubernetes objects, Backstage entities
        ns = meta.get("namespace")
        return f"{item.get('kind', '')} {ns + '/' if ns else ''}{meta['name']}".strip()
    if list_name == "configPatches":  # EnvoyFilter: what the patch applies to, and where
        return " ".join([str(item.get("applyTo", "")), *_names_in(item.get("match", {}))]).strip()
    if list_name == "rules" and ("to" in item or "from" in item):  # AuthorizationPolicy: what a rule guards
        paths = [p for to in item.get("to", []) for p in to.get("operation", {}).get("paths", [])]
        if paths:
            return "to " + ",".join(paths)
        return "from " + json.dumps(item.get("from"), sort_keys=True)
    if list_name == "descriptors" and "entries" in item:  # Envoy rate-limit descriptor
        return ",".join(f"{e.get('key')}={e.get('value')}" for e in item["entries"])
    if list_name == "route" and isinstance(item.get("destination"), dict):  # VirtualService destinations
        dest = item["destination"]
        return " ".join(str(p) for p in (dest.get("host"), dest.get("subset")) if p)
    for key in ("name", "key", "Sid", "deviceName", "mountPath", "containerPort", "port", "type"):
        if isinstance(item.get(key), (str, int)) and not isinstance(item.get(key), bool):
            return str(item[key])
    return _content_hash(item)


def _keyed(list_name: str, items: list[Any]) -> dict[str, Any] | None:
    """Items by key, in order; duplicates of a key get #2, #3 (matched in order among themselves)."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    seen: Counter[str] = Counter()
    out: dict[str, Any] = {}
    for item in items:
        key = list_key(list_name, item)
        seen[key] += 1
        out[key if seen[key] == 1 else f"{key}#{seen[key]}"] = item
    return out


def _as_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return _MISSING
    return _MISSING


@dataclass(frozen=True)
class Change:
    """One difference: ``op`` is "~" changed, "+" added, "-" removed, "order" reordered, "text" a line diff."""

    path: str
    op: str
    old: Any = _MISSING
    new: Any = _MISSING

    def lines(self) -> list[str]:
        if self.op == "+":
            return [f"+ {self.path}: {_show(self.new)}"]
        if self.op == "-":
            return [f"- {self.path}: {_show(self.old)}"]
        if self.op == "order":
            return [f"  {self.path}: order only: {', '.join(self.old)} -> {', '.join(self.new)}"]
        if self.op == "text":
            diff = list(difflib.unified_diff(self.old.splitlines(), self.new.splitlines(), lineterm="", n=0))[2:]
            body = [f"      {line}" for line in diff if not line.startswith("@@")]
            return [f"  {self.path}: text changed ({len(body)} lines)", *body[:20]]
        return [f"  {self.path}: {_show(self.old)} -> {_show(self.new)}"]


def diff_values(old: Any, new: Any, path: str = "", name: str = "") -> list[Change]:
    """Every difference between two JSON values, lists matched by ``list_key`` (``name``: the field holding them)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(Change(sub, "+", new=new[key]))
            elif key not in new:
                out.append(Change(sub, "-", old=old[key]))
            else:
                out += diff_values(old[key], new[key], sub, str(key))
        return out
    if isinstance(old, list) and isinstance(new, list):
        return _diff_lists(old, new, path, name)
    old_json, new_json = _as_json(old), _as_json(new)
    if old_json is not _MISSING and new_json is not _MISSING:
        return diff_values(old_json, new_json, path, name)
    if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
        return [Change(path, "text", old, new)]
    return [Change(path, "~", old, new)]


def _diff_lists(old: list[Any], new: list[Any], path: str, list_name: str) -> list[Change]:
    old_keyed, new_keyed = _keyed(list_name, old), _keyed(list_name, new)
    if old_keyed is not None and new_keyed is not None:
        out: list[Change] = []
        for key in old_keyed:
            if key not in new_keyed:
                out.append(Change(f"{path}[{key}]", "-", old=old_keyed[key]))
        for key, item in new_keyed.items():
            if key not in old_keyed:
                out.append(Change(f"{path}[{key}]", "+", new=item))
            else:
                out += diff_values(old_keyed[key], item, f"{path}[{key}]")
        kept_old = [k for k in old_keyed if k in new_keyed]
        kept_new = [k for k in new_keyed if k in old_keyed]
        if kept_old != kept_new:
            out.append(Change(path, "order", kept_old, kept_new))
        return out
    if all(not isinstance(v, (dict, list)) for v in [*old, *new]):
        before, after = Counter(map(json.dumps, old)), Counter(map(json.dumps, new))
        if before == after:
            return [Change(path, "order", [json.dumps(v) for v in old], [json.dumps(v) for v in new])]
        out = [Change(path, "-", old=json.loads(v)) for v in (before - after).elements()]
        return out + [Change(path, "+", new=json.loads(v)) for v in (after - before).elements()]
    # Mixed or nested lists without keys: by position, as a last resort.
    out = []
    for i in range(max(len(old), len(new))):
        sub = f"{path}[{i}]"
        if i >= len(old):
            out.append(Change(sub, "+", new=new[i]))
        elif i >= len(new):
            out.append(Change(sub, "-", old=old[i]))
        else:
            out += diff_values(old[i], new[i], sub)
    return out


# --- renders -----------------------------------------------------------------


@dataclass
class Entry:
    """One resource of a render, under the identity the diff matches it by."""

    identity: str
    label: str
    group: str
    record: dict[str, Any]


def component_of(resource: dict[str, Any], by_urn: dict[str, dict[str, Any]]) -> str:
    """The top-level component a resource belongs to, as "<Type> <name>" ("stack" for top-level plain resources)."""
    current = resource
    while current["parent"] in by_urn and by_urn[current["parent"]]["type"] != STACK_TYPE:
        current = by_urn[current["parent"]]
    if current["type"].startswith("datamesh:"):
        return f"{current['type'].rsplit(':', 1)[-1]} {current['name']}"
    return "stack"


def _k8s_identity(resource: dict[str, Any]) -> tuple[str, str] | None:
    inputs = resource.get("inputs") or {}
    meta = inputs.get("metadata")
    if not resource["type"].startswith("kubernetes:") or not isinstance(meta, dict) or "kind" not in inputs:
        return None
    ns = meta.get("namespace")
    name = meta.get("name", resource["name"])
    where = f"{ns}/{name}" if ns else str(name)
    return f"{inputs.get('apiVersion')}/{inputs['kind']}/{where}", f"{inputs['kind']} {where}"


def entries(resources: list[dict[str, Any]]) -> dict[str, Entry]:
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


def _pulumi_fields(entry: Entry) -> dict[str, Any]:
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
    old = entries(_read(old_dir, "resources.json", []))
    new = entries(_read(new_dir, "resources.json", []))
    result = RenderDiff()

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

    result.outputs = diff_values(_read(old_dir, "outputs.json", {}), _read(new_dir, "outputs.json", {}))

    def findings(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
        report = _read(folder, "policy-report.json", {})
        return {(v["rule"], v["urn"]): v for v in report.get("violations", [])}

    old_f, new_f = findings(old_dir), findings(new_dir)
    result.policy = ([f"+ {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(new_f.items()) if k not in old_f]
                     + [f"- {v['level']} {v['rule']}: {v['message']}" for k, v in sorted(old_f.items()) if k not in new_f])

    old_cost, new_cost = _read(old_dir, "cost.json", None), _read(new_dir, "cost.json", None)
    if old_cost is None or new_cost is None:  # a render from before cost.json: no delta to tell
        result.cost_missing = True
        result.cost_total = (0.0, (new_cost or {}).get("total", 0.0))
        return result
    old_by = {c["urn"]: c for c in old_cost.get("resources", [])}
    new_by = {c["urn"]: c for c in new_cost.get("resources", [])}
    for urn in sorted(set(old_by) | set(new_by)):
        before = old_by.get(urn, {}).get("monthly", 0.0)
        after = new_by.get(urn, {}).get("monthly", 0.0)
        if round(before, 2) != round(after, 2):
            label = (new_by.get(urn) or old_by[urn])["label"]
            result.cost_lines.append((label, before, after))
    result.cost_total = (old_cost.get("total", 0.0), new_cost.get("total", 0.0))
    return result


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


# --- graphs ------------------------------------------------------------------


def _label(resource: dict[str, Any]) -> str:
    return f"{resource['type']}\\n{resource['name']}"


def _clusters(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_urn = {r["urn"]: r for r in resources}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        groups.setdefault(component_of(r, by_urn), []).append(r)
    return groups


def graph_dot(resources: list[dict[str, Any]], highlight: set[str] | frozenset[str] = frozenset()) -> str:
    """The dependency graph as Graphviz DOT, one cluster per top-level component; ``highlight``ed URNs filled.

    Dependencies solid, parents dotted (as `pulumi stack graph`).
    """
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(resources)}
    lines = ["strict digraph datamesh {", "  rankdir=LR;", '  node [shape=box, fontsize=10];']
    for i, (group, members) in enumerate(sorted(_clusters(resources).items())):
        lines += [f"  subgraph cluster_{i} {{", f'    label="{group}";', "    style=rounded;"]
        for r in members:
            mark = ', style=filled, fillcolor="#ffd966"' if r["urn"] in highlight else ""
            lines.append(f'    {ids[r["urn"]]} [label="{_label(r)}"{mark}];')
        lines.append("  }")
    for r in resources:
        lines += [f"  {ids[r['urn']]} -> {ids[d]};" for d in r["dependencies"] if d in ids]
        if r["parent"] in ids:
            lines.append(f"  {ids[r['urn']]} -> {ids[r['parent']]} [style=dotted, arrowhead=none];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_mermaid(resources: list[dict[str, Any]], highlight: set[str] | frozenset[str] = frozenset()) -> str:
    """The same graph for Mermaid (renders inline in GitHub markdown), components as subgraphs."""
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(resources)}
    lines = ["graph LR"]
    for i, (group, members) in enumerate(sorted(_clusters(resources).items())):
        lines.append(f'  subgraph c{i}["{group}"]')
        lines += [f'    {ids[r["urn"]]}["{r["type"]}<br/>{r["name"]}"]' for r in members]
        lines.append("  end")
    for r in resources:
        lines += [f"  {ids[r['urn']]} --> {ids[d]}" for d in r["dependencies"] if d in ids]
        if r["parent"] in ids:
            lines.append(f"  {ids[r['urn']]} -.- {ids[r['parent']]}")
    marked = [ids[u] for u in sorted(highlight) if u in ids]
    if marked:
        lines += ["  classDef changed fill:#ffd966,stroke:#b45f06", f"  class {','.join(marked)} changed"]
    return "\n".join(lines) + "\n"
