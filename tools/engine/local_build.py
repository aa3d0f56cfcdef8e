"""The local control plane's binaries, built from the Go modules pinned under tools/local_engine/go/.

``build_local_engine()`` builds, each once per version of its Go program (cached by the hash of
its folder's go.mod, go.sum and Go files, under ``$DATAMESH_CACHE``, ``$XDG_CACHE_HOME`` or
``~/.cache``, in ``datamesh/local-engine/<binary>-<hash>``), with ``nice -n 19``, ``-trimpath``
and ``CGO_ENABLED=0``, and Go's build cache in ``$GOCACHE`` if set, else ``datamesh/local-go-build``:

| binary | module (go.mod of its folder) |
| --- | --- |
| ``etcd`` | go.etcd.io/etcd/server/v3 |
| ``kube-apiserver``, ``kube-controller-manager`` | k8s.io/kubernetes (its staging modules replaced by their published versions) |
| ``pulumi`` | github.com/pulumi/pulumi/pkg/v3 (cmd/pulumi) |
| ``pulumi-language-python`` | the project's host on github.com/pulumi/pulumi/sdk/v3 (Pulumi's own module is not served) |
| ``pulumi-resource-kubernetes`` | github.com/pulumi/pulumi-kubernetes/provider/v4 |

A binary that does not build is reported (module, version, the error's last line) and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tools.engine.istio_build import _cache_root, _ensure

ROOT = Path(__file__).resolve().parents[2]
GO_ROOT = ROOT / "tools" / "local_engine" / "go"


@dataclass(frozen=True)
class Binary:
    name: str
    folder: str  # under tools/local_engine/go
    package: str
    module: str  # the pinned module it comes from
    version_var: str = ""  # a -X ldflag set to the module's version

    @property
    def directory(self) -> Path:
        return GO_ROOT / self.folder


BINARIES = (
    Binary("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
    Binary("kube-apiserver", "apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes"),
    Binary("kube-controller-manager", "apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes"),
    Binary("pulumi", "pulumi", "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi", "github.com/pulumi/pulumi/pkg/v3",
           "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"),
    Binary("pulumi-language-python", "pulumi", "./langhost", "github.com/pulumi/pulumi/sdk/v3",
           "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"),
    Binary("pulumi-resource-kubernetes", "kubernetes", ".", "github.com/pulumi/pulumi-kubernetes/provider/v4",
           "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version"),
)
# The provider's module is a pseudo-version of the commit tagged v4.25.0 (its provider/ folder has no tag of its own).
PROVIDER_RELEASE = {"v4.0.0-20260115033456-f47bc2d6f199": "4.25.0"}
EXEC_SHIM = "pulumi-language-python-exec"  # the Python side of the language host, shipped in sdk/v3


class LocalBuildError(RuntimeError):
    """The Go toolchain is missing; one binary's failure is a result, not this error."""


@dataclass
class BuildResult:
    """Where each built binary is, how long each took, and one line per binary that did not build."""

    paths: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {name: {"module": self.versions.get(name, ""), "seconds": round(self.seconds.get(name, 0.0), 1),
                       "cached": self.cached.get(name, False), **({"error": self.failures[name]} if name in self.failures else {})}
                for name in [b.name for b in BINARIES]}


def required_version(directory: Path, module: str) -> str:
    """The version ``directory``'s go.mod requires of ``module`` (replace directives aside)."""
    for line in (directory / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module and parts[1].startswith("v"):
            return parts[1]
        if len(parts) >= 3 and parts[0] == "require" and parts[1] == module:
            return parts[2]
    raise LocalBuildError(f"{directory / 'go.mod'}: no requirement of {module}")


def _program_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def go_env() -> dict[str, str]:
    """Go's build cache is ``$GOCACHE`` when the environment sets it (a CI cache), else datamesh/local-go-build."""
    cache = os.environ.get("GOCACHE") or str(_ensure(_cache_root() / "local-go-build"))
    return {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false", "GOCACHE": cache}


def _go(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    go = shutil.which("go")
    if go is None:
        raise LocalBuildError("the Go toolchain (go) is not on PATH; it builds the local control plane (tools/local_engine/go)")
    nice = ["nice", "-n", "19"] if shutil.which("nice") else []
    return subprocess.run([*nice, go, *args], cwd=cwd, env=go_env(), capture_output=True, text=True, check=False)


def _module_dir(directory: Path, module: str) -> Path:
    """Where the module proxy's copy of ``module`` (at the version ``directory``'s go.mod selects) is, downloaded if need be."""
    done = _go(["mod", "download", "-json", module], directory)
    found = json.loads(done.stdout or "{}").get("Dir") if done.returncode == 0 else None
    if not found:
        raise LocalBuildError(f"go mod download {module}: {(done.stderr or done.stdout).strip()[-300:]}")
    return Path(found)


def _provider_sources(binary: Binary, version: str, into: Path) -> None:
    """The provider's main with the files its go:embed needs, made as its generate.go makes them."""
    cmd = _module_dir(binary.directory, binary.module) / "cmd" / "pulumi-resource-kubernetes"
    for path in binary.directory.iterdir():
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            shutil.copy(path, into / path.name)
    schema = json.loads((cmd / "schema.json").read_text())
    schema["version"] = version
    (into / "schema-embed.json").write_text(json.dumps(schema, separators=(",", ":")))
    (into / "terraform-mapping-embed.json").write_text(json.dumps(json.loads((cmd / "terraform-mapping.json").read_text()),
                                                                  separators=(",", ":")))


def _build_one(binary: Binary, out: Path) -> None:
    """Build ``binary`` into ``out`` (a fresh folder); raises LocalBuildError with the error's last lines."""
    version = required_version(binary.directory, binary.module)
    release = PROVIDER_RELEASE.get(version, version.removeprefix("v"))
    ldflags = ["-ldflags", f"-s -w -X {binary.version_var}={release}"] if binary.version_var else ["-ldflags", "-s -w"]
    cwd = binary.directory
    with tempfile.TemporaryDirectory(prefix=f"{binary.name}-") as staging:
        if binary.folder == "kubernetes":
            cwd = Path(staging)
            _provider_sources(binary, release, cwd)
        done = _go(["build", "-trimpath", *ldflags, "-o", str(out / binary.name), binary.package], cwd)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise LocalBuildError(lines[-1] if lines else f"go build exited {done.returncode}")
    if binary.name == "pulumi-language-python":
        shim = _module_dir(binary.directory, binary.module) / "python" / "cmd" / EXEC_SHIM
        shutil.copy(shim, out / EXEC_SHIM)
        (out / EXEC_SHIM).chmod(0o755)


def build_binary(binary: Binary, result: BuildResult) -> None:
    """Build (or find cached) one binary into ``result``; a failure is recorded, not raised."""
    result.versions[binary.name] = f"{binary.module}@{required_version(binary.directory, binary.module)}"
    out = _cache_root() / "local-engine" / f"{binary.name}-{_program_hash(binary.directory)}"
    started = time.monotonic()
    if (out / binary.name).exists():
        result.paths[binary.name], result.cached[binary.name] = out / binary.name, True
        result.seconds[binary.name] = time.monotonic() - started
        return
    staging = Path(tempfile.mkdtemp(prefix=f"{binary.name}-", dir=_ensure(out.parent)))
    try:
        _build_one(binary, staging)
    except (LocalBuildError, OSError, ValueError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        result.failures[binary.name] = f"{result.versions[binary.name]}: {exc}"
    else:
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
        result.paths[binary.name], result.cached[binary.name] = out / binary.name, False
    result.seconds[binary.name] = time.monotonic() - started


def build_local_engine(only: tuple[str, ...] = ()) -> BuildResult:
    """Build every binary (or those named in ``only``); see the module's docstring."""
    result = BuildResult()
    for binary in BINARIES:
        if not only or binary.name in only:
            build_binary(binary, result)
    return result


def bin_dir(result: BuildResult) -> Path:
    """One folder of symlinks to every built binary (and the language host's shim), for PATH."""
    folder = _ensure(_cache_root() / "local-engine" / "bin")
    for path in result.paths.values():
        for target in (path, path.parent / EXEC_SHIM):
            if target.exists():
                link = folder / target.name
                if link.is_symlink() or link.exists():
                    link.unlink()
                link.symlink_to(target)
    return folder
