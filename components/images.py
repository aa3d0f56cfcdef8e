"""Is a container image pinned? One answer for the program and the policy pack.

Standard library only: the policy pack imports this module in its own
virtualenv (``policies/venv``), where only ``pulumi`` and ``pulumi-policy``
are installed. ``tests/test_layout.py`` keeps it so.
"""

from __future__ import annotations

import re

_DIGEST = re.compile(r".+@sha256:[0-9a-f]{64}")


def image_pin_problem(image: str) -> str | None:
    """What keeps ``image`` from being pinned to a version tag or a sha256 digest; None when it is pinned."""
    if "@sha256:" in image:
        return None if _DIGEST.fullmatch(image) else "has a malformed sha256 digest"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "has no tag; pin a version tag or a sha256 digest"
    if last.rsplit(":", 1)[1] in ("", "latest"):
        return "uses a moving tag; pin a version tag or a sha256 digest"
    return None
