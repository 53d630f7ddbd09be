"""A portal page whose document store is down shows a 503 page (not a 500), and works again once it is back."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from carnet.app import create_app
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from tests.conftest import BASE, World
from tests.fhir.routes.test_documents import docref
from tests.portal.conftest import PORTAL_BASE, Patient
from tests.s3server import S3Server


def test_a_document_opened_while_the_store_is_down_gives_a_503_page(monkeypatch: pytest.MonkeyPatch,
                                                                    database_url: str, tmp_path: Path) -> None:
    server = S3Server.moto()
    try:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("CARNET_BLOB_TIMEOUT", "1")
        monkeypatch.setenv("CARNET_BLOB_ATTEMPTS", "1")
        bucket = server.new_bucket()
        settings = Settings(var_dir=tmp_path / "var", database_url=database_url, base_url=BASE,
                            blob_url=f"s3://{bucket}/carnet")
        svc = Services.build(settings, make_engine(database_url, pool_size=2))
        app = create_app(svc)
        with TestClient(app, base_url=BASE) as api, \
                TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as browser:
            world = World(svc, api)
            r = api.post("/fhir/DocumentReference", json=docref(world), headers=world.headers())
            assert r.status_code == 201, r.text
            doc_id = r.json()["id"]
            Patient(world, browser).ready()
            assert browser.get(f"/portal/documents/{doc_id}/file").status_code == 200
            server.stop()
            page = browser.get(f"/portal/documents/{doc_id}/file")
            assert page.status_code == 503
            assert "text/html" in page.headers["content-type"] and "unavailable" in page.text
            server.start()
            server.client().create_bucket(Bucket=bucket)
            r = api.post("/fhir/DocumentReference", json=docref(world), headers=world.headers())
            assert r.status_code == 201, r.text
            assert browser.get(f"/portal/documents/{r.json()['id']}/file").status_code == 200
        svc.engine.dispose()
    finally:
        server.stop()
