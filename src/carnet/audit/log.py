"""The audit log: append-only, hash-chained per dossier, written in the same transaction as the action.

Each record's ``hash`` is SHA-256 over the previous record's hash and a canonical JSON form of the record; the head
of every chain (last ``seq`` and ``hash``) is kept in ``audit_chain`` and locked while appending, so two concurrent
writers on one dossier are serialised. :func:`verify` recomputes every chain and reports a record altered (its hash no
longer matches), removed (a gap in ``seq`` or a broken link, or a head ahead of the last record) or reordered.
Events that concern no dossier (token issuance, directory changes, searches that matched nothing) are recorded with
``SYSTEM_CHAIN`` and spread over the system chains (:data:`carnet.ids.SYSTEM_CHAINS`), so they do not serialize.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carnet.access.actors import Actor
from carnet.db import prepared
from carnet.db.tables import audit, audit_chain, professional_seen
from carnet.ids import SYSTEM_CHAIN, new_id, system_chain_for

GENESIS = "0" * 64

OUTCOME_SUCCESS = "0"
OUTCOME_REFUSED = "4"
OUTCOME_FAILED = "8"


def utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _ts(ts: dt.datetime) -> str:
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


BODY_FIELDS = ("dossier_key", "event_id", "recorded", "action", "event", "outcome", "actor_kind", "actor_id",
               "actor_name", "organisation_id", "client_id", "mode", "reason", "entity_type", "entity_id", "detail")


def canonical(row: dict[str, Any]) -> bytes:
    """The record's content (everything but its place in the chain), as canonical JSON."""
    out: dict[str, Any] = {}
    for name in BODY_FIELDS:
        value = row.get(name)
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, dt.datetime):
            value = _ts(value)
        out[name] = value
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def link(prev: str, seq: int, body: str) -> str:
    """A record's hash: SHA-256 of ``prev:seq:body`` — the previous hash, its position, and its content's hash.
    PostgreSQL computes the same in SQL (see :data:`_APPEND_PG`)."""
    return hashlib.sha256(f"{prev}:{seq}:{body}".encode()).hexdigest()


def chain_hash(prev: str, row: dict[str, Any]) -> str:
    return link(prev, int(row["seq"]), body_hash(row))


# Statements built once: the append runs on every request, and a constant statement skips SQLAlchemy's per-call
# construction and cache-key work.
_LOCK_HEAD = (select(audit_chain.c.seq, audit_chain.c.head)
              .where(audit_chain.c.dossier_key == bindparam("k")).with_for_update())
_INSERT = insert(audit)
_MOVE_HEAD = (update(audit_chain).where(audit_chain.c.dossier_key == bindparam("k"))
              .values(seq=bindparam("new_seq"), head=bindparam("new_head"), prev=bindparam("old_head"), moved=True))

# On PostgreSQL the whole append is one statement: move the head (the row lock serialises writers on a dossier; the
# SET expressions see the old values) and insert the record with the same hash as :func:`link`. Every function in the
# UPDATE is IMMUTABLE (Citus refuses a STABLE one such as convert_to next to column references): the hashed text is
# ASCII (hex digests and digits), so its cast to bytea gives exactly its UTF-8 bytes. Plain SQL (psycopg's ``%(name)s``
# parameters), run prepared through the request's own connection (carnet.db.prepared): the append is on every request.
_APPEND_PG = """
WITH h AS (
  UPDATE audit_chain SET prev = head, seq = seq + 1, moved = true,
         head = encode(sha256(CAST(head || ':' || CAST(seq + 1 AS text) || ':' || %(body)s AS bytea)), 'hex')
  WHERE dossier_key = %(dossier_key)s
  RETURNING seq, prev, head)
INSERT INTO audit (dossier_key, seq, event_id, recorded, action, event, outcome, actor_kind, actor_id, actor_name,
                   organisation_id, client_id, mode, reason, entity_type, entity_id, detail, prev_hash, hash)
SELECT %(dossier_key)s, h.seq, %(event_id)s, %(recorded)s, %(action)s, %(event)s, %(outcome)s, %(actor_kind)s,
       %(actor_id)s, %(actor_name)s, %(organisation_id)s, %(client_id)s, %(mode)s, %(reason)s, %(entity_type)s,
       %(entity_id)s, CAST(%(detail)s AS jsonb), h.prev, h.head
FROM h
"""
# The same append, which also records a first access (``professional_seen``, keyed by the dossier like the chain: one
# shard on Citus) in the same statement, so that a professional's read costs no extra round trip. The final SELECT
# says whether the record was appended (no chain head yet: 0) and whether the marker was new (ON CONFLICT DO NOTHING
# returns no row for one that was there). Every modification is a CTE and the statement a plain SELECT of their
# counts: Citus moves the CTEs of an ``INSERT … SELECT`` into its SELECT, so a ``RETURNING (SELECT … FROM s)`` on the
# INSERT would name a CTE the shard never sees ("relation s does not exist", found on Citus 13.2.2: docs/SCALE.md).
_APPEND_MARK_PG = """
WITH h AS (
  UPDATE audit_chain SET prev = head, seq = seq + 1, moved = true,
         head = encode(sha256(CAST(head || ':' || CAST(seq + 1 AS text) || ':' || %(body)s AS bytea)), 'hex')
  WHERE dossier_key = %(dossier_key)s
  RETURNING seq, prev, head),
s AS (
  INSERT INTO professional_seen (dossier_key, subject_id, first_at)
  SELECT %(dossier_key)s, %(mark)s, %(recorded)s FROM h
  ON CONFLICT DO NOTHING
  RETURNING 1 AS added),
a AS (
  INSERT INTO audit (dossier_key, seq, event_id, recorded, action, event, outcome, actor_kind, actor_id, actor_name,
                     organisation_id, client_id, mode, reason, entity_type, entity_id, detail, prev_hash, hash)
  SELECT %(dossier_key)s, h.seq, %(event_id)s, %(recorded)s, %(action)s, %(event)s, %(outcome)s, %(actor_kind)s,
         %(actor_id)s, %(actor_name)s, %(organisation_id)s, %(client_id)s, %(mode)s, %(reason)s, %(entity_type)s,
         %(entity_id)s, CAST(%(detail)s AS jsonb), h.prev, h.head
  FROM h
  RETURNING 1 AS appended)
SELECT (SELECT count(*) FROM a) AS appended, (SELECT count(*) FROM s) AS added
"""
_MARK = (sqlite_insert(professional_seen)
         .values(dossier_key=bindparam("k"), subject_id=bindparam("s"), first_at=bindparam("t"))
         .on_conflict_do_nothing().returning(professional_seen.c.first_at))


def _lock_head(conn: Connection, dossier_key: uuid.UUID) -> tuple[int, str]:
    head = conn.execute(_LOCK_HEAD, {"k": dossier_key}).first()
    if head is None:
        ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(ins(audit_chain).values(dossier_key=dossier_key, seq=0, head=GENESIS)
                     .on_conflict_do_nothing(index_elements=["dossier_key"]))
        head = conn.execute(_LOCK_HEAD, {"k": dossier_key}).one()
    return int(head.seq), str(head.head)


def record(conn: Connection, *, dossier_key: uuid.UUID, actor: Actor, action: str, event: str, now: dt.datetime,
           outcome: str = OUTCOME_SUCCESS, entity_type: str | None = None, entity_id: str | None = None,
           detail: dict[str, Any] | None = None) -> uuid.UUID:
    """Append one record to ``dossier_key``'s chain, inside the caller's transaction (``SYSTEM_CHAIN``: to one of
    the system chains)."""
    return _append(conn, dossier_key=dossier_key, actor=actor, action=action, event=event, now=now, outcome=outcome,
                   entity_type=entity_type, entity_id=entity_id, detail=detail, mark=None)[0]


def record_marked(conn: Connection, *, dossier_key: uuid.UUID, actor: Actor, action: str, event: str,
                  now: dt.datetime, mark: str, outcome: str = OUTCOME_SUCCESS, entity_type: str | None = None,
                  entity_id: str | None = None, detail: dict[str, Any] | None = None) -> bool:
    """:func:`record` (in a dossier's chain), and ``mark`` recorded in ``professional_seen`` for this
    dossier if absent (who accessed it: :mod:`carnet.notify.rules`), in the same statement on PostgreSQL. True when
    this call added the marker; of concurrent callers exactly one sees True."""
    return bool(_append(conn, dossier_key=dossier_key, actor=actor, action=action, event=event, now=now,
                        outcome=outcome, entity_type=entity_type, entity_id=entity_id, detail=detail,
                        mark=mark)[1])


def _append(conn: Connection, *, dossier_key: uuid.UUID, actor: Actor, action: str, event: str, now: dt.datetime,
            outcome: str, entity_type: str | None, entity_id: str | None, detail: dict[str, Any] | None,
            mark: str | None) -> tuple[uuid.UUID, bool]:
    event_id = new_id()
    if dossier_key == SYSTEM_CHAIN:
        dossier_key = system_chain_for(event_id)
    row: dict[str, Any] = {
        "dossier_key": dossier_key, "event_id": event_id, "recorded": utc(now), "action": action,
        "event": event, "outcome": outcome, "actor_kind": actor.kind.value, "actor_id": actor.audit_id,
        "actor_name": actor.display, "organisation_id": actor.organisation_id, "client_id": actor.client_id,
        "mode": actor.mode.value, "reason": actor.reason, "entity_type": entity_type, "entity_id": entity_id,
        "detail": detail or {},
    }
    body = body_hash(row)
    if conn.dialect.name == "postgresql":
        params = {**row, "body": body, "detail": json.dumps(row["detail"], ensure_ascii=False)}
        if mark is not None:
            params["mark"] = mark
            appended = prepared.fetch_one(conn, _APPEND_MARK_PG, params)
            if appended is None or not appended.appended:  # first record of this chain: create its head, append
                _lock_head(conn, dossier_key)
                appended = prepared.fetch_one(conn, _APPEND_MARK_PG, params)
            return row["event_id"], appended is not None and bool(appended.added)
        if prepared.execute(conn, _APPEND_PG, params) == 1:
            return row["event_id"], False
        _lock_head(conn, dossier_key)  # first record of this chain: create its head, then append
        prepared.execute(conn, _APPEND_PG, params)
        return row["event_id"], False
    seq, prev = _lock_head(conn, dossier_key)
    row["seq"] = seq + 1
    row["prev_hash"] = prev
    row["hash"] = link(prev, row["seq"], body)
    conn.execute(_INSERT, row)
    conn.execute(_MOVE_HEAD, {"k": dossier_key, "new_seq": row["seq"], "new_head": row["hash"], "old_head": prev})
    added = mark is not None and conn.execute(_MARK, {"k": dossier_key, "s": mark, "t": row["recorded"]}).first() \
        is not None
    return row["event_id"], added


@dataclass(frozen=True)
class Finding:
    dossier_key: uuid.UUID
    seq: int | None
    problem: str  # altered | removed | reordered | head-mismatch


def _records(conn: Connection, dossier_key: uuid.UUID) -> Iterator[dict[str, Any]]:
    result = conn.execution_options(yield_per=1000).execute(
        select(audit).where(audit.c.dossier_key == dossier_key).order_by(audit.c.seq))
    for r in result.mappings():
        yield dict(r)


@dataclass(frozen=True)
class Run:
    """Consecutive records of a chain held in an archive (:mod:`carnet.audit.archive`): ``first`` links to ``prev``,
    and ``out`` is the hash of ``last``."""

    first: int
    prev: str
    last: int
    out: str


def verify_chain(conn: Connection, dossier_key: uuid.UUID, archived: Sequence[Run] = ()) -> list[Finding]:
    """Recompute the chain from its first record: the runs of it held in archives (already checked record by record
    there), then the live records, in seq order; each must follow the one before."""
    findings: list[Finding] = []
    prev, expected_seq = GENESIS, 1
    runs = sorted(archived, key=lambda r: r.first)
    i = 0

    def follow(first: int, linked_to: str) -> None:
        if first != expected_seq:
            findings.append(Finding(dossier_key, first, "removed" if first > expected_seq else "reordered"))
        if linked_to != prev:
            findings.append(Finding(dossier_key, first, "reordered" if first == expected_seq else "removed"))

    for row in _records(conn, dossier_key):
        seq = int(row["seq"])
        while i < len(runs) and runs[i].first < seq:
            follow(runs[i].first, runs[i].prev)
            prev, expected_seq = runs[i].out, runs[i].last + 1
            i += 1
        follow(seq, row["prev_hash"])
        if chain_hash(row["prev_hash"], row) != row["hash"]:
            findings.append(Finding(dossier_key, seq, "altered"))
        prev, expected_seq = row["hash"], seq + 1
    for run in runs[i:]:
        follow(run.first, run.prev)
        prev, expected_seq = run.out, run.last + 1
    head = conn.execute(select(audit_chain).where(audit_chain.c.dossier_key == dossier_key)).first()
    if head is not None and (int(head.seq) != expected_seq - 1 or head.head != prev):
        findings.append(Finding(dossier_key, int(head.seq), "removed" if head.seq > expected_seq - 1
                                else "head-mismatch"))
    return findings


def verify_all(conn: Connection, archived: Mapping[str, Sequence[Run]] | None = None,
               ) -> tuple[int, int, list[Finding]]:
    """Verify every chain (continuing from its ``archived`` runs, by chain key); returns (chains, records,
    findings)."""
    archived = archived or {}
    keys = set(conn.execute(select(audit_chain.c.dossier_key)).scalars())
    keys |= set(conn.execute(select(audit.c.dossier_key).distinct()).scalars())
    keys |= {uuid.UUID(k) for k in archived}
    findings: list[Finding] = []
    records = 0
    for key in sorted(keys, key=str):
        findings.extend(verify_chain(conn, key, archived.get(str(key), ())))
        records += conn.execute(select(audit_chain.c.seq).where(audit_chain.c.dossier_key == key)).scalar() or 0
    return len(keys), records, findings


def record_many(conn: Connection, entries: list[tuple[uuid.UUID, dict[str, Any]]], *, actor: Actor, action: str,
                event: str, now: dt.datetime, outcome: str = OUTCOME_SUCCESS, entity_type: str | None = None) -> int:
    """Append one record to each of many chains (``entries``: dossier key and its record's detail), in the caller's
    transaction: the bulk form of :func:`record`, for batch jobs such as the claims ingest.

    The heads of all the chains are locked in key order (so two bulk writers cannot deadlock), the chained hashes are
    computed here exactly as :func:`record` does (:func:`link` over :func:`body_hash`), the records go in with one
    COPY (PostgreSQL; one executemany on SQLite) and the heads move. On PostgreSQL each head is locked, created and
    moved by a statement naming its one key, the statements pipelined (psycopg's executemany): on Citus each routes
    to one shard, where a ``FOR UPDATE`` over many keys is refused.
    A chain may receive records from both paths in turn; :func:`verify_chain` cannot tell them apart. Returns the
    number of records written."""
    if not entries:
        return 0
    keys = sorted({k for k, _ in entries}, key=str)
    if len(keys) != len(entries):
        raise ValueError("record_many takes at most one record per dossier")
    pg = conn.dialect.name == "postgresql"
    heads = _lock_heads_pg(conn, keys) if pg else _lock_heads(conn, keys)
    missing = [k for k in keys if k not in heads]
    if missing:  # first records of these chains: create their heads, then lock them
        if pg:
            _pipelined(conn, _NEW_HEAD_PG, [(k, GENESIS) for k in missing])
            heads.update(_lock_heads_pg(conn, missing))
        else:
            conn.execute(sqlite_insert(audit_chain).on_conflict_do_nothing(index_elements=["dossier_key"]),
                         [{"dossier_key": k, "seq": 0, "head": GENESIS} for k in missing])
            heads.update(_lock_heads(conn, missing))
    rows: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    recorded = utc(now)
    for key, detail in entries:
        seq, prev = heads[key]
        row: dict[str, Any] = {
            "dossier_key": key, "event_id": new_id(), "recorded": recorded, "action": action, "event": event,
            "outcome": outcome, "actor_kind": actor.kind.value, "actor_id": actor.audit_id,
            "actor_name": actor.display, "organisation_id": actor.organisation_id, "client_id": actor.client_id,
            "mode": actor.mode.value, "reason": actor.reason, "entity_type": entity_type, "entity_id": None,
            "detail": detail or {}, "seq": seq + 1, "prev_hash": prev,
        }
        row["hash"] = link(prev, row["seq"], body_hash(row))
        rows.append(row)
        moves.append({"k": key, "new_seq": row["seq"], "new_head": row["hash"], "old_head": prev})
    if pg:
        _copy_records(conn, rows)
        _pipelined(conn, _MOVE_HEAD_PG, [(m["new_seq"], m["new_head"], m["old_head"], m["k"]) for m in moves])
    else:
        conn.execute(_INSERT, rows)
        conn.execute(_MOVE_HEAD, moves)
    return len(rows)


_COPY_COLUMNS = BODY_FIELDS + ("seq", "prev_hash", "hash")


def _copy_records(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: the records in one COPY (psycopg), inside the caller's transaction."""
    with _raw(conn).cursor() as cur, cur.copy(f"COPY audit ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c], ensure_ascii=False) if c == "detail" else row[c]
                            for c in _COPY_COLUMNS])


_LOCK_HEADS = (select(audit_chain.c.dossier_key, audit_chain.c.seq, audit_chain.c.head)
               .where(audit_chain.c.dossier_key.in_(bindparam("keys", expanding=True)))
               .order_by(audit_chain.c.dossier_key).with_for_update())
_LOCK_HEAD_PG = "SELECT dossier_key, seq, head FROM audit_chain WHERE dossier_key = %s FOR UPDATE"
_NEW_HEAD_PG = ("INSERT INTO audit_chain (dossier_key, seq, head) VALUES (%s, 0, %s) "
                "ON CONFLICT (dossier_key) DO NOTHING")
_MOVE_HEAD_PG = "UPDATE audit_chain SET seq = %s, head = %s, prev = %s, moved = true WHERE dossier_key = %s"


def _lock_heads(conn: Connection, keys: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, str]]:
    return {r.dossier_key: (int(r.seq), str(r.head)) for r in conn.execute(_LOCK_HEADS, {"keys": keys})}


def _raw(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    if raw is None:  # pragma: no cover - a live connection always has one
        raise RuntimeError("no database connection")
    return raw


def _lock_heads_pg(conn: Connection, keys: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, str]]:
    """Lock each head by its key, in the order given (sorted: no deadlock), the statements pipelined."""
    heads: dict[uuid.UUID, tuple[int, str]] = {}
    with _raw(conn).cursor() as cur:
        cur.executemany(_LOCK_HEAD_PG, [(k,) for k in keys], returning=True)
        while True:
            for key, seq, head in cur.fetchall():
                heads[key] = (int(seq), str(head))
            if not cur.nextset():
                break
    return heads


def _pipelined(conn: Connection, statement: str, params: list[tuple[Any, ...]]) -> None:
    with _raw(conn).cursor() as cur:
        cur.executemany(statement, params)
