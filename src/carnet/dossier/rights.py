"""Who may act on a dossier, as the patient side and the professionals change it: legal representatives, the médecin
traitant, authorizations, blocks, objections to emergency and regulation access, the answer to access requests, and
the patient's view of who has access (issue 4 §2). Every change goes through the policy's decision and is audited."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from carnet.access.actors import ActorKind
from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import access_grant, audit, dossier, practitioner, representative
from carnet.errors import conflict, forbidden, unprocessable
from carnet.identity.professions import DOCTOR
from carnet.ids import new_id


def require(ctx: Context, key: uuid.UUID, allowed: bool, event: str, decision: Decision) -> None:
    """Refuse ``event`` (403, audited after the rollback) unless the policy's ``decision`` ``allowed`` it."""
    if not allowed:
        raise ctx.refuse(key, "U", event, forbidden(decision.refusal if not decision.read else
                                                     "This caller may not do this on this dossier."))


def add_representative(ctx: Context, key: uuid.UUID, kind: str, family: str, given: str,
                       relationship: str, resource: dict[str, Any] | None = None) -> uuid.UUID:
    """Record a legal representative; they get an account (or their existing one is linked) to act on the dossier.
    ``resource`` (the RelatedPerson) may carry their email or mobile number for the activation code."""
    row, decision = ctx.dossier(key, lock=True)
    if ctx.actor.kind not in (ActorKind.ASSURANCE_MALADIE, ActorKind.OPERATOR) and not decision.manage_access:
        raise ctx.refuse(key, "U", "representative.add", forbidden(decision.refusal))
    if kind not in ("minor", "protected_adult"):
        raise unprocessable("kind must be minor or protected_adult", "kind")
    rep_id = new_id()
    ctx.conn.execute(insert(representative).values(dossier_key=key, representative_id=rep_id, kind=kind,
                                                   family=family, given=given, relationship=relationship,
                                                   since=ctx.now))
    if kind == "protected_adult" and not row.is_protected_adult:
        ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(is_protected_adult=True))
    ctx.audit(key, "U", "representative.add", entity_type="RelatedPerson", entity_id=str(rep_id),
              detail={"kind": kind})
    from carnet.accounts.service import invite_representative

    invite_representative(ctx, key, rep_id, given, family, resource)
    return rep_id


def _practitioner_exists(ctx: Context, national_id: str) -> bool:
    return ctx.conn.execute(select(practitioner.c.national_id).where(
        practitioner.c.national_id == national_id)).first() is not None


def _profession(ctx: Context, national_id: str) -> str | None:
    return ctx.conn.execute(select(practitioner.c.profession).where(
        practitioner.c.national_id == national_id)).scalar()


def set_treating_gp(ctx: Context, key: uuid.UUID, national_id: str | None) -> None:
    """Designate or change the médecin traitant (the patient's choice, or the doctor declaring it with consent)."""
    row, decision = ctx.dossier(key, lock=True)
    a = ctx.actor
    allowed = decision.basis in ("patient", "representative") or (
        a.kind is ActorKind.PROFESSIONAL and decision.manage_access and national_id == a.id)
    require(ctx, key, allowed, "access.treating_gp", decision)
    if national_id is not None:
        profession = _profession(ctx, national_id)
        if profession is None:
            raise unprocessable("Unknown professional", "actor")
        if profession != DOCTOR:
            raise unprocessable("Only a doctor (médecin) may be designated médecin traitant", "actor",
                                "business-rule")
    blocked = ctx.conn.execute(select(access_grant.c.grant_id).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == (national_id or ""),
        access_grant.c.relation == "blocked", access_grant.c.revoked_at.is_(None))).first()
    if blocked is not None:
        raise conflict("This professional is blocked on this dossier: unblock first")
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(treating_gp=national_id,
                                                                               last_updated=ctx.now))
    ctx.audit(key, "U", "access.treating_gp", entity_type="Practitioner", entity_id=national_id)


def grant(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str, relation: str, event: str) -> uuid.UUID:
    ctx.conn.execute(update(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.revoked_at.is_(None)).values(revoked_at=ctx.now, revoked_by=ctx.actor.audit_id))
    grant_id = new_id()
    ctx.conn.execute(insert(access_grant).values(dossier_key=key, grant_id=grant_id, subject_kind=subject_kind,
                                                 subject_id=subject_id, relation=relation, created_at=ctx.now,
                                                 created_by=ctx.actor.audit_id))
    ctx.audit(key, "U", event, entity_type="Consent", entity_id=str(grant_id),
              detail={"subject_kind": subject_kind, "subject": subject_id, "relation": relation})
    return grant_id


def change_access(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str, relation: str | None) -> uuid.UUID:
    """Authorize (``authorized``), give the médecin traitant's rights (``gp_rights``), block (``blocked``), or
    withdraw (``None``) a professional or an organisation. A professional may only declare the patient's consent
    for themselves or their own organisation; the patient side may do everything but block the médecin traitant."""
    row, decision = ctx.dossier(key, lock=True)
    a = ctx.actor
    patient_side = decision.basis in ("patient", "representative")
    if a.kind is ActorKind.PROFESSIONAL:
        allowed = decision.manage_access and relation == "authorized" and subject_id in (a.id, a.organisation_id)
    else:
        allowed = patient_side and decision.manage_access
    event = {"authorized": "access.consent", "gp_rights": "access.gp_rights", "blocked": "access.block",
             None: "access.withdraw"}[relation]
    require(ctx, key, allowed, event, decision)
    if subject_kind == "practitioner" and not _practitioner_exists(ctx, subject_id):
        raise unprocessable("Unknown professional", "Consent.provision.actor")
    if relation in ("blocked", None) and row.treating_gp == subject_id:
        raise conflict("The médecin traitant cannot be blocked or removed while designated: change the médecin "
                       "traitant first")
    if relation is None:
        ctx.conn.execute(update(access_grant).where(
            access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
            access_grant.c.revoked_at.is_(None)).values(revoked_at=ctx.now, revoked_by=a.audit_id))
        ctx.audit(key, "U", event, detail={"subject": subject_id})
        return uuid.UUID(int=0)
    return grant(ctx, key, subject_kind, subject_id, relation, event)


def set_objections(ctx: Context, key: uuid.UUID, break_glass: bool | None, regulation: bool | None) -> None:
    row, decision = ctx.dossier(key, lock=True)
    require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.objection", decision)
    values: dict[str, Any] = {"last_updated": ctx.now}
    if break_glass is not None:
        values["objects_break_glass"] = break_glass
    if regulation is not None:
        values["objects_regulation"] = regulation
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(**values))
    ctx.audit(key, "U", "access.objection", detail={"break_glass": break_glass, "regulation": regulation})


ACCESS_REQUEST_POLICIES = ("ask", "refuse")


def set_access_requests(ctx: Context, key: uuid.UUID, policy: str) -> None:
    """The patient's answer to professionals' access requests (issue 4 §3): ``ask`` (be prompted) or ``refuse``
    ("never ask me, refuse": every request is rejected at once). Requests already pending stay pending."""
    row, decision = ctx.dossier(key, lock=True)
    require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.requests", decision)
    if policy not in ACCESS_REQUEST_POLICIES:
        raise unprocessable("The access request policy must be ask or refuse", "policy")
    ctx.conn.execute(update(dossier).where(dossier.c.dossier_key == key).values(access_requests=policy,
                                                                               last_updated=ctx.now))
    ctx.audit(key, "U", "access.requests", detail={"policy": policy})


# --- the patient's view of who has access (issue 4 §2, the portal's Access screen) --------------------------------

@dataclass(frozen=True)
class AccessEntry:
    """One live grant: a professional or an organisation authorized, given the médecin traitant's rights, or
    blocked; since when, and who gave it (``granted_by_kind``: patient | representative | professional | other)."""

    grant_id: uuid.UUID
    subject_kind: str  # practitioner | organisation
    subject_id: str
    relation: str  # authorized | gp_rights | blocked
    since: dt.datetime
    granted_by_kind: str  # patient | representative | professional | code (an access code the patient gave) | other
    granted_by_name: str | None


@dataclass(frozen=True)
class RepresentativeEntry:
    representative_id: uuid.UUID
    given: str
    family: str
    kind: str  # minor | protected_adult
    relationship: str
    since: dt.datetime


@dataclass(frozen=True)
class AccessOverview:
    status: str
    treating_gp: str | None
    treating_gp_since: dt.datetime | None
    grants: list[AccessEntry]  # authorized and gp_rights, practitioners and organisations
    blocked: list[AccessEntry]
    representatives: list[RepresentativeEntry]
    objects_break_glass: bool
    objects_regulation: bool
    access_requests: str  # ask | refuse
    can_manage: bool  # the dossier is open and the caller may change access


def aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def access_overview(ctx: Context, key: uuid.UUID) -> AccessOverview:
    """Who has access to the dossier and why, for the patient and their legal representatives (the only ones the
    policy lets manage access); anyone else is refused (403, audited). Reading it is audited (``access.read``)."""
    row, decision = ctx.dossier(key)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(key, "R", "access.read", forbidden(decision.refusal))
    grants = ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.revoked_at.is_(None))
        .order_by(access_grant.c.created_at)).all()
    reps = ctx.conn.execute(select(representative).where(representative.c.dossier_key == key)
                            .order_by(representative.c.since)).all()
    rep_names = {str(r.representative_id): f"{r.given} {r.family}" for r in reps}
    granters = {g.created_by for g in grants} - set(rep_names) - {row.ins}
    by_code = {str(e) for e in ctx.conn.execute(select(audit.c.entity_id).where(  # taken up with an access code
        audit.c.dossier_key == key, audit.c.event == "access.code.use", audit.c.outcome == "0",
        audit.c.entity_id.in_([str(g.grant_id) for g in grants]))).scalars()} if grants else set()
    pro_names = {p.national_id: f"{p.given} {p.family}" for p in ctx.conn.execute(select(
        practitioner.c.national_id, practitioner.c.given, practitioner.c.family).where(
        practitioner.c.national_id.in_(sorted(granters))))} if granters else {}

    def entry(g: Any) -> AccessEntry:
        if g.created_by == row.ins:
            kind, name = "patient", None
        elif g.created_by in rep_names:
            kind, name = "representative", rep_names[g.created_by]
        elif g.created_by in pro_names:
            kind = "code" if str(g.grant_id) in by_code else "professional"
            name = pro_names[g.created_by]
        else:
            kind, name = "other", None
        return AccessEntry(g.grant_id, g.subject_kind, g.subject_id, g.relation, aware(g.created_at), kind, name)

    gp_since = None
    if row.treating_gp:
        last = ctx.conn.execute(select(audit.c.recorded).where(
            audit.c.dossier_key == key, audit.c.event == "access.treating_gp", audit.c.outcome == "0",
            audit.c.entity_id == row.treating_gp).order_by(audit.c.seq.desc()).limit(1)).scalar()
        gp_since = aware(last) if last is not None else None
    ctx.audit(key, "R", "access.read", entity_type="Patient", entity_id=str(key))
    return AccessOverview(
        status=row.status, treating_gp=row.treating_gp, treating_gp_since=gp_since,
        grants=[entry(g) for g in grants if g.relation != "blocked"],
        blocked=[entry(g) for g in grants if g.relation == "blocked"],
        representatives=[RepresentativeEntry(r.representative_id, r.given, r.family, r.kind, r.relationship,
                                             aware(r.since)) for r in reps if r.ended_at is None],
        objects_break_glass=bool(row.objects_break_glass), objects_regulation=bool(row.objects_regulation),
        access_requests=str(row.access_requests or "ask"), can_manage=decision.manage_access)


def unblock(ctx: Context, key: uuid.UUID, subject_kind: str, subject_id: str) -> str | None:
    """Lift a block (the patient side). The authorization the block replaced, if any, comes back: unblocking undoes
    the block rather than leaving the professional with less than before. Returns the restored relation, or None.
    Both steps go through :func:`change_access` (policy and audit)."""
    _, decision = ctx.dossier(key, lock=True)
    require(ctx, key, decision.basis in ("patient", "representative") and decision.manage_access,
             "access.withdraw", decision)
    block = ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.relation == "blocked", access_grant.c.revoked_at.is_(None))).first()
    if block is None:
        raise conflict("This professional is not blocked")
    since = aware(block.created_at)
    before = [g for g in ctx.conn.execute(select(access_grant).where(
        access_grant.c.dossier_key == key, access_grant.c.subject_id == subject_id,
        access_grant.c.relation.in_(("authorized", "gp_rights")), access_grant.c.revoked_at.is_not(None))).all()
        if aware(g.revoked_at) == since]
    change_access(ctx, key, subject_kind, subject_id, None)
    if not before:
        return None
    relation = str(before[-1].relation)
    change_access(ctx, key, subject_kind, subject_id, relation)
    return relation
