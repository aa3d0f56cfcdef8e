"""tools.engine.netns: verify's own network namespace, entered and left in-process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading

import pytest

from tools.engine.netns import own_network_namespace

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="a network namespace needs root and ip (iproute2)")


def _namespace() -> str:
    return os.readlink("/proc/thread-self/ns/net")


def test_the_body_and_what_it_spawns_are_in_a_fresh_namespace_and_the_thread_returns_after():
    before = _namespace()
    started_before: list[str] = []
    gate = threading.Event()
    outside = threading.Thread(target=lambda: (gate.wait(), started_before.append(_namespace())))
    outside.start()
    with own_network_namespace():
        inside = _namespace()
        child = subprocess.run(["readlink", "/proc/self/ns/net"], capture_output=True, text=True, check=True).stdout.strip()
        started_inside: list[str] = []
        t = threading.Thread(target=lambda: started_inside.append(_namespace()))
        t.start()
        t.join()
        gate.set()
        outside.join()
        loopback = subprocess.run(["ip", "-o", "link", "show", "lo"], capture_output=True, text=True, check=True).stdout
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert inside != before
    assert child == inside and started_inside == [inside]  # processes and threads started inside are inside
    assert started_before == [before]  # a thread started before does not move
    assert ",UP" in loopback and len(links) == 1  # only a loopback, and it is up
    assert _namespace() == before


def test_a_port_bound_inside_is_not_reachable_outside():
    with own_network_namespace():
        server = socket.create_server(("127.0.0.1", 0))  # a socket lives in the namespace it was made in
        port = server.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # reachable inside
    with server, pytest.raises(ConnectionRefusedError):  # still listening, in the namespace left behind
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_the_namespace_is_left_when_the_body_raises():
    before = _namespace()
    with pytest.raises(RuntimeError, match="boom"), own_network_namespace():
        raise RuntimeError("boom")
    assert _namespace() == before
