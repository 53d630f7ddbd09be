"""Liveness and readiness (carnet.health): live needs nothing; ready needs the database and the blob store, answers
503 with a small body when either fails or hangs, and never shows exception text."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from carnet import health
from carnet.app import create_app
from carnet.config import Settings
from carnet.context import Services
from tests.conftest import BASE, run_async
from tests.servers import free_port


def test_live_answers_ok(client: TestClient) -> None:
    r = client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


def test_ready_answers_ok_when_the_database_and_the_blob_store_answer(client: TestClient) -> None:
    r = client.get("/health/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "checks": {"database": "ok", "blobs": "ok"}}
    assert r.headers["cache-control"] == "no-store"


def test_the_old_healthz_still_answers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def unreachable(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose database is a PostgreSQL server on a port where nothing listens."""
    os.environ.pop("CARNET_MASTER_KEY", None)
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/carnet"
    services = Services.build(Settings(var_dir=tmp_path / "var", database_url=url, base_url=BASE))
    with TestClient(create_app(services), base_url=BASE) as c:
        yield c
    services.engine.dispose()


def test_ready_is_503_when_the_database_is_unreachable(unreachable: TestClient) -> None:
    r = unreachable.get("/health/ready")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "fail", "blobs": "ok"}}
    assert "Error" not in r.text and "127.0.0.1" not in r.text  # no exception text, no connection details


def test_live_does_not_need_the_database(unreachable: TestClient) -> None:
    assert unreachable.get("/health/live").status_code == 200


class BrokenStore:
    def exists(self, key: str) -> bool:
        raise OSError("Stale file handle: /mnt/blobs")


class HungStore:
    def __init__(self) -> None:
        self.release = threading.Event()

    def exists(self, key: str) -> bool:
        self.release.wait(30)
        return False


def test_ready_is_503_when_the_blob_store_fails(services: Services) -> None:
    broken = dataclasses.replace(services, blobs=BrokenStore())  # type: ignore[arg-type]
    with TestClient(create_app(broken), base_url=BASE) as c:
        r = c.get("/health/ready")
    assert r.status_code == 503
    assert r.json() == {"status": "unavailable", "checks": {"database": "ok", "blobs": "fail"}}
    assert "Stale" not in r.text


def test_a_hung_blob_store_makes_ready_fail_within_its_time_bound(services: Services) -> None:
    store = HungStore()
    hung = dataclasses.replace(services, blobs=store)  # type: ignore[arg-type]
    try:
        ok, checks = run_async(health.readiness(hung, timeout=0.2))
    finally:
        store.release.set()
    assert not ok
    assert checks == {"database": "ok", "blobs": "fail"}
