"""Read a stack's configuration the way the Pulumi CLI hands it to the program.

The CLI passes every value as a string (maps and lists as JSON) and marks
``secure:`` values as secrets. Offline there is no passphrase, so secure values
are never decrypted: each becomes a distinct placeholder the program sees as a secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SECRET_PLACEHOLDER = "PLACEHOLDER-SECRET-NOT-DECRYPTED"


class StackConfigError(ValueError):
    """The stack file cannot be read; the message names the file and what is wrong."""


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    values: dict[str, str]
    secret_keys: list[str]


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StackConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise StackConfigError(f"{path}: not valid YAML{where}") from None


def _unseal(value: Any, counter: list[int]) -> tuple[Any, bool]:
    """Replace every ``{secure: ...}`` inside ``value`` by a distinct placeholder; say whether there was one."""
    if isinstance(value, dict) and set(value) == {"secure"}:
        counter[0] += 1
        return f"{SECRET_PLACEHOLDER}-{counter[0]}", True
    if isinstance(value, dict):
        pairs = {k: _unseal(v, counter) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(s for _, s in pairs.values())
    if isinstance(value, list):
        items = [_unseal(v, counter) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _as_cli_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def project_name(project_dir: Path) -> str:
    doc = _load_yaml(project_dir / "Pulumi.yaml")
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise StackConfigError(f"{project_dir / 'Pulumi.yaml'}: has no project name")
    return doc["name"]


def load_stack_config(project_dir: Path, stack: str, config_file: Path | None = None) -> StackConfig:
    """The config of ``stack``: ``Pulumi.<stack>.yaml`` or ``config_file`` in its place."""
    project = project_name(project_dir)
    path = config_file if config_file is not None else project_dir / f"Pulumi.{stack}.yaml"
    doc = _load_yaml(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackConfigError(f"{path}: must be a YAML map with a 'config' key")
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackConfigError(f"{path}: config: must be a map of key to value")

    values: dict[str, str] = {}
    secret_keys: list[str] = []
    counter = [0]  # distinct placeholders: two secrets must not look equal
    for key, value in config.items():
        full_key = key if ":" in str(key) else f"{project}:{key}"  # the CLI's rule for bare keys
        if value is None:
            raise StackConfigError(f"{path}: config: {full_key}: has no value")
        value, secret = _unseal(value, counter)
        values[full_key] = _as_cli_string(value)
        if secret:
            secret_keys.append(full_key)
    return StackConfig(project=project, stack=stack, values=values, secret_keys=secret_keys)
