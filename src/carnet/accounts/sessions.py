"""Portal sessions: a random token in an HttpOnly, Secure, SameSite=Lax cookie; the table keeps only its SHA-256.

A session starts at ``password_ok`` once the password is right and becomes ``signed_in`` only after the one-time code
(the second factor). It ends after ``CARNET_SESSION_IDLE_MINUTES`` without a request, after
``CARNET_SESSION_MAX_HOURS`` in any case, at sign-out, or when the person signs out everywhere (every session of the
account is revoked, and so are the refresh tokens of their apps).

Every state-changing request carries the session's CSRF token (a hidden ``csrf`` field, or the ``X-CSRF-Token``
header that htmx sends): the synchronizer-token pattern, on top of SameSite.

Acting on a dossier: a session names the dossier it acts on and, for a legal representative, the representative
record; :func:`actor` turns that into the :class:`~carnet.access.actors.Actor` the policy judges, after checking in
the same transaction that the account's link to the dossier still holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select, update

from carnet.access.actors import Actor, ActorKind
from carnet.config import Settings
from carnet.db.tables import account, account_dossier, dossier, refresh_token, web_session
from carnet.errors import FhirError

COOKIE = "carnet_session"
PORTAL_CLIENT = "carnet-portal"  # the client id recorded in audit records for actions taken in the portal


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PortalSession:
    session_hash: str
    account_id: uuid.UUID
    stage: str  # password_ok | signed_in
    csrf: str
    dossier_key: uuid.UUID | None
    representative_id: uuid.UUID | None
    kind: str  # patient | representative
    display_name: str
    lang: str
    login: str
    previous_visit_at: dt.datetime | None = None  # the account's visit to this dossier before this session

    @property
    def signed_in(self) -> bool:
        return self.stage == "signed_in"

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf, str(presented))


def open_session(conn: Connection, account_id: uuid.UUID, stage: str, now: dt.datetime, settings: Settings) -> str:
    """Start a session and return the cookie's token (never stored)."""
    token = secrets.token_urlsafe(32)
    conn.execute(web_session.insert().values(
        session_hash=digest(token), account_id=account_id, stage=stage, csrf=secrets.token_urlsafe(24),
        created_at=now, last_seen_at=now, expires_at=now + dt.timedelta(hours=settings.session_max_hours)))
    return token


def load(conn: Connection, token: str | None, now: dt.datetime, settings: Settings, *,
         touch: bool = True) -> PortalSession | None:
    """The live session for a cookie token, or None (unknown, revoked, idle too long, too old, disabled account)."""
    if not token or len(token) > 200:
        return None
    h = digest(token)
    # Two single-shard reads on Citus (the session by its hash, then its account by id): the tables are distributed
    # by different keys, and a join between them would need a repartition (docs/SCALE.md).
    row = conn.execute(select(web_session).where(web_session.c.session_hash == h)).first()
    if row is None or row.revoked_at is not None:
        return None
    idle_limit = _utc(row.last_seen_at) + dt.timedelta(minutes=settings.session_idle_minutes)
    if _utc(row.expires_at) <= now or idle_limit <= now:
        return None
    person = conn.execute(select(account.c.kind, account.c.display_name, account.c.lang, account.c.login,
                                 account.c.status).where(account.c.account_id == row.account_id)).first()
    if person is None or person.status != "active":
        return None
    if touch and (now - _utc(row.last_seen_at)).total_seconds() > 30:  # spare a write on every click
        conn.execute(update(web_session).where(web_session.c.session_hash == h).values(last_seen_at=now))
    return PortalSession(session_hash=h, account_id=row.account_id, stage=row.stage, csrf=row.csrf,
                         dossier_key=row.dossier_key, representative_id=row.representative_id, kind=person.kind,
                         display_name=person.display_name, lang=person.lang, login=person.login,
                         previous_visit_at=_utc(row.previous_visit_at) if row.previous_visit_at else None)


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def promote(conn: Connection, session_hash: str) -> None:
    """The second factor was right: the session is now signed in (a new CSRF token, against fixation)."""
    conn.execute(update(web_session).where(web_session.c.session_hash == session_hash)
                 .values(stage="signed_in", csrf=secrets.token_urlsafe(24)))


def choose_dossier(conn: Connection, session: PortalSession, dossier_key: uuid.UUID,
                   now: dt.datetime | None = None) -> bool:
    """Act on ``dossier_key`` if this account is linked to it; False otherwise (nothing changes). The account's
    last visit to that dossier becomes this session's "previous visit", and now is the last visit."""
    link = conn.execute(select(account_dossier).where(and_(
        account_dossier.c.dossier_key == dossier_key, account_dossier.c.account_id == session.account_id,
        account_dossier.c.ended_at.is_(None)))).first()
    if link is None:
        return False
    conn.execute(update(web_session).where(web_session.c.session_hash == session.session_hash).values(
        dossier_key=dossier_key, representative_id=link.representative_id if link.role == "representative" else None,
        previous_visit_at=link.last_visit_at))
    if now is not None:
        conn.execute(update(account_dossier).where(and_(
            account_dossier.c.dossier_key == dossier_key, account_dossier.c.account_id == session.account_id))
            .values(last_visit_at=now))
    return True


def revoke(conn: Connection, session_hash: str, now: dt.datetime) -> None:
    conn.execute(update(web_session).where(web_session.c.session_hash == session_hash).values(revoked_at=now))


def revoke_everywhere(conn: Connection, account_id: uuid.UUID, now: dt.datetime, *,
                      keep_session: str | None = None) -> None:
    """Sign out everywhere: every portal session and every app's refresh token of this account (but the session
    ``keep_session``, the one that asked, when given)."""
    sessions = and_(web_session.c.account_id == account_id, web_session.c.revoked_at.is_(None))
    if keep_session is not None:
        sessions = and_(sessions, web_session.c.session_hash != keep_session)
    conn.execute(update(web_session).where(sessions).values(revoked_at=now))
    conn.execute(update(refresh_token).where(and_(refresh_token.c.account_id == account_id,
                                                  refresh_token.c.revoked_at.is_(None))).values(revoked_at=now))


def links(conn: Connection, account_id: uuid.UUID) -> list[Any]:
    """The dossiers this account acts on (its own, a child's, a protected adult's), with the person's name."""
    return list(conn.execute(
        select(account_dossier.c.dossier_key, account_dossier.c.role, account_dossier.c.representative_id,
               dossier.c.given, dossier.c.family, dossier.c.birth_date, dossier.c.status)
        .select_from(account_dossier.join(dossier, dossier.c.dossier_key == account_dossier.c.dossier_key))
        .where(and_(account_dossier.c.account_id == account_id, account_dossier.c.ended_at.is_(None)))
        .order_by(account_dossier.c.role.desc(), dossier.c.birth_date)).all())


def actor(conn: Connection, session: PortalSession, dossier_key: uuid.UUID | None = None) -> Actor:
    """The Actor for this session acting on its dossier, read in the caller's transaction. The policy still decides:
    a representative whose child has come of age gets an Actor, and the policy refuses it."""
    key = dossier_key or session.dossier_key
    if not session.signed_in or key is None:
        raise FhirError(401, "login", "Sign in and choose a dossier first")
    row = conn.execute(
        select(account_dossier.c.role, account_dossier.c.representative_id, dossier.c.ins)
        .select_from(account_dossier.join(dossier, dossier.c.dossier_key == account_dossier.c.dossier_key))
        .where(and_(account_dossier.c.dossier_key == key, account_dossier.c.account_id == session.account_id,
                    account_dossier.c.ended_at.is_(None)))).first()
    if row is None:
        raise FhirError(403, "forbidden", "This account does not act on this dossier")
    if row.role == "representative":
        return Actor(kind=ActorKind.REPRESENTATIVE, id=str(row.representative_id), display=session.display_name,
                     acting_for=row.ins, client_id=PORTAL_CLIENT)
    return Actor(kind=ActorKind.PATIENT, id=row.ins, display=session.display_name, client_id=PORTAL_CLIENT)
