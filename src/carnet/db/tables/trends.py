"""Trend alerts over a dossier's measurements (carnet.trends, docs/MEASUREMENTS.md "Alerts").

``trend_dossier``: per dossier, the patient's choices (alerts to the médecin traitant, on by default; a copy to the
patient, off by default) and whether new readings wait for the worker's evaluation (``pending``, set in the upload's
transaction). ``trend_episode``: one row per episode of a rule (opened when it became true, closed when false again):
its alert. ``trend_alert_by_recipient``: the lookup of the médecin traitant's alerts across dossiers (same
transaction), co-located with the notices' inbox by recipient.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    Table,
    Uuid,
    false,
    true,
)

from carnet.db.tables.base import TS, metadata

trend_dossier = Table(
    "trend_dossier", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("gp_alerts", Boolean, nullable=False, default=True, server_default=true()),
    Column("patient_alerts", Boolean, nullable=False, default=False, server_default=false()),
    Column("pending", Boolean, nullable=False, default=False, server_default=false()),
    Column("received_at", TS),  # the last upload that stored new readings
    Column("evaluated_at", TS),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
    Index(None, "pending", "dossier_key"),  # the worker's scan for dossiers with new readings
)

trend_episode = Table(
    "trend_episode", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("episode_id", Uuid, primary_key=True),
    Column("rule_id", String(64), nullable=False),
    Column("measure", SmallInteger, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("closed_at", TS),  # null while the rule is still true: no new alert for it
    Column("window_start", TS, nullable=False),  # what the rule looked at: the chart behind the alert
    Column("window_end", TS, nullable=False),
    Column("figure", Float),  # the mean, gain, share or latest value the rule found (for the alert's text)
    Column("figure2", Float),
    Column("recipient_id", String(12)),  # the médecin traitant alerted (national id); null: none
    Column("patient_told", Boolean, nullable=False, default=False, server_default=false()),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", String(12)),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

trend_alert_by_recipient = Table(
    "trend_alert_by_recipient", metadata,
    Column("recipient_id", String(12), primary_key=True),
    Column("episode_id", Uuid, primary_key=True),
    Column("dossier_key", Uuid, nullable=False),
    Column("at", TS, nullable=False),
    Column("acknowledged_at", TS),
    Index(None, "recipient_id", "at"),  # the alerts list, newest first
    Index(None, "recipient_id", "acknowledged_at"),  # the count in the header
)
