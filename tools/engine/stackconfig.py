"""Read a stack's configuration the way the Pulumi CLI hands it to the program.

The CLI passes every value as a string (maps and lists as JSON) and marks
``secure:`` values as secrets. Offline there is no passphrase, so secure values
are never decrypted: each becomes a distinct placeholder the program sees as a secret.
Files are read through ``components.inputs`` (1 MiB, UTF-8, strict YAML); a value
mixing ``secure:`` and plaintext parts, or a malformed ``secure:`` map, is refused
naming the key only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.governance.access import UNDECRYPTED
from components.inputs import InputError, load_yaml, read_text, show

SECRET_PLACEHOLDER = UNDECRYPTED
API_KEYS = "datamesh:apiKeys"
_KEY = re.compile(r"[\w.:/-]{1,256}", re.ASCII)  # namespace:name, as `pulumi config set` takes it


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
        return load_yaml(read_text(path))
    except InputError as exc:
        raise StackConfigError(f"{path}: {exc}") from None


def _unseal(value: Any, counter: list[int], where: str) -> tuple[Any, int, int]:
    """Replace every ``{secure: ...}`` inside ``value`` by a distinct placeholder.

    Returns the new value, how many secure values and how many plaintext leaves it held.
    """
    if isinstance(value, dict) and "secure" in value:
        if set(value) != {"secure"} or not isinstance(value["secure"], str):
            raise StackConfigError(f"{where}: a secure: value must be a ciphertext string alone in its map (value hidden)")
        counter[0] += 1
        return f"{SECRET_PLACEHOLDER}-{counter[0]}", 1, 0
    if isinstance(value, dict):
        pairs = {k: _unseal(v, counter, where) for k, v in value.items()}
        return ({k: v for k, (v, _, _) in pairs.items()},
                sum(s for _, s, _ in pairs.values()), sum(p for _, _, p in pairs.values()))
    if isinstance(value, list):
        items = [_unseal(v, counter, where) for v in value]
        return [v for v, _, _ in items], sum(s for _, s, _ in items), sum(p for _, _, p in items)
    return value, 0, 1


def _as_cli_string(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        if isinstance(value, (dict, list)):
            return json.dumps(value, allow_nan=False)
        if isinstance(value, float):
            return json.dumps(value, allow_nan=False)
    except ValueError:
        raise StackConfigError(f"{where}: holds a number out of range") from None
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
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise StackConfigError(f"{path}: config: {show(key)}: is not a configuration key (namespace:name)")
        full_key = key if ":" in key else f"{project}:{key}"  # the CLI's rule for bare keys
        where = f"{path}: config: {full_key}"
        if value is None:
            raise StackConfigError(f"{where}: has no value")
        value, secure, plain = _unseal(value, counter, where)
        if secure and plain:
            # Pulumi would hand the program the whole value as one secret, hiding that some of it sits in
            # the file in the clear: refuse, and name the key only.
            raise StackConfigError(f"{where}: mixes secure: and plaintext values; set every value with --secret")
        values[full_key] = _as_cli_string(value, where)
        if secure:
            secret_keys.append(full_key)
    return StackConfig(project=project, stack=stack, values=values, secret_keys=secret_keys)


def with_test_keys(config: StackConfig, out: Path) -> StackConfig:
    """``config`` with every undecrypted API key replaced by a fresh random test key (48 hex characters, the shape
    docs/governance.md gives real keys), the keys written to ``out``.

    For offline verification only (``tools.render --test-keys``): the gateway of such a render
    accepts exactly these keys, which exist only in ``out`` (mode 0600), as ``{consumer: [key, ...]}``.
    """
    import os
    import secrets

    keys = json.loads(config.values.get(API_KEYS, "{}"))
    if not isinstance(keys, dict):
        raise StackConfigError(f"{API_KEYS}: must be a map of consumer to keys")
    fresh = {consumer: [secrets.token_hex(24) if isinstance(k, str) and k.startswith(SECRET_PLACEHOLDER) else k
                        for k in (listed if isinstance(listed, list) else [])]
             for consumer, listed in keys.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(fresh, handle, indent=2, sort_keys=True)
    values = {**config.values, API_KEYS: json.dumps(fresh)} if API_KEYS in config.values else dict(config.values)
    return StackConfig(project=config.project, stack=config.stack, values=values, secret_keys=config.secret_keys)
