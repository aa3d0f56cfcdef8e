"""Which resources of an existing stack a render keeps, replaces or creates, through aliases.

The engine names a resource ``urn:pulumi:<stack>::<project>::<qualified type>::<name>``,
where the qualified type is the parent's qualified type, ``$``, and the resource's own
type (a child of the stack itself has just its own type). The mock monitor shortens
the parent part to the parent's last type, so this module recomputes the engine's URNs
from each record's parent, type and name rather than reading ``urn``.

A resource also answers to its aliases: each alias spec (another name, type or
parent) and, as the engine computes them, the same resource under every URN its
parent answers to. ``plan`` matches an old stack's URNs against a render's: an old
URN no resource answers to would be deleted, a resource answering to no old URN
created. Zero of both means ``pulumi up`` replaces nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

STACK_TYPE = "pulumi:pulumi:Stack"
Record = Mapping[str, object]


def _split(urn: str) -> tuple[str, str, str, str]:
    """(stack, project, qualified type, name) of an engine URN."""
    head, project, qualified, name = urn.split("::", 3)
    return head.removeprefix("urn:pulumi:"), project, qualified, name


def make_urn(stack: str, project: str, parent: str | None, type_: str, name: str) -> str:
    """The engine's URN of a resource under ``parent`` (an engine URN, or None for the stack)."""
    qualified = type_
    if parent is not None:
        parent_type = _split(parent)[2]
        if parent_type != STACK_TYPE:
            qualified = f"{parent_type}${type_}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


@dataclass(frozen=True)
class Names:
    """Every record's engine URN, and the URNs it answers to besides (its aliases)."""

    urn: dict[str, str]  # recorded (mock) URN -> engine URN
    aliases: dict[str, frozenset[str]]  # engine URN -> its alias URNs


def engine_names(records: Sequence[Record]) -> Names:
    """Engine URNs and aliases of a render's records (in any order: parents are resolved first)."""
    by_urn = {str(r["urn"]): r for r in records}
    urn: dict[str, str] = {}
    aliases: dict[str, frozenset[str]] = {}

    def resolve(recorded: str) -> str:
        if recorded in urn:
            return urn[recorded]
        record = by_urn[recorded]
        stack, project, _, _ = _split(recorded)
        name, type_ = str(record["name"]), str(record["type"])
        parent = resolve(str(record["parent"])) if record.get("parent") else None
        own = urn[recorded] = make_urn(stack, project, parent, type_, name)
        parents = [parent, *sorted(aliases[parent])] if parent is not None else [None]
        found: set[str] = set()
        for spec in [{}, *_specs(record)]:
            if "urn" in spec:
                found.add(str(spec["urn"]))
                continue
            alias_name, alias_type = str(spec.get("name") or name), str(spec.get("type") or type_)
            if spec.get("noParent"):
                candidates: list[str | None] = [None]
            elif spec.get("parentUrn"):
                candidates = [str(spec["parentUrn"])]
            else:
                candidates = list(parents)
            found.update(make_urn(stack, project, p, alias_type, alias_name) for p in candidates)
        found.discard(own)
        aliases[own] = frozenset(found)
        return own

    for recorded in by_urn:
        resolve(recorded)
    return Names(urn, aliases)


def _specs(record: Record) -> list[Mapping[str, object]]:
    value = record.get("aliases") or []
    assert isinstance(value, list)
    return [spec for spec in value if isinstance(spec, Mapping)]


@dataclass(frozen=True)
class Plan:
    """What ``pulumi up`` of the render would do to a stack holding ``old`` URNs."""

    kept: dict[str, str]  # old URN -> the engine URN of the resource that answers to it
    deleted: list[str]  # old URNs nothing answers to (a type or name change without an alias)
    created: list[str]  # engine URNs answering to no old URN
    ambiguous: list[str]  # old URNs more than one resource answers to (the engine refuses these)


def plan(old: Iterable[str], records: Sequence[Record]) -> Plan:
    """Match ``old`` (engine URNs of a deployed stack) against a render's records."""
    names = engine_names(records)
    answers: dict[str, list[str]] = {}
    for own, extra in names.aliases.items():
        for urn in (own, *extra):
            answers.setdefault(urn, []).append(own)
    kept: dict[str, str] = {}
    deleted, ambiguous = [], []
    for urn in sorted(set(old)):
        found = sorted(set(answers.get(urn, [])))
        if not found:
            deleted.append(urn)
        elif len(found) > 1:
            ambiguous.append(urn)
        else:
            kept[urn] = found[0]
    created = sorted(set(names.aliases) - set(kept.values()))
    return Plan(kept, deleted, created, ambiguous)
