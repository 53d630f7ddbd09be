"""``carnet ingest measurements --dossier … export.zip``: an operator imports a patient's Apple Health export for
them (acting as the patient, the command named in the audit record); counts and reasons printed, a second run stores
nothing new."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.cli import app
from tests.measures.apple_export import write_export


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("CARNET_DATABASE_URL", raising=False)
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    assert CliRunner().invoke(app, ["demo"]).exit_code == 0
    return tmp_path / "var"


def test_the_command_imports_an_export_once_and_reports_bad_records(env: Path, tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    write_export(path, 300)
    db = sqlite3.connect(env / "carnet.db")
    ins, key = db.execute("SELECT ins, dossier_key FROM dossier ORDER BY ins LIMIT 1").fetchone()
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", "measurements", "--dossier", ins, str(path)])
    assert first.exit_code == 0, first.output
    assert "312 stored, 3 duplicates, 6 bad" in first.output and "HeartRate: value outside the accepted range" in first.output
    again = runner.invoke(app, ["ingest", "measurements", "--dossier", ins, str(path)])
    assert again.exit_code == 0 and ": 0 stored" in again.output
    n, client = db.execute("SELECT count(*), max(client_id) FROM audit WHERE event = 'measures.import'").fetchone()
    assert n == 2 and client == "carnet-cli:ingest-measurements"
    assert db.execute("SELECT count(*) FROM measurement WHERE dossier_key = ?", (key,)).fetchone()[0] > 300
