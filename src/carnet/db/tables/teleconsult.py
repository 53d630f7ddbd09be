"""Teleconsultations (carnet.teleconsult, issue 12 §1, docs/TELECONSULTATION.md)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKeyConstraint, Integer, String, Table, Uuid

from carnet.db.tables.base import TS, Json, metadata

teleconsultation = Table(  # one video consultation between a professional and the patient side of a dossier
    "teleconsultation", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("consultation_id", Uuid, primary_key=True),
    Column("clinician_id", String(40), nullable=False),  # the professional's national id: the only one who may join
    # planned (booked) | in-progress (started now, or the professional joined) | finished | cancelled
    Column("status", String(12), nullable=False),
    Column("scheduled_at", TS, nullable=False),
    Column("minutes", Integer, nullable=False),  # the planned length
    Column("created_at", TS, nullable=False),
    Column("started_at", TS),
    Column("ended_at", TS),
    # the signalling connection that holds each side now (a new one replaces it: one tab per side)
    Column("clinician_conn", String(36)),
    Column("patient_conn", String(36)),
    Column("patient_actor", String(64)),  # who joined for the patient side: "patient" or "representative:<id>"
    Column("shown", Json),  # the document on both screens now: {"document", "by", "page", "content_type"}; null: none
    Column("signal_seq", BigInteger, nullable=False, default=0),  # the last signal's number (one counter per visit)
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

teleconsult_signal = Table(  # the relay between the two browsers' sockets, on whichever nodes they landed
    "teleconsult_signal", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("consultation_id", Uuid, primary_key=True),
    Column("seq", BigInteger, primary_key=True),  # from teleconsultation.signal_seq, in commit order
    Column("sender", String(12), nullable=False),  # clinician | patient | server
    Column("target_conn", String(36)),  # one connection only (a replaced tab); null: the other side
    Column("message", Json, nullable=False),  # SDP, ICE candidates, what is shown (ids, never content)
    Column("created_at", TS, nullable=False),
    ForeignKeyConstraint(["dossier_key", "consultation_id"],
                         ["teleconsultation.dossier_key", "teleconsultation.consultation_id"]),
)

teleconsult_by_clinician = Table(  # lookup: a professional's consultations across dossiers (their agenda)
    "teleconsult_by_clinician", metadata,
    Column("clinician_id", String(40), primary_key=True),
    Column("consultation_id", Uuid, primary_key=True),
    Column("dossier_key", Uuid, nullable=False),
    Column("scheduled_at", TS, nullable=False),
)
