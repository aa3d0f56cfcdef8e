"""Graphs people can read: an overview of components and one picture per component, with changes highlighted.

Expectations are computed here from resources.json (parents and dependencies), not by the module under test.
"""

import json

import pydot
import pytest

from tests.conftest import DEMO, stack_file, write_stack
from tools.render import main as render_main

STACK = "pulumi:pulumi:Stack"


def _top(resources: list[dict]) -> dict[str, str]:
    """Each resource's top-level component label, walking parents up to the stack."""
    by_urn = {r["urn"]: r for r in resources}
    found = {}
    for r in resources:
        if r["type"] == STACK:
            continue
        top = r
        while top["parent"] in by_urn and by_urn[top["parent"]]["type"] != STACK:
            top = by_urn[top["parent"]]
        found[r["urn"]] = f"{top['type'].rsplit(':', 1)[-1]} {top['name']}" if top["type"].startswith("datamesh:") else "stack"
    return found


@pytest.fixture(scope="module")
def rendered(demo_render):
    resources = json.loads((demo_render / "resources.json").read_text())
    return demo_render / "graphs", resources, _top(resources)


def test_the_overview_has_one_node_per_component_and_counted_edges(rendered):
    folder, resources, top = rendered
    (graph,) = pydot.graph_from_dot_file(str(folder / "overview.dot"))
    labels = sorted(n.get_label().strip('"') for n in graph.get_nodes() if n.get_label())
    assert labels == sorted(set(top.values()))
    expected: dict[tuple[str, str], int] = {}
    for r in resources:
        for d in r["dependencies"]:
            if r["urn"] in top and d in top and top[r["urn"]] != top[d]:
                expected[(top[r["urn"]], top[d])] = expected.get((top[r["urn"]], top[d]), 0) + 1
    names = {n.get_name(): n.get_label().strip('"') for n in graph.get_nodes() if n.get_label()}
    drawn = {(names[e.get_source()], names[e.get_destination()]): int(e.get_label().strip('"')) for e in graph.get_edges()}
    assert drawn == expected
    mermaid = (folder / "overview.mmd").read_text().splitlines()
    assert mermaid[0] == "graph LR" and sum("-->|" in line for line in mermaid) == len(expected)


def test_each_component_shows_its_resources_and_direct_neighbours(rendered):
    folder, resources, top = rendered
    for name in sorted(set(top.values())):
        members = {u for u, c in top.items() if c == name}
        neighbours = {d for r in resources if r["urn"] in members for d in r["dependencies"] if d in top} - members
        neighbours |= {r["urn"] for r in resources if r["urn"] in top and r["urn"] not in members
                       and members & set(r["dependencies"])}
        stem = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
        (graph,) = pydot.graph_from_dot_file(str(folder / f"{stem}.dot"))
        drawn = [n for s in graph.get_subgraphs() for n in s.get_nodes()]
        assert len(drawn) == len(members | neighbours), name
        dashed = [n for n in drawn if "dashed" in (n.get("style") or "")]
        assert len(dashed) == len(neighbours), name
        assert (folder / f"{stem}.mmd").read_text().startswith("graph LR")


def test_a_diff_draws_the_overview_and_only_the_changed_components(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    overrides = stack_file(DEMO)["config"].get("datamesh:productOverrides", {})
    for out, replicas in ((old, 2), (new, 3)):
        changed = {**overrides, "customer-features": {**overrides.get("customer-features", {}), "replicas": replicas}}
        (tmp_path / f"{out.name}-stack").mkdir()
        stack = write_stack(tmp_path / f"{out.name}-stack", {"datamesh:productOverrides": changed}, base=DEMO)
        assert render_main(["--stack", "dev", "--config", str(stack), "--out", str(out)]) == 0
    assert render_main(["--diff", str(old), str(new), "--graph-out", str(tmp_path / "g")]) == 0
    changes = sorted(p.name for p in (tmp_path / "g" / "changes").iterdir())
    assert changes == ["dataproduct-customer-features.dot", "dataproduct-customer-features.mmd", "overview.dot", "overview.mmd"]
    overview = (tmp_path / "g" / "changes" / "overview.dot").read_text()
    filled = [line for line in overview.splitlines() if "fillcolor" in line]
    assert len(filled) == 1 and "DataProduct customer-features" in filled[0]
    detail = (tmp_path / "g" / "changes" / "dataproduct-customer-features.dot").read_text()
    assert [line for line in detail.splitlines() if "fillcolor" in line and "Deployment" in line]
