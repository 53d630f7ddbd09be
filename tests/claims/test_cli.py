"""``carnet ingest claims FILE`` and ``carnet purge`` on the test databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.audit.log import verify_chain
from carnet.cli import app
from tests.claims.helpers import claims_file, line, sample
from tests.conftest import World


def test_the_command_ingests_reports_bad_lines_by_number_and_verifies(world: World, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      session_key_file: Path) -> None:
    monkeypatch.setenv("CARNET_DATABASE_URL", world.services.settings.effective_database_url)
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    today = world.services.clock().date()
    path = tmp_path / "claims.csv"
    path.write_bytes(claims_file([*sample(world.ins, today), line(world.ins, today).replace("CCAM", "ATC")]))
    runner = CliRunner()
    first = runner.invoke(app, ["ingest", "claims", str(path), "--batch", "2"])
    assert first.exit_code == 0, first.output
    assert "5 read, 4 inserted, 0 duplicates, 1 bad" in first.output
    assert "line 6" in first.output and "code_system" in first.output
    assert world.ins not in first.output
    again = runner.invoke(app, ["ingest", "claims", str(path)])
    assert "0 inserted, 4 duplicates" in again.output
    with world.services.engine.connect() as conn:  # (not `carnet audit verify`: other tests tamper with chains)
        assert verify_chain(conn, world.dossier) == []
    purge = runner.invoke(app, ["purge"])
    assert purge.exit_code == 0, purge.output
    assert "claim lines older than 24 months removed" in purge.output


def test_a_file_with_a_wrong_header_exits_with_an_error(world: World, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, session_key_file: Path) -> None:
    monkeypatch.setenv("CARNET_DATABASE_URL", world.services.settings.effective_database_url)
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    path = tmp_path / "claims.csv"
    path.write_bytes(b"nir,care_date\n")
    result = CliRunner().invoke(app, ["ingest", "claims", str(path)])
    assert result.exit_code == 2
