"""carnet.backup in process: what a backup holds, and every refusal of a restore (damage, a non-empty target, keys
that do not match, another kind of database). The whole drill through the commands is tests/backup/test_drill.py."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from carnet.access.actors import Actor, ActorKind
from carnet.backup import BackupError, create, restore
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services, run
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.documents import reading
from carnet.documents import service as documents
from tests.conftest import World
from tests.fhir.routes.test_documents import docref
from tests.s3server import S3Server


def settings_in(root: Path, **kw: str) -> Settings:
    return Settings(var_dir=root / "var", database_url=f"sqlite:///{root / 'var' / 'carnet.db'}", **kw)  # type: ignore[arg-type]


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Services]:
    settings = settings_in(tmp_path / "old")
    settings.ensure_var()
    upgrade(settings.effective_database_url)
    services = build_services(settings)
    services.blobs.put("abcd0001", b"ciphertext of nothing")  # an orphan: not in a snapshot
    yield services
    services.engine.dispose()


@pytest.fixture
def backup(source: Services, tmp_path: Path) -> Path:
    target = tmp_path / "backup"
    report = create(source.settings, source.engine, source.keyring, source.blobs, target)
    assert report.documents == 0 and report.blobs == 0  # the orphan blob is not carried
    return target


def restore_into(root: Path, backup: Path, **kw: str):  # type: ignore[no-untyped-def]
    settings = settings_in(root, **kw)
    settings.ensure_var()
    engine = make_engine(settings.effective_database_url, pool_size=1)
    try:
        return restore(settings, engine, backup)
    finally:
        engine.dispose()


def test_a_backup_holds_the_snapshot_the_keys_and_a_manifest_of_every_file(backup: Path, source: Services) -> None:
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"database.sqlite", "blob-keys.txt", "keys/master-key.json"}
    assert manifest["database"] == {"dialect": "sqlite", "file": "database.sqlite"}
    assert manifest["master_key_ids"] == ["k1"]
    assert (backup / "keys" / "master-key.json").stat().st_mode & 0o077 == 0


def test_a_backup_goes_into_a_new_directory_only(source: Services, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        create(source.settings, source.engine, source.keyring, source.blobs, tmp_path / "full")


def test_a_restored_backup_checks_out(backup: Path, tmp_path: Path) -> None:
    report = restore_into(tmp_path / "new", backup)
    assert report.audit_problems == 0
    assert (tmp_path / "new" / "var" / "master-key.json").exists()


@pytest.mark.parametrize("damage", ["missing", "extra", "altered", "no manifest"])
def test_a_damaged_backup_is_refused_before_anything_is_written(backup: Path, tmp_path: Path, damage: str) -> None:
    if damage == "missing":
        (backup / "blob-keys.txt").unlink()
    elif damage == "extra":
        (backup / "blobs").mkdir(exist_ok=True)
        (backup / "blobs" / "stray").write_bytes(b"x")
    elif damage == "altered":
        (backup / "keys" / "master-key.json").write_text("{}")
    else:
        (backup / "MANIFEST.json").unlink()
    with pytest.raises(BackupError):
        restore_into(tmp_path / "new", backup)
    assert not (tmp_path / "new" / "var" / "carnet.db").exists()
    assert not (tmp_path / "new" / "var" / "master-key.json").exists()


def test_a_restore_never_overwrites_a_deployment(backup: Path, tmp_path: Path) -> None:
    restore_into(tmp_path / "new", backup)
    with pytest.raises(BackupError, match="empty database"):
        restore_into(tmp_path / "new", backup)


def test_a_restore_with_keys_from_the_environment_needs_the_backups_keys(backup: Path, tmp_path: Path) -> None:
    other = f"k1:{base64.b64encode(bytes(32)).decode()}"
    with pytest.raises(BackupError, match="does not hold the backup's master keys"):
        restore_into(tmp_path / "new", backup, master_key=other)
    ring = json.loads((backup / "keys" / "master-key.json").read_text())
    same = ",".join(f"{k}:{v}" for k, v in ring["keys"].items())
    restore_into(tmp_path / "newer", backup, master_key=same)
    assert not (tmp_path / "newer" / "var" / "master-key.json").exists()  # the keys stay in the key store


def test_a_sqlite_backup_is_not_restored_into_postgresql(backup: Path, tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "pg", database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(BackupError, match="backup is of a sqlite database"):
        restore(settings, make_engine(settings.effective_database_url, pool_size=1), backup)


def test_a_backup_of_an_s3_store_restored_into_another_bucket_opens_every_document(
        tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3_server.env().items():
        monkeypatch.setenv(k, v)
    old = settings_in(tmp_path / "old", blob_url=f"s3://{s3_server.new_bucket()}/carnet")
    old.ensure_var()
    upgrade(old.effective_database_url)
    services = build_services(old)
    world = World(services, None)  # type: ignore[arg-type]
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    contents = {}
    for size in (10_000, 3 * 1024 * 1024):  # one whole-segment blob, one of several streamed segments
        res = docref(world, data=b"%PDF-1.4\n" + os.urandom(size))
        data = base64.b64decode(res["content"][0]["attachment"].pop("data"))
        pub = run(services, gp, lambda ctx, r=res, d=data: documents.publish(  # type: ignore[misc]
            ctx, world.dossier, r, documents.Content(d, "application/pdf"), "ITI-105"))
        contents[str(pub.document_id)] = data
    report = create(old, services.engine, services.keyring, services.blobs, tmp_path / "backup")
    services.engine.dispose()
    assert report.documents == 2

    new = settings_in(tmp_path / "new", blob_url=f"s3://{s3_server.new_bucket()}/restored")
    new.ensure_var()
    engine = make_engine(new.effective_database_url, pool_size=1)
    assert restore(new, engine, tmp_path / "backup").documents == 2
    engine.dispose()
    restored = build_services(new)
    for doc_id, data in contents.items():
        got, _, _ = run(restored, gp, lambda ctx, i=doc_id: reading.retrieve(ctx, i))  # type: ignore[misc]
        assert got == data
    restored.engine.dispose()
