"""Counters every node shares: per-address rate limits and sign-in failures (carnet.throttle, issue 15 §3)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Uuid

from carnet.db.tables.base import metadata

# --- counters shared by every node: per-address rate limits, sign-in failures (issue 15 §3) ------------------------
# Not dossier data: each row is found by its own ``key`` (a keyed hash, see carnet.throttle), so under Citus both are
# distributed by ``key`` (a co-location group of their own); every statement names one key, or sweeps expired rows.
# Times are epoch seconds (integer arithmetic in SQL, the same on PostgreSQL and SQLite).

rate_limit = Table(
    "rate_limit", metadata,  # a sliding window per (limit, client address): one upsert per hit
    Column("key", String(64), primary_key=True),  # HMAC-SHA256 of (limit name, address): no address in clear
    Column("period", BigInteger, nullable=False),  # the current window's number (epoch seconds // window)
    Column("hits", Integer, nullable=False),  # hits in the current window
    Column("previous", Integer, nullable=False),  # hits in the window before it
    Column("expires_at", BigInteger, nullable=False),  # after this the row means nothing: pruned
    Index(None, "expires_at"),
)

sign_in_failure = Table(
    "sign_in_failure", metadata,  # failed sign-in steps per (identifier, address), per address, per identifier
    Column("key", String(64), primary_key=True),  # HMAC-SHA256 of (kind, value): no identifier nor address in clear
    Column("kind", String(8), nullable=False),  # pair | address | login
    Column("failures", Integer, nullable=False),
    Column("last_at", BigInteger, nullable=False),  # the latest failure
    Column("expires_at", BigInteger, nullable=False),  # failures are forgotten after this: pruned
    Column("account_id", Uuid),  # kind login, when the identifier is an account's: whom to tell
    Column("notice_due", BigInteger),  # kind login: when a notice to the account holder became due
    Column("noticed_at", BigInteger),  # kind login: when the last notice was queued
    Index(None, "expires_at"),
    Index(None, "notice_due"),
)
