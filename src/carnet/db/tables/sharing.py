"""The SMART Health Links a patient shared (carnet.sharing, docs/SHARING.md)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKeyConstraint, Integer, LargeBinary, String, Table, Uuid

from carnet.db.tables.base import TS, Json, metadata

shared_link = Table(  # a SMART Health Link the patient shared (carnet.sharing); its key sealed by the master key
    "shared_link", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("link_id", Uuid, primary_key=True),
    Column("kind", String(8), nullable=False),  # link | card (the emergency card's live summary)
    Column("label", String(80), nullable=False),
    Column("contents", Json, nullable=False),  # {"summary": bool, "documents": [DocumentReference ids]}
    Column("sealed", LargeBinary, nullable=False),  # the link's id and key (JSON), sealed with the master key ring
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("passcode_hash", String(200)),  # Argon2id; null: no passcode
    Column("expires_at", TS),
    Column("max_opens", Integer),
    Column("opens", Integer, nullable=False, default=0),
    Column("passcode_failures", Integer, nullable=False, default=0),
    Column("created_at", TS, nullable=False),
    Column("revoked_at", TS),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

shared_link_lookup = Table(  # lookup: the SHA-256 of a link's public random id -> its dossier (same transaction)
    "shared_link_lookup", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("dossier_key", Uuid, nullable=False),
    Column("link_id", Uuid, nullable=False),
)

access_code = Table(  # an access code the patient gave a new professional (carnet.codes, issue 13 §1)
    "access_code", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("code_id", Uuid, primary_key=True),
    Column("code_hash", String(64), nullable=False),  # HMAC-SHA256 (key derived from the master key ring), never clear
    Column("label", String(80)),  # the patient's own note ("Dr at the ski resort"), optional
    # access: makes a new professional authorized; hidden: shows an authorized one the documents the patient hid
    Column("kind", String(8), nullable=False, default="access", server_default="access"),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("used_at", TS),
    Column("used_by", String(40)),  # the professional's national id
    Column("revoked_at", TS),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)

access_code_guard = Table(  # wrong access codes counted per dossier: past the limit, the dossier's codes freeze
    "access_code_guard", metadata,
    Column("dossier_key", Uuid, primary_key=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("window_start", TS, nullable=False),
    Column("frozen_until", TS),
    ForeignKeyConstraint(["dossier_key"], ["dossier.dossier_key"]),
)
