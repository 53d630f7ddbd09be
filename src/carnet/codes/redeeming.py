"""A professional takes up an access code (issue 13 §1): the code the patient gave them makes them authorized on the
dossier, exactly as the patient's own authorization would (:func:`carnet.dossier.rights.grant`, relation
``authorized``, audited ``access.code.use``), the patient is notified, and the code is dead.

The professional names the dossier (the clinician portal's find-by-INS result, or ``Patient/{id}`` from the API's
existence check by INS) and types the code: a code is looked for among that dossier's live codes only, so guessing
needs both. The attempts are slowed three ways:

- per client address, before anything is looked at: :func:`check_rate` (``CARNET_RATE_ACCESS_CODE``, 10 in 5 minutes,
  the shared rate limiter of :mod:`carnet.throttle`, committed whatever happens next);
- per dossier: each wrong code is counted in ``access_code_guard`` and audited in the dossier's chain
  (``access.code.wrong``, outcome refused, committed); at ``CARNET_ACCESS_CODE_ATTEMPTS`` (5) wrong codes within
  ``CARNET_ACCESS_CODE_FREEZE_MINUTES`` (60) the dossier's codes are frozen for that long (``access.code.frozen``;
  the patient is told) and every try answers 429 without being looked at;
- the comparison is ``hmac.compare_digest`` of keyed hashes, against every live code of the dossier.

The dossier row is locked for the attempt, so two attempts on one dossier are serialised (a code is used once).
"""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from carnet import throttle
from carnet.access.policy import AUTHORIZED_RELATIONS
from carnet.audit.log import OUTCOME_REFUSED
from carnet.codes.alphabet import code_hash, normalise
from carnet.codes.issuing import aware
from carnet.context import Context, Services
from carnet.db.tables import access_code, access_code_guard, access_grant
from carnet.dossier.rights import grant
from carnet.errors import FhirError, conflict, forbidden, not_found

ALREADY = "You are already authorized on this dossier."
NEEDS_AUTHORIZATION = ("This code is for the documents the patient hid: it adds to an authorization in your own name, "
                       "it does not replace it. Be authorized by the patient first (or take up an access code), "
                       "then enter it.")
WRONG = "This access code is not valid for this patient: check it with the patient (it may have expired, or been used)."


@dataclass(frozen=True)
class Redeemed:
    dossier_key: uuid.UUID
    grant_id: uuid.UUID
    kind: str = "access"  # access: now authorized; hidden: now sees the documents the patient hid


@dataclass(frozen=True)
class WrongCode:
    """A wrong code (counted, audited, committed); ``frozen``: this one froze the dossier's codes."""

    frozen: bool
    remaining: int


def frozen_error(seconds: int) -> FhirError:
    return FhirError(429, "throttled", "Too many wrong access codes: try again later.",
                     headers={"Retry-After": str(max(1, seconds))})


def check_rate(services: Services, address: str) -> None:
    """Count one attempt from ``address`` (its own transaction); 429 with ``Retry-After`` past the limit."""
    wait = throttle.hit(services, "access_code", address)
    if wait:
        raise frozen_error(wait)


def redeem(ctx: Context, key: uuid.UUID, typed: str) -> Redeemed | WrongCode:
    """Take up the code ``typed`` on dossier ``key`` for the calling professional (see the module docstring).

    Refused (403, or 404 for a dossier they may not know of; audited ``access.code.use``) unless the policy's
    ``redeem_code``; 409 for a professional already authorized (the code stays alive for whom it was meant).

    The code's kind decides what it gives: ``access`` an authorization (``redeem_code``), ``hidden`` the documents the
    patient hid, added to the authorization the professional holds in their own name (``redeem_hidden_code``: its
    ``access_grant`` row gets ``sees_hidden``, audited ``access.code.use_hidden``); a hidden-documents code sent by a
    professional not authorized yet is refused (409, the code stays alive)."""
    _, decision = ctx.dossier(key, lock=True)
    if not (decision.redeem_code or decision.redeem_hidden_code):
        if decision.read and decision.basis in AUTHORIZED_RELATIONS:
            raise ctx.refuse(key, "U", "access.code.use", conflict(ALREADY))
        raise ctx.refuse(key, "U", "access.code.use", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    guard = ctx.conn.execute(select(access_code_guard).where(access_code_guard.c.dossier_key == key)).first()
    until = aware(guard.frozen_until) if guard is not None else None
    if until is not None and until > ctx.now:
        raise ctx.refuse(key, "U", "access.code.use", frozen_error(int((until - ctx.now).total_seconds())))
    code = normalise(typed)
    match, kind = None, "access"
    if code is not None:
        wanted = code_hash(ctx.services.keyring, key, code)
        live = (select(access_code.c.code_id, access_code.c.code_hash, access_code.c.expires_at, access_code.c.kind)
                .where(access_code.c.dossier_key == key, access_code.c.used_at.is_(None),
                       access_code.c.revoked_at.is_(None)))
        for row in ctx.conn.execute(live).all():
            same = hmac.compare_digest(row.code_hash, wanted)  # every live code is compared: no early exit
            if same and (aware(row.expires_at) or ctx.now) > ctx.now:
                match, kind = row.code_id, row.kind
    if match is None:
        return _wrong(ctx, key, guard)
    if kind == "hidden" and not decision.redeem_hidden_code:
        raise ctx.refuse(key, "U", "access.code.use_hidden", conflict(NEEDS_AUTHORIZATION))
    if kind != "hidden" and not decision.redeem_code:
        raise ctx.refuse(key, "U", "access.code.use", conflict(ALREADY))
    ctx.conn.execute(update(access_code).where(access_code.c.dossier_key == key, access_code.c.code_id == match,
                                               access_code.c.used_at.is_(None))
                     .values(used_at=ctx.now, used_by=ctx.actor.id))
    if guard is not None and guard.failures:
        ctx.conn.execute(update(access_code_guard).where(access_code_guard.c.dossier_key == key)
                         .values(failures=0, window_start=ctx.now))
    if kind == "hidden":
        return _see_hidden(ctx, key)
    grant_id = grant(ctx, key, "practitioner", ctx.actor.id or "", "authorized", "access.code.use")
    return Redeemed(key, grant_id)


def _see_hidden(ctx: Context, key: uuid.UUID) -> Redeemed:
    """Record on the caller's own authorization that they see the documents the patient hid (until it is withdrawn,
    or the patient stops it)."""
    mine = (access_grant.c.dossier_key == key, access_grant.c.subject_kind == "practitioner",
            access_grant.c.subject_id == (ctx.actor.id or ""), access_grant.c.relation == "authorized",
            access_grant.c.revoked_at.is_(None))
    grant_id = ctx.conn.execute(select(access_grant.c.grant_id).where(*mine)
                                .order_by(access_grant.c.created_at.desc())).scalars().first()
    if grant_id is None:  # the policy said authorized in their own name: the grant is there (same transaction)
        raise ctx.refuse(key, "U", "access.code.use_hidden", conflict(NEEDS_AUTHORIZATION))
    ctx.conn.execute(update(access_grant).where(*mine).values(sees_hidden=True))
    ctx.audit(key, "U", "access.code.use_hidden", entity_type="Consent", entity_id=str(grant_id),
              detail={"subject": ctx.actor.id})
    return Redeemed(key, grant_id, "hidden")


def _wrong(ctx: Context, key: uuid.UUID, guard: object) -> WrongCode:
    s = ctx.settings
    window = dt.timedelta(minutes=s.access_code_freeze_minutes)
    start = aware(getattr(guard, "window_start", None))
    if guard is None:
        failures = 1
        ctx.conn.execute(insert(access_code_guard).values(dossier_key=key, failures=1, window_start=ctx.now))
    elif start is None or start + window <= ctx.now:  # the last wrong codes are old: count again
        failures = 1
        ctx.conn.execute(update(access_code_guard).where(access_code_guard.c.dossier_key == key)
                         .values(failures=1, window_start=ctx.now, frozen_until=None))
    else:
        failures = int(getattr(guard, "failures", 0)) + 1
        ctx.conn.execute(update(access_code_guard).where(access_code_guard.c.dossier_key == key)
                         .values(failures=failures))
    remaining = max(0, s.access_code_attempts - failures)
    ctx.audit(key, "U", "access.code.wrong", entity_type="Patient", entity_id=str(key),
              detail={"failures": failures}, outcome=OUTCOME_REFUSED)
    if remaining:
        return WrongCode(False, remaining)
    until = ctx.now + window
    ctx.conn.execute(update(access_code_guard).where(access_code_guard.c.dossier_key == key)
                     .values(failures=0, window_start=ctx.now, frozen_until=until))
    ctx.audit(key, "U", "access.code.frozen", entity_type="Patient", entity_id=str(key),
              detail={"until": until.isoformat()})
    return WrongCode(True, 0)
