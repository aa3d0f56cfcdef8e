"""Scaffold a data product: a declaration and an OpenAPI skeleton whose paths match its route.

    python -m tools.new_product NAME --domain DOMAIN --kind lookup|predict|process
        [--consumes PRODUCT ...] [--owner TEAM] [--bare-paths] [--products DIR]

Writes products/NAME.yaml and products/openapi/NAME.yaml, validates them as a
render would, and prints the next steps (select the product in a stack's
``datamesh:products``, let consumers call it in ``datamesh:consumers``, add an
owners line). ``--bare-paths`` is for a product that serves its paths without
the route prefix: the OpenAPI ``servers`` URL then carries the prefix and the
gateway strips it. Exit 0 on success; 2 on bad input or an existing name, one
line on stderr and nothing written; 3 when the files could not be written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from components.config import RESERVED_NAMESPACES
from components.names import is_name
from components.products.declarations import DeclarationError, parse_declaration
from tools.cli import Exit, OneLineParser

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_REF = "# yaml-language-server: $schema=schema/declaration.schema.json"
# The dev stand-in image (pinned); the team replaces it with its own, pinned to a tag or digest.
STAND_IN_IMAGE = "python:3.12.10-slim-bookworm"

# kind -> (operation path under the route, operationId, summary, example request body)
KINDS: dict[str, tuple[str, str, str, dict]] = {
    "lookup": ("lookup", "lookup", "Look up one record by its key", {"data": {"id": "42"}}),
    "predict": ("predict", "predict", "Predict from features", {"features": {"x": 1.0}}),
    "process": ("run", "run", "Run the process for one input", {"id": "42"}),
}


# A team name that is also a Backstage Group name (the catalog makes one per owner).
OWNER = re.compile(r"[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?")


class _BadInputError(Exception):
    """A one-line refusal: bad arguments or an existing name."""


def declaration(name: str, domain: str, owner: str, kind: str, consumes: list[str]) -> dict:
    doc: dict = {
        "name": name, "domain": domain, "owner": owner,
        "description": f"{name}: a {kind} API in the {domain} domain (describe what it serves)",
        "version": "0.1.0", "lifecycle": "experimental", "image": STAND_IN_IMAGE, "port": 12000,
        "protocol": "http", "healthPath": "/isAlive/", "replicas": 2,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "openapi": f"openapi/{name}.yaml", "rateLimit": {"requests": 60, "period": "1m"},
        "routePrefix": f"/public/api/v1/{name}/",
        # A stand-in that serves (the bare image would exit at once and never become ready);
        # the team replaces image, command, env and files with its own.
        "command": ["python", "/app/stand_in.py"],
        "env": {"STAND_IN_PRODUCT": name, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"},
        "files": {"stand_in.py": "demo/stand_in.py"},
    }
    if consumes:
        doc["consumes"] = consumes
    return doc


def openapi(name: str, kind: str, prefix: str, bare_paths: bool) -> dict:
    path, operation_id, summary, example = KINDS[kind]
    doc: dict = {
        "openapi": "3.0.3",
        "info": {"title": name, "version": "0.1.0", "description": f"The {kind} API of {name}."},
    }
    if bare_paths:
        doc["servers"] = [{"url": prefix.rstrip("/"), "description": "the gateway strips this prefix"}]
    doc["paths"] = {("/" if bare_paths else prefix) + path: {"post": {
        "operationId": operation_id, "summary": summary,
        # tools.smoke sends this example to the gateway and expects a 2xx.
        "x-datamesh-smoke": True,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object"}, "example": example}}},
        "responses": {"200": {"description": "The answer", "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}}
    return doc


def scaffold(products: Path, name: str, domain: str, kind: str, consumes: list[str], owner: str | None,
             bare_paths: bool = False) -> tuple[Path, Path]:
    """Write and validate the two files; raises ``_BadInputError`` (nothing left written) for a bad request."""
    if not is_name(name):
        raise _BadInputError(f"NAME: {name[:60]!r} is not a product name (lowercase letters, digits and '-')")
    if not is_name(domain) or domain in RESERVED_NAMESPACES:
        raise _BadInputError(f"--domain: {domain[:60]!r} is not a domain name (a Kubernetes namespace, not a platform one)")
    if owner is not None and not OWNER.fullmatch(owner):
        raise _BadInputError(f"--owner: {owner[:60]!r} is not a team name (letters, digits, '-', '_', '.'; at most 63)")
    if not products.is_dir():
        raise _BadInputError(f"--products: {products} is not a folder")
    if not (products / "schema" / "declaration.schema.json").is_file():
        # Only a datamesh products folder: a typo must not write declarations anywhere else.
        raise _BadInputError(f"--products: {products} is not a datamesh products folder (no schema/declaration.schema.json)")
    source, spec = products / f"{name}.yaml", products / "openapi" / f"{name}.yaml"
    for path in (source, spec):
        if path.exists():
            raise _BadInputError(f"NAME: {path} already exists; pick another name")
    for upstream in consumes:
        if not is_name(upstream) or not (products / f"{upstream}.yaml").is_file():
            raise _BadInputError(f"--consumes: {upstream[:60]!r} is not a declared product")
    doc = declaration(name, domain, owner if owner is not None else f"team-{domain}", kind, consumes)
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(yaml.safe_dump(openapi(name, kind, doc["routePrefix"], bare_paths), sort_keys=False))
    source.write_text(f"{SCHEMA_REF}\n# Owned by {doc['owner']}. Replace the image with yours, pinned to a tag or digest.\n"
                      + yaml.safe_dump(doc, sort_keys=False))
    try:
        parse_declaration(source, root=products)
    except DeclarationError as exc:  # a bug in this scaffold, or a products folder it cannot use
        source.unlink()
        spec.unlink()
        raise _BadInputError(str(exc)) from None
    return source, spec


def next_steps(name: str, owner: str) -> str:
    return "\n".join([
        "next steps:",
        "  1. replace image, command, env and files (a stand-in that answers every POST) with your product's own;"
        " describe the API in the OpenAPI file",
        f"  2. select it in a stack: add {name} to datamesh:products in Pulumi.dev.yaml",
        f"  3. let consumers call it: add {name} to a consumer's products in datamesh:consumers",
        f"  4. owners: add '/products/{name}*' and '/products/openapi/{name}*' for @<org>/{owner} to .github/CODEOWNERS"
        " (see .github/CODEOWNERS.example)",
        "  5. check it: .venv/bin/python -m tools.render --stack dev --out render/dev",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.new_product", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", metavar="NAME", help="the product's name (lowercase letters, digits and '-')")
    parser.add_argument("--domain", required=True, help="its domain: the namespace it runs in")
    parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="the kind of API it serves")
    parser.add_argument("--consumes", nargs="*", default=[], metavar="PRODUCT", help="products it calls in the mesh")
    parser.add_argument("--owner", help="the owning team (default team-DOMAIN)")
    parser.add_argument("--bare-paths", action="store_true", help="the product serves paths without the route prefix")
    parser.add_argument("--products", type=Path, default=ROOT / "products", help="the products folder")
    args = parser.parse_args(argv)
    try:
        source, spec = scaffold(args.products, args.name, args.domain, args.kind, list(args.consumes),
                                args.owner, args.bare_paths)
    except _BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except OSError as exc:
        print(f"error: {args.products}: cannot write ({exc.strerror})", file=sys.stderr)
        return Exit.CANNOT_FINISH
    print(f"wrote {source} and {spec}")
    print(next_steps(args.name, args.owner if args.owner is not None else f"team-{args.domain}"))
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
