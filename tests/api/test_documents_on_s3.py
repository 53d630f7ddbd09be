"""Documents in S3 end to end, on SQLite and PostgreSQL, against moto_server over HTTP: publish and retrieve through
the API with CARNET_BLOB_URL=s3://…; a store that is down gives 503 (transient) and saves nothing, and Carnet
recovers by itself when it is back; ``carnet blobs migrate`` moves a filled var/ to S3, which then serves it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from carnet.app import create_app
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.tables import document
from tests.conftest import BASE, World
from tests.fhir.routes.test_documents import docref
from tests.s3server import S3Server


@contextmanager
def carnet_on(database_url: str, var: Path, blob_url: str | None) -> Iterator[tuple[Services, TestClient]]:
    settings = Settings(var_dir=var, database_url=database_url, base_url=BASE, blob_url=blob_url,
                        max_document_bytes=64 * 1024)
    svc = Services.build(settings, make_engine(database_url, pool_size=2))
    with TestClient(create_app(svc), base_url=BASE) as client:
        yield svc, client
    svc.engine.dispose()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server) -> S3Server:
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CARNET_BLOB_TIMEOUT", "1")
    monkeypatch.setenv("CARNET_BLOB_ATTEMPTS", "2")
    return s3_server


def publish(world: World, data: bytes) -> Any:
    return world.client.post("/fhir/DocumentReference", json=docref(world, data=data), headers=world.headers())


def retrieve(world: World, doc_id: str) -> Any:
    return world.client.get(f"/fhir/Binary/{doc_id}", headers={**world.headers(), "Accept": "*/*"})


def documents_in(svc: Services, dossier: uuid.UUID) -> int:
    with svc.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(document).where(
            document.c.dossier_key == dossier)).scalar_one())


def test_a_document_published_to_s3_is_retrieved_byte_for_byte(aws_env: S3Server, database_url: str,
                                                                tmp_path: Path) -> None:
    bucket = aws_env.new_bucket()
    with carnet_on(database_url, tmp_path / "var", f"s3://{bucket}/carnet") as (svc, client):
        world = World(svc, client)
        data = b"%PDF-1.4\n" + uuid.uuid4().bytes * 1000 + b"\n%%EOF\n"
        r = publish(world, data)
        assert r.status_code == 201, r.text
        r = retrieve(world, r.json()["id"])
        assert r.status_code == 200 and r.content == data
        names = [o["Key"] for o in aws_env.client().list_objects_v2(Bucket=bucket)["Contents"]]
        assert len(names) == 1 and names[0].startswith("carnet/")
        assert b"%PDF" not in aws_env.client().get_object(Bucket=bucket, Key=names[0])["Body"].read()


def test_a_store_that_is_down_gives_503_saves_nothing_and_carnet_recovers_when_it_is_back(
        monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> None:
    server = S3Server.moto()
    try:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("CARNET_BLOB_TIMEOUT", "1")
        monkeypatch.setenv("CARNET_BLOB_ATTEMPTS", "2")
        bucket = server.new_bucket()
        with carnet_on(database_url, tmp_path / "var", f"s3://{bucket}/carnet") as (svc, client):
            world = World(svc, client)
            r = publish(world, b"%PDF-1.4 before")
            assert r.status_code == 201, r.text
            before = r.json()["id"]
            server.stop()
            r = publish(world, b"%PDF-1.4 during")
            assert r.status_code == 503, r.text
            assert r.json()["resourceType"] == "OperationOutcome"
            assert r.json()["issue"][0]["code"] == "transient"
            assert r.headers["retry-after"]
            assert documents_in(svc, world.dossier) == 1  # nothing committed
            assert retrieve(world, before).status_code == 503
            server.start()  # moto forgets everything across a restart: the bucket comes back empty
            server.client().create_bucket(Bucket=bucket)
            r = publish(world, b"%PDF-1.4 after")
            assert r.status_code == 201, r.text
            assert retrieve(world, r.json()["id"]).content == b"%PDF-1.4 after"
    finally:
        server.stop()


def test_blobs_migrate_moves_a_filled_var_to_s3_which_then_serves_it(aws_env: S3Server, database_url: str,
                                                                     tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     session_key_file: Path) -> None:
    from carnet.cli import app

    var = tmp_path / "var"
    contents = [b"%PDF-1.4\n" + uuid.uuid4().bytes * (i + 1) + b"\n%%EOF\n" for i in range(4)]
    with carnet_on(database_url, var, None) as (svc, client):  # the local store, var/blobs
        world = World(svc, client)
        ids = []
        for data in contents:
            r = publish(world, data)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    bucket = aws_env.new_bucket()
    target = f"s3://{bucket}/carnet"
    monkeypatch.setenv("CARNET_VAR_DIR", str(var))
    monkeypatch.setenv("CARNET_DATABASE_URL", database_url)
    monkeypatch.delenv("CARNET_BLOB_URL", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["blobs", "migrate", "--to", target])
    assert r.exit_code == 0, r.output
    assert "4 copied" in r.output and f"CARNET_BLOB_URL={target}" in r.output
    r = runner.invoke(app, ["blobs", "migrate", "--to", target])  # resumable: what is there is skipped
    assert r.exit_code == 0 and "0 copied" in r.output and "4 already there" in r.output, r.output
    assert len(list((var / "blobs").rglob("*/*/*"))) == 4  # the source is kept

    with carnet_on(database_url, var, target) as (svc, client):
        world.services, world.client = svc, client  # the same personas and dossier, the contents served from S3
        for doc_id, data in zip(ids, contents, strict=True):
            r = retrieve(world, doc_id)
            assert r.status_code == 200 and r.content == data


def test_migrate_refuses_a_target_holding_different_bytes_under_a_key(aws_env: S3Server, tmp_path: Path) -> None:
    import hashlib

    from carnet.blobs import LocalBlobStore
    from carnet.blobs.migrate import migrate

    source = LocalBlobStore(tmp_path / "blobs")
    target = aws_env.store()
    good, bad = b"good", b"bad"
    source.put(hashlib.sha256(good).hexdigest(), good)
    source.put(hashlib.sha256(bad).hexdigest(), bad)
    target.put(hashlib.sha256(bad).hexdigest(), b"tampered")
    report = migrate(source, target)
    assert (report.copied, report.failed) == (1, [hashlib.sha256(bad).hexdigest()])
    assert base64.b64encode(target.get(hashlib.sha256(good).hexdigest())) == base64.b64encode(good)
