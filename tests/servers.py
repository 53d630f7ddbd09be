"""Waiting for a Carnet server started by a test (a thread or a subprocess) to answer."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


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
