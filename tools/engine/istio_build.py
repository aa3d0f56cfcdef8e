"""Istio's translation and istioctl, built from the Istio Go module pinned in tools/istiod/go.mod.

``build_istio_tools()`` builds two binaries (cached by the hash of tools/istiod's Go files,
under ``$DATAMESH_CACHE``, ``$XDG_CACHE_HOME`` or ``~/.cache``, in ``datamesh/istiod-<hash>``):
``istiod-xds``, the project's small program around Istio's ``pilot/test/xds``, and ``istioctl``
from the same module. A cold build takes about 6 minutes on 2 cores; Go's own caches make
a rebuild after a change to the program take seconds.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GO_PROGRAM = ROOT / "tools" / "istiod"


class IstioBuildError(RuntimeError):
    """The Go toolchain or Istio's module could not build the translation; the message says which."""


def pinned_istio() -> str:
    """The Istio module and version tools/istiod/go.mod pins (``istio.io/istio@v0.0.0-...``)."""
    for line in (GO_PROGRAM / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "istio.io/istio":
            return f"{parts[0]}@{parts[1]}"
    raise IstioBuildError(f"{GO_PROGRAM / 'go.mod'}: no istio.io/istio requirement")


def _cache_root() -> Path:
    base = os.environ.get("DATAMESH_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "datamesh"


def _program_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(GO_PROGRAM.iterdir()):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class IstioTools:
    xds: Path
    istioctl: Path


def build_istio_tools() -> IstioTools:
    """Build (once per version of tools/istiod) istiod-xds and istioctl from the pinned Istio module."""
    out = _cache_root() / f"istiod-{_program_hash()}"
    tools = IstioTools(out / "istiod-xds", out / "istioctl")
    if tools.xds.exists() and tools.istioctl.exists():
        return tools
    go_build(out, GO_PROGRAM, (("istiod-xds", "."), ("istioctl", "istio.io/istio/istioctl/cmd/istioctl")),
             IstioBuildError, "Istio's translation (tools/istiod)")
    return tools


def go_build(out: Path, program: Path, targets: tuple[tuple[str, str], ...], error: type[Exception], what: str) -> None:
    """``go build`` each (binary, package) of the Go module at ``program`` into ``out``, all or nothing.

    Module downloads are read-only against go.sum and no VCS stamp is taken, so a build depends on
    the pinned go.mod alone; the binaries are static (no cgo). A failure raises ``error`` with Go's
    own last lines, and leaves no half-filled ``out``. Processes building the same ``out`` at once
    (parallel test workers) take turns on a lock file beside it, and a later one finds the build done.
    """
    go = shutil.which("go")
    if go is None:
        raise error(f"the Go toolchain (go) is not on PATH; it builds {what}")
    with (_ensure(out.parent) / f".{out.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if all((out / target).exists() for target, _ in targets):
            return
        _build(go, out, program, targets, error)


def _build(go: str, out: Path, program: Path, targets: tuple[tuple[str, str], ...], error: type[Exception]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name}-", dir=_ensure(out.parent)))
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}
    for target, package in targets:
        done = subprocess.run([go, "build", "-trimpath", "-o", str(staging / target), package], cwd=program,
                              env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise error(f"go build {package} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
