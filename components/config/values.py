"""Raw configuration strings into typed values, and the small checks every group parser shares."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping

from components.config.schema import NAMESPACE, SECRET_KEYS, ConfigError, Key
from components.inputs import show as _show
from components.problems import Problem, message


def fail(key: str, problem: str) -> ConfigError:
    """The error for one problem of a ``datamesh:*`` key; ``key`` may go on into its value (``consumers.a.tier``)."""
    return config_error(Problem(f"{NAMESPACE}:{key}", problem))


def config_error(problem: Problem) -> ConfigError:
    """A stack config problem as the error Pulumi prints: "<namespace>:<key>: <what is wrong>"."""
    return ConfigError(message([problem]))


def parse(key: str, spec: Key, raw: str | None) -> object:
    """Turn the string Pulumi passes into the declared type, or the default."""
    if raw is not None and key in SECRET_KEYS:
        try:
            return parse_value(key, spec, raw)
        except ConfigError:
            # Never echo a secret: say what is wrong with it, not what it is.
            raise fail(key, f"is not a valid {'map' if spec.type == 'object' else spec.type} (value hidden)") from None
    return parse_value(key, spec, raw)


def parse_value(key: str, spec: Key, raw: str | None) -> object:
    if raw is None:
        if spec.default is None:
            raise fail(key, f"is required ({spec.description})")
        return spec.default
    if spec.type == "string":
        return raw
    if spec.type == "integer":
        try:
            return int(raw, 10)
        except ValueError:
            raise fail(key, f"must be a whole number, got {_show(raw)}") from None
    if spec.type == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise fail(key, f"must be true or false, got {_show(raw)}")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        raise fail(key, f"must be a YAML {'list' if spec.type == 'array' else 'map'}, got {_show(raw)}") from None
    if spec.type == "array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(key, f"must be a list of strings, got {_show(value)}")
        return value
    if not isinstance(value, dict):
        raise fail(key, f"must be a map, got {_show(value)}")
    return value


def cidr(key: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=True))
    except ValueError:
        raise fail(key, f"{_show(value)} is not a valid IPv4 network CIDR") from None


def int_range(key: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise fail(key, f"must be between {low} and {high}, got {value}")
    return value


def unique(key: str, values: list[str]) -> tuple[str, ...]:
    seen = set()
    for v in values:
        if v in seen:
            raise fail(key, f"lists {_show(v)} twice")
        seen.add(v)
    return tuple(values)


def each(key: str, values: list[str], ok: Callable[[str], object], what: str) -> list[str]:
    for v in values:
        if not ok(v):
            raise fail(key, f"{_show(v)} is not {what}")
    return values


Values = Mapping[str, object]


def text(v: Values, key: str) -> str:
    value = v[key]
    assert isinstance(value, str), key
    return value


def flag(v: Values, key: str) -> bool:
    value = v[key]
    assert isinstance(value, bool), key
    return value


def whole(v: Values, key: str) -> int:
    value = v[key]
    assert isinstance(value, int), key
    return value


def strings(v: Values, key: str) -> list[str]:
    value = v[key]
    assert isinstance(value, list), key
    return [str(item) for item in value]


def mapping(v: Values, key: str) -> dict[str, object]:
    value = v[key]
    assert isinstance(value, dict), key
    return value
