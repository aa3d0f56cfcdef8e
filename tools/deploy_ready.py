"""Is a stack ready for a real `pulumi up`, or does it still hold placeholders only its owner can fill in?

    python -m tools.deploy_ready --stack dev [--config FILE]

Placeholders: ``secure:`` values that are not ciphertexts (they read
``REPLACE-BEFORE-PULUMI-UP``, as the shipped dev API keys do; `pulumi up` would
fail to decrypt them), and ``publicAccessCidrs`` entries inside the documentation
ranges of RFC 5737 (as prod's 203.0.113.0/24: no runner could reach the API), a
``domain`` under RFC 2606's reserved names (as prod's api.datamesh.example.com) and a
``hostedZoneId`` that says PLACEHOLDER.
Prints one line per placeholder, or that the stack is ready. Under GitHub Actions
(``GITHUB_OUTPUT`` set) it also writes ``ready=true|false`` there and prints each
placeholder as a ``::notice``, so a deploy is skipped, not failed.
Exit 0 either way; 2 when the stack file cannot be read.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.documents import Document

# Needs PyYAML only (through components.inputs, the same bounded reader and strict YAML loader the
# render uses on a pull request's stack file), so the workflow's check installs nothing else.
from components.inputs import InputError, load_yaml, read_text
from tools.cli import Exit, OneLineParser, is_stack_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]

SECRET_MARKER = "REPLACE-BEFORE-PULUMI-UP"
DOCUMENTATION_RANGES = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))


def _secure_values(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict) and set(value) == {"secure"}:
        yield path, str(value["secure"])
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secure_values(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secure_values(item, f"{path}[{i}]")


def placeholders(config: Document) -> list[str]:
    """What in a stack's ``config:`` map still needs a real value, one sentence each."""
    found = [f"{path}: placeholder secret, set it with `pulumi config set --secret`"
             for key, value in config.items() for path, text in _secure_values(value, key) if SECRET_MARKER in text]
    cidrs = config.get("datamesh:publicAccessCidrs") or []
    public = config.get("datamesh:endpointPublicAccess", True) not in (False, "false")
    for cidr in cidrs if public and isinstance(cidrs, list) else []:
        try:
            net = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            continue  # the program's own validation names a malformed CIDR
        if any(net.subnet_of(doc) for doc in DOCUMENTATION_RANGES if net.version == doc.version):  # type: ignore[arg-type]  # same IP version, checked just before
            found.append(f"datamesh:publicAccessCidrs: {cidr} is a documentation range; "
                         "put your runners' egress range here or deploy from a runner inside the VPC")
    domain = config.get("datamesh:domain")
    if isinstance(domain, str) and re.search(r"(^|\.)(example\.(com|net|org)|example|test|invalid)$", domain):
        found.append(f"datamesh:domain: {domain} is a reserved documentation name (RFC 2606); put your API's DNS name here")
    zone = config.get("datamesh:hostedZoneId")
    if isinstance(zone, str) and "PLACEHOLDER" in zone:
        found.append("datamesh:hostedZoneId: placeholder; put the Route 53 hosted zone of datamesh:domain here")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.deploy_ready", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name, e.g. dev or prod")
    parser.add_argument("--config", type=Path, help="read this stack file instead of Pulumi.<stack>.yaml")
    args = parser.parse_args(argv)
    if not is_stack_name(args.stack) or args.stack.strip(".") == "":
        parser.error("--stack: a stack name holds only letters, digits, '-', '_' and '.'")
    path = args.config or PROJECT_ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        doc = load_yaml(read_text(path))
    except InputError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    config = doc.get("config") if isinstance(doc, dict) else None
    if not isinstance(config, dict):
        print(f"error: {path}: no config: map", file=sys.stderr)
        return Exit.BAD_INPUT

    found = placeholders(config)
    github_output = os.environ.get("GITHUB_OUTPUT")
    for line in found:
        print(f"::notice title=deploy of {args.stack} skipped::{line}" if github_output else line)
    if not found:
        print(f"stack {args.stack} holds no placeholders: ready to deploy")
    if github_output:
        with open(github_output, "a") as out:
            out.write(f"ready={'false' if found else 'true'}\n")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
