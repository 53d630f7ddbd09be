"""A document's life after its deposit: replaced (``superseded``), withdrawn or relabelled by a PATCH (PDSm: status
and securityLabel), masked or unmasked by the patient, deleted from the dossier by the patient side. Each change is a
new version of the stored DocumentReference, audited in the same transaction."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update

from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import document, document_token
from carnet.documents import codes
from carnet.documents.patch_plan import PatchPlan
from carnet.documents.stored import fhir_instant, visible_document
from carnet.errors import conflict, forbidden, unprocessable
from carnet.events import DocumentReplaced


def supersede(ctx: Context, dossier_key: uuid.UUID, decision: Decision, ref: str,
               replacement: uuid.UUID | None = None) -> None:
    """``relatesTo.replaces``: the replaced document becomes ``superseded``. Only its author (or someone with the
    médecin traitant's rights) may replace it, and only within the same dossier. Open rectification requests on the
    replaced document are completed with ``replacement`` as their output (issue 4 §3): the task service hears of it
    through :class:`~carnet.events.DocumentReplaced`."""
    target = _locate(ctx, ref.rsplit("/", 1)[-1], dossier_key)
    if target is None:
        raise unprocessable("The replaced document does not exist in this dossier",
                            "DocumentReference.relatesTo.target")
    if target.status == "entered-in-error":
        raise conflict("The replaced document was withdrawn", "DocumentReference.relatesTo.target")
    if target.author_id != ctx.actor.id and decision.basis not in ("treating_gp", "gp_rights"):
        raise forbidden("Only the author of a document may replace it")
    _set_status(ctx, target, "superseded")
    if replacement is not None:
        ctx.publish(DocumentReplaced(dossier_key, target.document_id, replacement))


def _locate(ctx: Context, doc_id: str, dossier_key: uuid.UUID) -> Any:
    try:
        did = uuid.UUID(doc_id)
    except ValueError:
        return None
    return ctx.conn.execute(select(document).where(document.c.dossier_key == dossier_key,
                                                   document.c.document_id == did).with_for_update()).first()


def _set_status(ctx: Context, row: Any, status: str) -> None:
    res = json.loads(row.resource)
    res["status"] = status
    _rewrite(ctx, row, res, status=status)


def _rewrite(ctx: Context, row: Any, res: dict[str, Any], **columns: Any) -> None:
    version = row.version + 1
    res["meta"] = {**(res.get("meta") or {}), "versionId": str(version), "lastUpdated": fhir_instant(ctx.now)}
    ctx.conn.execute(update(document).where(document.c.dossier_key == row.dossier_key,
                                            document.c.document_id == row.document_id).values(
        version=version, last_updated=ctx.now, resource=json.dumps(res, ensure_ascii=False, separators=(",", ":")),
        **columns))
    ctx.audit(row.dossier_key, "U", "document.update", entity_type="DocumentReference",
              entity_id=str(row.document_id), detail={k: v for k, v in columns.items() if isinstance(v, str | bool)})


def delete_from_dossier(ctx: Context, resource_id: str) -> None:
    """The patient (or a legal representative) deletes a document from the dossier (DOMAIN.md: "delete documents
    from their view"): it is gone for everyone, its content and metadata are kept out of every answer, and the audit
    keeps the trace. Professionals never delete: an author withdraws (status entered-in-error) or replaces."""
    row, decision = visible_document(ctx, resource_id, "document.delete", "D", lock=True)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(row.dossier_key, "D", "document.delete",
                         forbidden("Only the patient or a legal representative deletes a document from the dossier; "
                                   "its author may withdraw it (status entered-in-error) or replace it"),
                         entity_type="DocumentReference", entity_id=resource_id)
    ctx.conn.execute(update(document).where(document.c.dossier_key == row.dossier_key,
                                            document.c.document_id == row.document_id)
                     .values(deleted=True, last_updated=ctx.now, version=row.version + 1))
    ctx.audit(row.dossier_key, "D", "document.delete", entity_type="DocumentReference", entity_id=resource_id)


# --- PATCH (PDSm: status and securityLabel) --------------------------------------------------------------------

def patch(ctx: Context, resource_id: str, plan: PatchPlan) -> str:
    """Update ``status`` and/or ``securityLabel``, as PDSm allows (TD3.2 withdraw, TD3.3 mask/unmask)."""
    from carnet.documents.metadata import confidentiality

    row, decision = visible_document(ctx, resource_id, "document.update", "U", lock=True)
    is_author = row.author_id == ctx.actor.id
    patient_side = decision.basis in ("patient", "representative")
    full = decision.basis in ("treating_gp", "gp_rights")
    res = json.loads(row.resource)
    plan.check_tests(res)
    status = plan.status
    # a document filed without a label is "N"; a patch's /securityLabel/0 then means that implicit label
    labels = plan.new_labels(res.get("securityLabel") or [{"coding": [{"system": codes.TRE_A07, "code": "N"}]}])
    cols: dict[str, Any] = {}
    if status is not None:
        if status not in codes.STATUSES:
            raise unprocessable("status must be current, superseded or entered-in-error", "DocumentReference.status")
        if not (is_author or full):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the author of a document may change its status"),
                             entity_type="DocumentReference", entity_id=resource_id)
        res["status"] = status
        cols["status"] = status
    if labels is not None:
        found = confidentiality(labels)
        masked = codes.MASQUE_PS in found
        inv_p = codes.INVISIBLE_PATIENT in found
        inv_r = codes.INVISIBLE_REPRESENTANTS in found
        if masked != row.masked and not (patient_side or is_author or full):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the patient, the author or the médecin traitant may mask a document"),
                             entity_type="DocumentReference", entity_id=resource_id)
        if inv_p != row.invisible_patient and (patient_side or not (is_author or full)):
            raise ctx.refuse(row.dossier_key, "U", "document.update",
                             forbidden("Only the author may change a document's visibility to the patient"),
                             entity_type="DocumentReference", entity_id=resource_id)
        if inv_r and not row.invisible_representatives:
            raise conflict("Once visible to the legal representatives a document cannot be hidden from them again",
                           "DocumentReference.securityLabel")
        if inv_r != row.invisible_representatives and not patient_side and not (is_author or full):
            raise forbidden("This caller may not change this label")
        res["securityLabel"] = labels
        cols.update(masked=masked, invisible_patient=inv_p, invisible_representatives=inv_r,
                    invisible_patient_until=(row.invisible_patient_until if inv_p and row.invisible_patient
                                             else ctx.now + dt.timedelta(days=ctx.settings.invisible_patient_days)
                                             if inv_p else None))
        ctx.conn.execute(delete(document_token).where(document_token.c.dossier_key == row.dossier_key,
                                                      document_token.c.document_id == row.document_id,
                                                      document_token.c.param == "security-label"))
        tokens = {("security-label", c.get("system") or "", c.get("code") or "")
                  for concept in labels for c in concept.get("coding") or [] if c.get("code")}
        if not found - {"N"}:
            tokens.add(("security-label", codes.TRE_A07, "N"))
        if tokens:
            ctx.conn.execute(insert(document_token), [
                {"dossier_key": row.dossier_key, "document_id": row.document_id, "param": p, "system": s, "code": c}
                for p, s, c in sorted(tokens)])
    if not cols:
        raise unprocessable("Only status and securityLabel may be patched", "DocumentReference")
    _rewrite(ctx, row, res, **cols)
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


def set_masked(ctx: Context, resource_id: str, masked: bool) -> bool:
    """The patient hides a document from professionals (``MASQUE_PS``) or shows it again; DOMAIN.md: its author
    and the médecin traitant still see it. Goes through :func:`patch`, which checks who may change the label and
    audits the change. Returns False when the document was already so (nothing changes)."""
    row, _ = visible_document(ctx, resource_id, "document.update", "U", lock=True)
    if bool(row.masked) == masked:
        return False
    labels: list[dict[str, Any]] = []
    for concept in json.loads(row.resource).get("securityLabel") or []:
        codings = [c for c in concept.get("coding") or [] if not (
            c.get("system") in codes.CONFIDENTIALITY_SYSTEMS and c.get("code") in (codes.MASQUE_PS, "N"))]
        if codings:
            labels.append({**concept, "coding": codings})
    if masked:
        labels.append({"coding": [{"system": codes.TRE_A07, "code": codes.MASQUE_PS}]})
    if not labels:
        labels = [{"coding": [{"system": codes.TRE_A07, "code": "N"}]}]
    patch(ctx, resource_id, PatchPlan(label_ops=[{"op": "replace", "path": "/securityLabel", "value": labels}]))
    return True
