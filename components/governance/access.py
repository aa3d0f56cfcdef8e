"""Who may call which product, with which key, how often: pure parsing and validation.

Consumers are declared in ``datamesh:consumers`` (which products, which
rate-limit tier); their keys live apart, in ``datamesh:apiKeys``, which must be
a Pulumi secret (``pulumi config set --secret --path 'datamesh:apiKeys.<consumer>[0]' <key>``).
Several keys per consumer allow rotation. Error messages name consumers and
positions, never a key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from components.config import Settings
from components.config.schema import UNDECRYPTED as UNDECRYPTED
from components.config.values import fail
from components.documents import DocumentView
from components.names import is_name
from components.problems import did_you_mean
from components.products.declarations import Product
from components.ratelimit import SERVICE_UNITS, RateLimit, period_seconds, service_unit

# Basic-auth usernames cannot hold ':'; a key long enough not to be guessed.
_KEY = re.compile(r"^[A-Za-z0-9._~-]{24,256}$")


@dataclass(frozen=True)
class Consumer:
    name: str
    products: tuple[str, ...]
    tier: str | None
    keys: tuple[str, ...] = field(repr=False)  # plaintext here; the cluster gets only their digests


# An undecrypted key (UNDECRYPTED, components/config/schema.py) is printed in the repository: the gateway must accept none.


def is_undecrypted(key: str) -> bool:
    return key.startswith(UNDECRYPTED)


def key_salt(cluster_name: str) -> str:
    """The salt of a cluster's key digests: public, stable across runs, different per cluster.

    Its job is only to make digests differ between clusters, so no table
    precomputed for one serves another; keys themselves must be random.
    """
    return hashlib.sha256(f"datamesh api keys {cluster_name}".encode()).hexdigest()[:32]


def key_digest(key: str, salt: str) -> str:
    """What the cluster holds for a key: hex SHA-256 of salt followed by key (the gateway's Lua computes the same)."""
    return hashlib.sha256((salt + key).encode()).hexdigest()


def parse_rate_limit(key: str, value: object) -> RateLimit:
    """``{requests: 2, period: 1m}`` into a RateLimit; ``key`` names where it came from."""
    if not isinstance(value, Mapping) or set(value) != {"requests", "period"}:
        raise fail(key, "must be a map with exactly requests and period, e.g. {requests: 2, period: 1m}")
    requests, period = value["requests"], value["period"]
    if not isinstance(requests, int) or isinstance(requests, bool) or not 1 <= requests <= 1_000_000:
        raise fail(key, f"requests must be a whole number from 1 to 1000000, got {json.dumps(requests)}")
    seconds = period_seconds(str(period))
    if seconds is None:
        raise fail(key, f"period must be like 30s, 1m or 1h (24h at most), got {json.dumps(period)[:60]}")
    return RateLimit(requests, seconds)


def parse_tiers(raw: DocumentView) -> dict[str, RateLimit]:
    tiers = {}
    for name, value in raw.items():
        if not is_name(name):
            raise fail("rateLimitTiers", f"{name!r} must be a lowercase name")
        tiers[name] = parse_rate_limit(f"rateLimitTiers.{name}", value)
    return tiers


def parse_consumers(
    raw_consumers: DocumentView,
    raw_keys: DocumentView,
    tiers: Mapping[str, RateLimit],
    products: set[str],
) -> tuple[Consumer, ...]:
    """Validate consumers against the selected products and tiers, and attach their keys."""
    consumers = []
    for name, spec in raw_consumers.items():
        if not is_name(name):
            raise fail("consumers", f"{name!r} must be a lowercase name (letters, digits, '-')")
        if not isinstance(spec, Mapping) or not set(spec) <= {"products", "tier"} or "products" not in spec:
            raise fail(f"consumers.{name}", "must be a map with products (a list) and, optionally, tier")
        wanted = spec["products"]
        if not isinstance(wanted, list) or not wanted or not all(isinstance(p, str) for p in wanted):
            raise fail(f"consumers.{name}.products", "must be a non-empty list of product names")
        for product in wanted:
            if product not in products:
                raise fail(f"consumers.{name}.products", f"{product!r:.60} is not a selected product{did_you_mean(product, products)}")
        tier = spec.get("tier")
        if tier is not None and (not isinstance(tier, str) or tier not in tiers):
            raise fail(f"consumers.{name}.tier", f"{tier!r:.60} is not a tier of datamesh:rateLimitTiers"
                                                    f"{did_you_mean(str(tier), tiers)}")
        keys = raw_keys.get(name)
        if not isinstance(keys, list) or not keys:
            raise fail(f"apiKeys.{name}", "has no key; set one with --secret")
        for i, key in enumerate(keys):
            if not isinstance(key, str) or not _KEY.fullmatch(key):
                raise fail(f"apiKeys.{name}[{i}]", "a key must be 24 to 256 letters, digits, '.', '_', '~' or '-'")
        consumers.append(Consumer(name, tuple(dict.fromkeys(wanted)), tier, tuple(keys)))

    for name in raw_keys:
        if name not in raw_consumers:
            raise fail(f"apiKeys.{name if is_name(name) else repr(name)[:60]}", f"is not a declared consumer"
                       f"{did_you_mean(str(name), raw_consumers)}")
    owners: dict[str, str] = {}
    for consumer in consumers:
        for i, key in enumerate(consumer.keys):
            if key in owners:
                raise fail(f"apiKeys.{consumer.name}[{i}]", f"the same key is already {owners[key]}'s; keys must be unique")
            owners[key] = f"{consumer.name}"
    return tuple(consumers)


@dataclass(frozen=True)
class Access:
    consumers: tuple[Consumer, ...]
    tiers: dict[str, RateLimit]


def load_access(
    consumers: DocumentView, api_keys: DocumentView,
    tiers: DocumentView, product_names: set[str],
) -> Access:
    """Consumers, their keys and tiers, checked against the stack's products."""
    parsed_tiers = parse_tiers(tiers)
    return Access(parse_consumers(consumers, api_keys, parsed_tiers, product_names), parsed_tiers)


def uncalled_products(access: Access, product_names: list[str]) -> list[str]:
    """A warning for each selected product no consumer in ``datamesh:consumers`` may call through the gateway."""
    callable_ = {name for consumer in access.consumers for name in consumer.products}
    return [f"datamesh:consumers: no consumer may call {name}; add it to a consumer's products"
            for name in product_names if name not in callable_]


def check_units(product_limits: Mapping[str, RateLimit | None], overridden: set[str],
                tiers: Mapping[str, RateLimit]) -> None:
    """Refuse the first limit whose period envoyproxy/ratelimit cannot count in (global mode), naming where it is declared."""
    units = ", ".join(f"{s}s ({u})" for s, u in SERVICE_UNITS.items())
    where: list[tuple[str, RateLimit | None]] = [(f"rateLimitTiers.{name}", limit) for name, limit in tiers.items()]
    for name, limit in product_limits.items():
        key = f"productOverrides.{name}.rateLimit" if name in overridden else f"products.{name}.rateLimit (products/{name}.yaml)"
        where.append((key, limit))
    for key, limit in where:
        if limit is not None and service_unit(limit) is None:
            raise fail(key, f"a period of {limit.period_seconds}s has no unit in the global rate-limit service "
                            f"(rateLimits: global); use one of {units}")


def stack_access(settings: Settings, products: Sequence[Product]) -> Access:
    """The stack's consumers, keys and tiers (``load_access``); with ``rateLimits: global``, every limit's period
    must also be a unit the rate-limit service counts in."""
    gov = settings.governance
    access = load_access(gov.consumers, gov.api_keys or {}, gov.rate_limit_tiers, {p.name for p in products})
    if gov.rate_limits.is_global:
        overridden = {name for name, o in settings.product_overrides.items() if isinstance(o, Mapping) and "rateLimit" in o}
        check_units({p.name: p.rate_limit for p in products}, overridden, access.tiers)
    return access
