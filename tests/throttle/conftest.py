"""Throttle test base: a frozen clock the test moves, browsers with client addresses of their own (the session's
other tests all come from "testclient"), the failure thresholds at their defaults, and an Argon2 counter."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from starlette.testclient import TestClient

from carnet.accounts import secrets
from carnet.config import Settings
from carnet.context import Services
from tests.portal.conftest import PORTAL_BASE

_addresses = itertools.count(1)


def new_address() -> str:
    """A client address no other test uses (the counters live in the session's database)."""
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services, monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(services.clock().replace(microsecond=0))
    monkeypatch.setattr(services, "clock", c)
    return c


@pytest.fixture
def defaults(services: Services, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's settings with the failure thresholds a deployment gets by default."""
    plain = Settings(var_dir=services.settings.var_dir)
    for name in ("max_failed_attempts", "max_failed_per_address", "max_failed_per_identifier",
                 "throttle_delay_seconds", "throttle_max_delay_seconds"):
        monkeypatch.setattr(services.settings, name, getattr(plain, name))
    return services.settings


def browser_at(app: Any, address: str) -> TestClient:
    return TestClient(app, base_url=PORTAL_BASE, follow_redirects=False, client=(address, 50000))


@pytest.fixture
def browsers(app: Any) -> Any:
    """``browsers()`` opens a browser at a fresh address (``browsers(address)`` at that one)."""
    return lambda address=None: browser_at(app, address or new_address())


class CountingHasher:
    """argon2's PasswordHasher, counting verifications: the work a sign-in does, without timing it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.verifies = 0

    def verify(self, stored: str, password: str) -> bool:
        self.verifies += 1
        return bool(self.inner.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def argon2(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher(secrets._HASHER)
    monkeypatch.setattr(secrets, "_HASHER", counting)
    return counting
