"""The reference rate-limit service (envoyproxy/ratelimit), built from the Go module pinned in tools/ratelimit/go.mod.

``build_ratelimit()`` builds ``github.com/envoyproxy/ratelimit/src/service_cmd`` once per version
of tools/ratelimit (cached like Istio's translation, ``istio_build``: ``datamesh/ratelimit-<hash>``
under ``$DATAMESH_CACHE``, ``$XDG_CACHE_HOME`` or ``~/.cache``). A cold build took 46 s on 2 cores
with the modules already downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tools.engine.istio_build import ROOT, IstioBuildError, _cache_root, _ensure

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
    go = shutil.which("go")
    if go is None:
        raise RateLimitBuildError("the Go toolchain (go) is not on PATH; it builds the rate-limit service (tools/ratelimit)")
    staging = Path(tempfile.mkdtemp(prefix="ratelimit-", dir=_ensure(out.parent)))
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
    done = subprocess.run([go, "build", "-trimpath", "-o", str(staging / "ratelimit"), PACKAGE], cwd=GO_PROGRAM,
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RateLimitBuildError(f"go build {pinned_ratelimit()} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return binary
