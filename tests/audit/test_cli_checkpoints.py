"""``carnet audit checkpoint``, ``verify``, ``public-key`` and ``verify-receipt`` as an operator runs them, on the
embedded default (SQLite, ``var/checkpoints``, ``var/checkpoint-key.pem``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carnet.blobs.local import relative_path
from carnet.cli import app


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    for name in ("CARNET_DATABASE_URL", "CARNET_MASTER_KEY", "CARNET_CHECKPOINT_URL", "CARNET_CHECKPOINT_KEY",
                 "CARNET_CHECKPOINT_KEY_FILE", "CARNET_CHECKPOINT_PUBLIC_KEY", "CARNET_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(app, ["demo"]).exit_code == 0
    return tmp_path / "var"


def test_a_truncated_and_rewound_chain_fails_verify_once_checkpointed(env: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(app, ["audit", "checkpoint"])
    assert made.exit_code == 0 and "checkpoints 1 written" in made.output, made.output
    assert (env / "checkpoint-key.pem").stat().st_mode & 0o077 == 0
    assert runner.invoke(app, ["audit", "checkpoint"]).output.strip() == "no chain moved: no checkpoint"
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "1 checkpoints" in ok.output and "0 problems" in ok.output, ok.output
    db = sqlite3.connect(env / "carnet.db")
    key, n = db.execute("select dossier_key, seq from audit_chain where dossier_key != ? order by seq desc limit 1",
                        ("00000000000000000000000000000000",)).fetchone()
    assert n >= 3
    db.execute("delete from audit where dossier_key = ? and seq > 1", (key,))
    h, prev = db.execute("select hash, prev_hash from audit where dossier_key = ? and seq = 1", (key,)).fetchone()
    db.execute("update audit_chain set seq = 1, head = ?, prev = ?, anchored_seq = 1 where dossier_key = ?",
               (h, prev, key))
    db.commit()
    bad = runner.invoke(app, ["audit", "verify"])
    assert bad.exit_code == 1, bad.output
    out = " ".join(bad.output.split())
    chain = "-".join((key[:8], key[8:12], key[12:16], key[16:20], key[20:]))
    assert f"truncated chain {chain} at seq 2" in out and f"rewound chain {chain} at seq 1" in out
    assert "Testé" not in out and "Alix" not in out  # positions and keys, never health data


def test_the_public_key_is_printed_and_a_receipt_is_checked_by_the_cli(env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    printed = json.loads(runner.invoke(app, ["audit", "public-key"]).output)
    assert len(printed["key_id"]) == 16 and "BEGIN PUBLIC KEY" in printed["pem"]
    (tmp_path / "r.json").write_text("{}")
    (tmp_path / "h.json").write_text("{}")
    result = runner.invoke(app, ["audit", "verify-receipt", str(tmp_path / "r.json"), str(tmp_path / "h.json")])
    assert result.exit_code == 1 and "FAILED: not a Carnet audit receipt" in result.output


def test_a_verifier_with_only_the_public_key_checks_the_log(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    runner.invoke(app, ["audit", "checkpoint"])
    public = json.loads(runner.invoke(app, ["audit", "public-key"]).output)["public_key"]
    monkeypatch.setenv("CARNET_CHECKPOINT_PUBLIC_KEY", public)
    monkeypatch.setenv("CARNET_CHECKPOINT_KEY_FILE", str(env / "absent.pem"))
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0
    assert not (env / "absent.pem").exists()
    other = json.loads(runner.invoke(app, ["audit", "public-key"]).output)["public_key"]
    assert other == public
    monkeypatch.setenv("CARNET_CHECKPOINT_PUBLIC_KEY", "A" * 43 + "=")  # another key: every checkpoint is forged
    forged = runner.invoke(app, ["audit", "verify"])
    assert forged.exit_code == 1 and "checkpoint-forged checkpoint 1" in forged.output


def test_a_past_month_is_archived_and_verified_by_the_cli_and_a_lost_archive_fails_verify(env: Path) -> None:
    import datetime as dt
    import uuid

    from carnet.access.actors import Actor, ActorKind
    from carnet.audit.log import record
    from carnet.db.engine import make_engine

    engine = make_engine(f"sqlite:///{env / 'carnet.db'}", pool_size=1)
    key = uuid.uuid4()
    with engine.begin() as conn:
        for day in (3, 4, 5):
            record(conn, dossier_key=key, actor=Actor(ActorKind.PROFESSIONAL, id="810001045367", profession="10"),
                   action="R", event="ITI-68", now=dt.datetime(2026, 3, day, tzinfo=dt.UTC))
    engine.dispose()
    runner = CliRunner()
    assert runner.invoke(app, ["audit", "archive", "--before", "2026-13"]).exit_code == 2
    refused = runner.invoke(app, ["audit", "archive", "--before", "2026-04"])
    assert refused.exit_code == 1 and "no signed checkpoint commits to yet" in refused.output, refused.output
    assert runner.invoke(app, ["audit", "checkpoint"]).exit_code == 0
    done = runner.invoke(app, ["audit", "archive", "--before", "2026-04"])
    assert done.exit_code == 0 and "2026-03: 3 records in archive 2026-03-0001, dropped" in done.output, done.output
    assert "nothing to archive" in runner.invoke(app, ["audit", "archive", "--before", "2026-04"]).output
    later = runner.invoke(app, ["audit", "archive", "--before", "2099-01"])
    assert later.exit_code == 1 and "the current month is never archived" in " ".join(later.output.split())
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "(3 of them in 1 archives)" in " ".join(ok.output.split()), ok.output
    (env / "audit-archive" / relative_path("2026-03-0001")).unlink()
    bad = runner.invoke(app, ["audit", "verify"])
    out = " ".join(bad.output.split())
    assert bad.exit_code == 1 and "archive-missing archive 2026-03 part 1" in out, out
