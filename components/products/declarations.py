"""Data product declarations: one YAML file per product, validated before any resource exists.

Product teams own ``products/<name>.yaml`` through pull requests. A stack
selects products by name (``datamesh:products``) and may override
per-environment values (``datamesh:productOverrides``: replicas, autoscaling,
resources). The shape is a JSON Schema (``DECLARATION_SCHEMA``); meaning that
a schema cannot say (pinned images, known upstreams, no cycles, a valid
OpenAPI document that agrees with the route) is checked after it. A bad
declaration raises ``DeclarationError``: one line naming the file, then every
problem (at most ``MAX_PROBLEMS``) as "field: what is wrong", unknown fields
with a "did you mean". ``load_products`` validates every declaration in the
folder, selected or not.
Declarations are untrusted: files they name must resolve inside the products
folder, every read is bounded (``components.inputs``), patterns match whole,
and a message quotes at most a short excerpt of a value, never a file's content.
"""

from __future__ import annotations

import difflib
import functools
import graphlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pulumi
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from components.config import RESERVED_NAMESPACES
from components.images import image_pin_problem
from components.inputs import InputError, load_yaml, read_text, show
from components.names import NAME_PATTERN, is_name
from components.platform.helm import merge_values
from components.ratelimit import RateLimit, period_seconds

# Istio protocol selection: the Service port is named "<protocol>-api", so Istio
# never has to sniff. Only protocols a data-product API speaks are offered.
PROTOCOLS = {"http": "http", "http2": "http2", "grpc": "grpc", "grpc-web": "grpc-web", "tcp": "tcp"}
LIFECYCLES = ("experimental", "production", "deprecated")
# releases/mirror: a stack may run other releases than the declaration's (prod stays on the
# stable one while dev runs the canary), so promoting a release changes only Pulumi.prod.yaml.
OVERRIDABLE = ("replicas", "autoscaling", "resources", "rateLimit", "releases", "mirror")

# Dataiku's API node: port 12000, health on /isAlive/, routes under /public/api/v1/<service>/.
DATAIKU_PORT = 12000
DATAIKU_HEALTH_PATH = "/isAlive/"

EGRESS_PATTERN = r"^(?=[^:]{1,253}(:|$))([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(:[1-9][0-9]{0,4})?$"
EGRESS_DEFAULT_PORT = 443
# Kubernetes' quantity grammar (k8s.io/apimachinery resource.Quantity), unsigned: a number, then a
# binary suffix, a decimal suffix or an exponent. Note "k" (kilo) is lowercase; "K" is not a suffix.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][-+]?[0-9]{1,3})?$"
_QUANTITY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                      "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
# datamesh's bounds: Kubernetes rounds below 1m up to 1m; above these no EC2 node could schedule the pod.
QUANTITY_BOUNDS = {"cpu": (Decimal("0.001"), Decimal(512)), "memory": (Decimal(1), Decimal(16 * 2**40))}
MAX_PERIOD_SECONDS = 86400  # a rate-limit period of at most a day
MAX_RELEASES = 3
RELEASE_VERSION_PATTERN = r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]*[0-9A-Za-z])?$"
MANAGED_POLICY_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\w+=,.@/-]{1,512}$"
IAM_ACTION_PATTERN = r"^(\*|[a-z0-9-]{1,64}:[A-Za-z0-9*?]{1,128})$"
IAM_RESOURCE_PATTERN = r"^(\*|arn:aws[a-z-]*:[a-z0-9-]{1,64}:[a-z0-9-]*:([0-9]{12}|aws)?:[\x21-\x7e]{1,1024})$"
# Secrets Manager names: letters, digits and /_+=.@- (the console's rule), no trailing "-" plus 6 characters.
SECRET_NAME_PATTERN = r"^[A-Za-z0-9/_+=.@-]{1,512}$"
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cpu", "memory"],
    "properties": {
        "cpu": {"type": "string", "maxLength": 32, "pattern": QUANTITY_PATTERN},
        "memory": {"type": "string", "maxLength": 32, "pattern": QUANTITY_PATTERN},
    },
}

DECLARATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    # "image", or "releases" instead: checked after the schema.
    "required": ["name", "domain", "owner", "description", "version", "lifecycle",
                 "protocol", "resources", "openapi"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "domain": {"type": "string", "pattern": NAME_PATTERN},
        "owner": {"type": "string", "minLength": 1, "maxLength": 253},
        "description": {"type": "string", "minLength": 1, "maxLength": 4096},
        "version": {"type": "string", "maxLength": 64, "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$"},
        "lifecycle": {"enum": list(LIFECYCLES)},
        "image": {"type": "string", "minLength": 1, "maxLength": 512},
        "port": {"type": "integer", "minimum": 1024, "maximum": 65535},
        "protocol": {"type": "string"},
        # Defaults to "<protocol>-api"; a team may name its port, and the policy pack judges the name.
        "portName": {"type": "string", "pattern": r"^([A-Za-z0-9]([-A-Za-z0-9]{0,13}[A-Za-z0-9])?)?$"},
        "appProtocol": {"type": "string", "pattern": r"^[-a-zA-Z0-9./]{1,63}$"},
        "healthPath": {"type": "string", "maxLength": 256, "pattern": r"^/[-a-zA-Z0-9_.~/%]*$"},
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
        "openapi": {"type": "string", "minLength": 1, "maxLength": 256},
        "rateLimit": {
            "type": "object",
            "additionalProperties": False,
            "required": ["requests", "period"],
            "properties": {
                "requests": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
                "period": {"type": "string", "pattern": r"^[1-9][0-9]{0,4}(s|m|h)$"},
            },
        },
        "routePrefix": {"type": "string", "maxLength": 256, "pattern": r"^/([-a-zA-Z0-9_.~]+/)*$"},
        "consumes": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}, "uniqueItems": True},
        # External hosts the product calls over TLS, "host" (port 443) or "host:port"; nothing else leaves the mesh.
        "egress": {"type": "array", "items": {"type": "string", "pattern": EGRESS_PATTERN}, "uniqueItems": True},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object", "additionalProperties": {"type": "string"},
                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
        # ConfigMap keys: Kubernetes refuses "." and ".." as keys.
        "files": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 256},
                  "propertyNames": {"pattern": r"^[-._a-zA-Z0-9]{1,253}$", "not": {"enum": [".", ".."]}}},
        # Releases side by side (canaries), the traffic share of each, and shadow traffic to one of them.
        "releases": {"type": "array", "minItems": 1, "maxItems": MAX_RELEASES, "items": {
            "type": "object", "additionalProperties": False, "required": ["version", "image", "weight"],
            "properties": {
                # A label value (version, app.kubernetes.io/version): no "+", at most 63 characters.
                "version": {"type": "string", "maxLength": 63, "pattern": RELEASE_VERSION_PATTERN},
                "image": {"type": "string", "minLength": 1, "maxLength": 512},
                "weight": {"type": "integer", "minimum": 0, "maximum": 100},
            }}},
        "mirror": {"type": "object", "additionalProperties": False, "required": ["version", "percent"],
                   "properties": {"version": {"type": "string", "maxLength": 63},
                                  "percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100}}},
        # AWS access through the product's own IAM role (IRSA); wildcards need the stack's consent.
        "aws": {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
            "managedPolicyArns": {"type": "array", "maxItems": 10, "uniqueItems": True,
                                  "items": {"type": "string", "pattern": MANAGED_POLICY_ARN_PATTERN}},
            "statements": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
                "type": "object", "additionalProperties": False, "required": ["actions", "resources"],
                "properties": {
                    "actions": {"type": "array", "minItems": 1, "uniqueItems": True,
                                "items": {"type": "string", "pattern": IAM_ACTION_PATTERN}},
                    "resources": {"type": "array", "minItems": 1, "uniqueItems": True,
                                  "items": {"type": "string", "pattern": IAM_RESOURCE_PATTERN}},
                }}},
        }},
        # Environment values from AWS Secrets Manager, through the External Secrets Operator.
        "secrets": {"type": "array", "maxItems": 50, "items": {
            "type": "object", "additionalProperties": False, "required": ["env", "secretsManager"],
            "properties": {
                "env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
                "secretsManager": {"type": "object", "additionalProperties": False, "required": ["name"],
                                   "properties": {"name": {"type": "string", "pattern": SECRET_NAME_PATTERN},
                                                  "key": {"type": "string", "minLength": 1, "maxLength": 256}}},
            }}},
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
class Release:
    """One release of a product: its own Deployment, subset and share of the traffic (percent)."""

    version: str
    image: str
    weight: int

    @property
    def slug(self) -> str:
        """The version as a name part: Deployment ``<product>-<slug>``, subset ``v<slug>``."""
        return re.sub(r"[^a-z0-9]+", "-", self.version.lower()).strip("-")


@dataclass(frozen=True)
class Mirror:
    """A copy of ``percent`` of the traffic sent to release ``version``, whose answers nobody sees."""

    version: str
    percent: float


@dataclass(frozen=True)
class AwsAccess:
    """What the product's IAM role may do: managed policies and inline (actions, resources) statements."""

    managed_policy_arns: tuple[str, ...]
    statements: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]


@dataclass(frozen=True)
class SecretRef:
    """An environment variable taken from a Secrets Manager secret (a JSON ``key`` of it, or all of it)."""

    env: str
    name: str
    key: str | None


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
    releases: tuple[Release, ...] = ()  # declared releases; empty: one Deployment of image/version
    mirror: Mirror | None = None
    aws: AwsAccess | None = None
    secrets: tuple[SecretRef, ...] = ()
    # The gateway strips the route prefix (the OpenAPI servers URL carries it; the product serves bare paths).
    route_rewrite: bool = False

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


@functools.cache
def _whole(pattern: str) -> re.Pattern[str]:
    """A schema pattern as JSON Schema means it: "$" at the very end, not before a trailing newline as in Python."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    if isinstance(instance, str) and not _whole(pattern).search(instance):
        yield jsonschema.ValidationError(f"{show(instance)} does not match {pattern}")


# Draft 2020-12 with patterns matched whole (a Namespace named "customer\n" must not pass).
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


def _field(path: Any) -> str:
    parts = [str(p) for p in path]
    return ".".join(parts) if parts else "(top level)"


def _type_name(value: Any) -> str:
    return {dict: "a map", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _describe(error: jsonschema.ValidationError) -> tuple[str, str]:
    """(where, what) for a schema error, quoting at most a short excerpt of the value."""
    where, kind, expected, value = _field(error.absolute_path), error.validator, error.validator_value, error.instance
    if kind == "not" and "required" in (expected or {}):
        return "replicas", "set either replicas or autoscaling, not both"
    if kind == "additionalProperties" and isinstance(value, dict):
        extra = sorted(str(k) for k in set(value) - set(error.schema.get("properties", {})))
        return where, f"unknown field {show(extra[0])}" if extra else "unknown field"
    if kind == "required":
        missing = [k for k in expected if not isinstance(value, dict) or k not in value]
        return where, f"{missing[0]!r} is a required property" if missing else "a required field is missing"
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return where, f"must be {'an' if wanted[0] in 'aeiou' else 'a'} {wanted}, got {_type_name(value)}"
    if kind == "pattern":
        return where, f"{show(value)} does not match {expected}"
    if kind == "enum":
        return where, f"{show(value)} is not one of {', '.join(map(str, expected))}"
    if kind in ("minimum", "maximum"):
        return where, f"{show(value)} is {'less than the minimum' if kind == 'minimum' else 'greater than the maximum'} of {expected}"
    if kind in ("minLength", "maxLength"):
        return where, f"must be {'at least' if kind == 'minLength' else 'at most'} {expected} characters long"
    if kind == "propertyNames":
        return where, f"the key {show(value)} is not allowed here"
    if kind == "uniqueItems":
        return where, "lists an item twice"
    return where, f"is not valid ({kind})"


MAX_PROBLEMS = 20  # a declaration's problems reported at once; more are counted, not listed


def _did_you_mean(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, [str(k) for k in known], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _schema_problems(doc: Any, schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (field, problem) of ``doc`` against ``schema``; unknown keys get a "did you mean"."""
    problems: list[tuple[str, str]] = []
    for error in Validator(schema).iter_errors(doc):  # in the schema's order, hence stable
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            base = _field(error.absolute_path)
            for key in sorted(str(k) for k in set(error.instance) - set(known)):
                where = key if base == "(top level)" else f"{base}.{key}"
                problems.append((_plain(where), f"unknown field{_did_you_mean(key, known)}"))
            continue
        where, message = _describe(error)
        if error.validator == "propertyNames":  # name the offending key, not the map
            bad = [k for k in error.instance if list(Validator(error.validator_value).iter_errors(k))]
            message = f"the key {show(bad[0])} is not allowed here" if bad else message
        problems.append((where, message))
    return list(dict.fromkeys(problems))


def _joined(prefix: str, problems: list[tuple[str, str]]) -> DeclarationError:
    """All problems on one line: "<file>: <field>: <problem>; <field>: <problem> (and N more)"."""
    shown = "; ".join(f"{where}: {what}" for where, what in problems[:MAX_PROBLEMS])
    more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
    return DeclarationError(f"{prefix}: {shown}{more}")


def _schema_error(source: Path, doc: Any, schema: Mapping[str, Any] = DECLARATION_SCHEMA,
                  prefix: str | None = None) -> DeclarationError | None:
    problems = _schema_problems(doc, schema)
    return _joined(prefix or str(source), problems) if problems else None


class _Problems:
    """Collects a declaration's meaning problems so that all of them are reported at once."""

    def __init__(self, source: Path, overridden: frozenset[str] = frozenset(), overrides_prefix: str = "") -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []
        # A problem in a field the stack overrides is the stack's to fix: name the stack key, not the file.
        self.overridden = overridden
        self.overrides_prefix = overrides_prefix

    def add(self, where: str, problem: str) -> None:
        self.items.append((where, problem))

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run a check that raises ``DeclarationError`` for this file; keep its problem and go on."""
        try:
            yield
        except DeclarationError as exc:
            text = str(exc).removeprefix(f"{self.source}: ")
            where, _, what = text.partition(": ")
            self.add(where, what)

    def raise_any(self) -> None:
        if not self.items:
            return
        stack = [(w, p) for w, p in self.items if re.split(r"[.\[]", w, maxsplit=1)[0] in self.overridden]
        own = [item for item in self.items if item not in stack]
        parts = [str(_joined(prefix, items)) for prefix, items in
                 ((self.overrides_prefix, stack), (str(self.source), own)) if items]
        raise DeclarationError("; ".join(parts))


def _fail(source: Path, where: str, problem: str) -> DeclarationError:
    return DeclarationError(f"{source}: {where}: {problem}")


def _plain(value: Any) -> str:
    """A short, printable name as it is; anything else quoted and cut short."""
    return value if isinstance(value, str) and _PLAIN.fullmatch(value) else show(value)


_PLAIN = re.compile(r"[-\w./]{1,100}", re.ASCII)


def _read(source: Path, where: str, ref: str, root: Path) -> tuple[Path, str]:
    """A file a declaration names, relative to it, contained in the products folder ``root``."""
    path = source.parent / ref
    try:
        return path.resolve(), read_text(path, root)
    except InputError as exc:
        problem = "does not exist" if str(exc) == "no such file" else str(exc)
        raise _fail(source, where, f"{_plain(ref)} {problem}") from None


def _check_image(source: Path, image: str) -> None:
    problem = image_pin_problem(image)
    if problem:
        raise _fail(source, "image", f"{show(image)} {problem}")


def _load_openapi(source: Path, ref: str, root: Path) -> tuple[Path, str, dict[str, Any]]:
    path, text = _read(source, "openapi", ref, root)
    try:
        document = load_yaml(text)
    except InputError as exc:
        raise _fail(source, "openapi", f"{_plain(ref)}: {exc}") from None
    if not isinstance(document, dict):
        raise _fail(source, "openapi", f"{_plain(ref)} is not an OpenAPI document")
    try:
        validate_openapi(document)
    except OpenAPIValidationError as exc:
        # Name the place and the rule broken; never the document's text (it reaches review comments).
        where = _plain("/".join(str(p) for p in exc.path) or "(top level)")
        raise _fail(source, "openapi", f"{_plain(ref)} is not valid OpenAPI at {where} (fails {exc.validator!r})") from None
    except Exception:  # the validator raises other kinds for documents that are not OpenAPI at all
        raise _fail(source, "openapi", f"{_plain(ref)} is not a valid OpenAPI document") from None
    return path, text, document


def _releases(source: Path, doc: Mapping[str, Any]) -> tuple[tuple[Release, ...], Mirror | None]:
    if "image" not in doc and "releases" not in doc:
        raise _fail(source, "image", "'image' is a required property (or 'releases')")
    if "image" in doc and "releases" in doc:
        raise _fail(source, "releases", "set either image or releases, not both")
    if "releases" not in doc:
        _check_image(source, doc["image"])
        if "mirror" in doc:
            raise _fail(source, "mirror", "needs releases: mirror to a release declared beside the others")
        return (), None
    releases = tuple(Release(r["version"], r["image"], r["weight"]) for r in doc["releases"])
    slugs: set[str] = set()
    for i, release in enumerate(releases):
        if release.slug in slugs:
            raise _fail(source, f"releases[{i}].version", f"{release.version!r} is declared twice")
        slugs.add(release.slug)
        problem = image_pin_problem(release.image)
        if problem:
            raise _fail(source, f"releases[{i}].image", f"{show(release.image)} {problem}")
    total = sum(r.weight for r in releases)
    if total != 100:
        raise _fail(source, "releases", f"the weights add up to {total}, not 100")
    mirror = None
    if "mirror" in doc:
        mirror = Mirror(doc["mirror"]["version"], doc["mirror"]["percent"])
        target = next((r for r in releases if r.version == mirror.version), None)
        if target is None:
            raise _fail(source, "mirror.version", f"{show(mirror.version)} is not a declared release")
        if target.weight:
            raise _fail(source, "mirror.version", f"{mirror.version!r} has weight {target.weight}; "
                        "a mirrored release answers no one, so its weight is 0")
    return releases, mirror


def _aws(doc: Mapping[str, Any]) -> AwsAccess | None:
    if "aws" not in doc:
        return None
    value = doc["aws"]
    return AwsAccess(tuple(value.get("managedPolicyArns", [])),
                     tuple((tuple(s["actions"]), tuple(s["resources"])) for s in value.get("statements", [])))


# Managed policies that grant everything, or the power to grant it: as broad as "*".
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")


def _broad_resource(resource: str) -> bool:
    """Whether an ARN names every resource of a kind rather than the ones a product uses.

    A ``*`` in the partition, service, region or account, or in the first part of the
    resource (an S3 bucket name; elsewhere the resource type or the name after it:
    ``table/*``), is broad; one after a concrete name (``bucket/*``: the objects of one
    bucket, ``table/orders/index/*``) is not.
    """
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6 or any("*" in part or "?" in part for part in parts[1:5]):
        return True
    segments = re.split(r"[/:]", parts[5])
    named = segments[:1] if parts[2] == "s3" else segments[:2]
    return any("*" in s or "?" in s for s in named)


def wildcard_problem(product: Product) -> tuple[str, str] | None:
    """(field, problem) for the first wildcard in a product's AWS access; None when it names what it uses."""
    if product.aws is None:
        return None
    for i, arn in enumerate(product.aws.managed_policy_arns):
        name = arn.rsplit("/", 1)[-1]
        # AWS's own *FullAccess policies grant <service>:* on every resource.
        if name in BROAD_MANAGED_POLICIES or (":iam::aws:policy/" in arn and name.endswith("FullAccess")):
            return f"aws.managedPolicyArns[{i}]", f"{arn} grants every action of a service on every resource"
    for i, (actions, resources) in enumerate(product.aws.statements):
        for action in actions:
            if "*" in action or "?" in action:
                return f"aws.statements[{i}].actions", f"{action!r} is a wildcard action; name the actions"
        for resource in resources:
            if _broad_resource(resource):
                return f"aws.statements[{i}].resources", f"{resource!r} names every resource of a kind; name the ARNs"
    return None


def _secrets(source: Path, doc: Mapping[str, Any]) -> tuple[SecretRef, ...]:
    refs, taken = [], set(doc.get("env", {}))
    for i, entry in enumerate(doc.get("secrets", [])):
        if entry["env"] in taken:
            raise _fail(source, f"secrets[{i}].env", f"{entry['env']!r} is set twice")
        taken.add(entry["env"])
        refs.append(SecretRef(entry["env"], entry["secretsManager"]["name"], entry["secretsManager"].get("key")))
    return tuple(refs)


def quantity(text: str) -> Decimal | None:
    """A Kubernetes quantity's value (cpu in cores, memory in bytes); None when it is not one."""
    match = re.fullmatch(QUANTITY_PATTERN.strip("^$"), text)
    if match is None:
        return None
    suffix = match.group(3) or ""
    try:
        number = Decimal(match.group(1))
        if suffix[:1] in ("e", "E") and len(suffix) > 1:
            return number.scaleb(int(suffix[1:]))
        return number * _QUANTITY_SUFFIXES.get(suffix, 1)
    except (InvalidOperation, ValueError):
        return None


def _resource_amounts(source: Path, resources: Mapping[str, Mapping[str, str]]) -> None:
    amounts: dict[tuple[str, str], Decimal] = {}
    for part in ("requests", "limits"):
        for kind in ("cpu", "memory"):
            value = quantity(resources[part][kind])
            low, high = QUANTITY_BOUNDS[kind]
            if value is None or not low <= value <= high:
                raise _fail(source, f"resources.{part}.{kind}", f"{show(resources[part][kind])} is outside "
                            f"{'1m to 512 cores' if kind == 'cpu' else '1 byte to 16Ti'}")
            amounts[(part, kind)] = value
    for kind in ("cpu", "memory"):
        if amounts[("requests", kind)] > amounts[("limits", kind)]:
            raise _fail(source, f"resources.requests.{kind}",
                        f"{resources['requests'][kind]} is above the limit {resources['limits'][kind]}")


def _rate_limit(source: Path, value: Mapping[str, Any] | None) -> RateLimit | None:
    if value is None:
        return None
    seconds = period_seconds(value["period"])
    if seconds is None:
        raise _fail(source, "rateLimit.period", f"{show(value['period'])} must be from 1s to 24h")
    return RateLimit(value["requests"], seconds)


def _route_rewrite(source: Path, ref: str, prefix: str, document: Mapping[str, Any]) -> bool:
    """Whether the gateway must strip ``prefix``: the OpenAPI document and the route must name the same URLs.

    The document's ``paths`` are what the product serves; ``servers`` say where the gateway publishes them.
    Without servers (or with a server at "/"), every path starts with the route prefix and the gateway
    forwards it as it is. With every server URL's path equal to the prefix, the product serves the bare
    paths and the gateway rewrites the prefix to "/". Anything else names URLs the gateway does not serve.
    """
    bases = set()
    for i, server in enumerate(document.get("servers") or []):
        url = str(server.get("url", "")) if isinstance(server, Mapping) else ""
        if "{" in url:
            raise _fail(source, "openapi", f"{_plain(ref)}: servers[{i}].url: server variables are not supported; "
                        f"write the path {prefix.rstrip('/')} or leave servers out")
        bases.add(urlsplit(url).path.rstrip("/"))
    bases = bases or {""}
    if len(bases) > 1:
        raise _fail(source, "openapi", f"{_plain(ref)}: servers name different paths ({', '.join(sorted(map(_plain, bases)))}); "
                    "the gateway serves one route")
    base = bases.pop()
    if base and base != prefix.rstrip("/"):
        raise _fail(source, "openapi", f"{_plain(ref)}: servers url path {_plain(base)} is not the route prefix {prefix}")
    if not base:
        outside = [str(path) for path in document.get("paths") or {} if not str(path).startswith(prefix)]
        if outside:
            raise _fail(source, "openapi", f"{_plain(ref)}: paths: {_plain(outside[0])} is outside the route {prefix}; "
                        f"start every path with it, or set servers: [{{url: {prefix.rstrip('/')}}}] "
                        "to have the gateway strip it")
    return bool(base)


def _without_required(schema: Any) -> Any:
    """A schema for a partial value: the same shapes, nothing required."""
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


OVERRIDE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {k: _without_required(DECLARATION_SCHEMA["properties"][k]) for k in OVERRIDABLE},
    "not": {"required": ["replicas", "autoscaling"]},
}


def parse_declaration(source: Path, overrides: Mapping[str, Any] | None = None, root: Path | None = None,
                      overrides_key: str = "datamesh:productOverrides") -> Product:
    """Validate one declaration file, with the stack's overrides merged over it.

    Every file it names (``openapi``, ``files``) must resolve inside ``root``
    (default: the declaration's own folder).
    """
    root = root if root is not None else source.parent
    try:
        doc = load_yaml(read_text(source, root))
    except InputError as exc:
        raise _fail(source, "(file)", str(exc)) from None
    if not isinstance(doc, dict):
        raise _fail(source, "(top level)", "a declaration is a YAML map of fields")
    if overrides:
        if "replicas" in overrides:
            doc.pop("autoscaling", None)
        if "autoscaling" in overrides:
            doc.pop("replicas", None)
        if "releases" in overrides:  # the stack's releases replace the declaration's image or releases
            doc.pop("image", None)
            doc.pop("mirror", None)
        doc = merge_values(doc, overrides)
    error = _schema_error(source, doc)
    if error:
        raise error
    problems = _Problems(source, frozenset(overrides or {}), f"{overrides_key}: {source.stem}")
    if doc["name"] != source.stem:
        problems.add("name", f"{doc['name']!r} must match the file name {show(source.stem)}")
    if doc["domain"] in RESERVED_NAMESPACES:
        problems.add("domain", f"{doc['domain']!r} names a platform namespace; products run in their domain's namespace")
    if doc["protocol"] not in PROTOCOLS:
        problems.add("protocol", f"{show(doc['protocol'])} is not one of {', '.join(PROTOCOLS)}")
    releases: tuple[Release, ...] = ()
    mirror: Mirror | None = None
    with problems.collect():  # checks the image of each release (or the one image) too
        releases, mirror = _releases(source, doc)
    with problems.collect():
        _resource_amounts(source, doc["resources"])
    autoscaling = None
    if "autoscaling" in doc:
        a = doc["autoscaling"]
        if a["minReplicas"] > a["maxReplicas"]:
            problems.add("autoscaling.minReplicas", f"{a['minReplicas']} is above maxReplicas {a['maxReplicas']}")
        autoscaling = Autoscaling(a["minReplicas"], a["maxReplicas"], a.get("targetCPUUtilizationPercentage", 70))
    if doc["name"] in doc.get("consumes", []):
        problems.add("consumes", f"{doc['name']!r} cannot consume itself")
    rate_limit = None
    with problems.collect():
        rate_limit = _rate_limit(source, doc.get("rateLimit"))

    egress: list[tuple[str, int]] = []
    for entry in doc.get("egress", []):
        host, _, port = entry.partition(":")
        if port and int(port) > 65535:
            problems.add("egress", f"{entry!r}: the port must be 1 to 65535")
        if host in (h for h, _ in egress):  # one ServiceEntry per host: two would fight over it in Istio
            problems.add("egress", f"{host!r} is declared twice; declare each external host once")
            continue
        egress.append((host, int(port or EGRESS_DEFAULT_PORT)))

    files: dict[str, str] = {}
    for name, ref in doc.get("files", {}).items():
        with problems.collect():
            files[name] = _read(source, f"files.{name}", ref, root)[1]
    route_prefix = doc.get("routePrefix", f"/public/api/v1/{doc['name']}/")
    openapi_path, openapi_text, openapi, rewrite = Path(), "", {}, False
    with problems.collect():
        openapi_path, openapi_text, openapi = _load_openapi(source, doc["openapi"], root)
        rewrite = _route_rewrite(source, doc["openapi"], route_prefix, openapi)
    secrets: tuple[SecretRef, ...] = ()
    with problems.collect():
        secrets = _secrets(source, doc)
    problems.raise_any()
    return Product(
        name=doc["name"],
        domain=doc["domain"],
        owner=doc["owner"],
        description=doc["description"],
        version=doc["version"],
        lifecycle=doc["lifecycle"],
        image=doc["image"] if not releases else releases[0].image,
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
        route_prefix=route_prefix,
        rate_limit=rate_limit,
        consumes=tuple(doc.get("consumes", [])),
        egress=tuple(egress),
        command=tuple(doc.get("command", [])),
        args=tuple(doc.get("args", [])),
        env=dict(doc.get("env", {})),
        files=files,
        source=source,
        releases=releases,
        mirror=mirror,
        aws=_aws(doc),
        secrets=secrets,
        route_rewrite=rewrite,
    )


def load_products(
    directory: Path,
    selected: list[str] | tuple[str, ...],
    overrides: Mapping[str, Mapping[str, Any]],
    config_key: str = "datamesh:products",
    overrides_key: str = "datamesh:productOverrides",
    allow_wildcard_iam: bool | frozenset[str] = False,
) -> tuple[Product, ...]:
    """The selected products, validated, upstreams before the products that consume them.

    ``allow_wildcard_iam``: True, or the products, whose AWS access may use wildcards.
    Every other ``*.yaml`` declaration in ``directory`` is validated too (without overrides), selected or not.
    """
    for name in selected:
        if not is_name(name):  # a name, never a path: products/<name>.yaml and nothing else
            raise DeclarationError(f"{config_key}: {show(name)} is not a product name")
    for name, override in overrides.items():
        if name not in selected:
            raise DeclarationError(f"{overrides_key}: {_plain(name)}: is not a selected product")
        if not isinstance(override, Mapping):
            raise DeclarationError(f"{overrides_key}: {name}: must be a map of {', '.join(OVERRIDABLE)}")
        unknown = sorted(str(k) for k in set(override) - set(OVERRIDABLE))
        if unknown:
            raise DeclarationError(f"{overrides_key}: {name}.{_plain(unknown[0])}: cannot be overridden; only {', '.join(OVERRIDABLE)}")
        # The stack's values are checked as the stack's, so an error names the stack key, not the product's file.
        error = _schema_error(directory, override, OVERRIDE_SCHEMA, prefix=f"{overrides_key}: {name}")
        if error:
            raise error
    products: dict[str, Product] = {}
    for name in selected:
        source = directory / f"{name}.yaml"
        if not source.is_file():
            raise DeclarationError(f"{config_key}: {name!r} has no declaration {source}")
        products[name] = parse_declaration(source, overrides.get(name), root=directory, overrides_key=overrides_key)
    # A declaration no stack selects yet is checked all the same: the pull request that adds it is its review.
    for source in sorted(directory.glob("*.yaml")):
        if source.stem not in products:
            unselected = parse_declaration(source, root=directory)
            for upstream in unselected.consumes:
                if not (directory / f"{upstream}.yaml").is_file():
                    raise _fail(source, "consumes", f"{upstream!r} is not a declared product")
            problem = None if allow_wildcard_iam is True else wildcard_problem(unselected)
            if problem:
                raise _fail(source, problem[0], f"{problem[1]} (or allow it: datamesh:allowWildcardIam)")

    for p in products.values():
        if allow_wildcard_iam is True or p.name in (allow_wildcard_iam or ()):
            continue
        problem = wildcard_problem(p)
        if problem:
            raise _fail(p.source, problem[0], f"{problem[1]} (or allow it: datamesh:allowWildcardIam)")

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
