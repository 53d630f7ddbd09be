"""Clinician sessions: a random token in the HttpOnly, Secure, SameSite=Lax cookie ``carnet_pro``; the table
``pro_session`` keeps only its SHA-256, the professional's national id, the session's mode (normal, emergency,
regulation) and break-the-glass reason, and the CSRF token. Idle and absolute expiry as in the patient portal.

:func:`actor` turns a session into the :class:`~carnet.access.actors.Actor` the policy judges, reading the
professional from the ``practitioner`` table in the same transaction: a disabled professional has no actor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.config import Settings
from carnet.db.tables import practitioner, pro_session
from carnet.errors import FhirError

COOKIE = "carnet_pro"
CLIENT_ID = "carnet-pro-portal"  # the client id recorded in audit records for actions taken in the clinician portal


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class ProSession:
    session_hash: str
    national_id: str
    display_name: str
    profession: str
    organisation_id: str | None
    is_regulator: bool
    mode: str  # normal | emergency | regulation
    reason: str | None
    csrf: str
    created_at: dt.datetime
    reviewer: bool = False

    @property
    def signed_in(self) -> bool:
        return True

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


def open_session(conn: Connection, national_id: str, acr: str | None, now: dt.datetime, settings: Settings) -> str:
    """Start a session for an enabled professional and return the cookie's token (never stored)."""
    row = conn.execute(select(practitioner.c.organisation_id, practitioner.c.enabled)
                       .where(practitioner.c.national_id == national_id)).first()
    if row is None or not row.enabled:
        raise FhirError(403, "forbidden", "This professional is not, or no longer, allowed to use Carnet.")
    token = secrets.token_urlsafe(32)
    conn.execute(pro_session.insert().values(
        session_hash=digest(token), national_id=national_id, organisation_id=row.organisation_id, mode="normal",
        csrf=secrets.token_urlsafe(24), acr=acr, created_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_max_hours)))
    return token


def load(conn: Connection, token: str | None, now: dt.datetime, settings: Settings) -> ProSession | None:
    """The live session for a cookie token, or None (unknown, revoked, idle too long, too old, disabled)."""
    if not token or len(token) > 200:
        return None
    h = digest(token)
    row = conn.execute(select(pro_session, practitioner.c.given, practitioner.c.family, practitioner.c.profession,
                              practitioner.c.is_regulator, practitioner.c.enabled)
                       .select_from(pro_session.join(practitioner,
                                                     practitioner.c.national_id == pro_session.c.national_id))
                       .where(pro_session.c.session_hash == h)).first()
    if row is None or row.revoked_at is not None or not row.enabled:
        return None
    if _utc(row.expires_at) <= now or _utc(row.last_seen_at) + dt.timedelta(minutes=settings.session_idle_minutes) \
            <= now:
        return None
    if (now - _utc(row.last_seen_at)).total_seconds() > 30:
        conn.execute(update(pro_session).where(pro_session.c.session_hash == h).values(last_seen_at=now))
    return ProSession(session_hash=h, national_id=row.national_id, display_name=f"{row.given} {row.family}",
                      profession=row.profession, organisation_id=row.organisation_id,
                      is_regulator=bool(row.is_regulator), mode=row.mode, reason=row.reason, csrf=row.csrf,
                      created_at=_utc(row.created_at), reviewer=row.national_id in settings.reviewers)


def set_mode(conn: Connection, session_hash: str, mode: Mode, reason: str) -> None:
    conn.execute(update(pro_session).where(pro_session.c.session_hash == session_hash)
                 .values(mode=mode.value, reason=reason))


def revoke(conn: Connection, session_hash: str, now: dt.datetime) -> None:
    conn.execute(update(pro_session).where(pro_session.c.session_hash == session_hash).values(revoked_at=now))


def actor(conn: Connection, current: ProSession) -> Actor:
    """The Actor of a session, re-read from the directory in the caller's transaction."""
    row = conn.execute(select(practitioner).where(practitioner.c.national_id == current.national_id)).first()
    if row is None or not row.enabled:
        raise FhirError(403, "forbidden", "This professional is not, or no longer, allowed to use Carnet.")
    return Actor(ActorKind.PROFESSIONAL, id=row.national_id, display=f"{row.given} {row.family}",
                 profession=row.profession, organisation_id=row.organisation_id,
                 is_regulator=bool(row.is_regulator), mode=Mode(current.mode), reason=current.reason,
                 client_id=CLIENT_ID)
