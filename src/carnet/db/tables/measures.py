"""Measurements from connected devices, apps and the patient's own hand (carnet.measures, docs/MEASUREMENTS.md).

Shaped for a continuous glucose monitor's 105,000 readings a year per patient: one narrow row per reading (a small
integer measure code, the time, one or two numbers in the measure's one canonical unit, the small number of the
source within the dossier), its primary key ``(dossier_key, measure, taken_at, source_no)`` both the index of every
read (one dossier, one measure, a time range: one shard, one index range) and the de-duplication (the same source,
measure and time is stored once: ``ON CONFLICT DO NOTHING``). No foreign key on ``measurement``: the bulk path checks
its sources once per upload, not once per row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    SmallInteger,
    String,
    Table,
    Uuid,
    false,
)

from carnet.db.tables.base import TS, Json, metadata

measurement = Table(  # one reading; blood pressure: systolic in value, diastolic in value2
    "measurement", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("measure", SmallInteger, primary_key=True),  # carnet.measures.catalogue.Measure
    Column("taken_at", TS, primary_key=True),  # when it was measured (UTC)
    Column("source_no", SmallInteger, primary_key=True),  # measure_source.source_no in this dossier
    Column("value", Float, nullable=False),  # in the measure's canonical UCUM unit
    Column("value2", Float),  # the second number of a two-number measure (diastolic pressure)
)

measure_source = Table(  # a device, an app, an import or the patient's hand that feeds the dossier
    "measure_source", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("source_no", SmallInteger, primary_key=True),  # 1, 2, 3… within the dossier (compact readings)
    Column("kind", String(16), nullable=False),  # device | app | apple_health | manual
    Column("identifier", String(300), nullable=False),  # device: system|value; app: client id; manual/apple: fixed
    Column("label", String(200), nullable=False),  # what the patient sees ("Glucometer X (Acme)", "Apple Health")
    Column("client_id", String(64)),  # the app that registered it (SMART), if any
    Column("created_at", TS, nullable=False),
    Column("last_upload_at", TS),
    Column("readings", BigInteger, nullable=False, default=0),  # readings stored from this source (new ones only)
    Column("stopped_at", TS),  # the patient stopped it: its further uploads are refused
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

measure_series = Table(  # one row per measure the dossier holds: its counts, its time span, the patient's choices
    "measure_series", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("measure", SmallInteger, primary_key=True),
    # the patient hid this measure from professionals: the same rule as a document hidden (MASQUE_PS)
    Column("hidden", Boolean, nullable=False, default=False, server_default=false()),
    Column("readings", BigInteger, nullable=False, default=0),
    Column("first_at", TS),
    Column("last_at", TS),
    Column("last_received_at", TS),  # the last upload that added readings (what changed since a professional's visit)
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

measure_import = Table(  # an Apple Health import's progress, read by whichever node answers the page's poll
    "measure_import", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("import_id", String(32), primary_key=True),  # random, in the page's URL
    Column("status", String(8), nullable=False),  # running | done | failed
    Column("error", String(16)),  # failed: not-export | refused | failed (the page words it)
    Column("size", BigInteger, nullable=False, default=0),  # the uploaded file's bytes (the progress bar)
    Column("bytes_read", BigInteger, nullable=False, default=0),
    Column("records", BigInteger, nullable=False, default=0),  # counts only, never a value
    Column("stored", BigInteger, nullable=False, default=0),
    Column("duplicates", BigInteger, nullable=False, default=0),
    Column("bad", BigInteger, nullable=False, default=0),
    Column("reasons", Json, nullable=False, default=list),  # the first bad records' reasons (type and rule only)
    Column("node", String(80)),  # the node running it (host:pid), for the operator
    Column("started_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),  # the heartbeat: stale while running = the node died
    Column("finished_at", TS),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)
