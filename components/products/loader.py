"""Loading declarations: one file into a ``Product``, then a stack's selection, checked as a whole.

``parse_declaration`` validates one file against the schema, then its meaning
(``components.products.checks``), reporting every problem at once. ``load_products``
validates every declaration in the folder, selected or not, then what only the
selection as a whole can break: unknown upstreams, overlapping routes, cycles, wildcards.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.config import RESERVED_NAMESPACES
from components.documents import Document, DocumentView, merge_values
from components.inputs import InputError, load_yaml, read_text, show
from components.istio_protocol import UNSUPPORTED_PROTOCOL, convert_protocol, suggest_port_name
from components.names import is_name
from components.problems import did_you_mean, message
from components.products.checks import (
    load_openapi,
    rate_limit,
    read_file,
    release_problem,
    releases_of,
    resource_problem,
    route_rewrite,
    secret_refs,
)
from components.products.iam import aws_access, wildcard_problem
from components.products.model import Autoscaling, Product, SecretRef
from components.products.problems import DeclarationError, Problem, Problems, fail, plain, schema_error
from components.products.schema import (
    DATAIKU_HEALTH_PATH,
    DATAIKU_PORT,
    EGRESS_DEFAULT_PORT,
    OVERRIDABLE,
    OVERRIDE_SCHEMA,
    PROTOCOLS,
)
from components.ratelimit import RateLimit

OVERRIDES_KEY = "datamesh:productOverrides"


@dataclass
class _Parsed:
    """What a declaration's meaning checks produce besides problems."""

    rate_limit: RateLimit | None = None
    egress: list[tuple[str, int]] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    openapi_path: Path = field(default_factory=Path)
    openapi_text: str = ""
    openapi: Document = field(default_factory=dict)
    rewrite: bool = False
    secrets: tuple[SecretRef, ...] = ()


def parse_declaration(source: Path, overrides: DocumentView | None = None, root: Path | None = None,
                      overrides_key: str = OVERRIDES_KEY) -> Product:
    """Validate one declaration file, with the stack's overrides merged over it.

    Every file it names (``openapi``, ``files``) must resolve inside ``root``
    (default: the declaration's own folder).
    """
    root = root if root is not None else source.parent
    doc = _document(source, root, overrides)
    problems = Problems(source, frozenset(overrides or {}), f"{overrides_key}.{source.stem}")
    for problem in _field_problems(source, doc):
        problems.check(problem)
    parsed = _Parsed()
    with problems.collect():
        parsed.rate_limit = rate_limit(doc.get("rateLimit"))
    parsed.egress = _egress(doc, problems)
    for name, ref in doc.get("files", {}).items():
        with problems.collect():
            parsed.files[name] = read_file(source, f"files.{name}", ref, root)[1]
    with problems.collect():
        parsed.openapi_path, parsed.openapi_text, parsed.openapi = load_openapi(source, doc["openapi"], root)
        parsed.rewrite = route_rewrite(doc["openapi"], _route_prefix(doc), parsed.openapi)
    with problems.collect():
        parsed.secrets = secret_refs(doc)
    problems.raise_any()
    return _product(source, doc, parsed)


def _document(source: Path, root: Path, overrides: DocumentView | None) -> Document:
    """The declaration's YAML map, the stack's overrides merged over it, valid against the schema."""
    try:
        doc = load_yaml(read_text(source, root))
    except InputError as exc:
        raise fail(source, ("(file)", str(exc))) from None
    if not isinstance(doc, dict):
        raise fail(source, ("(top level)", "a declaration is a YAML map of fields"))
    if overrides:
        if "replicas" in overrides:
            doc.pop("autoscaling", None)
        if "autoscaling" in overrides:
            doc.pop("replicas", None)
        if "releases" in overrides:  # the stack's releases replace the declaration's image or releases
            doc.pop("image", None)
            doc.pop("mirror", None)
        doc = merge_values(doc, overrides)
    error = schema_error(source, doc)
    if error:
        raise error
    return doc


def _field_problems(source: Path, doc: DocumentView) -> Iterator[Problem | None]:
    """The checks of single fields, in the order their problems are reported."""
    if doc["name"] != source.stem:
        yield Problem("name", f"{doc['name']!r} must match the file name {show(source.stem)}")
    if doc["domain"] in RESERVED_NAMESPACES:
        yield Problem("domain", f"{doc['domain']!r} names a platform namespace; products run in their domain's namespace")
    if doc["protocol"] not in PROTOCOLS:
        yield Problem("protocol", f"{show(doc['protocol'])} is not one of {', '.join(PROTOCOLS)}"
                                  f"{did_you_mean(str(doc['protocol']), PROTOCOLS)}")
    yield release_problem(doc)  # checks the image of each release (or the one image) too
    yield resource_problem(doc["resources"])
    scaling = doc.get("autoscaling")
    if scaling is not None and scaling["minReplicas"] > scaling["maxReplicas"]:
        yield Problem("autoscaling.minReplicas", f"{scaling['minReplicas']} is above maxReplicas {scaling['maxReplicas']}")
    if doc["name"] in doc.get("consumes", []):
        yield Problem("consumes", f"{doc['name']!r} cannot consume itself")
    yield from env_problems(doc)
    yield port_name_problem(doc)


# env names that look like credentials: they belong under secrets:, never in a manifest or in Pulumi state.
CREDENTIAL_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)


def env_problems(doc: DocumentView) -> Iterator[Problem]:
    """A credential-looking ``env`` name without a ``notSecret`` reason; a ``notSecret`` for no ``env`` value."""
    env, not_secret = doc.get("env", {}), doc.get("notSecret", {})
    for name in env:
        if CREDENTIAL_NAME.search(name) and name not in not_secret:
            yield Problem(f"env.{name}", "looks like a credential: a plain env value ends up in the manifests and in "
                          "Pulumi state; take it from AWS Secrets Manager under secrets: (docs/data-products.md, "
                          "\"Secrets\"), or, if it is not secret, say why under notSecret: {" + name + ": <reason>}")
    for name in not_secret:
        if name not in env:
            yield Problem(f"notSecret.{name}", f"names no env value{did_you_mean(name, env)}")


def port_name_problem(doc: DocumentView) -> Problem | None:
    """A ``portName`` (or ``appProtocol``) from which Istio would not select the declared protocol."""
    name, app = doc.get("portName"), doc.get("appProtocol")
    wanted = PROTOCOLS.get(doc["protocol"], "")
    if name is None and app is None:
        return None  # the default, "<protocol>-api"
    if name == "" and app is None:
        return Problem("portName", f"'' leaves the port unnamed, and Istio then selects no protocol; leave portName out "
                                   f"(the default is {wanted + '-api'!r}) or set appProtocol")
    selected = convert_protocol(int(doc.get("port", DATAIKU_PORT)), str(name or ""), "TCP", app)
    field = "appProtocol" if app is not None else "portName"
    given = app if app is not None else name
    if selected.lower() == wanted.lower():
        return None
    if selected == UNSUPPORTED_PROTOCOL:
        why = "selects no Istio protocol (Istio reads the part before the first '-': http, http2, grpc, https, tcp, ...)"
    else:
        why = f"selects {selected}, not the declared protocol {doc['protocol']!r}"
    return Problem(field, f"{show(given)} {why}; use e.g. {suggest_port_name(str(given or ''), wanted)!r}")


def _egress(doc: DocumentView, problems: Problems) -> list[tuple[str, int]]:
    """(external host, TLS port) per ``egress`` entry; one ServiceEntry per host, so each host once."""
    egress: list[tuple[str, int]] = []
    for entry in doc.get("egress", []):
        host, _, port = entry.partition(":")
        if port and int(port) > 65535:
            problems.add("egress", f"{entry!r}: the port must be 1 to 65535")
        if host in (h for h, _ in egress):  # one ServiceEntry per host: two would fight over it in Istio
            problems.add("egress", f"{host!r} is declared twice; declare each external host once")
            continue
        egress.append((host, int(port or EGRESS_DEFAULT_PORT)))
    return egress


def _route_prefix(doc: DocumentView) -> str:
    return str(doc.get("routePrefix", f"/public/api/v1/{doc['name']}/"))


def _autoscaling(doc: DocumentView) -> Autoscaling | None:
    if "autoscaling" not in doc:
        return None
    a = doc["autoscaling"]
    return Autoscaling(a["minReplicas"], a["maxReplicas"], a.get("targetCPUUtilizationPercentage", 70))


def _product(source: Path, doc: DocumentView, parsed: _Parsed) -> Product:
    """The ``Product`` of a declaration whose every check passed."""
    releases, mirror = releases_of(doc)
    autoscaling = _autoscaling(doc)
    return Product(
        name=doc["name"], domain=doc["domain"], owner=doc["owner"], description=doc["description"],
        version=doc["version"], lifecycle=doc["lifecycle"],
        image=doc["image"] if not releases else releases[0].image,
        port=doc.get("port", DATAIKU_PORT),
        protocol=doc["protocol"],
        declared_port_name=doc.get("portName"),
        app_protocol=doc.get("appProtocol"),
        health_path=doc.get("healthPath", DATAIKU_HEALTH_PATH),
        replicas=None if autoscaling else doc.get("replicas", 2),
        autoscaling=autoscaling,
        resources=doc["resources"],
        openapi_path=parsed.openapi_path, openapi_text=parsed.openapi_text, openapi=parsed.openapi,
        route_prefix=_route_prefix(doc),
        rate_limit=parsed.rate_limit,
        consumes=tuple(doc.get("consumes", [])),
        egress=tuple(parsed.egress),
        command=tuple(doc.get("command", [])),
        args=tuple(doc.get("args", [])),
        env=dict(doc.get("env", {})),
        files=parsed.files,
        source=source,
        releases=releases,
        mirror=mirror,
        aws=aws_access(doc),
        secrets=parsed.secrets,
        route_rewrite=parsed.rewrite,
    )


# --- a stack's selection -----------------------------------------------------------


def load_products(
    directory: Path,
    selected: list[str] | tuple[str, ...],
    overrides: Mapping[str, DocumentView],
    config_key: str = "datamesh:products",
    overrides_key: str = OVERRIDES_KEY,
    allow_wildcard_iam: bool | frozenset[str] = False,
) -> tuple[Product, ...]:
    """The selected products, validated, upstreams before the products that consume them.

    ``allow_wildcard_iam``: True, or the products, whose AWS access may use wildcards.
    Every other ``*.yaml`` declaration in ``directory`` is validated too (without overrides), selected or not.
    """
    _check_selection(directory, selected, overrides, config_key, overrides_key)
    products: dict[str, Product] = {}
    for name in selected:
        source = directory / f"{name}.yaml"
        if not source.is_file():
            raise DeclarationError(f"{config_key}: {name!r} has no declaration {source}")
        products[name] = parse_declaration(source, overrides.get(name), root=directory, overrides_key=overrides_key)
    _check_unselected(directory, products, allow_wildcard_iam)
    for p in products.values():
        if allow_wildcard_iam is True or p.name in (allow_wildcard_iam or ()):
            continue
        _check_wildcards(p)
    _check_upstreams_and_routes(directory, products)
    return _in_dependency_order(products)


def _check_selection(directory: Path, selected: list[str] | tuple[str, ...], overrides: Mapping[str, DocumentView],
                     config_key: str, overrides_key: str) -> None:
    """Product names only, and overrides of selected products' overridable fields, valid as the stack's values."""
    for name in selected:
        if not is_name(name):  # a name, never a path: products/<name>.yaml and nothing else
            raise DeclarationError(f"{config_key}: {show(name)} is not a product name")
    for name, override in overrides.items():
        if name not in selected:
            raise DeclarationError(message([Problem(f"{overrides_key}.{plain(name)}",
                                                    f"is not a selected product{did_you_mean(str(name), selected)}")]))
        if not isinstance(override, Mapping):
            raise DeclarationError(message([Problem(f"{overrides_key}.{name}", f"must be a map of {', '.join(OVERRIDABLE)}")]))
        unknown = sorted(str(k) for k in set(override) - set(OVERRIDABLE))
        if unknown:
            raise DeclarationError(message([Problem(f"{overrides_key}.{name}.{plain(unknown[0])}",
                                                    f"cannot be overridden; only {', '.join(OVERRIDABLE)}")]))
        # The stack's values are checked as the stack's, so an error names the stack key, not the product's file.
        error = schema_error(directory, override, OVERRIDE_SCHEMA, prefix=f"{overrides_key}.{name}")
        if error:
            raise error


def _check_unselected(directory: Path, products: Mapping[str, Product], allow_wildcard_iam: bool | frozenset[str]) -> None:
    """A declaration no stack selects yet is checked all the same: the pull request that adds it is its review."""
    for source in sorted(directory.glob("*.yaml")):
        if source.stem not in products:
            unselected = parse_declaration(source, root=directory)
            for upstream in unselected.consumes:
                if not (directory / f"{upstream}.yaml").is_file():
                    declared = [p.stem for p in directory.glob("*.yaml")]
                    raise fail(source, ("consumes", f"{upstream!r} is not a declared product{did_you_mean(upstream, declared)}"))
            if allow_wildcard_iam is not True:
                _check_wildcards(unselected)


def _check_wildcards(product: Product) -> None:
    problem = wildcard_problem(product)
    if problem:
        raise fail(product.source, (problem.where, f"{problem.what} (or allow it: datamesh:allowWildcardIam)"))


def _check_upstreams_and_routes(directory: Path, products: Mapping[str, Product]) -> None:
    """Every upstream selected too, and no route prefix inside another's."""
    routes: dict[str, str] = {}
    for p in products.values():
        for upstream in p.consumes:
            if upstream not in products:
                known = "is not a selected product" if (directory / f"{upstream}.yaml").exists() else "is not a declared product"
                names = products if "selected" in known else [s.stem for s in directory.glob("*.yaml")]
                raise fail(p.source, ("consumes", f"{upstream!r} {known}{did_you_mean(upstream, names)}"))
        for other, prefix in routes.items():
            if p.route_prefix.startswith(prefix) or prefix.startswith(p.route_prefix):
                raise fail(p.source, ("routePrefix", f"{p.route_prefix} overlaps {other}'s {prefix}"))
        routes[p.name] = p.route_prefix


def _in_dependency_order(products: Mapping[str, Product]) -> tuple[Product, ...]:
    sorter = graphlib.TopologicalSorter({p.name: p.consumes for p in products.values()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = products[cycle[0]]
        raise fail(first.source, ("consumes", f"dependency cycle: {' -> '.join(reversed(cycle))}")) from None
    return tuple(products[name] for name in order)
