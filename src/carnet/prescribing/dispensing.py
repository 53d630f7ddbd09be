"""The pharmacist's narrow path (issue 12 §2; docs/ACCESS.md, "Prescriptions at the pharmacy"), and what everyone
sees of a prescription.

A pharmacist *presents* a prescription: its number and the patient's INS, or the text of its 2D code, or (for a
prescription the patient sent to their pharmacy) its number alone. The number is looked up
(``prescription_number``), the INS or the code's secret is compared, and only then is the dossier loaded with
``presented_prescription`` for the policy to decide (``Decision.dispense``). A wrong INS, a wrong code, an unknown
number all answer the same 404; when the number exists, the refusal is audited in that dossier's chain. What the
pharmacist gets is that prescription, its lines and its dispensings: nothing else of the dossier.

Dispensing (``MedicationDispense``) is checked per line, in the transaction that records it: the dossier row is
locked (``SELECT … FOR UPDATE`` with its key), then each line moves by one conditional ``UPDATE … SET dispensed =
dispensed + q WHERE dispensed + q <= quantity × (1 + repeats) AND q <= quantity``: two pharmacies at once cannot
both take the last box, on SQLite and PostgreSQL alike. Rules (Carnet's reading of the French ones, in
docs/PRESCRIPTIONS.md): a dispensing gives at most one fill of a line (its quantity; partial fills allowed); the
total never exceeds the fills prescribed (1 + renewals); the first dispensing of a prescription must happen within
``CARNET_PRESCRIPTION_FIRST_DISPENSE_DAYS`` (90: three months), and none at all after
``CARNET_PRESCRIPTION_VALID_DAYS`` (365). Any refusal rolls back every line of the request and is audited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update

from carnet import throttle
from carnet.access.actors import ActorKind
from carnet.access.policy import DocFacts
from carnet.context import Context, Services
from carnet.db.tables import (
    dossier,
    medication_dispense,
    practitioner,
    prescription,
    prescription_by_pharmacy,
    prescription_line,
    prescription_number,
)
from carnet.errors import FhirError, forbidden, not_found
from carnet.identity import practitioners
from carnet.identity.ins import normalize_nir
from carnet.ids import new_id
from carnet.prescribing import numbers
from carnet.prescribing.resources import medication_dispense as dispense_resource
from carnet.prescribing.writing import CLASS_CODE, TYPE_CODE, scan_secret

NOT_FOUND = "No prescription with this number for this patient."
PHARMACIST = "21"


@dataclass(frozen=True)
class Presentation:
    """How the pharmacist presents the prescription: ``number`` with ``ins``, or ``scan`` (the 2D code's text), or
    ``number`` alone for one the patient sent to the pharmacist's own pharmacy."""

    number: str = ""
    ins: str = ""
    scan: str = ""


@dataclass(frozen=True)
class LineView:
    line_no: int
    kind: str
    display: str
    dosage_text: str | None
    quantity: int
    unit: str
    repeats: int
    dispensed: int

    @property
    def allowed(self) -> int:
        return self.quantity * (1 + self.repeats)

    @property
    def remaining(self) -> int:
        return max(0, self.allowed - self.dispensed)


@dataclass(frozen=True)
class DispenseView:
    at: dt.datetime
    line_no: int
    quantity: int
    pharmacist_name: str
    pharmacy_name: str | None


@dataclass(frozen=True)
class PrescriptionView:
    dossier_key: uuid.UUID
    prescription_id: uuid.UUID
    number: str
    authored_at: dt.datetime
    prescriber_id: str
    prescriber_name: str
    first_dispense_by: dt.datetime
    valid_until: dt.datetime
    document_id: uuid.UUID | None
    pharmacy_id: str | None
    pharmacy_name: str | None
    encounter_ref: str | None
    note: str | None
    lines: list[LineView]
    dispenses: list[DispenseView]
    patient_name: str = ""
    patient_birth: dt.date | None = None

    @property
    def formatted_number(self) -> str:
        return numbers.format_number(self.number)

    def state(self, now: dt.datetime) -> str:
        """active | completed (every line fully dispensed) | expired."""
        if all(line.remaining == 0 for line in self.lines):
            return "completed"
        if now > _utc(self.valid_until) or (not self.dispenses and now > _utc(self.first_dispense_by)):
            return "expired"
        return "active"


def _utc(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.UTC)


def _views(ctx: Context, key: uuid.UUID, rows: list[Any]) -> list[PrescriptionView]:
    if not rows:
        return []
    ids = [r.prescription_id for r in rows]
    lines: dict[uuid.UUID, list[LineView]] = {i: [] for i in ids}
    for ln in ctx.conn.execute(select(prescription_line).where(
            prescription_line.c.dossier_key == key, prescription_line.c.prescription_id.in_(ids))
            .order_by(prescription_line.c.line_no)):
        lines[ln.prescription_id].append(LineView(ln.line_no, ln.kind, ln.display, ln.dosage_text, ln.quantity,
                                                  ln.unit, ln.repeats, ln.dispensed))
    dispenses: dict[uuid.UUID, list[DispenseView]] = {i: [] for i in ids}
    rows_d = ctx.conn.execute(select(medication_dispense).where(
        medication_dispense.c.dossier_key == key, medication_dispense.c.prescription_id.in_(ids))
        .order_by(medication_dispense.c.at, medication_dispense.c.dispense_id)).all()
    names = practitioners.organisation_names(ctx.conn, {d.pharmacy_id for d in rows_d if d.pharmacy_id})
    for d in rows_d:
        dispenses[d.prescription_id].append(DispenseView(_utc(d.at), d.line_no, d.quantity, d.pharmacist_name,
                                                         names.get(d.pharmacy_id or "")))
    return [PrescriptionView(key, r.prescription_id, r.number, _utc(r.authored_at), r.prescriber_id,
                             r.prescriber_name, _utc(r.first_dispense_by), _utc(r.valid_until), r.document_id,
                             r.pharmacy_id, r.pharmacy_name, r.encounter_ref, r.note, lines[r.prescription_id],
                             dispenses[r.prescription_id]) for r in rows]


def for_dossier(ctx: Context, key: uuid.UUID) -> list[PrescriptionView]:
    """The dossier's prescriptions and what was dispensed on them, newest first, for whoever may read the dossier
    and would see the prescription's document (the patient side, the prescriber, professionals the habilitation
    matrix lets read prescriptions). Audited ``prescription.read``."""
    _, decision = ctx.dossier(key)
    if not decision.read:
        raise ctx.refuse(key, "R", "prescription.read", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    rows = ctx.conn.execute(select(prescription).where(prescription.c.dossier_key == key)
                            .order_by(prescription.c.authored_at.desc())).all()
    seen = [r for r in rows if decision.visibility.allows(
        DocFacts(class_code=CLASS_CODE, type_code=TYPE_CODE, author_id=r.prescriber_id), ctx.now)]
    ctx.audit(key, "R", "prescription.read", entity_type="Prescription", detail={"count": len(seen)})
    return _views(ctx, key, seen)


# --- the pharmacist -------------------------------------------------------------------------------------------------

def check_rate(services: Services, pharmacist_id: str) -> None:
    """Count one look-up by this pharmacist (a transaction of its own, so a refused look-up counts too); 429 with
    ``Retry-After`` past ``CARNET_RATE_PRESCRIPTION`` (60 in 5 minutes): a number alone cannot be walked through INS
    guesses. The faces call it before :func:`find` and :func:`dispense`."""
    wait = throttle.hit(services, "prescription", pharmacist_id)
    if wait:
        raise FhirError(429, "throttled", "Too many prescription look-ups: wait a moment and try again.",
                        headers={"Retry-After": str(wait)})


def _pharmacist(ctx: Context) -> str:
    a = ctx.actor
    if a.kind is not ActorKind.PROFESSIONAL or a.profession != PHARMACIST or not a.id:
        raise FhirError(403, "forbidden", "Only a pharmacist finds and dispenses prescriptions.")
    return a.id


def _presented(ctx: Context, shown: Presentation, event: str, *, lock: bool = False) -> tuple[Any, Any]:
    """The prescription row the pharmacist presented, with the dossier loaded for the policy; 404 otherwise."""
    _pharmacist(ctx)
    secret = ""
    number = numbers.normalise(shown.number) if shown.number else None
    if shown.scan:
        scanned = numbers.read_scan(shown.scan)
        if scanned is None:
            raise not_found("Prescription")
        number, secret = scanned
    if number is None:
        raise FhirError(404, "not-found", NOT_FOUND)
    found = ctx.conn.execute(select(prescription_number).where(prescription_number.c.number == number)).first()
    if found is None:
        raise FhirError(404, "not-found", NOT_FOUND)
    key = found.dossier_key
    row = ctx.conn.execute(select(prescription).where(
        prescription.c.dossier_key == key, prescription.c.prescription_id == found.prescription_id)).one()
    if shown.scan:
        ok = numbers.scan_hash(secret) == row.scan_hash
    elif shown.ins:
        ins = ctx.conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == key)).scalar_one()
        try:
            ok = normalize_nir(shown.ins, "ins") == ins
        except FhirError:
            ok = False
    else:  # the number alone: only for the pharmacy the patient sent it to
        ok = bool(row.pharmacy_id) and row.pharmacy_id == ctx.actor.organisation_id
    if not ok:
        raise ctx.refuse(key, "R", event, FhirError(404, "not-found", NOT_FOUND), entity_type="Prescription",
                         entity_id=str(row.prescription_id), detail={"by": "scan" if shown.scan else
                                                                     "ins" if shown.ins else "pharmacy"})
    d_row, decision = ctx.dossier(key, lock=lock, presented_prescription=True)
    if not decision.dispense:
        raise ctx.refuse(key, "R", event, FhirError(404, "not-found", NOT_FOUND), entity_type="Prescription",
                         entity_id=str(row.prescription_id), detail={"reason": decision.refusal_code})
    return row, d_row


def find(ctx: Context, shown: Presentation) -> PrescriptionView:
    """The presented prescription, for the pharmacist; audited ``prescription.find``."""
    row, d_row = _presented(ctx, shown, "prescription.find")
    ctx.audit(row.dossier_key, "R", "prescription.find", entity_type="Prescription",
              entity_id=str(row.prescription_id), detail={"by": "scan" if shown.scan else "ins" if shown.ins
                                                          else "pharmacy"})
    view = _views(ctx, row.dossier_key, [row])[0]
    return _with_patient(view, d_row)


def _with_patient(view: PrescriptionView, d_row: Any) -> PrescriptionView:
    from dataclasses import replace

    return replace(view, patient_name=f"{d_row.family.upper()} {d_row.given}", patient_birth=d_row.birth_date)


def dispense(ctx: Context, shown: Presentation, items: list[tuple[int, int]]) -> PrescriptionView:
    """Record what was dispensed: ``items`` as (line number, units). All or nothing; see the module for the rules."""
    me = _pharmacist(ctx)
    if not items:
        raise FhirError(422, "required", "Say what was dispensed (a line and a quantity).", "MedicationDispense")
    row, d_row = _presented(ctx, shown, "prescription.dispense", lock=True)
    key, pid = row.dossier_key, row.prescription_id

    def refuse(msg: str, expression: str = "MedicationDispense.quantity") -> FhirError:
        return ctx.refuse(key, "U", "prescription.dispense", FhirError(409, "business-rule", msg, expression),
                          entity_type="Prescription", entity_id=str(pid))

    now = ctx.now
    if now > _utc(row.valid_until):
        raise refuse("This prescription has expired: nothing more may be dispensed on it.",
                     "MedicationRequest.dispenseRequest.validityPeriod")
    started = ctx.conn.execute(select(func.count()).select_from(medication_dispense).where(
        medication_dispense.c.dossier_key == key, medication_dispense.c.prescription_id == pid)).scalar_one()
    if not started and now > _utc(row.first_dispense_by):
        raise refuse("This prescription was not presented within its first-dispensing period: it has expired.",
                     "MedicationRequest.dispenseRequest.validityPeriod")
    pro = practitioners.by_ids(ctx.conn, [me]).get(me)
    name = f"{pro.given} {pro.family}".strip() if pro is not None else (ctx.actor.display or me)
    lines = {ln.line_no: ln for ln in ctx.conn.execute(select(prescription_line).where(
        prescription_line.c.dossier_key == key, prescription_line.c.prescription_id == pid))}
    pl = prescription_line.c
    for line_no, qty in items:
        line = lines.get(line_no)
        if line is None:
            raise refuse(f"This prescription has no line {line_no}.", "MedicationDispense.authorizingPrescription")
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 1:
            raise FhirError(422, "value", "The quantity dispensed is a whole number of at least 1.",
                            "MedicationDispense.quantity")
        moved = ctx.conn.execute(update(prescription_line).where(
            pl.dossier_key == key, pl.prescription_id == pid, pl.line_no == line_no, pl.quantity >= qty,
            pl.dispensed + qty <= pl.quantity * (1 + pl.repeats)).values(dispensed=pl.dispensed + qty)).rowcount
        if moved != 1:
            left = ctx.conn.execute(select(pl.quantity, pl.dispensed, pl.repeats).where(
                pl.dossier_key == key, pl.prescription_id == pid, pl.line_no == line_no)).one()
            remaining = left.quantity * (1 + left.repeats) - left.dispensed
            if qty > left.quantity and remaining > 0:
                raise refuse(f"Line {line_no}: at most {left.quantity} {line.unit} may be dispensed at once (one "
                             "fill; the renewals are dispensed later).")
            raise refuse(f"Line {line_no}: that is more than prescribed: {max(0, remaining)} {line.unit} left to "
                         "dispense.")
        dispense_id = new_id()
        ctx.conn.execute(insert(medication_dispense).values(
            dossier_key=key, dispense_id=dispense_id, prescription_id=pid, line_no=line_no, quantity=qty,
            pharmacist_id=me, pharmacist_name=name, pharmacy_id=ctx.actor.organisation_id, at=now,
            resource=dispense_resource(line.resource, dispense_id=str(dispense_id), quantity=qty, unit=line.unit,
                                       pharmacist_id=me, pharmacist_name=name,
                                       pharmacy_name=pro.organisation_name if pro is not None else None, at=now,
                                       complete=line.dispensed + qty >= line.quantity * (1 + line.repeats))))
    ctx.audit(key, "U", "prescription.dispense", entity_type="Prescription", entity_id=str(pid),
              detail={"lines": len(items), "units": sum(q for _, q in items)})
    fresh = ctx.conn.execute(select(prescription).where(prescription.c.dossier_key == key,
                                                        prescription.c.prescription_id == pid)).one()
    return _with_patient(_views(ctx, key, [fresh])[0], d_row)


def dispense_resources(ctx: Context, shown: Presentation) -> list[dict[str, Any]]:
    """The presented prescription's MedicationRequests and MedicationDispenses (FHIR JSON), for the pharmacist."""
    row, _ = _presented(ctx, shown, "prescription.find")
    key, pid = row.dossier_key, row.prescription_id
    out = [ln.resource for ln in ctx.conn.execute(select(prescription_line.c.resource).where(
        prescription_line.c.dossier_key == key, prescription_line.c.prescription_id == pid)
        .order_by(prescription_line.c.line_no))]
    out += [d.resource for d in ctx.conn.execute(select(medication_dispense.c.resource).where(
        medication_dispense.c.dossier_key == key, medication_dispense.c.prescription_id == pid)
        .order_by(medication_dispense.c.at))]
    ctx.audit(key, "R", "prescription.find", entity_type="Prescription", entity_id=str(pid), detail={"fhir": True})
    return out


# --- the patient sends it to a pharmacy; the pharmacy's inbox ------------------------------------------------------

@dataclass(frozen=True)
class Pharmacy:
    organisation_id: str
    name: str


def pharmacies(ctx: Context) -> list[Pharmacy]:
    """The pharmacies of the directory: the organisations some pharmacist acts for (reference data, no dossier)."""
    rows = ctx.conn.execute(select(practitioner.c.organisation_id, func.max(practitioner.c.organisation_name)).where(
        practitioner.c.profession == PHARMACIST, practitioner.c.organisation_id.is_not(None))
        .group_by(practitioner.c.organisation_id).order_by(func.max(practitioner.c.organisation_name))).all()
    return [Pharmacy(r[0], r[1] or r[0]) for r in rows]


def send_to_pharmacy(ctx: Context, key: uuid.UUID, prescription_id: uuid.UUID, pharmacy_id: str | None) -> None:
    """The patient side sends a prescription to a pharmacy of the directory (None: takes it back). The pharmacy's
    pharmacists then find it in their list and open it by its number alone. Audited ``prescription.send``."""
    _, decision = ctx.dossier(key, lock=True)
    if decision.basis not in ("patient", "representative") or not decision.manage_access:
        raise ctx.refuse(key, "U", "prescription.send", forbidden(
            "Only the patient (or their legal representative) sends a prescription to a pharmacy.")
            if decision.check else not_found("Patient"))
    row = ctx.conn.execute(select(prescription).where(prescription.c.dossier_key == key,
                                                      prescription.c.prescription_id == prescription_id)).first()
    if row is None:
        raise not_found("Prescription")
    name = None
    if pharmacy_id is not None:
        name = {p.organisation_id: p.name for p in pharmacies(ctx)}.get(pharmacy_id)
        if name is None:
            raise FhirError(422, "code-invalid", "This pharmacy is not in the directory.", "pharmacy")
    if row.pharmacy_id:
        ctx.conn.execute(delete(prescription_by_pharmacy).where(and_(
            prescription_by_pharmacy.c.pharmacy_id == row.pharmacy_id,
            prescription_by_pharmacy.c.number == row.number)))
    ctx.conn.execute(update(prescription).where(prescription.c.dossier_key == key,
                                                prescription.c.prescription_id == prescription_id).values(
        pharmacy_id=pharmacy_id, pharmacy_name=name, sent_at=ctx.now if pharmacy_id else None))
    if pharmacy_id is not None:
        ctx.conn.execute(insert(prescription_by_pharmacy).values(
            pharmacy_id=pharmacy_id, number=row.number, dossier_key=key, prescription_id=prescription_id,
            sent_at=ctx.now))
    ctx.audit(key, "U", "prescription.send", entity_type="Prescription", entity_id=str(prescription_id),
              detail={"pharmacy": pharmacy_id})


@dataclass(frozen=True)
class Sent:
    number: str
    sent_at: dt.datetime

    @property
    def formatted_number(self) -> str:
        return numbers.format_number(self.number)


def pharmacy_inbox(ctx: Context, limit: int = 50) -> list[Sent]:
    """The prescriptions patients sent to the caller's pharmacy, newest first: numbers and dates only (opening one
    is :func:`find` with the number, decided and audited in its dossier)."""
    _pharmacist(ctx)
    org = ctx.actor.organisation_id
    if not org:
        return []
    rows = ctx.conn.execute(select(prescription_by_pharmacy.c.number, prescription_by_pharmacy.c.sent_at).where(
        prescription_by_pharmacy.c.pharmacy_id == org).order_by(prescription_by_pharmacy.c.sent_at.desc())
        .limit(limit)).all()
    return [Sent(r.number, _utc(r.sent_at)) for r in rows]


def scan_code(ctx: Context, key: uuid.UUID, prescription_id: uuid.UUID) -> str:
    """The 2D code's text of a prescription, for the patient side to show at any pharmacy. Audited."""
    _, decision = ctx.dossier(key)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(key, "R", "prescription.code", forbidden("Only the patient side shows the code.")
                         if decision.check else not_found("Patient"))
    row = ctx.conn.execute(select(prescription.c.number).where(
        prescription.c.dossier_key == key, prescription.c.prescription_id == prescription_id)).first()
    if row is None:
        raise not_found("Prescription")
    ctx.audit(key, "R", "prescription.code", entity_type="Prescription", entity_id=str(prescription_id))
    return numbers.scan_text(row.number, scan_secret(ctx, key, prescription_id))
