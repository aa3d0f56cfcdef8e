"""The order in which the Pulumi engine creates and deletes a stack's resources, from its resource graph.

A model of pulumi/pulumi (read at commit 1b5949891b3c, 2026-08-21):

- ``pkg/resource/graph/dependency_graph.go`` ``DependenciesOf``: a resource depends on
  its provider, its parent, its ``dependencies`` and ``propertyDependencies``, and its
  ``deletedWith`` target; when one of those is a component (not custom), the
  component's transitive children registered before the resource count as well
  (that is how a remote component such as ``eks:index:Cluster`` stands for its
  children).
- ``pkg/resource/deploy/step_generator.go`` ``ScheduleDeletes``: rounds that each
  take every condemned resource with no condemned dependencies left, then the
  list of rounds reversed. Each round runs in parallel and completes before the
  next (``deployment_executor.go`` ``performPostSteps``).

The engine's layering can delete a resource late by luck (a route far from the
top of the graph lands in a late round even if nothing needs it). So ``eager``
deletion waves model the strictest reading too: a resource goes as soon as
nothing remaining depends on it. An order that holds in both, and in
``must_precede``, holds by the graph, not by scheduling.

Input is the render's ``resources.json`` records (or ``Registration.as_json()``),
in registration order or any order: they are put in a stable topological order
first, as the engine's snapshot is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from components.documents import DocumentView


@dataclass(frozen=True)
class Node:
    """One resource as the engine's dependency graph sees it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    provider: str | None  # a provider URN (the reference's ``::id`` removed)
    dependencies: tuple[str, ...]
    deleted_with: str | None = None


def _provider_urn(reference: str | None) -> str | None:
    # A provider reference is "<urn>::<id>"; URNs themselves contain "::" too, so cut the last one.
    return reference.rsplit("::", 1)[0] if reference else None


def node(record: DocumentView) -> Node:
    """A ``Node`` from one ``resources.json`` record."""
    custom = record.get("custom")
    if custom is None:  # older renders: components carry "providers", custom resources a "provider"
        custom = not record["type"].startswith(("datamesh:", "eks:index:", "pulumi:pulumi:"))
    return Node(
        urn=record["urn"],
        type=record["type"],
        name=record["name"],
        custom=bool(custom),
        parent=record.get("parent"),
        provider=_provider_urn(record.get("provider")),
        dependencies=tuple(record.get("dependencies") or ()),
        deleted_with=record.get("deletedWith") or None,
    )


class Graph:
    """The dependency graph of one stack, with the engine's creation and deletion schedules."""

    def __init__(self, records: Iterable[DocumentView | Node]) -> None:
        nodes = [r if isinstance(r, Node) else node(r) for r in records]
        self.nodes: dict[str, Node] = {n.urn: n for n in _topological(nodes)}
        self._index = {urn: i for i, urn in enumerate(self.nodes)}
        self._children: dict[str, list[str]] = {urn: [] for urn in self.nodes}
        for n in self.nodes.values():
            if n.parent in self._children:
                self._children[n.parent].append(n.urn)
        self._deps = {urn: self._dependencies_of(urn) for urn in self.nodes}

    def find(self, type_: str, name: str) -> str:
        """The URN of the one resource of ``type_`` named ``name``."""
        found = [n.urn for n in self.nodes.values() if n.type == type_ and n.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} named {name}, found {len(found)}")
        return found[0]

    def of_type(self, type_: str) -> list[str]:
        return [n.urn for n in self.nodes.values() if n.type == type_]

    def _transitive_children(self, urn: str) -> list[str]:
        out, todo = [], list(self._children.get(urn, ()))
        while todo:
            child = todo.pop()
            out.append(child)
            todo.extend(self._children.get(child, ()))
        return out

    def _dependencies_of(self, urn: str) -> frozenset[str]:
        n = self.nodes[urn]
        direct = set(n.dependencies)
        direct.update(u for u in (n.provider, n.deleted_with) if u)
        deps: set[str] = set()
        for dep in direct:
            if dep not in self.nodes:
                continue  # e.g. a default provider the mocks never register
            deps.add(dep)
            if not self.nodes[dep].custom:
                deps.update(c for c in self._transitive_children(dep) if self._index[c] < self._index[urn])
        if n.parent in self.nodes:
            deps.add(n.parent)
        deps.discard(urn)
        return frozenset(deps)

    def closure(self, urn: str) -> set[str]:
        """Everything ``urn`` depends on, transitively: created before it, deleted after it, always."""
        seen: set[str] = set()
        todo = [urn]
        while todo:
            for dep in self._deps[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def must_precede(self, first: str, then: str) -> bool:
        """True if every schedule deletes ``first`` before ``then`` (and creates ``then`` before ``first``)."""
        return then in self.closure(first)

    def creation_waves(self) -> list[list[str]]:
        """Rounds of creation: a resource starts once everything it depends on exists."""
        waves: list[list[str]] = []
        remaining = set(self.nodes)
        while remaining:
            wave = [u for u in self.nodes if u in remaining and not (self._deps[u] & remaining)]
            if not wave:
                raise ValueError(f"dependency cycle among {sorted(remaining)[:5]}")
            waves.append(wave)
            remaining.difference_update(wave)
        return waves

    def deletion_waves(self, schedule: str = "engine") -> list[list[str]]:
        """Rounds of ``pulumi destroy``.

        ``engine``: ``ScheduleDeletes`` exactly, the creation rounds reversed.
        ``eager``: each round deletes everything nothing remaining depends on.
        """
        if schedule == "engine":
            return list(reversed(self.creation_waves()))
        if schedule != "eager":
            raise ValueError(f"unknown schedule {schedule!r}: engine or eager")
        dependents: dict[str, set[str]] = {u: set() for u in self.nodes}
        for urn, deps in self._deps.items():
            for dep in deps:
                dependents[dep].add(urn)
        waves: list[list[str]] = []
        remaining = set(self.nodes)
        while remaining:
            wave = [u for u in self.nodes if u in remaining and not (dependents[u] & remaining)]
            if not wave:
                raise ValueError(f"dependency cycle among {sorted(remaining)[:5]}")
            waves.append(wave)
            remaining.difference_update(wave)
        return waves

    @staticmethod
    def wave_of(waves: list[list[str]]) -> dict[str, int]:
        """Each URN's round number in ``waves``."""
        return {urn: i for i, wave in enumerate(waves) for urn in wave}


def _topological(nodes: list[Node]) -> list[Node]:
    """``nodes`` in a stable topological order (parents, providers and dependencies first), like a snapshot."""
    by_urn = {n.urn: n for n in nodes}
    placed: set[str] = set()
    out: list[Node] = []
    pending = list(nodes)
    while pending:
        rest = []
        for n in pending:
            needs = {d for d in (*n.dependencies, n.parent, n.provider, n.deleted_with) if d in by_urn and d != n.urn}
            if needs <= placed:
                out.append(n)
                placed.add(n.urn)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"dependency cycle among {[n.urn for n in rest][:5]}")
        pending = rest
    return out
