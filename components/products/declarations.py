"""Data product declarations: one YAML file per product, validated before any resource exists.

Product teams own ``products/<name>.yaml`` through pull requests. A stack
selects products by name (``datamesh:products``) and may override
per-environment values (``datamesh:productOverrides``: replicas, autoscaling,
resources). The shape is a JSON Schema (``DECLARATION_SCHEMA``); meaning that
a schema cannot say (pinned images, known upstreams, no cycles, a valid
OpenAPI document) is checked after it. Every problem raises
``DeclarationError``: one line naming the file, the field and what is wrong.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pulumi
import yaml
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from components.config import RESERVED_NAMESPACES
from components.images import image_pin_problem
from components.names import NAME_PATTERN
from components.platform.helm import merge_values
from components.ratelimit import RateLimit, period_seconds

# Istio protocol selection: the Service port is named "<protocol>-api", so Istio
# never has to sniff. Only protocols a data-product API speaks are offered.
PROTOCOLS = {"http": "http", "http2": "http2", "grpc": "grpc", "grpc-web": "grpc-web", "tcp": "tcp"}
LIFECYCLES = ("experimental", "production", "deprecated")
OVERRIDABLE = ("replicas", "autoscaling", "resources", "rateLimit")
# libyaml's parser where the wheel has it: a mesh of hundreds of products parses hundreds of files.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Dataiku's API node: port 12000, health on /isAlive/, routes under /public/api/v1/<service>/.
DATAIKU_PORT = 12000
DATAIKU_HEALTH_PATH = "/isAlive/"

EGRESS_PATTERN = r"^(?=[^:]{1,253}(:|$))([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[1-9][0-9]{0,4})?$"
EGRESS_DEFAULT_PORT = 443
_QUANTITY_CPU = r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"
_QUANTITY_MEM = r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cpu", "memory"],
    "properties": {
        "cpu": {"type": "string", "pattern": _QUANTITY_CPU},
        "memory": {"type": "string", "pattern": _QUANTITY_MEM},
    },
}

DECLARATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "domain", "owner", "description", "version", "lifecycle", "image",
                 "protocol", "resources", "openapi"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "domain": {"type": "string", "pattern": NAME_PATTERN},
        "owner": {"type": "string", "minLength": 1},
        "description": {"type": "string", "minLength": 1},
        "version": {"type": "string", "pattern": r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"},
        "lifecycle": {"enum": list(LIFECYCLES)},
        "image": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
        "protocol": {"type": "string"},
        # Defaults to "<protocol>-api"; a team may name its port, and the policy pack judges the name.
        "portName": {"type": "string", "pattern": r"^([A-Za-z0-9]([-A-Za-z0-9]{0,13}[A-Za-z0-9])?)?$"},
        "appProtocol": {"type": "string", "pattern": r"^[-a-zA-Z0-9./]{1,63}$"},
        "healthPath": {"type": "string", "pattern": r"^/"},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 100},
        "autoscaling": {
            "type": "object",
            "additionalProperties": False,
            "required": ["minReplicas", "maxReplicas"],
            "properties": {
                "minReplicas": {"type": "integer", "minimum": 1, "maximum": 100},
                "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 100},
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 10, "maximum": 100},
            },
        },
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "required": ["requests", "limits"],
            "properties": {"requests": _RESOURCES, "limits": _RESOURCES},
        },
        "openapi": {"type": "string", "minLength": 1},
        "rateLimit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["requests", "period"],
            "properties": {
                "requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                "period": {"type": "string", "pattern": r"^[1-9][0-9]*(s|m|h)$"},
            },
        },
        "routePrefix": {"type": "string", "pattern": r"^/([-a-zA-Z0-9_.~]+/)*$"},
        "consumes": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "uniqueItems": True},
        # External hosts the product calls over TLS, "host" (port 443) or "host:port"; nothing else leaves the mesh.
        "egress": {"type": "array", "items": {"type": "string", "pattern": EGRESS_PATTERN}, "uniqueItems": True},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
        "files": {"type": "object", "additionalProperties": {"type": "string"},
                  "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]+$"}},
    },
    "not": {"required": ["replicas", "autoscaling"]},
}


class DeclarationError(pulumi.RunError):
    """A bad product declaration or selection; Pulumi prints it without a traceback."""


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu: int


@dataclass(frozen=True)
class Product:
    """One validated data product, with the stack's overrides applied."""

    name: str
    domain: str
    owner: str
    description: str
    version: str
    lifecycle: str
    image: str
    port: int
    protocol: str
    declared_port_name: str | None
    app_protocol: str | None
    health_path: str
    replicas: int | None
    autoscaling: Autoscaling | None
    resources: Mapping[str, Mapping[str, str]]
    openapi_path: Path
    openapi_text: str
    openapi: Mapping[str, Any]
    route_prefix: str
    rate_limit: RateLimit | None
    consumes: tuple[str, ...]
    egress: tuple[tuple[str, int], ...]  # (external host, TLS port)
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    files: Mapping[str, str]  # file name in the pod -> content
    source: Path = field(compare=False)

    @property
    def namespace(self) -> str:
        """A product runs in its domain's namespace: domains own their namespaces."""
        return self.domain

    @property
    def service_host(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"

    @property
    def mesh_url(self) -> str:
        return f"http://{self.service_host}:{self.port}"

    @property
    def port_name(self) -> str:
        """Istio's `<protocol>[-<suffix>]` form unless the declaration names it ("" leaves it unnamed)."""
        if self.declared_port_name is not None:
            return self.declared_port_name
        return f"{PROTOCOLS[self.protocol]}-api"


def upstream_env_name(product: str) -> str:
    """The environment variable a composed product reads an upstream's in-mesh URL from."""
    return "UPSTREAM_" + re.sub(r"[^A-Z0-9]", "_", product.upper()) + "_URL"


# --- parsing -----------------------------------------------------------------


def _field(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _schema_error(source: Path, doc: Any) -> DeclarationError | None:
    validator = jsonschema.Draft202012Validator(DECLARATION_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return None
    where = _field(error.absolute_path)
    message = error.message
    if error.validator == "not":
        where, message = "replicas", "set either replicas or autoscaling, not both"
    elif error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        message = f"unknown field {extra[0]!r}" if extra else message
    return DeclarationError(f"{source}: {where}: {message}")


def _fail(source: Path, where: str, problem: str) -> DeclarationError:
    return DeclarationError(f"{source}: {where}: {problem}")


def _check_image(source: Path, image: str) -> None:
    problem = image_pin_problem(image)
    if problem:
        raise _fail(source, "image", f"{image!r} {problem}")


def _load_openapi(source: Path, ref: str) -> tuple[Path, str, dict[str, Any]]:
    path = (source.parent / ref).resolve()
    try:
        text = path.read_text()
        document = yaml.load(text, Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise _fail(source, "openapi", f"{ref} does not exist") from None
    except yaml.YAMLError:
        raise _fail(source, "openapi", f"{ref} is not valid YAML or JSON") from None
    if not isinstance(document, dict):
        raise _fail(source, "openapi", f"{ref} is not an OpenAPI document")
    try:
        validate_openapi(document)
    except OpenAPIValidationError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top level)"
        raise _fail(source, "openapi", f"{ref} is not valid OpenAPI at {where}: {exc.message}") from None
    except Exception as exc:  # the validator raises other kinds for documents that are not OpenAPI at all
        raise _fail(source, "openapi", f"{ref} is not a valid OpenAPI document ({exc})") from None
    return path, text, document


def _resource_amounts(source: Path, resources: Mapping[str, Mapping[str, str]]) -> None:
    def cpu(q: str) -> float:
        return float(q[:-1]) / 1000 if q.endswith("m") else float(q)

    def mem(q: str) -> float:
        units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
        for unit, factor in units.items():
            if q.endswith(unit):
                return float(q[: -len(unit)]) * factor
        return float(q)

    req, lim = resources["requests"], resources["limits"]
    if cpu(req["cpu"]) > cpu(lim["cpu"]):
        raise _fail(source, "resources.requests.cpu", f"{req['cpu']} is above the limit {lim['cpu']}")
    if mem(req["memory"]) > mem(lim["memory"]):
        raise _fail(source, "resources.requests.memory", f"{req['memory']} is above the limit {lim['memory']}")


def _rate_limit(value: Mapping[str, Any] | None) -> RateLimit | None:
    if value is None:
        return None
    seconds = period_seconds(value["period"])  # the schema has checked the form
    assert seconds is not None
    return RateLimit(value["requests"], seconds)


def parse_declaration(source: Path, overrides: Mapping[str, Any] | None = None) -> Product:
    """Validate one declaration file, with the stack's overrides merged over it."""
    try:
        doc = yaml.load(source.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise _fail(source, "(file)", "no such declaration") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _fail(source, "(file)", f"not valid YAML{f' (line {mark.line + 1})' if mark else ''}") from None
    if not isinstance(doc, dict):
        raise _fail(source, "(top level)", "a declaration is a YAML map of fields")
    if overrides:
        if "replicas" in overrides:
            doc.pop("autoscaling", None)
        if "autoscaling" in overrides:
            doc.pop("replicas", None)
        doc = merge_values(doc, overrides)
    error = _schema_error(source, doc)
    if error:
        raise error
    if doc["name"] != source.stem:
        raise _fail(source, "name", f"{doc['name']!r} must match the file name {source.stem!r}")
    if doc["domain"] in RESERVED_NAMESPACES:
        raise _fail(source, "domain", f"{doc['domain']!r} names a platform namespace; products run in their domain's namespace")
    if doc["protocol"] not in PROTOCOLS:
        raise _fail(source, "protocol", f"{doc['protocol']!r} is not one of {', '.join(PROTOCOLS)}")
    _check_image(source, doc["image"])
    _resource_amounts(source, doc["resources"])
    autoscaling = None
    if "autoscaling" in doc:
        a = doc["autoscaling"]
        if a["minReplicas"] > a["maxReplicas"]:
            raise _fail(source, "autoscaling.minReplicas", f"{a['minReplicas']} is above maxReplicas {a['maxReplicas']}")
        autoscaling = Autoscaling(a["minReplicas"], a["maxReplicas"], a.get("targetCPUUtilizationPercentage", 70))
    if doc["name"] in doc.get("consumes", []):
        raise _fail(source, "consumes", f"{doc['name']!r} cannot consume itself")

    egress = []
    for entry in doc.get("egress", []):
        host, _, port = entry.partition(":")
        if port and int(port) > 65535:
            raise _fail(source, "egress", f"{entry!r}: the port must be 1 to 65535")
        egress.append((host, int(port or EGRESS_DEFAULT_PORT)))

    files = {}
    for name, ref in doc.get("files", {}).items():
        try:
            files[name] = (source.parent / ref).read_text()
        except FileNotFoundError:
            raise _fail(source, f"files.{name}", f"{ref} does not exist") from None
    openapi_path, openapi_text, openapi = _load_openapi(source, doc["openapi"])
    return Product(
        name=doc["name"],
        domain=doc["domain"],
        owner=doc["owner"],
        description=doc["description"],
        version=doc["version"],
        lifecycle=doc["lifecycle"],
        image=doc["image"],
        port=doc.get("port", DATAIKU_PORT),
        protocol=doc["protocol"],
        declared_port_name=doc.get("portName"),
        app_protocol=doc.get("appProtocol"),
        health_path=doc.get("healthPath", DATAIKU_HEALTH_PATH),
        replicas=None if autoscaling else doc.get("replicas", 2),
        autoscaling=autoscaling,
        resources=doc["resources"],
        openapi_path=openapi_path,
        openapi_text=openapi_text,
        openapi=openapi,
        route_prefix=doc.get("routePrefix", f"/public/api/v1/{doc['name']}/"),
        rate_limit=_rate_limit(doc.get("rateLimit")),
        consumes=tuple(doc.get("consumes", [])),
        egress=tuple(egress),
        command=tuple(doc.get("command", [])),
        args=tuple(doc.get("args", [])),
        env=dict(doc.get("env", {})),
        files=files,
        source=source,
    )


def load_products(
    directory: Path,
    selected: list[str] | tuple[str, ...],
    overrides: Mapping[str, Mapping[str, Any]],
    config_key: str = "datamesh:products",
    overrides_key: str = "datamesh:productOverrides",
) -> tuple[Product, ...]:
    """The selected products, validated, upstreams before the products that consume them."""
    for name, override in overrides.items():
        if name not in selected:
            raise DeclarationError(f"{overrides_key}: {name}: is not a selected product")
        if not isinstance(override, Mapping):
            raise DeclarationError(f"{overrides_key}: {name}: must be a map of {', '.join(OVERRIDABLE)}")
        unknown = sorted(set(override) - set(OVERRIDABLE))
        if unknown:
            raise DeclarationError(f"{overrides_key}: {name}.{unknown[0]}: cannot be overridden; only {', '.join(OVERRIDABLE)}")
    products: dict[str, Product] = {}
    for name in selected:
        source = directory / f"{name}.yaml"
        if not source.exists():
            raise DeclarationError(f"{config_key}: {name!r} has no declaration {source}")
        products[name] = parse_declaration(source, overrides.get(name))

    routes: dict[str, str] = {}
    for p in products.values():
        for upstream in p.consumes:
            if upstream not in products:
                known = "is not a selected product" if (directory / f"{upstream}.yaml").exists() else "is not a declared product"
                raise _fail(p.source, "consumes", f"{upstream!r} {known}")
        for other, prefix in routes.items():
            if p.route_prefix.startswith(prefix) or prefix.startswith(p.route_prefix):
                raise _fail(p.source, "routePrefix", f"{p.route_prefix} overlaps {other}'s {prefix}")
        routes[p.name] = p.route_prefix

    sorter = graphlib.TopologicalSorter({p.name: p.consumes for p in products.values()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        first = products[cycle[0]]
        raise _fail(first.source, "consumes", f"dependency cycle: {' -> '.join(reversed(cycle))}") from None
    return tuple(products[name] for name in order)
