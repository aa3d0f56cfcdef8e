"""Reading untrusted files: contained, bounded, decoded strictly, parsed without surprises.

Stack files, product declarations, OpenAPI documents, mounted files and policy
config all arrive by pull request. Every read goes through ``read_text``: the
path must resolve (symlinks followed) inside a given root, be a regular file,
hold at most ``MAX_FILE_BYTES`` and be UTF-8 text without NUL bytes. YAML goes
through ``load_yaml``: PyYAML's safe loader, refusing aliases (a few lines of
aliases can expand to gigabytes), duplicate keys (the last one would silently
win), nesting deeper than ``MAX_DEPTH`` (libyaml's composer recurses in C and
crashes the interpreter), integers longer than ``MAX_INT_DIGITS`` and
timestamps (read as plain strings, as the Pulumi CLI reads them).

Every problem raises ``InputError`` whose message names the problem and never
quotes the content. Callers prefix the file and field.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

MAX_FILE_BYTES = 1024 * 1024  # 1 MiB: the largest stack file, declaration, OpenAPI or mounted file read
MAX_DEPTH = 64  # nesting levels in a YAML document
MAX_INT_DIGITS = 18  # an int64 holds 18 digits safely; no datamesh value comes near


def show(value: object, limit: int = 60) -> str:
    """A value for an error message: quoted, on one line, cut short (a message never carries a whole input)."""

    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


class InputError(ValueError):
    """An input file or value the program refuses; the message never quotes the content."""


def read_text(path: Path, root: Path | None = None, limit: int = MAX_FILE_BYTES) -> str:
    """The text of ``path``, which must resolve inside ``root`` (when given) and be a small UTF-8 regular file."""
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop, a path too long
        raise InputError("cannot be resolved to a file") from None
    # Containment before existence: whether a file outside exists is not for an error message to tell.
    if root is not None and not resolved.is_relative_to(root.resolve()):
        raise InputError(f"is outside {root.name}/ (after following symlinks); files must live inside it")
    if not resolved.exists():
        raise InputError("no such file")
    try:
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except PermissionError:
        raise InputError("is not readable") from None
    except OSError:
        raise InputError("cannot be opened") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError("is a directory" if os.path.isdir(resolved) else "is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(limit + 1)
        except OSError:
            raise InputError("cannot be read") from None
    if len(data) > limit:
        raise InputError(f"is larger than the {limit} byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise InputError("is binary, not text (holds a NUL byte)")
    return text


# --- YAML ----------------------------------------------------------------------

try:  # libyaml scans and parses; composition stays in Python so aliases and depth can be refused
    from yaml._yaml import CParser as _Parser

    _FAST = True
except ImportError:  # pragma: no cover - a PyYAML without libyaml
    from yaml.parser import Parser as _Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    _FAST = False

# Files this project vendored or wrote itself (the pinned CRDs, a render read back): libyaml's own safe loader,
# without the limits that untrusted input gets below.
TRUSTED_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# libyaml's emitter: the same documents as PyYAML's own, several times faster (it folds long strings elsewhere).
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Refused(yaml.MarkedYAMLError):
    """A document this loader refuses on purpose; its problem is ours, so safe to print."""


class _Composer(Composer):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(None, None, "aliases (*name) are not accepted", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Constructor(SafeConstructor):
    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise _Refused(None, None, "a map key must be a plain value", key_node.start_mark) from None
                if duplicate:
                    raise _Refused(None, None, "duplicate key", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> Any:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise _Refused(None, None, f"an integer longer than {MAX_INT_DIGITS} digits", node.start_mark)
        return super().construct_yaml_int(node)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:timestamp", SafeConstructor.construct_yaml_str)


class _Resolver(Resolver):
    pass


# Timestamps stay strings (a tag or a date is text to Pulumi), so drop the implicit resolver.
_Resolver.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}

if _FAST:
    class SafeLoader(_Parser, _Composer, _Constructor, _Resolver):
        """libyaml's parser with PyYAML's composer (no aliases, bounded depth) and a strict safe constructor."""

        # The C parser also implements composition, recursively and with aliases; use the Python one.
        get_single_node = _Composer.get_single_node
        get_node = _Composer.get_node
        check_node = _Composer.check_node
        compose_document = _Composer.compose_document
        compose_node = _Composer.compose_node
        compose_scalar_node = Composer.compose_scalar_node
        compose_sequence_node = Composer.compose_sequence_node
        compose_mapping_node = Composer.compose_mapping_node

        def __init__(self, stream: Any) -> None:
            _Parser.__init__(self, stream)
            _Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)
else:  # pragma: no cover
    class SafeLoader(Reader, Scanner, _Parser, _Composer, _Constructor, _Resolver):  # type: ignore[no-redef]
        def __init__(self, stream: Any) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            _Parser.__init__(self)
            _Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


def load_yaml(text: str) -> object:
    """One YAML document, safely; ``InputError`` (with a line number, never content) when it is refused."""
    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        # PyYAML's own messages may quote the offending characters; ours never do.
        problem = exc.problem if isinstance(exc, _Refused) and exc.problem else "not valid YAML"
        raise InputError(f"{problem}{where}") from None
    except yaml.YAMLError:
        raise InputError("not valid YAML") from None
    except (RecursionError, MemoryError):
        raise InputError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError, OverflowError):  # a constructor refused a scalar (a float out of range...)
        raise InputError("not valid YAML (a value cannot be read)") from None
