"""A declaration's problems: JSON Schema errors as ``Problem``s, and the collector that reports them all at once.

``Problem``, its field paths and its message form are the base layer's (``components.problems``),
shared with the stack config and the policy config.

A declaration's message is one line: the file, then every problem as "field: what is
wrong" (at most ``MAX_PROBLEMS``), unknown fields with a "did you mean"; problems in a
field the stack overrides name the stack key instead of the file. A message quotes at
most a short excerpt of a value (``components.inputs.show``), never a file's content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pulumi

from components.documents import DocumentView
from components.inputs import show
from components.problems import MAX_PROBLEMS, Invalid, Problem, did_you_mean, field_path, message
from components.products.schema import DECLARATION_SCHEMA

__all__ = ["MAX_PROBLEMS", "DeclarationError", "Invalid", "Problem", "Problems", "Validator", "fail", "joined", "plain",
           "schema_error", "schema_problems"]


class DeclarationError(pulumi.RunError):
    """A bad product declaration or selection; Pulumi prints it without a traceback."""


def fail(source: Path, problem: Problem | tuple[str, str]) -> DeclarationError:
    """The error for one problem of ``source``: "<file>: <field>: <problem>"."""
    return DeclarationError(message([Problem(*problem)], str(source)))


def plain(value: object) -> str:
    """A short, printable name as it is; anything else quoted and cut short."""
    return value if isinstance(value, str) and _PLAIN.fullmatch(value) else show(value)


_PLAIN = re.compile(r"[-\w./]{1,100}", re.ASCII)
_PLAIN_PATH = re.compile(r"[-\w./\[\]]{1,100}", re.ASCII)  # a field path's list items are in brackets


# --- JSON Schema problems ------------------------------------------------------


@functools.cache
def _whole(pattern: str) -> re.Pattern[str]:
    """A schema pattern as JSON Schema means it: "$" at the very end, not before a trailing newline as in Python."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: object, pattern: str, instance: object, schema: object) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _whole(pattern).search(instance):
        yield jsonschema.ValidationError(f"{show(instance)} does not match {pattern}")


# Draft 2020-12 with patterns matched whole (a Namespace named "customer\n" must not pass).
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _type_name(value: object) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _describe(error: jsonschema.ValidationError) -> Problem:
    """(where, what) for a schema error, quoting at most a short excerpt of the value."""
    where, kind, expected, value = field_path(error.absolute_path), error.validator, error.validator_value, error.instance
    if kind == "not" and "required" in (expected or {}):
        return Problem("replicas", "set either replicas or autoscaling, not both")
    if kind == "additionalProperties" and isinstance(value, dict):
        extra = sorted(str(k) for k in set(value) - set(error.schema.get("properties", {})))
        return Problem(where, f"unknown field {show(extra[0])}" if extra else "unknown field")
    if kind == "required":
        missing = [k for k in expected if not isinstance(value, dict) or k not in value]
        return Problem(where, f"{missing[0]!r} is a required property" if missing else "a required field is missing")
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return Problem(where, f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {_type_name(value)}")
    if kind == "pattern":
        words = error.schema.get("description")
        return Problem(where, f"{show(value)} is not {words}" if words else f"{show(value)} does not match {expected}")
    if kind == "enum":
        return Problem(where, f"{show(value)} is not one of {', '.join(map(str, expected))}")
    if kind in ("minimum", "maximum"):
        bound = "less than the minimum" if kind == "minimum" else "greater than the maximum"
        return Problem(where, f"{show(value)} is {bound} of {expected}")
    if kind in ("minLength", "maxLength"):
        return Problem(where, f"must be {'at least' if kind == 'minLength' else 'at most'} {expected} characters long")
    if kind == "propertyNames":
        return Problem(where, f"the key {show(value)} is not allowed here")
    if kind == "uniqueItems":
        return Problem(where, "lists an item twice")
    return Problem(where, f"is not valid ({kind})")


def schema_problems(doc: object, schema: DocumentView) -> list[Problem]:
    """Every (field, problem) of ``doc`` against ``schema``; unknown keys get a "did you mean"."""
    problems: list[Problem] = []
    for error in Validator(schema).iter_errors(doc):  # in the schema's order, hence stable
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            for key in sorted(str(k) for k in set(error.instance) - set(known)):
                where = field_path([*error.absolute_path, key])
                problems.append(Problem(where if _PLAIN_PATH.fullmatch(where) else show(where),
                                        f"unknown field{did_you_mean(key, known)}"))
            continue
        where, message = _describe(error)
        if error.validator == "propertyNames":  # name the offending key, not the map
            bad = [k for k in error.instance if list(Validator(error.validator_value).iter_errors(k))]
            words = error.validator_value.get("description") if isinstance(error.validator_value, dict) else None
            message = (f"the key {show(bad[0])} is not allowed here" + (f": it must be {words}" if words else "")
                       if bad else message)
        problems.append(Problem(where, message))
    return list(dict.fromkeys(problems))


def joined(prefix: str, problems: list[Problem]) -> DeclarationError:
    """All problems on one line: "<file>: <field>: <problem>; <field>: <problem> (and N more)"."""
    return DeclarationError(message(problems, prefix))


def schema_error(source: Path, doc: object, schema: DocumentView = DECLARATION_SCHEMA,
                 prefix: str | None = None) -> DeclarationError | None:
    """The error for every schema problem of ``doc`` (named by ``prefix``, or the file), or None."""
    problems = schema_problems(doc, schema)
    return joined(prefix or str(source), problems) if problems else None


# --- a declaration's meaning problems -----------------------------------------------


class Problems:
    """Collects a declaration's meaning problems so that all of them are reported at once."""

    def __init__(self, source: Path, overridden: frozenset[str] = frozenset(), overrides_prefix: str = "") -> None:
        self.source = source
        self.items: list[Problem] = []
        # A problem in a field the stack overrides is the stack's to fix: name the stack key, not the file.
        self.overridden = overridden
        self.overrides_prefix = overrides_prefix

    def add(self, where: str, problem: str) -> None:
        self.items.append(Problem(where, problem))

    def check(self, problem: Problem | None) -> None:
        """Keep a check's answer: its problem, if it found one."""
        if problem is not None:
            self.items.append(problem)

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run parsing steps that raise ``Invalid``; keep the first one's problem and go on."""
        try:
            yield
        except Invalid as exc:
            self.items.append(exc.problem)

    def raise_any(self) -> None:
        if not self.items:
            return
        stack = [item for item in self.items if re.split(r"[.\[]", item.where, maxsplit=1)[0] in self.overridden]
        own = [item for item in self.items if item not in stack]
        parts = [str(joined(prefix, items)) for prefix, items in
                 ((self.overrides_prefix, stack), (str(self.source), own)) if items]
        raise DeclarationError("; ".join(parts))
