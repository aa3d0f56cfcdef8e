"""A global-mode render's rate-limit service and Redis, run for real on loopback (``MeshHarness`` starts them).

``RateLimitBackend(render)``: Debian's ``redis-server`` on 127.0.0.1, and the envoyproxy/ratelimit
binary (``ratelimit_build``) reading exactly the config files of the render's ConfigMap, with the
environment of the render's Deployment; only addresses are moved to loopback (``SUBSTITUTIONS``).
``flush()`` empties Redis (fresh counters), ``stop_redis()`` and ``start_redis()`` make the fault.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from components.documents import Document
from components.governance.global_limits import SERVICE_NAME, SERVICE_NAMESPACE
from tools.engine.envoy_proc import LOOPBACK, free_port
from tools.engine.istio_cluster import Render
from tools.engine.ratelimit_build import build_ratelimit

SUBSTITUTIONS = {
    "rate-limit service address": "the EnvoyFilter's cluster names the service's DNS name (ratelimit.istio-system.svc."
                                  "cluster.local:8081); the harness points it at the real service on 127.0.0.1, a free "
                                  "port. The filter, its domain, descriptors and failure policy are unchanged.",
    "rate-limit Redis address": "the Deployment's REDIS_URL (in-cluster Service or ElastiCache, with TLS and AUTH there) "
                                "becomes a Debian redis-server on 127.0.0.1 without TLS or AUTH; the service's other "
                                "settings are the Deployment's.",
}
_ADDRESS_ENV = ("REDIS_URL", "REDIS_TLS", "REDIS_AUTH", "HOST", "GRPC_HOST", "DEBUG_HOST", "PORT", "GRPC_PORT",
                "DEBUG_PORT", "RUNTIME_ROOT", "RUNTIME_SUBDIRECTORY")
STOP_SECONDS = 1  # how long the service is given to stop before it is killed


class RateLimitBackendError(RuntimeError):
    pass


def service_objects(render: Render) -> tuple[Document, Document] | None:
    """The render's rate-limit ConfigMap and Deployment, or None when the render is in local mode."""
    def find(kind: str, name: str) -> dict[str, Any] | None:
        return next((m for m in render.kind(kind) if m["metadata"]["name"] == name
                     and m["metadata"].get("namespace") == SERVICE_NAMESPACE), None)
    config, deployment = find("ConfigMap", f"{SERVICE_NAME}-config"), find("Deployment", SERVICE_NAME)
    return (config, deployment) if config and deployment else None


def _wait(check: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RateLimitBackendError(f"{what} did not start in {seconds:.0f}s")


class RateLimitBackend:
    """Redis and the rate-limit service for one harness (see the module's docstring)."""

    def __init__(self, config: dict[str, Any], deployment: dict[str, Any]) -> None:
        self.files: dict[str, str] = dict(config.get("data") or {})
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        self.env = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e
                    and e["name"] not in _ADDRESS_ENV}
        self.grpc_port = free_port()
        self.redis_port = free_port()
        self._redis: subprocess.Popen[bytes] | None = None
        self._service: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RateLimitBackend:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RateLimitBackendError("redis-server is not installed (Debian: apt-get install -y redis-server)")
        self._redis_binary = redis
        self._tmp = tempfile.TemporaryDirectory(prefix="ratelimit-")
        folder = Path(self._tmp.name)
        (folder / "ratelimit" / "config").mkdir(parents=True)
        for name, text in self.files.items():
            (folder / "ratelimit" / "config" / name).write_text(text)
        binary = build_ratelimit()
        try:
            self.start_redis()
            self.http_port = free_port()
            env = {"PATH": "/usr/bin:/bin", **self.env, "REDIS_URL": f"{LOOPBACK}:{self.redis_port}", "REDIS_TLS": "false",
                   "HOST": LOOPBACK, "GRPC_HOST": LOOPBACK, "DEBUG_HOST": LOOPBACK, "PORT": str(self.http_port),
                   "GRPC_PORT": str(self.grpc_port), "DEBUG_PORT": str(free_port()), "RUNTIME_ROOT": str(folder),
                   "RUNTIME_SUBDIRECTORY": "ratelimit"}
            self._log = (folder / "service.log").open("wb")
            self._service = subprocess.Popen([str(binary)], env=env, stdout=self._log, stderr=subprocess.STDOUT)
            _wait(lambda: urllib.request.urlopen(f"http://{LOOPBACK}:{self.http_port}/healthcheck", timeout=1).status == 200,
                  "the rate-limit service")
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_redis(self) -> None:
        self._redis = subprocess.Popen([self._redis_binary, "--port", str(self.redis_port), "--bind", LOOPBACK,
                                        "--save", "", "--appendonly", "no", "--dir", self._tmp.name],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: self.command("PING") == "+PONG", "redis-server")

    def stop_redis(self) -> None:
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            self._redis.wait(timeout=10)
        self._redis = None

    def command(self, *words: str) -> str:
        """One Redis command over RESP; its first reply line."""
        with socket.create_connection((LOOPBACK, self.redis_port), timeout=2) as s:
            s.sendall(f"*{len(words)}\r\n".encode() + b"".join(f"${len(w)}\r\n{w}\r\n".encode() for w in words))
            return s.recv(4096).split(b"\r\n")[0].decode()

    def flush(self) -> None:
        """Fresh counters for every descriptor."""
        if self.command("FLUSHALL") != "+OK":
            raise RateLimitBackendError("redis FLUSHALL failed")

    def __exit__(self, *exc: object) -> None:
        if self._service is not None and self._service.poll() is None:
            self._service.terminate()
            try:
                # Once Redis was stopped and started again under it, the service can take 10 s to leave on SIGTERM
                # (measured); it keeps nothing worth a graceful stop here.
                self._service.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._service.kill()
                self._service.wait(timeout=10)
        self._service = None
        self.stop_redis()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        self._tmp.cleanup()
