"""The measurements' SQL, below the service: the bulk insert, the sources, the series. Nothing here decides access
or audits; only :mod:`carnet.measures.service` calls it, after the policy decided.

The bulk path (:func:`insert_readings`): on PostgreSQL the readings go by binary ``COPY`` into a temporary table, then
one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` moves them into ``measurement`` and counts, per measure, the rows
really inserted (duplicates are skipped by the primary key); on SQLite, ``INSERT OR IGNORE`` with ``executemany``,
one statement per measure (its ``rowcount`` is the count). Either way one round trip per batch, not per reading.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, text, update

from carnet.db.tables import dossier, measure_series, measure_source, measurement


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading, in its measure's canonical unit (:mod:`carnet.measures.catalogue`). ``taken_at`` is aware (UTC
    once stored); ``value2`` is the diastolic pressure of a blood pressure, else ``None``; ``source_no`` the source
    it came from (0 on the way in: the upload's source fills it)."""

    measure: int
    taken_at: dt.datetime
    value: float
    value2: float | None = None
    source_no: int = 0


_TEMP = ("CREATE TEMPORARY TABLE IF NOT EXISTS measurement_in (measure smallint, taken_at timestamptz, "
         "value float8, value2 float8) ON COMMIT DELETE ROWS")
_MOVE = text(
    "WITH ins AS (INSERT INTO measurement (dossier_key, measure, taken_at, source_no, value, value2) "
    "SELECT :k, measure, taken_at, :s, value, value2 FROM measurement_in "
    "ON CONFLICT DO NOTHING RETURNING measure) SELECT measure, count(*) FROM ins GROUP BY measure")


def insert_readings(conn: Connection, key: uuid.UUID, source_no: int, rows: Sequence[Reading]) -> Counter[int]:
    """Store ``rows`` for the source; returns the number of new readings per measure (duplicates, in the table or in
    ``rows``, are not stored twice)."""
    if not rows:
        return Counter()
    if conn.dialect.name == "postgresql":
        return _insert_postgres(conn, key, source_no, rows)
    stored: Counter[int] = Counter()
    by_measure: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_measure.setdefault(r.measure, []).append(
            {"dossier_key": key, "measure": r.measure, "taken_at": r.taken_at, "source_no": source_no,
             "value": r.value, "value2": r.value2})
    stmt = insert(measurement).prefix_with("OR IGNORE")
    for m, params in by_measure.items():
        stored[m] += conn.execute(stmt, params).rowcount
    return stored


def _insert_postgres(conn: Connection, key: uuid.UUID, source_no: int, rows: Sequence[Reading]) -> Counter[int]:
    raw: Any = conn.connection.driver_connection  # psycopg 3: COPY needs the driver's cursor
    with raw.cursor() as cur:
        cur.execute(_TEMP)
        cur.execute("DELETE FROM measurement_in")  # an earlier batch of this same transaction
        with cur.copy("COPY measurement_in (measure, taken_at, value, value2) FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int2", "timestamptz", "float8", "float8"])
            for r in rows:
                cp.write_row((r.measure, r.taken_at, r.value, r.value2))
    return Counter({int(m): int(n) for m, n in conn.execute(_MOVE, {"k": key, "s": source_no})})


def touch_series(conn: Connection, key: uuid.UUID, stored: Counter[int],
                 spans: dict[int, tuple[dt.datetime, dt.datetime]], now: dt.datetime) -> None:
    """Keep each measure's row (counts, span, last upload) up to date after an upload that stored new readings."""
    for m, n in stored.items():
        if n <= 0:
            continue
        first, last = spans[m]
        row = conn.execute(select(measure_series).where(measure_series.c.dossier_key == key,
                                                        measure_series.c.measure == m).with_for_update()).first()
        if row is None:
            conn.execute(insert(measure_series).values(dossier_key=key, measure=m, hidden=False, readings=n,
                                                       first_at=first, last_at=last, last_received_at=now))
            continue
        conn.execute(update(measure_series).where(measure_series.c.dossier_key == key, measure_series.c.measure == m)
                     .values(readings=measure_series.c.readings + n,
                             first_at=min(_utc(row.first_at) or first, first),
                             last_at=max(_utc(row.last_at) or last, last), last_received_at=now))


def find_source(conn: Connection, key: uuid.UUID, identifier: str) -> Any:
    return conn.execute(select(measure_source).where(measure_source.c.dossier_key == key,
                                                     measure_source.c.identifier == identifier)).first()


def add_source(conn: Connection, key: uuid.UUID, kind: str, identifier: str, label: str, client_id: str | None,
               now: dt.datetime) -> int:
    """A new source, numbered after the dossier's last one (the dossier row is locked: numbers never collide)."""
    conn.execute(select(dossier.c.dossier_key).where(dossier.c.dossier_key == key).with_for_update())
    again = find_source(conn, key, identifier)
    if again is not None:
        return int(again.source_no)
    last = conn.execute(select(func.max(measure_source.c.source_no))
                        .where(measure_source.c.dossier_key == key)).scalar()
    number = int(last or 0) + 1
    conn.execute(insert(measure_source).values(dossier_key=key, source_no=number, kind=kind, identifier=identifier,
                                               label=label[:200], client_id=client_id, created_at=now, readings=0))
    return number


def note_upload(conn: Connection, key: uuid.UUID, source_no: int, stored: int, now: dt.datetime) -> None:
    conn.execute(update(measure_source).where(measure_source.c.dossier_key == key,
                                              measure_source.c.source_no == source_no)
                 .values(last_upload_at=now, readings=measure_source.c.readings + stored))


def series_rows(conn: Connection, key: uuid.UUID) -> list[Any]:
    return list(conn.execute(select(measure_series).where(measure_series.c.dossier_key == key)
                             .order_by(measure_series.c.measure)))


def read_range(conn: Connection, key: uuid.UUID, measure: int, start: dt.datetime | None, end: dt.datetime | None,
               limit: int | None = None, newest_first: bool = False) -> list[Reading]:
    """The readings of one measure in ``[start, end)``, by time: one index range of the primary key."""
    m = measurement.c
    q = select(m.taken_at, m.value, m.value2, m.source_no).where(m.dossier_key == key, m.measure == measure)
    if start is not None:
        q = q.where(m.taken_at >= start)
    if end is not None:
        q = q.where(m.taken_at < end)
    q = q.order_by(m.taken_at.desc() if newest_first else m.taken_at, m.source_no)
    if limit is not None:
        q = q.limit(limit)
    return [Reading(measure, _utc(t) or t, v, v2, s) for t, v, v2, s in conn.execute(q)]


def count_range(conn: Connection, key: uuid.UUID, measures: Sequence[int], start: dt.datetime | None,
                end: dt.datetime | None) -> int:
    m = measurement.c
    q = select(func.count()).select_from(measurement).where(m.dossier_key == key, m.measure.in_(list(measures)))
    if start is not None:
        q = q.where(m.taken_at >= start)
    if end is not None:
        q = q.where(m.taken_at < end)
    return int(conn.execute(q).scalar() or 0)


def page_range(conn: Connection, key: uuid.UUID, measures: Sequence[int], start: dt.datetime | None,
               end: dt.datetime | None, count: int, offset: int) -> list[Reading]:
    """A page of the readings of several measures, newest first (FHIR search)."""
    m = measurement.c
    q = select(m.measure, m.taken_at, m.value, m.value2, m.source_no).where(m.dossier_key == key,
                                                                          m.measure.in_(list(measures)))
    if start is not None:
        q = q.where(m.taken_at >= start)
    if end is not None:
        q = q.where(m.taken_at < end)
    q = q.order_by(m.taken_at.desc(), m.measure, m.source_no).limit(count).offset(offset)
    return [Reading(int(mm), _utc(t) or t, v, v2, s) for mm, t, v, v2, s in conn.execute(q)]


def delete_series(conn: Connection, key: uuid.UUID, measure: int) -> int:
    n = conn.execute(delete(measurement).where(measurement.c.dossier_key == key,
                                               measurement.c.measure == measure)).rowcount
    conn.execute(delete(measure_series).where(measure_series.c.dossier_key == key,
                                              measure_series.c.measure == measure))
    return int(n)


def _utc(ts: dt.datetime | None) -> dt.datetime | None:
    """SQLite keeps no offset: what it returns naive is UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def existing(conn: Connection, key: uuid.UUID, source_no: int, rows: Sequence[Reading]) -> set[tuple[int, dt.datetime]]:
    """Which of ``rows`` (measure, time) this source already stored: for an upload's per-entry answer."""
    if not rows:
        return set()
    m = measurement.c
    lo, hi = min(r.taken_at for r in rows), max(r.taken_at for r in rows)
    q = select(m.measure, m.taken_at).where(m.dossier_key == key, m.source_no == source_no,
                                            m.measure.in_(sorted({r.measure for r in rows})),
                                            m.taken_at >= lo, m.taken_at <= hi)
    return {(int(mm), _utc(t) or t) for mm, t in conn.execute(q)}
