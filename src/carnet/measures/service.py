"""Measurements (issue 17 §1 and §4): the one door to a dossier's readings, its sources and its series.

Every function takes the caller's :class:`~carnet.context.Context`: the policy decides
(``Decision.record_measures`` for writing and managing, ``Visibility.allows_measure`` / ``measure_where`` for reading)
and the audit record is written in the same transaction — one record per upload, stating its counts (received,
stored, duplicates, per measure), never one per reading and never a value. Refusals are audited too (after the
rollback, by :func:`carnet.context.run`).

Units: every reading is stored in its measure's one canonical UCUM unit (:mod:`carnet.measures.catalogue`): kg,
mm[Hg] (systolic in ``value``, diastolic in ``value2``), mg/dL, /min, %, Cel, {steps}. Times are aware, UTC.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import measure_series, measure_source
from carnet.errors import FhirError, forbidden, not_found
from carnet.events import MeasurementsRecorded
from carnet.measures import store
from carnet.measures.catalogue import SPECS, Measure, Spec
from carnet.measures.store import Reading

BATCH = 20_000  # readings per round trip of the bulk path
MANUAL = "manual"  # the source of what the patient types in the portal
APPLE_HEALTH = "apple_health"


class BadReading(ValueError):  # noqa: N818 - a reason, shown to the patient: never a value
    """A reading refused: unknown measure or unit, or outside the measure's sane bounds. The message names the
    measure and the rule, never the value."""


@dataclass(frozen=True)
class SourceRef:
    """Who sends an upload: ``kind`` device | app | apple_health | manual; ``identifier`` stable per source (a
    device's ``system|value`` identifier, an app's client id); ``label`` what the patient sees."""

    kind: str
    identifier: str
    label: str
    client_id: str | None = None


@dataclass(frozen=True)
class Source:
    source_no: int
    kind: str
    identifier: str
    label: str
    client_id: str | None
    created_at: dt.datetime
    last_upload_at: dt.datetime | None
    readings: int
    stopped_at: dt.datetime | None


@dataclass(frozen=True)
class Series:
    """A measure the dossier holds, as the caller may see it."""

    measure: Measure
    spec: Spec
    hidden: bool
    readings: int
    first_at: dt.datetime | None
    last_at: dt.datetime | None
    last_received_at: dt.datetime | None


@dataclass
class Upload:
    """What an upload did: readings received, new ones stored per measure, duplicates (already stored)."""

    received: int = 0
    stored: Counter[int] | None = None
    source_no: int = 0

    @property
    def stored_total(self) -> int:
        return sum((self.stored or Counter()).values())

    @property
    def duplicates(self) -> int:
        return self.received - self.stored_total


def reading(measure: Measure | int, taken_at: dt.datetime, value: float, unit: str,
            value2: float | None = None) -> Reading:
    """A reading in the canonical unit, checked: ``BadReading`` for an unknown unit, a naive time, or a value outside
    the measure's sane bounds (fail closed)."""
    spec = SPECS[Measure(measure)]
    if taken_at.tzinfo is None:
        raise BadReading(f"{spec.label_en}: the time has no time zone")
    try:
        v = spec.to_canonical(float(value), unit)
        v2 = spec.to_canonical(float(value2), unit) if value2 is not None else None
    except KeyError:
        raise BadReading(f"{spec.label_en}: unit not accepted (accepted: {', '.join(spec.units)})") from None
    if not spec.in_bounds(v, v2):
        raise BadReading(f"{spec.label_en}: value outside the accepted range ({_bounds(spec)})")
    return Reading(spec.measure, taken_at.astimezone(dt.UTC), v, v2)


def _bounds(spec: Spec) -> str:
    if spec.components is not None:
        return (f"systolic {spec.low:g}-{spec.high:g}, diastolic {spec.low2:g}-{spec.high2:g} {spec.unit_label}, "
                "diastolic below systolic")
    return f"{spec.low:g}-{spec.high:g} {spec.unit_label}"


# --- the policy's answers ---------------------------------------------------------------------------------------

def require_writable(ctx: Context, key: uuid.UUID, event: str) -> Decision:
    """The caller's decision on dossier ``key`` if they may record measurements and manage their sources (the
    patient side: ``record_measures``); otherwise refused and audited as ``event`` (404 if they may not even know the
    dossier, else 403). For every writer of the measures, :mod:`carnet.measures.imports` too."""
    _, decision = ctx.dossier(key)
    if not decision.record_measures:
        if not decision.check:
            raise ctx.refuse(key, "C", event, not_found("Patient"))
        raise ctx.refuse(key, "C", event, forbidden(
            "Only the patient (or a legal representative, or an app they allowed) records measurements and manages "
            "their devices, on an open dossier" if decision.read else decision.refusal))
    return decision


def _readable(ctx: Context, key: uuid.UUID, event: str) -> Decision:
    _, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, "R", event, forbidden(decision.refusal) if decision.check else not_found("Patient"))
    return decision


def may_manage(ctx: Context, key: uuid.UUID) -> bool:
    """Whether the caller may record measurements and manage the sources (for a page to offer the forms)."""
    _, decision = ctx.dossier(key)
    return decision.record_measures


# --- writing ---------------------------------------------------------------------------------------------------

def open_source(ctx: Context, key: uuid.UUID, source: SourceRef, *, event: str = "measures.record") -> int:
    """The source's number in this dossier (registered on first use). A source the patient stopped is refused
    (403, audited): its further uploads are not stored."""
    require_writable(ctx, key, event)
    row = store.find_source(ctx.conn, key, source.identifier)
    if row is None:
        return store.add_source(ctx.conn, key, source.kind, source.identifier, source.label, source.client_id,
                                ctx.now)
    if row.stopped_at is not None:
        raise ctx.refuse(key, "C", event, forbidden(
            "The patient stopped this device or app: its measurements are no longer accepted"),
            entity_type="Device", entity_id=str(row.source_no))
    return int(row.source_no)


def record(ctx: Context, key: uuid.UUID, source: SourceRef, readings: Iterable[Reading], *,
           event: str = "measures.record", detail: dict[str, Any] | None = None) -> Upload:
    """Store an upload's readings (already checked by :func:`reading`) from one source, in batches of
    :data:`BATCH` through the bulk path; duplicates (same source, measure and time) are not stored twice. One audit
    record for the upload, with its counts (and ``detail``, e.g. rejected records), and one
    :class:`~carnet.events.MeasurementsRecorded` event if anything new was stored."""
    source_no = open_source(ctx, key, source, event=event)
    up = Upload(stored=Counter(), source_no=source_no)
    spans: dict[int, tuple[dt.datetime, dt.datetime]] = {}
    batch: list[Reading] = []

    def flush() -> None:
        if not batch:
            return
        assert up.stored is not None
        up.stored.update(store.insert_readings(ctx.conn, key, source_no, batch))
        for r in batch:
            lo, hi = spans.get(r.measure, (r.taken_at, r.taken_at))
            spans[r.measure] = (min(lo, r.taken_at), max(hi, r.taken_at))
        batch.clear()

    for r in readings:
        up.received += 1
        batch.append(r)
        if len(batch) >= BATCH:
            flush()
    flush()
    assert up.stored is not None
    store.touch_series(ctx.conn, key, up.stored, spans, ctx.now)
    store.note_upload(ctx.conn, key, source_no, up.stored_total, ctx.now)
    audit = {"source": source.kind, "received": up.received, "stored": up.stored_total,
             "duplicates": up.duplicates,
             "measures": {SPECS[Measure(m)].name: n for m, n in sorted(up.stored.items()) if n}}
    audit.update(detail or {})
    ctx.audit(key, "C", event, entity_type="Device", entity_id=str(source_no), detail=audit)
    if up.stored_total:
        ctx.publish(MeasurementsRecorded(key, {m: n for m, n in up.stored.items() if n},
                                         {m: spans[m] for m, n in up.stored.items() if n}, source_no))
    return up


# --- reading ---------------------------------------------------------------------------------------------------

def visible_series(ctx: Context, key: uuid.UUID, *, event: str = "measures.list") -> list[Series]:
    """The measures the dossier holds that the caller may see (a hidden one only for those the policy lets see
    it), with counts and spans; audited."""
    decision = _readable(ctx, key, event)
    out = [_series(row) for row in store.series_rows(ctx.conn, key)
           if decision.visibility.allows_measure(bool(row.hidden))]
    ctx.audit(key, "R", event, detail={"measures": len(out)})
    return out


def readings(ctx: Context, key: uuid.UUID, measure: Measure | int, start: dt.datetime | None = None,
             end: dt.datetime | None = None, *, limit: int | None = None, newest_first: bool = False,
             event: str = "measures.read") -> list[Reading]:
    """The readings of one measure in ``[start, end)`` (aware datetimes), by time, canonical units. A measure the
    caller may not see (hidden, or not in their profession's rights) answers 404 as if absent (audited refusal)."""
    m = Measure(measure)
    decision = _readable(ctx, key, event)
    row = next((r for r in store.series_rows(ctx.conn, key) if r.measure == m), None)
    if not decision.visibility.allows_measure(bool(row.hidden) if row is not None else False):
        raise ctx.refuse(key, "R", event, not_found("Measure"), entity_type="Measure", entity_id=SPECS[m].name)
    out = [] if row is None else store.read_range(ctx.conn, key, m, _utc(start), _utc(end), limit, newest_first)
    ctx.audit(key, "R", event, entity_type="Measure", entity_id=SPECS[m].name, detail={"readings": len(out)})
    return out


def search(ctx: Context, key: uuid.UUID, measures: list[Measure] | None, start: dt.datetime | None,
           end: dt.datetime | None, count: int, offset: int) -> tuple[list[Reading], int]:
    """A page of readings of the given measures (all the caller may see if ``None``), newest first, and the total;
    the policy's filter is applied before paging (the measures the caller may not see are left out)."""
    decision = _readable(ctx, key, "measures.search")
    visible = set(ctx.conn.execute(select(measure_series.c.measure).where(
        measure_series.c.dossier_key == key, decision.visibility.measure_where(measure_series))).scalars())
    wanted = [int(m) for m in (measures if measures is not None else list(Measure)) if int(m) in visible]
    rows = store.page_range(ctx.conn, key, wanted, _utc(start), _utc(end), count, offset) if wanted else []
    total = store.count_range(ctx.conn, key, wanted, _utc(start), _utc(end)) if wanted else 0
    ctx.audit(key, "R", "measures.search", detail={"readings": len(rows)})
    return rows, total


def read_one(ctx: Context, key: uuid.UUID, measure: Measure | int, source_no: int,
             taken_at: dt.datetime) -> Reading:
    """One reading (a FHIR read by id); 404 if absent or not visible to the caller (audited ``measures.read``)."""
    m = Measure(measure)
    decision = _readable(ctx, key, "measures.read")
    row = next((r for r in store.series_rows(ctx.conn, key) if r.measure == m), None)
    found = [] if row is None or not decision.visibility.allows_measure(bool(row.hidden)) else [
        r for r in store.read_range(ctx.conn, key, m, taken_at, taken_at + dt.timedelta(milliseconds=1))
        if r.source_no == source_no]
    if not found:
        raise ctx.refuse(key, "R", "measures.read", not_found("Observation"), entity_type="Measure",
                         entity_id=SPECS[m].name)
    ctx.audit(key, "R", "measures.read", entity_type="Measure", entity_id=SPECS[m].name, detail={"readings": 1})
    return found[0]


# --- the patient stays in control (§4) ------------------------------------------------------------------------

def sources(ctx: Context, key: uuid.UUID) -> list[Source]:
    """The devices, apps and imports feeding the dossier (last upload, readings): the patient side only."""
    require_writable(ctx, key, "measures.sources")
    rows = ctx.conn.execute(select(measure_source).where(measure_source.c.dossier_key == key)
                            .order_by(measure_source.c.source_no))
    out = [Source(int(r.source_no), r.kind, r.identifier, r.label, r.client_id, _utc(r.created_at) or ctx.now,
                  _utc(r.last_upload_at), int(r.readings), _utc(r.stopped_at)) for r in rows]
    ctx.audit(key, "R", "measures.sources", detail={"sources": len(out)})
    return out


def stop_source(ctx: Context, key: uuid.UUID, source_no: int, *, stop: bool = True) -> bool:
    """Stop a source at once (its further uploads are refused), or let it feed the dossier again. Returns whether it
    changed; 404 for a source the dossier does not have. Audited ``measures.source.stop`` / ``.resume``."""
    event = "measures.source.stop" if stop else "measures.source.resume"
    require_writable(ctx, key, event)
    t = measure_source.c
    row = ctx.conn.execute(select(measure_source).where(t.dossier_key == key, t.source_no == source_no)
                           .with_for_update()).first()
    if row is None:
        raise ctx.refuse(key, "U", event, not_found("Device"), entity_type="Device", entity_id=str(source_no))
    if (row.stopped_at is not None) == stop:
        return False
    ctx.conn.execute(update(measure_source).where(t.dossier_key == key, t.source_no == source_no)
                     .values(stopped_at=ctx.now if stop else None))
    ctx.audit(key, "U", event, entity_type="Device", entity_id=str(source_no))
    return True


def set_hidden(ctx: Context, key: uuid.UUID, measure: Measure | int, hidden: bool) -> bool:
    """Hide a measure from professionals (the médecin traitant still sees it, as a hidden document) or show it
    again. Returns whether it changed. Audited ``measures.hide`` / ``measures.show``."""
    m = Measure(measure)
    event = "measures.hide" if hidden else "measures.show"
    require_writable(ctx, key, event)
    t = measure_series.c
    row = ctx.conn.execute(select(measure_series).where(t.dossier_key == key, t.measure == m)
                           .with_for_update()).first()
    if row is not None and bool(row.hidden) == hidden:
        return False
    if row is None:  # hiding before the first reading holds for the readings to come
        ctx.conn.execute(insert(measure_series).values(dossier_key=key, measure=m, hidden=hidden, readings=0))
    else:
        ctx.conn.execute(update(measure_series).where(t.dossier_key == key, t.measure == m).values(hidden=hidden))
    ctx.audit(key, "U", event, entity_type="Measure", entity_id=SPECS[m].name)
    return True


def delete_series(ctx: Context, key: uuid.UUID, measure: Measure | int) -> int:
    """Delete every reading of a measure (the patient's choice; the audit keeps the trace and the count, not the
    values). Returns the number deleted. Audited ``measures.delete``."""
    m = Measure(measure)
    require_writable(ctx, key, "measures.delete")
    n = store.delete_series(ctx.conn, key, m)
    ctx.audit(key, "D", "measures.delete", entity_type="Measure", entity_id=SPECS[m].name, detail={"readings": n})
    return n


def _series(row: Any) -> Series:
    m = Measure(row.measure)
    return Series(m, SPECS[m], bool(row.hidden), int(row.readings), _utc(row.first_at), _utc(row.last_at),
                  _utc(row.last_received_at))


def _utc(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


__all__ = ["APPLE_HEALTH", "MANUAL", "BadReading", "FhirError", "Reading", "Series", "Source", "SourceRef", "Upload",
           "delete_series", "may_manage", "open_source", "read_one", "reading", "readings", "record",
           "require_writable", "search", "set_hidden", "sources", "stop_source", "visible_series"]
