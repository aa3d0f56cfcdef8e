"""A network namespace of its own for the calling thread: entered in-process, left on exit.

Linux keeps the network namespace per thread. Inside ``own_network_namespace()``, the calling
thread, the threads it starts and the processes it spawns (Envoy, iptables, the rate-limit
service) see only a loopback of their own; threads started before it do not move. The namespace
has no name under /run/netns: the kernel removes it when the last process in it has exited, so
nothing is left behind even when the caller is killed.

Needs CAP_SYS_ADMIN (root) and ``ip`` (Debian: iproute2) to bring the loopback up.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000  # <sched.h>


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)  # the interpreter's own symbols, libc's among them


def _check(result: int, call: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}: {os.strerror(errno)}")


@contextmanager
def own_network_namespace() -> Iterator[None]:
    """Run the body in a fresh network namespace with its loopback up, then return to the namespace before."""
    libc = _libc()
    before = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            up = subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True, text=True)
            if up.returncode != 0:
                raise OSError(f"ip link set lo up (in the new namespace): {up.stderr.strip() or up.returncode}")
            yield
        finally:
            _check(libc.setns(before, CLONE_NEWNET), "setns(CLONE_NEWNET) back to the namespace before")
    finally:
        os.close(before)

