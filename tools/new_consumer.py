"""Onboard an API consumer in a stack without the Pulumi CLI: its products, its tier, an offline placeholder key.

    python -m tools.new_consumer NAME --products PRODUCT [PRODUCT ...] [--tier TIER] [--stack dev]

Edits ``Pulumi.<stack>.yaml`` as a person would (its comments stay): adds NAME under
``datamesh:consumers`` with its products and tier, and one placeholder key under
``datamesh:apiKeys`` in the form the shipped keys have (``secure: v1:REPLACE-BEFORE-PULUMI-UP:NAME-0``).
An offline render sees it as an undecrypted secret, whose gateway accepts no such key;
``tools.render --test-keys`` gives it a test key for ``tools.verify``. Prints the exact
``pulumi config set --secret`` command that sets the real key before ``pulumi up``.

Exit 0 on success; 2 on bad arguments, a name already used, a product the stack does not
select or a tier it does not define (one line on stderr, with did-you-mean, nothing written);
3 when the stack file could not be written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from components.names import is_name
from components.problems import did_you_mean
from tools.cli import Exit, OneLineParser, is_stack_name

ROOT = Path(__file__).resolve().parent.parent
CONSUMERS = "datamesh:consumers"
API_KEYS = "datamesh:apiKeys"
PLACEHOLDER = "v1:REPLACE-BEFORE-PULUMI-UP"


class _BadInputError(Exception):
    """A one-line refusal."""


def insert_under(text: str, header: str, entry: str) -> str:
    """``entry`` (indented lines) as the first item under the stack-file key line ``  header:``;
    a new key at the end of ``config`` when the file has none."""
    line = f"  {header}:\n"
    if line in text:
        return text.replace(line, line + entry, 1)
    return text.rstrip("\n") + "\n" + line + entry


def add_consumer(text: str, name: str, products: list[str], tier: str | None) -> str:
    """The stack file's text with the consumer and its placeholder key added (checked, comments kept)."""
    config: dict[str, Any] = (yaml.safe_load(text) or {}).get("config") or {}
    if not is_name(name):
        raise _BadInputError(f"NAME: {name[:64]!r} is not a consumer name (lowercase letters, digits and '-', "
                             "starting with a letter, 63 at most)")
    consumers = config.get(CONSUMERS) or {}
    if name in consumers or name in (config.get(API_KEYS) or {}):
        raise _BadInputError(f"NAME: {name} is already a consumer of this stack")
    selected = [str(p) for p in config.get("datamesh:products") or []]
    for product in products:
        if product not in selected:
            raise _BadInputError(f"--products: {product[:64]!r} is not a product this stack selects"
                                 f"{did_you_mean(product, selected)}")
    tiers = sorted(str(t) for t in (config.get("datamesh:rateLimitTiers") or {}))
    if tier is not None and tier not in tiers:
        raise _BadInputError(f"--tier: {tier[:64]!r} is not a tier of this stack (datamesh:rateLimitTiers: "
                             f"{', '.join(tiers) or 'none'}){did_you_mean(tier, tiers)}")
    entry = f"    {name}:\n      products: [{', '.join(products)}]\n" + (f"      tier: {tier}\n" if tier else "")
    text = insert_under(text, CONSUMERS, entry)
    text = insert_under(text, API_KEYS, f"    {name}:\n      - secure: {PLACEHOLDER}:{name}-0\n")
    edited = yaml.safe_load(text)["config"]  # the edits landed where they were meant to
    if edited[CONSUMERS].get(name, {}).get("products") != products or API_KEYS not in edited:
        raise _BadInputError(f"{CONSUMERS}: not a block map in this stack file; add {name} by hand")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.new_consumer", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", metavar="NAME", help="the consumer's name, e.g. crm-app")
    parser.add_argument("--products", nargs="+", required=True, metavar="PRODUCT", help="products it may call")
    parser.add_argument("--tier", help="its rate-limit tier (a datamesh:rateLimitTiers key)")
    parser.add_argument("--stack", default="dev", help="the stack whose file to edit (default dev)")
    args = parser.parse_args(argv)
    if not is_stack_name(args.stack):
        parser.error("--stack: a stack name holds only letters, digits, '-', '_' and '.'")
    path = ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        if not path.is_file():
            raise _BadInputError(f"--stack: {path.name} does not exist")
        text = add_consumer(path.read_text(), args.name, list(dict.fromkeys(args.products)), args.tier)
    except (_BadInputError, yaml.YAMLError, AttributeError) as exc:
        message = str(exc) if isinstance(exc, _BadInputError) else f"{path.name}: not a stack file ({type(exc).__name__})"
        print(f"error: {message}", file=sys.stderr)
        return Exit.BAD_INPUT
    try:
        path.write_text(text)
    except OSError as exc:
        print(f"error: {path.name}: cannot be written ({exc.strerror})", file=sys.stderr)
        return Exit.CANNOT_FINISH
    print(f"added consumer {args.name} to {path.name}: products {', '.join(args.products)}"
          + (f", tier {args.tier}" if args.tier else "") + f", one placeholder key ({PLACEHOLDER}:{args.name}-0)")
    print("before pulumi up, set its real key (it replaces the placeholder line):")
    print(f"  pulumi config set --stack {args.stack} --secret --path '{API_KEYS}.{args.name}[0]' \"$(openssl rand -hex 24)\"")
    print(f"check it offline: .venv/bin/python -m tools.render --stack {args.stack} --out render/{args.stack} "
          f"--test-keys render/{args.stack}-keys.json && .venv/bin/python -m tools.verify --render render/{args.stack} "
          f"--keys render/{args.stack}-keys.json")
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
