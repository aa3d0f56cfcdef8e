"""The value diff under the render diff: two JSON values compared by identity, never by position.

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
from dataclasses import dataclass
from typing import Any

from components.documents import Document

_MISSING = object()
_SHOW_MAX = 120


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


def list_key(list_name: str, item: Document) -> str:
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


def _keyed(list_name: str, items: list[Any]) -> Document | None:
    """Items by key, in order; duplicates of a key get #2, #3 (matched in order among themselves)."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    seen: Counter[str] = Counter()
    out: Document = {}
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


def diff_values(old: object, new: object, path: str = "", name: str = "") -> list[Change]:
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
