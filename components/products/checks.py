"""What a declaration means, checked field by field after the schema.

A check returns its ``Problem`` (where, what), or None. A step that must produce a
value (a file's text, an OpenAPI document, a rate limit, whether the gateway rewrites
the route) raises ``Invalid`` with its problem instead. Files a declaration names must
resolve inside the products folder, and every read is bounded (``components.inputs``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlsplit

from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from components.documents import Document, DocumentView
from components.images import image_pin_problem
from components.inputs import InputError, load_yaml, read_text, show
from components.problems import did_you_mean
from components.products.model import Mirror, Release, SecretRef
from components.products.problems import Invalid, Problem, plain
from components.products.schema import QUANTITY_PATTERN
from components.ratelimit import RateLimit, period_seconds

_QUANTITY_SUFFIXES: dict[str, Decimal | int] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                      "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
# datamesh's bounds: Kubernetes rounds below 1m up to 1m; above these no EC2 node could schedule the pod.
QUANTITY_BOUNDS = {"cpu": (Decimal("0.001"), Decimal(512)), "memory": (Decimal(1), Decimal(16 * 2**40))}


# --- files the declaration names ---------------------------------------------------


def read_file(source: Path, where: str, ref: str, root: Path) -> tuple[Path, str]:
    """A file a declaration names, relative to it, contained in the products folder ``root``."""
    path = source.parent / ref
    try:
        return path.resolve(), read_text(path, root)
    except InputError as exc:
        problem = "does not exist" if str(exc) == "no such file" else str(exc)
        raise Invalid(where, f"{plain(ref)} {problem}") from None


def load_openapi(source: Path, ref: str, root: Path) -> tuple[Path, str, Document]:
    """The OpenAPI document ``ref`` names: its path, text and a valid document."""
    path, text = read_file(source, "openapi", ref, root)
    try:
        document = load_yaml(text)
    except InputError as exc:
        raise Invalid("openapi", f"{plain(ref)}: {exc}") from None
    if not isinstance(document, dict):
        raise Invalid("openapi", f"{plain(ref)} is not an OpenAPI document")
    try:
        validate_openapi(document)
    except OpenAPIValidationError as exc:
        # Name the place and the rule broken; never the document's text (it reaches review comments).
        where = plain("/".join(str(p) for p in exc.path) or "(top level)")
        raise Invalid("openapi", f"{plain(ref)} is not valid OpenAPI at {where} (fails {exc.validator!r})") from None
    except Exception:  # the validator raises other kinds for documents that are not OpenAPI at all
        raise Invalid("openapi", f"{plain(ref)} is not a valid OpenAPI document") from None
    return path, text, document


def _server_bases(ref: str, prefix: str, document: DocumentView) -> set[str]:
    """The path of every server URL the document names ("" without servers)."""
    bases = set()
    for i, server in enumerate(document.get("servers") or []):
        url = str(server.get("url", "")) if isinstance(server, Mapping) else ""
        if "{" in url:
            raise Invalid("openapi", f"{plain(ref)}: servers[{i}].url: server variables are not supported; "
                          f"write the path {prefix.rstrip('/')} or leave servers out")
        bases.add(urlsplit(url).path.rstrip("/"))
    return bases or {""}


def route_rewrite(ref: str, prefix: str, document: DocumentView) -> bool:
    """Whether the gateway must strip ``prefix``: the OpenAPI document and the route must name the same URLs.

    The document's ``paths`` are what the product serves; ``servers`` say where the gateway publishes them.
    Without servers (or with a server at "/"), every path starts with the route prefix and the gateway
    forwards it as it is. With every server URL's path equal to the prefix, the product serves the bare
    paths and the gateway rewrites the prefix to "/". Anything else names URLs the gateway does not serve.
    """
    bases = _server_bases(ref, prefix, document)
    if len(bases) > 1:
        raise Invalid("openapi", f"{plain(ref)}: servers name different paths ({', '.join(sorted(map(plain, bases)))}); "
                      "the gateway serves one route")
    base = bases.pop()
    if base and base != prefix.rstrip("/"):
        raise Invalid("openapi", f"{plain(ref)}: servers url path {plain(base)} is not the route prefix {prefix}")
    if not base:
        outside = [str(path) for path in document.get("paths") or {} if not str(path).startswith(prefix)]
        if outside:
            raise Invalid("openapi", f"{plain(ref)}: paths: {plain(outside[0])} is outside the route {prefix}; "
                          f"start every path with it, or set servers: [{{url: {prefix.rstrip('/')}}}] "
                          "to have the gateway strip it")
    return bool(base)


# --- images and releases ---------------------------------------------------------------


def image_problem(where: str, image: str) -> Problem | None:
    problem = image_pin_problem(image)
    return Problem(where, f"{show(image)} {problem}") if problem else None


def releases_of(doc: DocumentView) -> tuple[tuple[Release, ...], Mirror | None]:
    """The declared releases and mirror (none: one Deployment of ``image``)."""
    releases = tuple(Release(r["version"], r["image"], r["weight"]) for r in doc.get("releases", []))
    mirror = Mirror(doc["mirror"]["version"], doc["mirror"]["percent"]) if releases and "mirror" in doc else None
    return releases, mirror


def release_problem(doc: DocumentView) -> Problem | None:
    """The first problem of the image, or of the releases and the mirror; checks each release's image."""
    if "image" not in doc and "releases" not in doc:
        return Problem("image", "'image' is a required property (or 'releases')")
    if "image" in doc and "releases" in doc:
        return Problem("releases", "set either image or releases, not both")
    if "releases" not in doc:
        mirror_problem = Problem("mirror", "needs releases: mirror to a release declared beside the others")
        return image_problem("image", doc["image"]) or (mirror_problem if "mirror" in doc else None)
    releases, mirror = releases_of(doc)
    slugs: set[str] = set()
    for i, release in enumerate(releases):
        if release.slug in slugs:
            return Problem(f"releases[{i}].version", f"{release.version!r} is declared twice")
        slugs.add(release.slug)
        problem = image_problem(f"releases[{i}].image", release.image)
        if problem:
            return problem
    total = sum(r.weight for r in releases)
    if total != 100:
        return Problem("releases", f"the weights add up to {total}, not 100")
    return None if mirror is None else _mirror_problem(mirror, releases)


def _mirror_problem(mirror: Mirror, releases: tuple[Release, ...]) -> Problem | None:
    target = next((r for r in releases if r.version == mirror.version), None)
    if target is None:
        return Problem("mirror.version", f"{show(mirror.version)} is not a declared release"
                                         f"{did_you_mean(str(mirror.version), [r.version for r in releases])}")
    if target.weight:
        return Problem("mirror.version", f"{mirror.version!r} has weight {target.weight}; "
                       "a mirrored release answers no one, so its weight is 0")
    return None


# --- quantities, rate limits, secrets ----------------------------------------------


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


def resource_problem(resources: Mapping[str, Mapping[str, str]]) -> Problem | None:
    """The first request or limit out of bounds, or a request above its limit."""
    amounts: dict[tuple[str, str], Decimal] = {}
    for part in ("requests", "limits"):
        for kind in ("cpu", "memory"):
            value = quantity(resources[part][kind])
            low, high = QUANTITY_BOUNDS[kind]
            if value is None or not low <= value <= high:
                return Problem(f"resources.{part}.{kind}", f"{show(resources[part][kind])} is outside "
                               f"{'1m to 512 cores' if kind == 'cpu' else '1 byte to 16Ti'}")
            amounts[(part, kind)] = value
    for kind in ("cpu", "memory"):
        if amounts[("requests", kind)] > amounts[("limits", kind)]:
            return Problem(f"resources.requests.{kind}",
                           f"{resources['requests'][kind]} is above the limit {resources['limits'][kind]}")
    return None


def rate_limit(value: DocumentView | None) -> RateLimit | None:
    if value is None:
        return None
    seconds = period_seconds(value["period"])
    if seconds is None:
        raise Invalid("rateLimit.period", f"{show(value['period'])} must be from 1s to 24h")
    return RateLimit(value["requests"], seconds)


def secret_refs(doc: DocumentView) -> tuple[SecretRef, ...]:
    """The environment variables taken from Secrets Manager; one the declaration already sets is a problem."""
    refs, taken = [], set(doc.get("env", {}))
    for i, entry in enumerate(doc.get("secrets", [])):
        if entry["env"] in taken:
            raise Invalid(f"secrets[{i}].env", f"{entry['env']!r} is set twice")
        taken.add(entry["env"])
        refs.append(SecretRef(entry["env"], entry["secretsManager"]["name"], entry["secretsManager"].get("key")))
    return tuple(refs)
