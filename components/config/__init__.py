"""Stack configuration: one schema, parsed and validated before any resource exists.

Every ``datamesh:*`` key the program reads is declared once, in ``SCHEMA``, with
its type, default and description (``Pulumi.yaml`` declares the same keys for
the CLI; a test keeps the two in step). ``load_settings`` turns the raw strings
Pulumi hands the program into an immutable ``Settings``; any bad value raises
``ConfigError`` with one line naming the key. Only ``SECRET_KEYS`` may be (and
must be) secret: a ``secure:`` value on any other key is refused before a
message could quote it (docs/reference.md, "Secrets: the secure: rule").
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from components.config import cluster_kind as _kind
from components.config import groups as _groups
from components.config import istio as _istio
from components.config.schema import (
    ADAPTERS,
    CAPACITY_TYPES,
    LOG_TYPES,
    NAMESPACE,
    NAT_MODES,
    RESERVED_NAMESPACES,
    SCHEMA,
    SECRET_KEYS,
    ConfigError,
    Key,
)
from components.config.settings import (
    NO_ENDPOINT,
    NO_NETWORK,
    NO_NODES,
    ClusterSettings,
    EdgeSettings,
    EndpointSettings,
    GovernanceSettings,
    JsonMap,
    NetworkSettings,
    NodeSettings,
    RateLimitSettings,
    Settings,
)
from components.config.values import flag, parse, text

__all__ = [
    "ADAPTERS", "CAPACITY_TYPES", "LOG_TYPES", "NAMESPACE", "NAT_MODES", "RESERVED_NAMESPACES", "SCHEMA", "SECRET_KEYS",
    "ClusterSettings", "ConfigError", "EdgeSettings", "EndpointSettings", "GovernanceSettings", "JsonMap", "Key",
    "NetworkSettings", "NodeSettings", "RateLimitSettings", "Settings", "from_pulumi", "load_settings", "raw_config",
    "secret_config_keys",
]


def load_settings(raw: Mapping[str, str], stack: str, region: str | None, secret: frozenset[str] = frozenset()) -> Settings:
    """Validate the ``datamesh:*`` config map (``raw``, keys without namespace; ``secret``: which are secrets) and ``aws:region``."""
    _groups.check_keys(raw, secret)
    stack_kind = _kind.kind(raw)
    _kind.refuse_foreign_keys(stack_kind, raw)
    skipped = _kind.skipped(stack_kind)
    v = {key: parse(key, spec, raw.get(key)) for key, spec in SCHEMA.items() if key not in skipped}
    v.update({key: SCHEMA[key].default for key in skipped})
    existing = stack_kind == "existing"
    region = (_groups.region(region) if region or not existing else "")
    cluster_name = _groups.cluster_name(v, stack)
    k8s, support, addon_versions = _groups.releases(v, eks=not existing)
    istio = _istio.istio(v, k8s, existing=_kind.istio_mode(v, stack_kind) == "existing")
    if existing:
        network, nodes, endpoint = NO_NETWORK, NO_NODES, NO_ENDPOINT
    else:
        network, nodes, endpoint = _groups.network(v, region), _groups.nodes(v), _groups.endpoint(v)
    mesh_namespaces, tags = _groups.mesh_namespaces(v), _groups.tags(v)
    products, allow_wildcard_iam = _groups.products(v)
    governance = _groups.governance(v, raw, secret)
    edge = _groups.edge(v, region)
    return Settings(
        stack=stack, region=region, cluster_name=cluster_name, kubernetes_version=k8s,
        eks_support_type=support, eks_addon_versions=addon_versions, istio=istio,
        network=network, nodes=nodes, endpoint=endpoint, edge=edge, governance=governance,
        mesh_namespaces=mesh_namespaces, tags=tags, products=products, product_overrides=_groups.overrides(v),
        allow_wildcard_iam=allow_wildcard_iam, secret_keys=frozenset(k for k in secret if k in SECRET_KEYS),
        source_url=_groups.source_url(text(v, "sourceUrl")), protect=flag(v, "protect"),
        warnings=() if existing else _groups.support_warnings(k8s, support),
        cluster=_kind.cluster(v, stack_kind, region),
    )


def raw_config(namespace: str = NAMESPACE) -> dict[str, str]:
    """Every ``<namespace>:*`` value the Pulumi runtime was given, keys without the namespace.

    ``pulumi.Config`` cannot list keys, and unknown keys must be refused, so this
    reads the same two places ``pulumi.Config`` reads from.
    """
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{namespace}:"
    return {k[len(prefix):]: str(v) for k, v in merged.items() if k.startswith(prefix)}


def secret_config_keys(namespace: str = NAMESPACE) -> frozenset[str]:
    """The ``<namespace>:*`` keys the runtime was told are secrets, without the namespace."""
    from pulumi.runtime import config as runtime_config

    from_env = set(runtime_config.get_config_secret_keys_env())
    prefix = f"{namespace}:"
    return frozenset(key for key in raw_config(namespace)
                     if f"{prefix}{key}" in from_env or runtime_config.is_config_secret(f"{prefix}{key}"))


def from_pulumi() -> Settings:
    """Settings for the running stack, from the Pulumi runtime's configuration."""
    return load_settings(raw_config(), pulumi.get_stack(), pulumi.Config("aws").get("region"), secret_config_keys())
