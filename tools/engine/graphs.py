"""The dependency graph of a render, for a reviewer: Graphviz DOT and Mermaid, one cluster per component.

Dependencies solid, parents dotted (as `pulumi stack graph`); changed resources can be highlighted.
"""

from __future__ import annotations

from components.documents import Document

STACK_TYPE = "pulumi:pulumi:Stack"


def component_of(resource: Document, by_urn: dict[str, Document]) -> str:
    """The top-level component a resource belongs to, as "<Type> <name>" ("stack" for top-level plain resources)."""
    current = resource
    while current["parent"] in by_urn and by_urn[current["parent"]]["type"] != STACK_TYPE:
        current = by_urn[current["parent"]]
    if current["type"].startswith("datamesh:"):
        return f"{current['type'].rsplit(':', 1)[-1]} {current['name']}"
    return "stack"


def _label(resource: Document) -> str:
    return f"{resource['type']}\\n{resource['name']}"


def _clusters(resources: list[Document]) -> dict[str, list[Document]]:
    by_urn = {r["urn"]: r for r in resources}
    groups: dict[str, list[Document]] = {}
    for r in resources:
        groups.setdefault(component_of(r, by_urn), []).append(r)
    return groups


def graph_dot(resources: list[Document], highlight: set[str] | frozenset[str] = frozenset()) -> str:
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


def graph_mermaid(resources: list[Document], highlight: set[str] | frozenset[str] = frozenset()) -> str:
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
