"""The reference rate-limit service (envoyproxy/ratelimit), built from the Go module pinned in tools/ratelimit/go.mod.

``build_ratelimit()`` builds ``github.com/envoyproxy/ratelimit/src/service_cmd`` once per version
of tools/ratelimit (cached like Istio's translation, ``istio_build``: ``datamesh/ratelimit-<hash>``
under ``$DATAMESH_CACHE``, ``$XDG_CACHE_HOME`` or ``~/.cache``). A cold build took 46 s on 2 cores
with the modules already downloaded.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tools.engine.istio_build import ROOT, IstioBuildError, _cache_root, go_build

GO_PROGRAM = ROOT / "tools" / "ratelimit"
MODULE = "github.com/envoyproxy/ratelimit"
PACKAGE = f"{MODULE}/src/service_cmd"


class RateLimitBuildError(IstioBuildError):
    """The Go toolchain or the ratelimit module could not build the service; the message names the module."""


def pinned_ratelimit() -> str:
    """``github.com/envoyproxy/ratelimit@<version>`` as tools/ratelimit/go.mod requires it."""
    for line in (GO_PROGRAM / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in (MODULE, f"require {MODULE}"):
            return f"{MODULE}@{parts[1]}"
        if len(parts) == 3 and parts[:2] == ["require", MODULE]:
            return f"{MODULE}@{parts[2]}"
    raise RateLimitBuildError(f"{GO_PROGRAM / 'go.mod'}: no {MODULE} requirement")


def _program_hash() -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "tools.go"):
        digest.update(name.encode() + b"\0" + (GO_PROGRAM / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_ratelimit() -> Path:
    """The service's binary, built (once per version of tools/ratelimit) from the pinned module."""
    out = _cache_root() / f"ratelimit-{_program_hash()}"
    binary = out / "ratelimit"
    if binary.exists():
        return binary
    try:
        go_build(out, GO_PROGRAM, (("ratelimit", PACKAGE),), RateLimitBuildError, "the rate-limit service (tools/ratelimit)")
    except RateLimitBuildError as exc:
        raise RateLimitBuildError(f"{pinned_ratelimit()}: {exc}") from None
    return binary
