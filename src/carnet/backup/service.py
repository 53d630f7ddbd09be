"""``carnet backup create DIR`` and ``carnet backup restore DIR`` (docs/OPERATIONS.md: the drill step by step).

A backup is a directory::

    MANIFEST.json         every other file with its size and SHA-256 (carnet.backup.manifest)
    database.pgdump       or database.sqlite: the database snapshot (carnet.backup.database)
    blob-keys.txt         the blob keys the snapshot's documents reference, one per line
    blobs/                those blobs, as a local blob store lays them out (ciphertext: never decrypted here)
    keys/master-key.json  the master key ring (from its file, or from CARNET_MASTER_KEY)
    checkpoints/          the audit checkpoints signed before the snapshot (carnet.backup.checkpoints)
    keys/…, …             the other files and directories of :data:`ITEMS` that exist (the checkpoint signing key)

Consistency: the database snapshot comes first, then the blobs it references. A document's blob is written once under
a key that is never reused and before its row commits, so every blob a snapshot references is in the store when the
copy starts; blobs written after the snapshot are not copied (to the restored database they would be orphans). Only
an erasure between the snapshot and the copy (a purged dossier) can remove a referenced blob: the backup then fails
and says so, and the next run takes a new snapshot.

A restore refuses a backup whose manifest does not verify, and a target that is not empty (a database with tables,
a blob store with blobs, a key file or an item that exists): it never overwrites.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from carnet import __version__
from carnet.backup import checkpoints, database, manifest
from carnet.blobs import (
    BlobNotFound,
    BlobStore,
    IntegrityError,
    KeyRing,
    LocalBlobStore,
    blobstore_from_url,
    rewrap,
)
from carnet.config import Settings
from carnet.db.tables import audit_archive, document

__all__ = ["ITEMS", "BackupError", "Item", "Report", "create", "restore"]

KEYS_FILE = "blob-keys.txt"
MASTER_KEYS = "keys/master-key.json"


class BackupError(Exception):
    """The backup or the restore cannot go on; the message says why, never with data."""


@dataclass(frozen=True)
class Item:
    """A file or a directory that a backup carries as it is (``name`` is its place in the backup)."""

    name: str
    path: Callable[[Settings], str | Path | None]
    directory: bool = False


# What is copied as it is, besides the database, the blobs and the master keys. A new setting that names a file or a
# directory to keep is one line here. The audit checkpoints themselves are copied by carnet.backup.checkpoints (those
# signed before the snapshot, from whatever store holds them); their signing key is an item.
ITEMS: tuple[Item, ...] = (
    Item("keys/checkpoint-key.pem", lambda s: s.checkpoint_key_file or s.var_dir / "checkpoint-key.pem"),
    Item("keys/token-key.pem", lambda s: s.token_key_file or s.var_dir / "token-key.pem"),
    Item("keys/demo-idp-key.pem", lambda s: s.demo_idp_key_file or s.var_dir / "demo-idp-key.pem"),
)


@dataclass
class Report:
    directory: Path
    created: str = ""  # the snapshot's time (ISO 8601, UTC)
    documents: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    total_bytes: int = 0
    items: list[str] = field(default_factory=list)
    seconds: float = 0.0
    audit_problems: int = 0
    checkpoints: int = 0  # audit checkpoints carried (those signed before the snapshot)


def master_key_path(settings: Settings) -> Path:
    return Path(settings.master_key_file) if settings.master_key_file else settings.var_dir / "master-key.json"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def create(settings: Settings, engine: Engine, keyring: KeyRing, store: BlobStore, target: Path,
           on_blob: Callable[[int, int], None] | None = None) -> Report:
    """Back up into ``target``, a directory that does not exist or is empty."""
    started = time.monotonic()
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: a backup goes into a new directory")
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    report = Report(target)
    snapshot_at = dt.datetime.now(dt.UTC)
    report.created = snapshot_at.isoformat()
    try:
        db_file, report.documents = database.snapshot(engine, settings.effective_database_url, target,
                                                      target / KEYS_FILE)
    except database.DatabaseBackupError as exc:
        raise BackupError(str(exc)) from None
    copy = LocalBlobStore(target / "blobs")
    keys = (target / KEYS_FILE).read_text(encoding="ascii").split()
    missing = 0
    for key in dict.fromkeys(keys):
        try:
            report.blob_bytes += copy.put_stream(key, store.get_stream(key))
        except BlobNotFound:
            missing += 1
        report.blobs += 1
        if on_blob:
            on_blob(report.blobs, len(keys))
    if missing:
        raise BackupError(f"{missing} blobs that the snapshot references are no longer in the store (a dossier "
                          "erased since the snapshot?): run the backup again into a new directory")
    _write_private(target / MASTER_KEYS, keyring.to_json().encode())
    report.checkpoints = checkpoints.copy_out(settings, snapshot_at, target)
    for item in ITEMS:
        source = item.path(settings)
        if source is None or not Path(source).exists():
            continue
        dest = target / item.name
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if item.directory:
            shutil.copytree(source, dest)
        else:
            shutil.copy2(source, dest)
        report.items.append(item.name)
    with engine.connect() as conn:
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    about = {"carnet": __version__, "created": snapshot_at.isoformat(), "schema_revision": revision,
             "database": {"dialect": database.dialect_of(settings.effective_database_url), "file": db_file},
             "documents": report.documents, "blobs": report.blobs, "items": report.items,
             "checkpoints": report.checkpoints,
             "master_key_ids": list(keyring.key_ids)}
    written = manifest.write(target, about)
    report.total_bytes = sum(f["size"] for f in written["files"].values())
    report.seconds = time.monotonic() - started
    return report


def _refuse_non_empty(settings: Settings, engine: Engine, store: BlobStore, items: list[str]) -> None:
    if not database.is_empty(engine):
        raise BackupError("the target database has tables: restore into an empty database")
    if next(iter(store.iter_blobs()), None) is not None:
        raise BackupError("the target blob store holds blobs: restore into an empty store")
    if not settings.master_key and master_key_path(settings).exists():
        raise BackupError(f"{master_key_path(settings)} exists: restore where no master key file is")
    if why := checkpoints.refuse_non_empty(settings):
        raise BackupError(why)
    for item in ITEMS:
        path = item.path(settings)
        if item.name in items and path is not None and Path(path).exists() and \
                (not Path(path).is_dir() or any(Path(path).iterdir())):
            raise BackupError(f"{path} exists: restore where it does not")


def restore(settings: Settings, engine: Engine, source: Path,
            on_blob: Callable[[int, int], None] | None = None) -> Report:
    """Verify the backup in ``source``, then restore it into the (empty) database, blob store and files that
    ``settings`` name. Ends by checking what it restored: every document's blob is there and its data key unwraps
    under the restored master keys (no content is decrypted), and the audit chains verify."""
    started = time.monotonic()
    try:
        about = manifest.verify(source)
    except manifest.ManifestError as exc:
        raise BackupError(str(exc)) from None
    url = settings.effective_database_url
    if about["database"]["dialect"] != database.dialect_of(url):
        raise BackupError(f"this backup is of a {about['database']['dialect']} database; the target is "
                          f"{database.dialect_of(url)}")
    store = blobstore_from_url(settings.effective_blob_url)
    _refuse_non_empty(settings, engine, store, about.get("items", []))
    ring = KeyRing.from_json((source / MASTER_KEYS).read_bytes())
    if settings.master_key:  # the target's keys come from its key store: they must include the backup's
        given = KeyRing.from_spec(settings.master_key)
        if not all(k in given and given.fingerprint(k) == ring.fingerprint(k) for k in ring.key_ids):
            raise BackupError("CARNET_MASTER_KEY does not hold the backup's master keys "
                              f"({', '.join(ring.key_ids)}): set it to the keys of the backed-up deployment")
    report = Report(source, created=str(about.get("created", "")))
    report.total_bytes = sum(f["size"] for f in about["files"].values())
    try:
        database.restore(url, source / about["database"]["file"])
    except database.DatabaseBackupError as exc:
        raise BackupError(str(exc)) from None
    from carnet.db.migrate import upgrade

    upgrade(url)  # a backup of an older Carnet: its schema moves forward, as at any upgrade
    copy = LocalBlobStore(source / "blobs")
    keys = list(dict.fromkeys((source / KEYS_FILE).read_text(encoding="ascii").split()))
    for key in keys:
        report.blob_bytes += store.put_stream(key, copy.get_stream(key))
        report.blobs += 1
        if on_blob:
            on_blob(report.blobs, len(keys))
    if not settings.master_key:
        _write_private(master_key_path(settings), ring.to_json().encode())
    for item in ITEMS:
        path = item.path(settings)
        if item.name not in about.get("items", []):
            continue
        if path is None:
            raise BackupError(f"the backup holds {item.name}, but its setting is not set on this machine")
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if item.directory:
            shutil.copytree(source / item.name, path, dirs_exist_ok=True)
        else:
            shutil.copy2(source / item.name, path)
        report.items.append(item.name)
    report.checkpoints = checkpoints.copy_in(settings, source)
    report.documents = _check(engine, store, ring)
    from carnet.audit.log import verify_all

    with engine.connect() as conn:
        archived: dict[str, Any] = {}
        if report.checkpoints or conn.execute(select(func.count()).select_from(audit_archive)).scalar():
            # the restored chains against the restored checkpoints, continuing from the archived months (which stay
            # in the archive store, not in the backup: docs/AUDIT.md)
            from carnet.audit.anchor import from_settings
            from carnet.audit.anchor_verify import verify
            from carnet.audit.archive import store_from_settings

            checked = verify(conn, from_settings(settings), store_from_settings(settings))
            report.audit_problems += len(checked.problems)
            archived = dict(checked.archives.runs)
        report.audit_problems += len(verify_all(conn, archived)[2])
    report.seconds = time.monotonic() - started
    return report


def _check(engine: Engine, store: BlobStore, ring: KeyRing) -> int:
    """Every document's blob is in the store and its data key unwraps under ``ring``; returns the count."""
    n = 0
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(document)).scalar_one()
        rows = conn.execution_options(yield_per=1000).execute(
            select(document.c.document_id, document.c.blob_key, document.c.wrapped_key, document.c.key_id))
        for r in rows:
            if not store.exists(r.blob_key):
                raise BackupError(f"document {r.document_id}: its blob is missing after the restore")
            try:
                rewrap(ring, bytes(r.wrapped_key), r.key_id)  # unwraps (or fails); the result is dropped
            except IntegrityError:
                raise BackupError(f"document {r.document_id}: its data key does not unwrap under the backup's "
                                  "master keys") from None
            n += 1
    if n != total:
        raise BackupError("the restored database changed while it was checked")
    return n


def summary(report: Report) -> dict[str, Any]:
    return {"documents": report.documents, "blobs": report.blobs, "blob_bytes": report.blob_bytes,
            "total_bytes": report.total_bytes, "items": report.items, "checkpoints": report.checkpoints,
            "seconds": round(report.seconds, 2)}
