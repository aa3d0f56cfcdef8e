"""Graphs a reviewer can read: an overview of the components, and one picture per component.

The full graph (graph.dot, graph.mmd) draws 120-odd resources at once. Here:

- ``overview``: one node per top-level component (the program's components, each data
  product among them), an edge where any resource of one depends on a resource of another,
  labelled with how many such dependencies there are;
- ``<component>``: that component's resources, and its direct neighbours (what its resources
  depend on, and what depends on them), the neighbours grouped by their own component and drawn
  dashed. A data product's picture is its component's.

Changed resources (``highlight``) are filled; in the overview, a component with a change is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from components.documents import Document
from tools.engine.graphs import component_of

CHANGED_DOT = ', style=filled, fillcolor="#ffd966"'
NEIGHBOUR_DOT = ', style=dashed, color="#888888", fontcolor="#666666"'


def slug(component: str) -> str:
    """A file stem for a component label such as "DataProduct customer-features"."""
    return re.sub(r"[^a-z0-9]+", "-", component.lower()).strip("-")


def _components(resources: list[Document]) -> dict[str, str]:
    by_urn = {r["urn"]: r for r in resources}
    return {r["urn"]: component_of(r, by_urn) for r in resources if r["type"] != "pulumi:pulumi:Stack"}


def _edges(resources: Iterable[Document], kept: set[str]) -> list[tuple[str, str, bool]]:
    """(from, to, is_parent) among ``kept`` URNs: dependencies, then parent links."""
    edges = []
    for r in resources:
        if r["urn"] not in kept:
            continue
        edges += [(r["urn"], d, False) for d in r["dependencies"] if d in kept]
        if r["parent"] in kept:
            edges.append((r["urn"], r["parent"], True))
    return edges


def overview(resources: list[Document], highlight: frozenset[str] = frozenset()) -> tuple[str, str]:
    """The components and how they depend on each other, as (DOT, Mermaid)."""
    of = _components(resources)
    names = sorted(set(of.values()))
    ids = {name: f"c{i}" for i, name in enumerate(names)}
    counts: dict[tuple[str, str], int] = {}
    for r in resources:
        for d in r["dependencies"]:
            if r["urn"] in of and d in of and of[r["urn"]] != of[d]:
                key = (of[r["urn"]], of[d])
                counts[key] = counts.get(key, 0) + 1
    changed = {of[u] for u in highlight if u in of}
    dot = ["strict digraph overview {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    dot += [f'  {ids[n]} [label="{n}"{CHANGED_DOT if n in changed else ""}];' for n in names]
    dot += [f'  {ids[a]} -> {ids[b]} [label="{n}"];' for (a, b), n in sorted(counts.items())]
    mermaid = ["graph LR"] + [f'  {ids[n]}["{n}"]' for n in names]
    mermaid += [f"  {ids[a]} -->|{n}| {ids[b]}" for (a, b), n in sorted(counts.items())]
    mermaid += _mermaid_classes([ids[n] for n in names if n in changed])
    return "\n".join([*dot, "}"]) + "\n", "\n".join(mermaid) + "\n"


def _mermaid_classes(changed: list[str], neighbours: list[str] | None = None) -> list[str]:
    lines = []
    if changed:
        lines += ["  classDef changed fill:#ffd966,stroke:#b45f06", f"  class {','.join(changed)} changed"]
    if neighbours:
        lines += ["  classDef neighbour stroke-dasharray:4 3,color:#666666", f"  class {','.join(neighbours)} neighbour"]
    return lines


def component(resources: list[Document], name: str, highlight: frozenset[str] = frozenset()) -> tuple[str, str]:
    """One component's resources and their direct neighbours, as (DOT, Mermaid)."""
    of = _components(resources)
    members = {u for u, c in of.items() if c == name}
    neighbours: set[str] = set()
    for r in resources:
        if r["urn"] in members:
            neighbours.update(d for d in r["dependencies"] if d in of and d not in members)
        elif r["urn"] in of and members & set(r["dependencies"]):
            neighbours.add(r["urn"])
    kept = members | neighbours
    shown = [r for r in resources if r["urn"] in kept]
    ids = {r["urn"]: f"n{i}" for i, r in enumerate(shown)}
    groups: dict[str, list[Document]] = {}
    for r in shown:
        groups.setdefault(of[r["urn"]], []).append(r)
    dot = ["strict digraph component {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    mermaid = ["graph LR"]
    for i, (group, rs) in enumerate(sorted(groups.items(), key=lambda g: (g[0] != name, g[0]))):
        dot += [f"  subgraph cluster_{i} {{", f'    label="{group}";', "    style=rounded;"]
        mermaid.append(f'  subgraph g{i}["{group}"]')
        for r in rs:
            style = (CHANGED_DOT if r["urn"] in highlight else "") + ("" if r["urn"] in members else NEIGHBOUR_DOT)
            dot.append(f'    {ids[r["urn"]]} [label="{r["type"]}\\n{r["name"]}"{style}];')
            mermaid.append(f'    {ids[r["urn"]]}["{r["type"]}<br/>{r["name"]}"]')
        dot.append("  }")
        mermaid.append("  end")
    for a, b, parent in _edges(shown, kept):
        dot.append(f"  {ids[a]} -> {ids[b]}" + (" [style=dotted, arrowhead=none];" if parent else ";"))
        mermaid.append(f"  {ids[a]} {'-.-' if parent else '-->'} {ids[b]}")
    mermaid += _mermaid_classes([ids[u] for u in sorted(highlight) if u in ids],
                                [ids[u] for u in sorted(neighbours)])
    return "\n".join([*dot, "}"]) + "\n", "\n".join(mermaid) + "\n"


def views(resources: list[Document], highlight: frozenset[str] = frozenset(),
          only_changed: bool = False) -> dict[str, tuple[str, str]]:
    """File stem -> (DOT, Mermaid): ``overview`` and one per component (with ``only_changed``, those with a change)."""
    of = _components(resources)
    names = sorted(set(of.values()))
    if only_changed:
        names = [n for n in names if any(of.get(u) == n for u in highlight)]
    found = {"overview": overview(resources, highlight)}
    found.update({slug(n): component(resources, n, highlight) for n in names})
    return found


def write_views(resources: list[Document], folder: Path, highlight: frozenset[str] = frozenset(),
                only_changed: bool = False) -> None:
    """``folder``/<stem>.dot and .mmd for each of ``views``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (dot, mermaid) in views(resources, highlight, only_changed).items():
        (folder / f"{stem}.dot").write_text(dot)
        (folder / f"{stem}.mmd").write_text(mermaid)
