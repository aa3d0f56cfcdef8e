"""Problems as data, and the one way a message is made of them. Standard library only.

Every input the program validates (the stack config, the product declarations,
the policy config) reports what is wrong as ``Problem(where, what)``: ``where``
is the field, as a path in one form (``releases[1].version``: map keys dotted,
list items in brackets; a config key is its full name, ``datamesh:vpcCidr``),
``what`` says what is wrong with it. ``message`` turns problems into the one
line an error carries: ``<source>: <where>: <what>; <where>: <what> (and N more)``,
``source`` naming the file when there is one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

MAX_PROBLEMS = 20  # problems reported at once; more are counted, not listed
TOP_LEVEL = "(top level)"


class Problem(NamedTuple):
    """One thing wrong with an input: the field (``where``) and what is wrong with it."""

    where: str
    what: str


class Invalid(Exception):  # noqa: N818 - a step's answer, not an error to report as such
    """Raised by a parsing step that cannot produce its value; carries its ``Problem`` as data."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(where, what)
        self.problem = Problem(where, what)


def field_path(parts: Iterable[str | int]) -> str:
    """A field's path in the one form every message uses: ``releases[1].version``; ``(top level)`` for none."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or TOP_LEVEL


def message(problems: Sequence[Problem], source: str = "", most: int = MAX_PROBLEMS) -> str:
    """The problems on one line, after their ``source`` (a file) when there is one."""
    shown = "; ".join(f"{where}: {what}" for where, what in problems[:most])
    more = f" (and {len(problems) - most} more)" if len(problems) > most else ""
    return f"{source}: {shown}{more}" if source else f"{shown}{more}"


def did_you_mean(value: str, known: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``value``, or "" when none is close."""
    close = difflib.get_close_matches(value, [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
