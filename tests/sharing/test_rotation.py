"""A master-key rotation re-wraps the links' sealed keys: a link made before still opens after (docs/SHARING.md)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from carnet import sharing
from carnet.access.actors import Actor, ActorKind
from carnet.app import create_app
from carnet.cli import app
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import run
from carnet.demo import patient_ins
from tests.sharing.decoder import decrypt_jwe, parse_shlink
from tests.sharing.helpers import open_link


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo"]).exit_code == 0
    return tmp_path / "var"


def test_a_link_made_before_a_key_rotation_still_opens_after_it(env: Path) -> None:
    services = build_services(Settings())
    db = sqlite3.connect(env / "carnet.db")
    key = db.execute("select dossier_key from ins_lookup where ins = ?", (patient_ins(1),)).fetchone()[0]
    dossier_key = uuid.UUID(key) if isinstance(key, str) else uuid.UUID(bytes=key)
    patient = Actor(ActorKind.PATIENT, id=patient_ins(1))
    view = run(services, patient, lambda ctx: sharing.create(ctx, dossier_key, sharing.LinkSpec(label="x")))
    before = db.execute("select key_id from shared_link").fetchone()[0]
    assert CliRunner().invoke(app, ["keys", "rotate"]).exit_code == 0
    assert db.execute("select key_id from shared_link").fetchone()[0] != before
    with TestClient(create_app(build_services(Settings()))) as client:
        r = open_link(client, view.shlink)
        assert r.status_code == 200, r.text
        _, plaintext = decrypt_jwe(r.json()["files"][0]["embedded"], parse_shlink(view.shlink)["key"])
    assert b'"resourceType":"Bundle"' in plaintext
