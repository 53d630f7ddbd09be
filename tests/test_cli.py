"""The ``carnet`` command on a real database: demo, directory, audit verification, key rotation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return tmp_path / "var"


def test_the_demo_is_idempotent_and_the_audit_verifies(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo"])
    assert first.exit_code == 0, first.output
    assert "/portal/" in first.output and "/pro/" in first.output and "CARNET_REVIEWERS" in first.output
    assert runner.invoke(app, ["demo"]).exit_code == 0
    db = sqlite3.connect(env / "carnet.db")
    assert db.execute("select count(*) from dossier").fetchone()[0] == 3
    # the adult's measurements (issue 17): charts to draw, and the médecin traitant's alerts (blood pressure, weight)
    assert db.execute("select count(*) from measurement").fetchone()[0] == 90 * 96 + 60 + 30
    assert sorted(r[0] for r in db.execute("select rule_id from trend_episode")) == ["home-bp-high", "weight-gain"]
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.output
    db.execute("update audit set actor_id = 'forged' where seq = 1")
    db.commit()
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "altered" in result.output


def test_the_master_key_file_is_private(env: Path) -> None:
    CliRunner().invoke(app, ["demo"])
    assert (env / "master-key.json").stat().st_mode & 0o077 == 0


def test_key_rotation_rewraps_every_document_key_and_documents_still_open(env: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["demo"])
    result = runner.invoke(app, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    keys = json.loads((env / "master-key.json").read_text())
    db = sqlite3.connect(env / "carnet.db")
    kids = {r[0] for r in db.execute("select distinct key_id from document")}
    assert kids == {keys["current"]}
    from carnet.access.actors import Actor, ActorKind
    from carnet.compose import build_services
    from carnet.config import Settings
    from carnet.context import run
    from carnet.documents import service as documents

    services = build_services(Settings())
    doc_id = db.execute("select document_id from document limit 1").fetchone()[0]
    gp = Actor(ActorKind.PROFESSIONAL, id="810900000018", profession="10")
    data, _, _ = run(services, gp, lambda ctx: documents.retrieve(ctx, str(__import__("uuid").UUID(doc_id))))
    assert data


def test_a_malformed_rpps_is_refused_by_the_directory(env: Path) -> None:
    result = CliRunner().invoke(app, ["practitioner", "add", "--family", "X", "--given", "Y", "--profession", "10",
                                      "--rpps", "10001045368"])
    assert result.exit_code == 2
    assert "rpps" in result.output


def test_a_nurse_cannot_be_registered_as_a_samu_regulator(env: Path) -> None:
    result = CliRunner().invoke(app, ["practitioner", "add", "--family", "X", "--given", "Y", "--profession", "60",
                                      "--rpps", "10001045367", "--regulator"])
    assert result.exit_code == 2
    assert "regulator" in result.output and "doctor" in result.output
    listed = CliRunner().invoke(app, ["practitioner", "list"])
    assert "810001045367" not in listed.output


def test_a_doctor_can_be_registered_as_a_samu_regulator(env: Path) -> None:
    result = CliRunner().invoke(app, ["practitioner", "add", "--family", "X", "--given", "Y", "--profession", "10",
                                      "--rpps", "10001045367", "--regulator"])
    assert result.exit_code == 0, result.output
    assert "810001045367" in result.output


def test_operator_changes_are_traced_in_the_system_chain(env: Path) -> None:
    runner = CliRunner()
    runner.invoke(app, ["demo"])
    assert runner.invoke(app, ["practitioner", "disable", "810900000026"]).exit_code == 0
    assert runner.invoke(app, ["keys", "rotate"]).exit_code == 0
    db = sqlite3.connect(env / "carnet.db")
    system_chains = [f"{i:032x}" for i in range(16)]  # carnet.ids.SYSTEM_CHAINS, as SQLite stores them
    events = [r[0] for r in db.execute(f"select event from audit where dossier_key in ({','.join('?' * 16)})",
                                       system_chains)]
    assert "directory.disable" in events and "keys.rotate" in events
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def test_db_distribute_refuses_where_citus_is_absent(env: Path) -> None:
    result = CliRunner().invoke(app, ["db", "distribute"])
    assert result.exit_code == 1
    assert "citus extension is not installed" in result.output
