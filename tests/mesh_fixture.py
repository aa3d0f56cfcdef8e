"""Calls through a gateway that Istio's translation configured (tools/engine/mesh_harness.py), for the gateway tests."""

from __future__ import annotations

import base64
import http.client
import json
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT
from tools.engine.envoy_proc import LOOPBACK
from tools.engine.stackconfig import load_stack_config


def stack_keys(stack_file: Path | None = None, stack: str = "dev") -> dict[str, list[str]]:
    """What an offline render sees for each consumer's keys: the stack file's secure values as placeholders."""
    cfg = load_stack_config(ROOT, stack, stack_file)
    return json.loads(cfg.values["datamesh:apiKeys"])


def keys_of(path: Path) -> dict[str, list[str]]:
    """The keys a render made with ``--test-keys`` (``test_keys=``) accepts, by consumer."""
    return json.loads(path.read_text())


def basic(key: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def echo(self) -> dict:
        """What the stub backend saw (its JSON answer)."""
        return json.loads(self.body)


def call(port: int, path: str, headers: list[tuple[str, str]] | None = None, method: str = "POST",
         body: bytes = b"{}") -> Reply:
    """One request through the gateway on ``port``, on a new connection; ``headers`` may repeat a name."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=15)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])]:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()
