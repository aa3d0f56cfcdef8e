"""A rate limit as both layers declare it: a product's own limit and a consumer tier's.

Pure values, no Pulumi: product declarations (``components.products``) and
consumer tiers (``components.governance``) both parse into ``RateLimit``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERIOD = re.compile(r"(\d+)(s|m|h)")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class RateLimit:
    """A token bucket of ``requests`` tokens, refilled continuously at ``requests`` per ``period_seconds``.

    Envoy's local rate limiter (max_tokens = tokens_per_fill = requests,
    fill_interval = period) admits a burst of ``requests``, then one request
    every ``period / requests``; tests/test_envoy_gateway.py measures it.
    """

    requests: int
    period_seconds: int

    @property
    def fill_interval(self) -> str:
        return f"{self.period_seconds}s"


def period_seconds(period: str) -> int | None:
    """``30s``, ``1m``, ``1h`` in seconds; None if it is not such a period."""
    match = _PERIOD.fullmatch(period)
    if not match or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _SECONDS[match.group(2)]
