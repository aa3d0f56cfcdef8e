"""A rate limit as both layers declare it: a product's own limit and a consumer tier's.

Pure values, no Pulumi: product declarations (``components.products``) and
consumer tiers (``components.governance``) both parse into ``RateLimit``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIOD = re.compile(r"([0-9]+)(s|m|h)")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
MAX_PERIOD_SECONDS = 86400  # a bucket refilled at most once a day; longer is a typo, not a rate limit


@dataclass(frozen=True)
class RateLimit:
    """A token bucket of ``requests`` tokens, refilled continuously at ``requests`` per ``period_seconds``.

    Envoy's local rate limiter (max_tokens = tokens_per_fill = requests,
    fill_interval = period) admits a burst of ``requests``, then one request
    every ``period / requests``; tests/governance/test_gateway_istio.py measures it.
    """

    requests: int
    period_seconds: int

    @property
    def fill_interval(self) -> str:
        return f"{self.period_seconds}s"


def period_seconds(period: str) -> int | None:
    """``30s``, ``1m``, ``1h`` in seconds; None if it is not such a period, or not from 1s to 24h."""
    match = _PERIOD.fullmatch(period)
    if not match or len(match.group(1)) > 6 or int(match.group(1)) == 0:
        return None
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    return seconds if seconds <= MAX_PERIOD_SECONDS else None


# The units envoyproxy/ratelimit counts in (its config's ``unit``), by their length in seconds: its windows are
# fixed, aligned to the unit, so a period that is not one of these cannot be expressed there.
SERVICE_UNITS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


def service_unit(limit: RateLimit) -> str | None:
    """The rate-limit service's unit for ``limit``'s period (``1m``, ``60s``: minute), or None if it has none."""
    return SERVICE_UNITS.get(limit.period_seconds)
