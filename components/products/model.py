"""The validated declaration: a ``Product`` and its parts, immutable, with the stack's overrides applied."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.documents import DocumentView
from components.products.schema import PROTOCOLS
from components.ratelimit import RateLimit


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
    openapi: DocumentView
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
