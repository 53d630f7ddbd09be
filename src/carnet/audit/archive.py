"""Audit months archived to the object store (issue 10 §3; docs/AUDIT.md "Archives").

``carnet audit archive --before YYYY-MM`` writes every month before that one that the database still holds to the
archive store (``CARNET_AUDIT_ARCHIVE_URL``: by default ``var/audit-archive``, or ``<blob url>/audit-archive`` on S3)
as one file that verifies on its own, then drops the month (PostgreSQL: its partition; SQLite: its rows), in one
transaction, only after the file was read back from the store and verified.

The file (``<YYYY-MM>-<part>``, gzip, deterministic) is JSON Lines: one line per record, by chain then seq,
``{"chain", "seq", "prev_hash", "hash", "body"}`` where ``body`` is the exact canonical JSON the record's hash covers
(:func:`carnet.audit.log.canonical`); then one last line, the manifest: the month, the number of records and chains,
each chain's runs of consecutive records (first seq, the hash it links to, last seq, its hash: the links into the
month and out of it), the SHA-256 of the record lines, and an Ed25519 signature by the checkpoint key over
``carnet-audit-archive/1\\n<month>\\n<part>\\n<records>\\n<content sha256>\\n``. Anyone with the public key checks it:
every record's hash recomputed from its body, the links inside each run, the runs, the content hash, the signature.

``audit_archive`` keeps a row per archived month, so that ``carnet audit verify`` knows which files must exist; it
reads them all (:func:`load`), continues every chain from its archived runs into the live table, and checks the
archived records against the signed checkpoints too. Refused: a month not wholly in the past, (checkpoints on) a
month some record of which no checkpoint commits to yet, and a month with emergency or regulation accesses awaiting
their review (the review queue reads the live table). Re-running does nothing more; a crash after the write leaves
the file, which the next run finds identical (same content hash) and uses.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, text

from carnet.access.actors import Mode
from carnet.audit import partitions as parts
from carnet.audit import receipt as rc
from carnet.audit.anchor import Anchor, _same_place
from carnet.audit.log import GENESIS, Run, canonical, link
from carnet.blobs import BlobConflict, BlobNotFound, BlobStore, blobstore_from_url
from carnet.config import Settings
from carnet.db.tables import access_review, audit, audit_archive, audit_chain
from carnet.ids import SYSTEM_CHAINS

FORMAT = "carnet-audit-archive/1"


class ArchiveRefused(Exception):
    """The month may not be archived now (the message names the month, never a record)."""


@dataclass
class Checked:
    manifest: dict[str, Any]
    runs: dict[str, list[Run]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def key_for(month: dt.date, part: int) -> str:
    return f"{parts.month_text(month)}-{part:04d}"


def signed_text(manifest: dict[str, Any]) -> bytes:
    return (f"{FORMAT}\n{manifest['month']}\n{int(manifest['part'])}\n{int(manifest['records'])}\n"
            f"{manifest['content_sha256']}\n").encode()


class _Runs:
    """Builds each chain's runs from records given in (chain, seq) order."""

    def __init__(self) -> None:
        self.runs: dict[str, list[Run]] = {}
        self._open: tuple[str, int, str, int, str] | None = None

    def add(self, chain: str, seq: int, prev: str, h: str) -> bool:
        """Adds a record; False if it does not link to the one before it in its run."""
        ok = True
        o = self._open
        if o is not None and o[0] == chain and seq == o[3] + 1:
            ok = prev == o[4]
            self._open = (chain, o[1], o[2], seq, h)
            return ok
        self.close()
        self._open = (chain, seq, prev, seq, h)
        return ok

    def close(self) -> None:
        if self._open is not None:
            chain, first, prev, last, out = self._open
            self.runs.setdefault(chain, []).append(Run(first, prev, last, out))
            self._open = None

    def as_list(self) -> list[list[Any]]:
        self.close()
        return [[c, r.first, r.prev, r.last, r.out] for c in sorted(self.runs) for r in self.runs[c]]


def _record_line(row: dict[str, Any]) -> bytes:
    line = {"chain": str(row["dossier_key"]), "seq": int(row["seq"]), "prev_hash": row["prev_hash"],
            "hash": row["hash"], "body": canonical(row).decode()}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def write_file(rows: Iterator[dict[str, Any]], month: dt.date, part: int, anchor: Anchor,
               out: IO[bytes]) -> dict[str, Any]:
    """Write the archive of ``rows`` (by chain, then seq) to ``out``; returns its manifest."""
    if anchor.key is None:
        raise ArchiveRefused("archiving needs the checkpoint signing key (this process has the public key only)")
    content = hashlib.sha256()
    runs = _Runs()
    records = 0
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        for row in rows:
            line = _record_line(row)
            content.update(line)
            gz.write(line)
            runs.add(str(row["dossier_key"]), int(row["seq"]), str(row["prev_hash"]), str(row["hash"]))
            records += 1
        run_list = runs.as_list()
        manifest: dict[str, Any] = {"format": FORMAT, "month": parts.month_text(month), "part": part,
                                    "records": records, "chains": len(runs.runs), "runs": run_list,
                                    "content_sha256": content.hexdigest(), "key_id": rc.key_id(anchor.public_raw)}
        manifest["signature"] = base64.b64encode(anchor.key.sign(signed_text(manifest))).decode("ascii")
        gz.write(json.dumps(manifest, separators=(",", ":")).encode() + b"\n")
    return manifest


def check(chunks: Iterator[bytes], public_raw: bytes,
          on_record: Callable[[str, int, str], None] | None = None) -> Checked:
    """Verify an archive on its own (streamed); ``on_record(chain, seq, hash)`` sees every record whose hash holds.
    Problems say what failed and where (chain key, seq), never a record's content."""
    reader = gzip.GzipFile(fileobj=_ChunkReader(chunks), mode="rb")
    content = hashlib.sha256()
    runs = _Runs()
    found: list[str] = []
    last: bytes | None = None
    records = 0
    try:
        for line in reader:
            if last is not None:
                content.update(last)
                records += 1
                _check_record(last, runs, found, on_record)
            last = line
    except (OSError, EOFError, ValueError):
        return Checked({}, {}, ["unreadable (not a whole gzip file)"])
    try:
        manifest = json.loads(last or b"")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ValueError("format")
    except ValueError:
        return Checked({}, runs.runs, [*found, "no manifest"])
    if manifest.get("content_sha256") != content.hexdigest():
        found.append("its records do not match the manifest's content hash")
    if int(manifest.get("records", -1)) != records:
        found.append(f"the manifest counts {manifest.get('records')} records, the file holds {records}")
    if manifest.get("runs") != runs.as_list():
        found.append("the manifest's chain links do not match its records")
    if manifest.get("key_id") != rc.key_id(public_raw) or not _signature_ok(manifest, public_raw):
        found.append(f"the signature does not verify with the checkpoint key {rc.key_id(public_raw)}")
    return Checked(manifest, runs.runs, found)


def _check_record(line: bytes, runs: _Runs, found: list[str],
                  on_record: Callable[[str, int, str], None] | None) -> None:
    try:
        rec = json.loads(line)
        chain, seq, prev, h, body = (str(rec["chain"]), int(rec["seq"]), str(rec["prev_hash"]), str(rec["hash"]),
                                     str(rec["body"]))
        if json.loads(body).get("dossier_key") != chain:
            raise ValueError("chain")
    except (ValueError, KeyError, TypeError, AttributeError):
        found.append("a record line is unreadable")
        return
    if link(prev, seq, hashlib.sha256(body.encode()).hexdigest()) != h:
        found.append(f"record of chain {chain} at seq {seq} was altered")
    elif on_record is not None:
        on_record(chain, seq, h)
    if not runs.add(chain, seq, prev, h):
        found.append(f"chain {chain} at seq {seq} does not link to the record before it")


def _signature_ok(manifest: dict[str, Any], public_raw: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(base64.b64decode(manifest["signature"], validate=True),
                                                              signed_text(manifest))
        return True
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return False


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def store_from_settings(settings: Settings) -> BlobStore:
    """The archive store (``CARNET_AUDIT_ARCHIVE_URL``, :attr:`Settings.effective_audit_archive_url`); never the
    document store itself, whose garbage collector would take archives for orphaned blobs."""
    url = settings.effective_audit_archive_url
    if _same_place(url, settings.effective_blob_url):
        raise ValueError("CARNET_AUDIT_ARCHIVE_URL must not be the document store itself (CARNET_BLOB_URL)")
    return blobstore_from_url(url)


# --- archiving --------------------------------------------------------------------------------------------------

@dataclass
class Done:
    month: dt.date
    key: str  # "" for an empty month (PostgreSQL: a partition made ahead that nothing was recorded in): no file
    records: int
    written: bool  # False: an identical archive was already in the store (a run that stopped after writing it)


def months_to_archive(conn: Connection, before: dt.date) -> list[dt.date]:
    """The months before ``before`` that the database still holds: PostgreSQL, its attached partitions and the months
    of records in the default partition; SQLite, the months of its records."""
    if parts.partitioned(conn):
        return sorted({m for m in parts.attached(conn) if m < before} | set(parts.default_months(conn, before)))
    first = conn.execute(select(func.min(audit.c.recorded))).scalar()
    if first is None:
        return []
    months, m = [], parts.month_of(first)
    while m < before:
        start, end = parts.bounds(m)
        if conn.execute(select(audit.c.seq).where(audit.c.recorded >= start, audit.c.recorded < end)
                        .limit(1)).first() is not None:
            months.append(m)
        m = parts.add_months(m, 1)
    return months


def archive_before(engine: Engine, store: BlobStore, anchor: Anchor, before: dt.date, now: dt.datetime, *,
                   checkpoints_on: bool) -> list[Done]:
    """Archive and drop every month before ``before`` still in the database (see the module's docstring)."""
    if before > parts.month_of(now.astimezone(dt.UTC)):
        raise ArchiveRefused(f"{parts.month_text(before)} is after the current month: the current month is never "
                             "archived")
    with engine.connect() as conn:
        months = months_to_archive(conn, before)
    return [d for d in (archive_month(engine, store, anchor, m, now, checkpoints_on=checkpoints_on)
                        for m in months) if d is not None]


def _month_rows(conn: Connection, month: dt.date) -> Iterator[dict[str, Any]]:
    start, end = parts.bounds(month)
    result = conn.execute(select(audit).where(audit.c.recorded >= start, audit.c.recorded < end)
                          .order_by(audit.c.dossier_key, audit.c.seq).execution_options(yield_per=2000))
    for r in result.mappings():
        yield dict(r)


def archive_month(engine: Engine, store: BlobStore, anchor: Anchor, month: dt.date, now: dt.datetime, *,
                  checkpoints_on: bool) -> Done | None:
    """Archive one month, then drop it, in one transaction (None: nothing of it left in the database)."""
    start, end = parts.bounds(month)
    with engine.begin() as conn:
        pg = parts.partitioned(conn)
        if pg:
            parts.make(conn, [month])  # takes the makers' lock; moves the month's records out of the default
            name = parts.partition_name(month)
            if month not in parts.attached(conn):
                return None
            conn.execute(text(f"LOCK TABLE {name} IN SHARE MODE"))  # no record comes into the month meanwhile
            if conn.execute(select(audit.c.seq).where(audit.c.recorded >= start, audit.c.recorded < end)
                            .limit(1)).first() is None:  # a month made ahead that nothing was recorded in: no file
                _drop_partition(conn, name)
                return Done(month, "", 0, False)
        in_month = (audit.c.recorded >= start, audit.c.recorded < end)
        if not pg and conn.execute(select(audit.c.seq).where(*in_month).limit(1)).first() is None:
            return None
        if checkpoints_on:
            _refuse_unanchored(conn, month)
        _refuse_unreviewed(conn, month)
        taken = {int(p) for p in conn.execute(select(audit_archive.c.part)
                                              .where(audit_archive.c.month == parts.month_text(month))).scalars()}
        part = max(taken, default=0) + 1
        with tempfile.TemporaryFile() as tmp:
            manifest = write_file(_month_rows(conn, month), month, part, anchor, tmp)
            key, written = _put(store, tmp, month, part, manifest["content_sha256"])
        checked = check(store.get_stream(key), anchor.public_raw)
        if checked.problems or checked.manifest.get("content_sha256") != manifest["content_sha256"]:
            raise ArchiveRefused(f"the archive of {parts.month_text(month)} did not verify once written: nothing "
                                 "was dropped")
        conn.execute(insert(audit_archive).values(
            month=parts.month_text(month), part=int(checked.manifest["part"]), blob_key=key,
            records=manifest["records"], chains=manifest["chains"], content_sha256=manifest["content_sha256"],
            archived_at=now))
        if pg:
            dropped = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() or 0  # noqa: S608 - a name made of digits
            _drop_partition(conn, name)
        else:
            dropped = conn.execute(audit.delete().where(*in_month)).rowcount
        if dropped != manifest["records"]:  # cannot happen under the lock: refuse rather than lose a record
            raise ArchiveRefused(f"{parts.month_text(month)} changed while it was archived: nothing was dropped")
        return Done(month, key, int(manifest["records"]), written)


def _drop_partition(conn: Connection, name: str) -> None:
    conn.execute(text(f"ALTER TABLE audit DETACH PARTITION {name}"))
    conn.execute(text(f"DROP TABLE {name}"))


def _refuse_unanchored(conn: Connection, month: dt.date) -> None:
    start, end = parts.bounds(month)
    last = (select(audit.c.dossier_key, func.max(audit.c.seq).label("top"))
            .where(audit.c.recorded >= start, audit.c.recorded < end).group_by(audit.c.dossier_key).subquery())
    behind = conn.execute(select(func.count()).select_from(last.join(
        audit_chain, audit_chain.c.dossier_key == last.c.dossier_key)).where(
        audit_chain.c.anchored_seq < last.c.top)).scalar() or 0
    if behind:
        raise ArchiveRefused(f"{parts.month_text(month)}: {behind} chains have records no signed checkpoint commits "
                             "to yet (carnet audit checkpoint first)")


def _refuse_unreviewed(conn: Connection, month: dt.date) -> None:
    """The review queue (:mod:`carnet.history.accesses`) reads emergency and regulation accesses from the live table:
    a month is archived only once every one of them was reviewed."""
    start, end = parts.bounds(month)
    pending = conn.execute(select(func.count()).select_from(audit.outerjoin(access_review, and_(
        access_review.c.dossier_key == audit.c.dossier_key, access_review.c.seq == audit.c.seq))).where(
        audit.c.recorded >= start, audit.c.recorded < end, audit.c.outcome == "0",
        audit.c.mode.in_([Mode.EMERGENCY.value, Mode.REGULATION.value]), audit.c.dossier_key.not_in(SYSTEM_CHAINS),
        access_review.c.seq.is_(None))).scalar() or 0
    if pending:
        raise ArchiveRefused(f"{parts.month_text(month)}: {pending} emergency or regulation accesses await their "
                             "review (the review queue reads them from the live table)")


def _put(store: BlobStore, tmp: IO[bytes], month: dt.date, part: int, content_sha256: str) -> tuple[str, bool]:
    """Write the archive once under the first free part (or find an identical one there); returns its key and
    whether this call wrote it."""
    for p in range(part, part + 100):
        key = key_for(month, p)
        if store.exists(key):
            existing = _manifest_of(store, key)
            if existing is not None and existing.get("content_sha256") == content_sha256 \
                    and int(existing.get("part", 0)) == p:
                return key, False  # written by a run that stopped before it dropped the month
            continue
        tmp.seek(0)
        try:
            store.put_stream(key, iter(lambda: tmp.read(1024 * 1024), b""))
        except BlobConflict:
            continue
        return key, True
    raise ArchiveRefused(f"no free name for the archive of {parts.month_text(month)}")


def _manifest_of(store: BlobStore, key: str) -> dict[str, Any] | None:
    try:
        with gzip.GzipFile(fileobj=_ChunkReader(store.get_stream(key)), mode="rb") as gz:
            last = b""
            for line in gz:
                last = line
        doc = json.loads(last)
        return doc if isinstance(doc, dict) else None
    except (BlobNotFound, OSError, EOFError, ValueError):
        return None


# --- verification across archives -------------------------------------------------------------------------------

@dataclass
class Archives:
    """What the archives hold, for ``carnet audit verify``: each chain's archived runs, and what is wrong."""

    files: int = 0
    records: int = 0
    runs: dict[str, list[Run]] = field(default_factory=dict)
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (problem, where, detail)

    def last_seq(self, chain: str) -> int:
        return max((r.last for r in self.runs.get(chain, [])), default=0)


def load(conn: Connection, store: BlobStore, public_raw: bytes,
         on_record: Callable[[str, int, str], None] | None = None) -> Archives:
    """Read and check every archive ``audit_archive`` names (a missing or altered one is a problem)."""
    out = Archives()
    for row in conn.execute(select(audit_archive).order_by(audit_archive.c.month, audit_archive.c.part)):
        where = f"archive {row.month} part {row.part}"
        try:
            checked = check(store.get_stream(row.blob_key), public_raw, on_record)
        except BlobNotFound:
            out.problems.append(("archive-missing", where, "not in the archive store"))
            continue
        out.files += 1
        out.problems += [("archive-altered", where, p) for p in checked.problems]
        m = checked.manifest
        if m and (m.get("content_sha256") != row.content_sha256 or m.get("month") != row.month
                  or int(m.get("records", -1)) != int(row.records)):
            out.problems.append(("archive-altered", where, "not the archive that was written"))
        out.records += int(m.get("records", 0)) if m else 0
        for chain, runs in checked.runs.items():
            out.runs.setdefault(chain, []).extend(runs)
    for runs in out.runs.values():
        runs.sort(key=lambda r: r.first)
    return out


__all__ = ["FORMAT", "GENESIS", "ArchiveRefused", "Archives", "Checked", "Done", "Run", "archive_before",
           "archive_month", "check", "key_for", "load", "months_to_archive", "store_from_settings", "write_file"]
