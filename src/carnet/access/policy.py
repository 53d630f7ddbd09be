"""The one place that decides who may do what on a dossier (DOMAIN.md, "Who may do what").

``decide(actor, dossier, standing, today)`` turns the caller, their mode, the dossier's state and the caller's standing
on it (authorized, blocked, médecin traitant…) into a :class:`Decision`. Dossier-level answers are booleans; which
documents the caller sees is a :class:`Visibility`, which is applied two ways from the same fields: ``allows()`` for
one document in Python and ``where()`` as a SQL clause, so that searches filter in the database and paging holds.

Choices where DOMAIN.md is silent (also in docs/ACCESS.md):
- emergency and regulation access are "as if authorized": the habilitation matrix applies and ``MASQUE_PS`` stays
  hidden; an already-authorized professional keeps access in those modes whatever the objections;
- regulation mode is valid only for doctors registered as SAMU centre-15 regulators;
- a document the patient deleted is gone for everyone (the audit keeps its trace);
- a structured item (allergy, condition, treatment, vaccination, observation) is read as the patient summary it
  belongs to (class 11, type 60591-5) for the habilitation matrix, and one the patient hid from professionals follows
  the ``MASQUE_PS`` rule of a document: its author, the médecin traitant (and gp_rights) and the patient side see it,
  nobody else, emergency and regulation modes included (issue 13 §3);
- a professional authorized in their own name who took up the patient's code for hidden documents (issue 13 §1)
  sees ``MASQUE_PS`` while that authorization lasts; the habilitation matrix still applies to them;
- ``INVISIBLE_REPRESENTANTS_LEGAUX`` hides from every legal representative (minor's parents and tutors);
- the existence check (TD0.2) is answered to any professional who is not blocked and to Assurance Maladie, while
  the dossier is open;
- e-prescriptions (issue 12 §2, docs/PRESCRIPTIONS.md): a doctor, a midwife or a dentist who may read and add to an
  open dossier writes prescriptions (``prescribe``); a pharmacist who presents a prescription (its number and the
  patient's INS, or its scanned 2D code, or the patient sent it to their pharmacy) reads that prescription and records
  what was dispensed on it (``dispense``), in normal mode, on an open dossier, unless the patient blocked them: that
  gives nothing else of the dossier (``read`` stays as their own standing makes it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import and_, false, func, or_, true
from sqlalchemy.sql.elements import ColumnElement

from carnet.access.actors import NEVER_ADMITTED, Actor, ActorKind, Mode
from carnet.access.matrix import Matrix, ProfessionRights
from carnet.identity.professions import DOCTOR

# Who writes prescriptions (TRE_G15): médecin, chirurgien-dentiste, sage-femme (Carnet's choice: the professions that
# prescribe medicines in France on their own authority); who dispenses them: pharmacien.
PRESCRIBERS = frozenset({"10", "40", "50"})
PHARMACIST = "21"

AUTHORIZED_RELATIONS = frozenset({"authorized", "care_team", "treating_gp", "gp_rights"})
FULL_RIGHTS_RELATIONS = frozenset({"treating_gp", "gp_rights"})
PATIENT_CLASS = "90"  # documents deposited by the patient
REIMBURSEMENT_CLASS = "60"  # Assurance Maladie's data


@dataclass(frozen=True)
class DossierFacts:
    dossier_key: Any
    status: str  # active | closed
    birth_date: dt.date
    objects_break_glass: bool = False
    objects_regulation: bool = False
    # the patient requires an access code for every professional not yet authorized (issue 13 §1; My Health Record's
    # Record Access Code): such a professional may no longer declare the patient's consent themselves
    requires_code: bool = False


@dataclass(frozen=True)
class Standing:
    """The caller's standing on this dossier, read from its grants and representatives."""

    relation: str = "none"  # none | authorized | care_team | treating_gp | gp_rights | blocked
    is_owner: bool = False  # a patient actor whose INS is the dossier's
    representative_kind: str | None = None  # a representative actor recorded on this dossier: minor | protected_adult
    link: str | None = None  # a link recipient: the state of the link they present (:func:`link_state`), "live"...
    # the professional took up the patient's code for hidden documents (issue 13 §1; My Health Record's Limited
    # Document Access Code), recorded on their own authorization: counts only with relation "authorized"
    sees_hidden: bool = False
    # a pharmacist presented one of this dossier's prescriptions (carnet.prescribing checked its number and the
    # patient's INS, or its 2D code, or the patient sent it to their pharmacy): the narrow dispensing path
    presented_prescription: bool = False


@dataclass(frozen=True)
class DocFacts:
    class_code: str
    type_code: str
    author_id: str | None
    masked: bool = False
    invisible_patient: bool = False
    invisible_patient_until: dt.datetime | None = None
    invisible_representatives: bool = False
    deleted: bool = False


# The matrix class and type a structured item is read under: the patient summary (VSM/IPS) it is part of.
ITEM_CLASS = "11"
ITEM_TYPE = "60591-5"


@dataclass(frozen=True)
class ItemFacts:
    """A structured item (allergy, condition, treatment, vaccination, observation), as access sees it."""

    author_id: str | None
    hidden: bool = False  # the patient hid it from professionals (MASQUE_PS, as for a document)


@dataclass(frozen=True)
class Visibility:
    """Which documents of a dossier the caller sees. ``nothing`` wins over every other field."""

    nothing: bool = True
    rights: ProfessionRights | None = None  # the habilitation matrix applies (professionals without full rights)
    hide_masked: bool = False
    author_id: str | None = None  # the author always sees what they wrote
    hide_invisible_patient: bool = False
    hide_invisible_representatives: bool = False

    def allows(self, doc: DocFacts, now: dt.datetime) -> bool:
        if self.nothing or doc.deleted:
            return False
        if self.hide_invisible_patient and doc.invisible_patient and not (
                doc.invisible_patient_until is not None and doc.invisible_patient_until <= now):
            return False
        if self.hide_invisible_representatives and doc.invisible_representatives:
            return False
        if self.author_id is not None and doc.author_id == self.author_id:
            return True
        if self.hide_masked and doc.masked:
            return False
        return self.rights is None or self.rights.allows(doc.class_code, doc.type_code)

    def where(self, t: Any, now: dt.datetime) -> ColumnElement[bool]:
        """The same rule as :meth:`allows`, as a SQL condition on the ``document`` table ``t``."""
        if self.nothing:
            return false()
        now = now.astimezone(dt.UTC)  # SQLite keeps no offset: compare UTC with UTC
        conds: list[ColumnElement[bool]] = [t.c.deleted == false()]
        if self.hide_invisible_patient:
            conds.append(or_(t.c.invisible_patient == false(), t.c.invisible_patient_until <= now))
        if self.hide_invisible_representatives:
            conds.append(t.c.invisible_representatives == false())
        prof: list[ColumnElement[bool]] = []
        if self.hide_masked:
            prof.append(t.c.masked == false())
        if self.rights is not None:
            prof.append(_rights_sql(self.rights, t))
        if prof:
            clause = and_(*prof)
            if self.author_id is not None:
                clause = or_(t.c.author_id == self.author_id, clause)
            conds.append(clause)
        return and_(*conds)

    def allows_item(self, item: ItemFacts) -> bool:
        """The rule of a document of the summary class (``MASQUE_PS`` = hidden), for a structured item."""
        return self.allows(DocFacts(class_code=ITEM_CLASS, type_code=ITEM_TYPE, author_id=item.author_id,
                                    masked=item.hidden), dt.datetime.min.replace(tzinfo=dt.UTC))

    def item_where(self, t: Any) -> ColumnElement[bool]:
        """The same rule as :meth:`allows_item`, as a SQL condition on the ``clinical_item`` table ``t`` (columns
        ``author_id`` and ``masked``)."""
        if self.nothing:
            return false()
        prof: list[ColumnElement[bool]] = []
        if self.hide_masked:
            prof.append(t.c.masked == false())
        if self.rights is not None and not self.rights.allows(ITEM_CLASS, ITEM_TYPE):
            prof.append(false())
        if not prof:
            return true()
        clause = and_(*prof)
        if self.author_id is not None:
            clause = or_(t.c.author_id == self.author_id, clause)
        return clause


    def allows_measure(self, hidden: bool) -> bool:
        """Whether the caller reads a measure's readings (carnet.measures): the patient side always; a professional
        whose matrix entry says ``measures`` (or with the médecin traitant's full rights); a measure the patient hid
        from professionals follows a hidden document's rule (``MASQUE_PS``): only the médecin traitant, those with the
        same rights, one who took up the code for hidden documents, and the patient side still see it."""
        if self.nothing:
            return False
        if self.hide_masked and hidden:
            return False
        return self.rights is None or (self.rights.access and self.rights.measures)

    def measure_where(self, t: Any) -> ColumnElement[bool]:
        """The same rule as :meth:`allows_measure`, as a SQL condition on the ``measure_series`` table ``t``."""
        if self.nothing or (self.rights is not None and not (self.rights.access and self.rights.measures)):
            return false()
        return t.c.hidden == false() if self.hide_masked else true()


def _rights_sql(r: ProfessionRights, t: Any) -> ColumnElement[bool]:
    if not r.access:
        return false()
    conds: list[ColumnElement[bool]] = []
    if r.exclude_types:
        conds.append(t.c.type_code.not_in(sorted(r.exclude_types)))
    for prefix in r.exclude_type_prefixes:  # exact, case-sensitive (LIKE is case-insensitive on SQLite)
        conds.append(func.substr(t.c.type_code, 1, len(prefix)) != prefix)
    if not r.read_all:
        admitted: list[ColumnElement[bool]] = []
        if r.classes:
            admitted.append(t.c.class_code.in_(sorted(r.classes)))
        for c, ty in sorted(r.class_types):
            admitted.append(and_(t.c.class_code == c, t.c.type_code == ty))
        conds.append(or_(*admitted) if admitted else false())
    return and_(*conds) if conds else true()


@dataclass(frozen=True)
class Decision:
    check: bool = False  # may learn whether the dossier exists and its status (TD0.2)
    read: bool = False  # may read the dossier (identity, searches), documents as ``visibility`` says
    add_classes: str = "none"  # none | all-professional | patient | reimbursement
    read_history: bool = False
    manage_access: bool = False
    close_or_reopen: bool = False
    copy: bool = False  # may download the complete copy (issue 4 §2): the patient side, closed dossier too
    request_access: bool = False  # may ask the patient for access (an access-request Task, issue 4 §3)
    # may read their notices of emergency and regulation accesses to this dossier (the clinician-portal inbox: the
    # patient's identity and the access's audit record): the médecin traitant, at reading time, while they have access
    gp_notices: bool = False
    share_links: bool = False  # may share parts of the dossier as SMART Health Links (issue 13 §2): the patient side
    issue_codes: bool = False  # may give access codes to new professionals (issue 13 §1): patient side, open dossier
    # may take up an access code and so become authorized (issue 13 §1): a professional not yet authorized (nor
    # blocked), in normal mode, on an open dossier
    redeem_code: bool = False
    # may take up a code for hidden documents (the second code of issue 13 §1): a professional authorized in their own
    # name, in normal mode, on an open dossier; it adds the MASQUE_PS documents to that authorization
    redeem_hidden_code: bool = False
    prescribe: bool = False  # may write an e-prescription in this dossier (issue 12 §2)
    # may read the one prescription presented (Standing.presented_prescription) and record what was dispensed on it
    dispense: bool = False
    # may evaluate the trend rules over the dossier's measurements and write alerts (issue 17 §3): the trend
    # evaluator (the worker), on an open dossier; nothing else (no document, no identity, no search)
    evaluate_trends: bool = False
    # may hold a teleconsultation on this dossier (issue 12 §1): the patient side on an open dossier; a professional
    # authorized by the patient (or their care team, or the médecin traitant), in normal mode: a planned video visit
    # is no emergency access
    teleconsult: bool = False
    visibility: Visibility = field(default_factory=Visibility)
    basis: str = "none"  # why access is granted: patient, representative, authorized, treating_gp, emergency, ...
    refusal: str = "Access to this dossier is not allowed."
    refusal_code: str = "denied"  # why not, for code: closed, blocked, consent-needed, objection, never, ...

    @property
    def record_measures(self) -> bool:
        """May add measurements and manage their sources (stop a device, hide or delete a series): the patient side
        (the patient, a legal representative, the patient's apps and gateways acting with their grant), on an open
        dossier; a professional does not write the patient's self-measurements (issue 17 §4)."""
        return self.add_classes == "patient"

    def may_add(self, class_code: str) -> bool:
        if self.add_classes == "all-professional":
            return class_code not in (PATIENT_CLASS, REIMBURSEMENT_CLASS)
        if self.add_classes == "patient":
            return class_code == PATIENT_CLASS
        if self.add_classes == "reimbursement":
            return class_code == REIMBURSEMENT_CLASS
        return False


DENY = Decision()
NEEDS_CONSENT = ("This professional has no authorization on this dossier: record the patient's consent, or use an "
                 "emergency access mode (break the glass) where the rules allow it.")


NEEDS_CODE = ("The patient requires an access code for every professional not yet authorized: ask the patient for "
              "one, or use an emergency access mode (break the glass) where the rules allow it.")


def age_on(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def decide(actor: Actor, dossier: DossierFacts, standing: Standing, today: dt.date, matrix: Matrix,
           majority_age: int = 18) -> Decision:
    """Decide what ``actor`` may do on ``dossier``. Fails closed: any kind not named below gets nothing."""
    if actor.kind in NEVER_ADMITTED:
        return Decision(refusal="This kind of organisation never has access to shared medical records.",
                        refusal_code="never")
    active = dossier.status == "active"
    if actor.kind is ActorKind.ASSURANCE_MALADIE:
        if not active:
            return Decision(refusal="This dossier is closed.", refusal_code="closed")
        return Decision(check=True, add_classes="reimbursement", basis="assurance_maladie",
                        refusal="Assurance Maladie feeds the dossier and never reads its content.")
    if actor.kind is ActorKind.PATIENT:
        if not standing.is_owner:
            return DENY
        return _patient_side(active, "patient", Visibility(nothing=False, hide_invisible_patient=True))
    if actor.kind is ActorKind.REPRESENTATIVE:
        kind = standing.representative_kind
        still = kind == "protected_adult" or (kind == "minor" and age_on(dossier.birth_date, today) < majority_age)
        if not still:
            return Decision(refusal="This person is not, or no longer, a legal representative for this dossier.",
                            refusal_code="not-representative")
        return _patient_side(active, "representative",
                             Visibility(nothing=False, hide_invisible_patient=True,
                                        hide_invisible_representatives=True))
    if actor.kind is ActorKind.PROFESSIONAL:
        return _professional(actor, dossier, standing, matrix, active)
    if actor.kind is ActorKind.LINK_RECIPIENT:
        return _link_recipient(standing, active)
    if actor.kind is ActorKind.TREND_EVALUATOR:
        if not active:
            return Decision(refusal="This dossier is closed.", refusal_code="closed")
        return Decision(evaluate_trends=True, basis="trend_evaluator",
                        refusal="The trend evaluator reads only the measurements its rules watch.")
    return DENY


# --- SMART Health Links (carnet.sharing) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkFacts:
    """A shared link's state, as stored (``shared_link``)."""

    revoked: bool
    expires_at: dt.datetime | None
    opens: int  # the openings counted, the one in progress included (a listing asks with one more)
    max_opens: int | None
    passcode_failures: int
    max_passcode_failures: int


LINK_STATES = ("live", "revoked", "expired", "used-up", "locked")


def link_state(link: LinkFacts, now: dt.datetime) -> str:
    """Whether a shared link may still be opened: ``live``, or why not (revoked by the patient, past its expiry, every
    allowed opening used, or locked by too many wrong passcodes: the SMART Health Links specification's "total
    lifetime count of incorrect Passcodes")."""
    if link.revoked:
        return "revoked"
    if link.expires_at is not None and link.expires_at <= now:
        return "expired"
    if link.max_opens is not None and link.opens > link.max_opens:
        return "used-up"
    if link.passcode_failures >= link.max_passcode_failures:
        return "locked"
    return "live"


def _link_recipient(standing: Standing, active: bool) -> Decision:
    """Whoever holds a live link reads the dossier as the patient shared it (what the link's service chooses to put
    in it): never a document hidden from professionals (``MASQUE_PS``), nor one not yet shown to the patient, nor one
    hidden from legal representatives; nothing once the link is dead or the dossier closed. Refusals look like "not
    found" (``check`` stays False): a dead link reveals nothing about the dossier."""
    if standing.link != "live" or not active:
        return Decision(refusal="This link is no longer active.", refusal_code="link-inactive")
    return Decision(read=True, basis="shared_link",
                    visibility=Visibility(nothing=False, hide_masked=True, hide_invisible_patient=True,
                                          hide_invisible_representatives=True))


def _patient_side(active: bool, basis: str, visibility: Visibility) -> Decision:
    return Decision(check=True, read=True, add_classes="patient" if active else "none", read_history=True,
                    manage_access=active, close_or_reopen=True, copy=True, share_links=active, issue_codes=active,
                    teleconsult=active, visibility=visibility,
                    basis=basis)


def _professional(actor: Actor, dossier: DossierFacts, standing: Standing, matrix: Matrix, active: bool) -> Decision:
    decision = _professional_access(actor, dossier, standing, matrix, active)
    prescribe = decision.read and decision.may_add("42") and actor.profession in PRESCRIBERS
    dispense = (standing.presented_prescription and actor.profession == PHARMACIST and actor.mode is Mode.NORMAL
                and active and standing.relation != "blocked" and matrix.rights(actor.profession).access)
    if prescribe or dispense:
        return replace(decision, prescribe=prescribe, dispense=dispense)
    return decision


def _professional_access(actor: Actor, dossier: DossierFacts, standing: Standing, matrix: Matrix,
                         active: bool) -> Decision:
    rights = matrix.rights(actor.profession)
    if standing.relation == "treating_gp" and actor.profession != DOCTOR:
        # only a doctor may be médecin traitant: a non-doctor's designation (refused since; one recorded before the
        # rule) gives nothing
        standing = Standing(relation="none", is_owner=standing.is_owner,
                            representative_kind=standing.representative_kind)
    if standing.relation == "blocked":
        return Decision(refusal="The patient has blocked this professional's access to the dossier.",
                        refusal_code="blocked")
    if not rights.access:
        return Decision(refusal="This profession has no access to shared medical records in this deployment.",
                        refusal_code="profession")
    if actor.mode is Mode.REGULATION and not (actor.is_regulator and actor.profession == DOCTOR):
        return Decision(refusal="Regulation mode is reserved to SAMU centre-15 regulating doctors.",
                        refusal_code="not-regulator")
    if not active:
        return Decision(refusal="This dossier is closed.", refusal_code="closed")
    basis = standing.relation if standing.relation in AUTHORIZED_RELATIONS else "none"
    if basis == "none" and actor.mode is Mode.EMERGENCY and not dossier.objects_break_glass:
        basis = "emergency"
    if basis == "none" and actor.mode is Mode.REGULATION and not dossier.objects_regulation:
        basis = "regulation"
    manage = basis in AUTHORIZED_RELATIONS or (standing.relation == "none" and actor.mode is Mode.NORMAL
                                               and not dossier.requires_code)
    if basis == "none":
        refusal, code = NEEDS_CONSENT, "consent-needed"
        if dossier.requires_code and actor.mode is Mode.NORMAL:
            refusal, code = NEEDS_CODE, "code-needed"
        if actor.mode is Mode.EMERGENCY:
            refusal, code = "The patient has objected to emergency (break the glass) access to this dossier.", \
                "objection"
        elif actor.mode is Mode.REGULATION:
            refusal, code = "The patient has objected to access by the SAMU regulation centre.", "objection"
        return Decision(check=True, manage_access=manage, refusal=refusal, refusal_code=code,
                        request_access=actor.mode is Mode.NORMAL and standing.relation == "none",
                        redeem_code=actor.mode is Mode.NORMAL and standing.relation == "none")
    full = basis in FULL_RIGHTS_RELATIONS
    # the code for hidden documents widens the masking only, never the profession's classes
    sees_hidden = basis == "authorized" and standing.sees_hidden
    visibility = Visibility(nothing=False, rights=None if full else rights, hide_masked=not (full or sees_hidden),
                            author_id=actor.id)
    return Decision(check=True, read=True, add_classes="all-professional", manage_access=manage,
                    visibility=visibility, basis=basis, gp_notices=basis == "treating_gp",
                    redeem_hidden_code=basis == "authorized" and actor.mode is Mode.NORMAL,
                    teleconsult=actor.mode is Mode.NORMAL and basis in AUTHORIZED_RELATIONS)
