"""Names for parsed documents, and the one deep merge every layer uses. Standard library only.

JSON and YAML documents (declarations, OpenAPI files, policy config, Helm values,
Kubernetes manifests, IAM policies, renders read back) are checked by a JSON
Schema, or by the code that builds them, at run time, not by the type checker.
Public signatures name them with these aliases rather than a bare ``Any``:

- ``Document``: a parsed or built JSON/YAML object, ``dict[str, Any]``, whose
  shape a JSON Schema (or the function that builds it) vouches for at run time.
- ``DocumentView``: the same, read only (``Mapping[str, Any]``).

A value that may be any JSON/YAML value (a map, a list, a string...) is ``object``:
its reader checks which with ``isinstance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# A parsed JSON/YAML object whose shape is checked by a JSON Schema at run time, not statically.
Document = dict[str, Any]
# The same, only read.
DocumentView = Mapping[str, Any]


def merge_values(defaults: DocumentView, overrides: DocumentView) -> Document:
    """Deep-merge two documents (Helm values, a declaration and its stack overrides):
    maps merge key by key, anything else in ``overrides`` wins."""
    merged: Document = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged
