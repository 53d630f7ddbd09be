"""The patient's side of access codes (issue 13 §1): issue a code, list the dossier's codes, revoke one.

A code is shown once, when issued; only its keyed hash is kept (:func:`carnet.codes.alphabet.code_hash`). It is valid
for the hours the patient picks (``CARNET_ACCESS_CODE_HOURS``, 24, by default; 1 hour to 30 days) and for one use.
Every action is decided by the policy (``Decision.issue_codes`` to issue; the patient side's ``read_history`` to list
and revoke, on a closed dossier too) and audited in the dossier's chain in the same transaction (never the code).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from carnet.codes.alphabet import code_hash, format_code, new_code
from carnet.context import Context
from carnet.db.tables import access_code, access_grant, dossier, practitioner
from carnet.errors import FhirError, forbidden, not_found
from carnet.ids import new_id

MIN_HOURS = 1
MAX_HOURS = 24 * 30
MAX_LIVE = 10  # live codes a dossier may hold at once
MAX_LABEL = 80
KINDS = ("access", "hidden")  # access: makes a new professional authorized; hidden: shows an authorized one MASQUE_PS


@dataclass(frozen=True)
class IssuedCode:
    code_id: uuid.UUID
    code: str  # formatted XXXX-XXXX: shown once, never stored
    expires_at: dt.datetime
    kind: str = "access"


@dataclass(frozen=True)
class CodeView:
    code_id: uuid.UUID
    label: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    state: str  # live | used | expired | revoked
    used_at: dt.datetime | None
    used_by: str | None  # national id
    used_by_name: str | None
    kind: str = "access"


def aware(ts: dt.datetime | None) -> dt.datetime | None:
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def state_of(row: Any, now: dt.datetime) -> str:
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    expires = aware(row.expires_at)
    if expires is not None and expires <= now:
        return "expired"
    return "live"


def issue(ctx: Context, key: uuid.UUID, hours: int | None = None, label: str | None = None,
          kind: str = "access") -> IssuedCode:
    """Issue a code valid ``hours`` (default ``CARNET_ACCESS_CODE_HOURS``). Audited ``access.code.create``.

    ``kind`` ``access`` makes a new professional authorized; ``hidden`` (the second code, My Health Record's Limited
    Document Access Code) shows a professional already authorized the documents the patient hid (``MASQUE_PS``)."""
    if kind not in KINDS:
        raise FhirError(422, "invalid", "kind: 'access' (a new professional) or 'hidden' (the documents you hid).",
                        "kind")
    _, decision = ctx.dossier(key, lock=True)
    if not decision.issue_codes:
        raise ctx.refuse(key, "C", "access.code.create", forbidden(
            "Only the patient (or their legal representative) may give access codes, while the dossier is open.")
            if decision.check else not_found("Patient"))
    hours = ctx.settings.access_code_hours if hours is None else hours
    if isinstance(hours, bool) or not isinstance(hours, int) or not MIN_HOURS <= hours <= MAX_HOURS:
        raise FhirError(422, "invalid", "A code is valid from 1 hour to 30 days (720 hours).", "hours")
    text = " ".join((label or "").split()) or None
    if text is not None and len(text) > MAX_LABEL:
        raise FhirError(422, "invalid", "A note has at most 80 characters.", "label")
    live = [r for r in ctx.conn.execute(select(access_code).where(
        access_code.c.dossier_key == key, access_code.c.used_at.is_(None), access_code.c.revoked_at.is_(None))
    ).all() if state_of(r, ctx.now) == "live"]
    if len(live) >= MAX_LIVE:
        raise FhirError(409, "conflict", "This dossier already has 10 codes waiting to be used: revoke one first.")
    code_id, code = new_id(), new_code()
    expires = ctx.now + dt.timedelta(hours=hours)
    ctx.conn.execute(insert(access_code).values(
        dossier_key=key, code_id=code_id, code_hash=code_hash(ctx.services.keyring, key, code), label=text,
        created_at=ctx.now, expires_at=expires, kind=kind))
    ctx.audit(key, "C", "access.code.create" if kind == "access" else "access.code.create_hidden",
              entity_type="AccessCode", entity_id=str(code_id), detail={"hours": hours, "expires": expires.isoformat()})
    return IssuedCode(code_id, format_code(code), expires, kind)


def codes(ctx: Context, key: uuid.UUID) -> list[CodeView]:
    """The dossier's codes, newest first, with who used each (the patient side). Audited ``access.code.read``."""
    _, decision = ctx.dossier(key)
    if not decision.read_history:
        raise ctx.refuse(key, "R", "access.code.read", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    rows = ctx.conn.execute(select(access_code).where(access_code.c.dossier_key == key)
                            .order_by(access_code.c.created_at.desc(), access_code.c.code_id.desc())
                            .limit(50)).all()
    users = sorted({r.used_by for r in rows if r.used_by})
    names = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(users)))} if users else {}
    ctx.audit(key, "R", "access.code.read", entity_type="Patient", entity_id=str(key),
              detail={"returned": len(rows)})
    return [CodeView(r.code_id, r.label, aware(r.created_at) or ctx.now, aware(r.expires_at) or ctx.now,
                     state_of(r, ctx.now), aware(r.used_at), r.used_by, names.get(r.used_by or ""), r.kind)
            for r in rows]


def revoke(ctx: Context, key: uuid.UUID, code_id: uuid.UUID) -> None:
    """Revoke a code not used yet: it can no longer be used. Audited ``access.code.revoke``."""
    _, decision = ctx.dossier(key, lock=True)
    if not decision.read_history:
        raise ctx.refuse(key, "U", "access.code.revoke", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    done = ctx.conn.execute(update(access_code).where(
        access_code.c.dossier_key == key, access_code.c.code_id == code_id, access_code.c.used_at.is_(None),
        access_code.c.revoked_at.is_(None)).values(revoked_at=ctx.now)).rowcount
    if not done:
        raise FhirError(404, "not-found", "No such code waiting to be used.")
    ctx.audit(key, "U", "access.code.revoke", entity_type="AccessCode", entity_id=str(code_id))


def required(ctx: Context, key: uuid.UUID) -> bool:
    """Whether the patient requires an access code of every professional not yet authorized (the patient side; read
    with the codes page, whose reading :func:`codes` audits)."""
    row, decision = ctx.dossier(key)
    if not decision.read_history:
        raise ctx.refuse(key, "R", "access.code.read", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    return bool(row.requires_code)


def set_required(ctx: Context, key: uuid.UUID, value: bool) -> None:
    """Require (or no longer require) an access code of every professional not yet authorized, as My Health Record's
    Record Access Code: they may then no longer record the patient's consent themselves (the policy's
    ``manage_access``), only take up a code; the médecin traitant, the professionals already authorized, emergency
    and regulation access keep their rules. Audited ``access.code.require``."""
    _, decision = ctx.dossier(key, lock=True)
    if not decision.issue_codes:
        raise ctx.refuse(key, "U", "access.code.require", forbidden(
            "Only the patient (or their legal representative) may change this, while the dossier is open.")
            if decision.check else not_found("Patient"))
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(requires_code=value,
                                                                               last_updated=ctx.now))
    ctx.audit(key, "U", "access.code.require", entity_type="Patient", entity_id=str(key), detail={"required": value})


def stop_hidden(ctx: Context, key: uuid.UUID, national_id: str) -> None:
    """Stop showing the documents the patient hid to a professional who took up a code for them (the patient side);
    their authorization stays. Withdrawing the authorization stops it too. Audited ``access.hidden.stop``."""
    _, decision = ctx.dossier(key, lock=True)
    if not decision.read_history:
        raise ctx.refuse(key, "U", "access.hidden.stop", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    done = ctx.conn.execute(update(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == national_id,
        access_grant.c.revoked_at.is_(None), access_grant.c.sees_hidden.is_(True)).values(sees_hidden=False)).rowcount
    if not done:
        raise FhirError(404, "not-found", "This professional does not see the hidden documents.")
    ctx.audit(key, "U", "access.hidden.stop", entity_type="Practitioner", entity_id=national_id)
