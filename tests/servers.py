"""The servers tests start: a port the system chose for them, and waiting for a Carnet server (a thread or a
subprocess) to answer."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    """A port on 127.0.0.1 the system chose (bound to port 0, read back, closed): every server a test starts listens on
    one (tests/test_ports.py), so two runs can share a machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, alive: Callable[[], bool], timeout: float = 30) -> bool:
    """True once ``{base}/healthz`` answers 200; False if ``alive()`` turns false or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    return False
