"""The copy's FHIR R4 ``Bundle`` (type ``collection``), written one entry at a time.

- ``Patient``: as the API serves it.
- ``RelatedPerson``: each legal representative (``active`` false once their role ended).
- ``Consent``: authorizations, blocks, the médecin traitant and the objections, in the shape ``POST /fhir/Consent``
  reads (DOMAIN.md: authorizations, blocks and objections are Consent resources), so the API has no Consent read to
  reuse: permit + actor with role ``authorized``, ``gp_rights`` or ``treating_gp``; deny + actor for a block; deny +
  purpose ``ETREAT`` (break the glass) or ``REGULATION`` (SAMU centre 15) for an objection.
- ``DocumentReference``: as served, with ``content[0].attachment.url`` the relative path of the file in the zip.
- ``AuditEvent``: the access history in the BALP shape of :mod:`carnet.history.audit_events`.

Relative references (``Patient/{id}``) resolve inside the Bundle through each entry's ``fullUrl``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from carnet.documents.service import fhir_instant
from carnet.dossier.service import CANONICAL
from carnet.history.audit_events import ACT_REASON
from carnet.ids import new_id

ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ACCESS_ROLE = f"{CANONICAL}/CodeSystem/access-role"  # the role codes POST /fhir/Consent reads
PURPOSE = f"{CANONICAL}/CodeSystem/purpose"  # REGULATION: access by the SAMU regulation centre
CONSENT_SCOPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                             "code": "patient-privacy"}]}
CONSENT_CATEGORY = [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]
OPT_IN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}
OPT_OUT = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]}


def write(out: Any, resources: Iterable[dict[str, Any]], base_url: str, now: dt.datetime) -> int:
    """Write the Bundle to the binary stream ``out``; returns the number of entries."""
    out.write(json.dumps({"resourceType": "Bundle", "id": str(new_id()), "type": "collection",
                          "timestamp": fhir_instant(now)}, ensure_ascii=False)[:-1].encode())
    out.write(b',"entry":[')
    n = 0
    for res in resources:
        entry = {"fullUrl": f"{base_url}/fhir/{res['resourceType']}/{res['id']}", "resource": res}
        out.write((b",\n" if n else b"\n") + json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
        n += 1
    out.write(b"\n]}\n")
    return n


def related_person(r: Any) -> dict[str, Any]:
    period = {"start": fhir_instant(r.since)}
    if r.ended_at is not None:
        period["end"] = fhir_instant(r.ended_at)
    return {"resourceType": "RelatedPerson", "id": str(r.representative_id), "active": r.ended_at is None,
            "patient": {"reference": f"Patient/{r.dossier_key}"},
            "relationship": [{"coding": [{"system": ROLE_CODE, "code": r.relationship}]}],
            "name": [{"family": r.family, "given": r.given.split()}], "period": period}


def _consent(id_: str, patient: str, provision: dict[str, Any], when: dt.datetime | None,
             rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"resourceType": "Consent", "id": id_, "status": "active", "scope": CONSENT_SCOPE,
                           "category": CONSENT_CATEGORY, "patient": {"reference": f"Patient/{patient}"},
                           "policyRule": rule, "provision": provision}
    if when is not None:
        out["dateTime"] = fhir_instant(when)
    return out


def _actor(kind: str, subject: str, role: str) -> dict[str, Any]:
    ref = f"{'Organization' if kind == 'organisation' else 'Practitioner'}/{subject}"
    return {"role": {"coding": [{"system": ACCESS_ROLE, "code": role}]}, "reference": {"reference": ref}}


def consents(row: Any, grants: Iterable[Any]) -> list[dict[str, Any]]:
    """The Consent resources of the dossier ``row``: grants in force, the médecin traitant, the objections."""
    key = str(row.dossier_key)
    out = []
    if row.treating_gp:
        out.append(_consent("treating-gp", key,
                            {"type": "permit", "actor": [_actor("practitioner", row.treating_gp, "treating_gp")]},
                            None, OPT_IN))
    for g in grants:
        role = "blocked" if g.relation == "blocked" else g.relation
        provision: dict[str, Any] = {"type": "deny" if g.relation == "blocked" else "permit",
                                     "period": {"start": fhir_instant(g.created_at)},
                                     "actor": [_actor(g.subject_kind, g.subject_id, role)]}
        out.append(_consent(str(g.grant_id), key, provision, g.created_at,
                            OPT_OUT if g.relation == "blocked" else OPT_IN))
    if row.objects_break_glass:
        out.append(_consent("objection-break-glass", key, {"type": "deny", "purpose": [
            {"system": ACT_REASON, "code": "ETREAT"}]}, None, OPT_OUT))
    if row.objects_regulation:
        out.append(_consent("objection-regulation", key, {"type": "deny", "purpose": [
            {"system": PURPOSE, "code": "REGULATION"}]}, None, OPT_OUT))
    return out


def document_reference(served: str, path: str) -> dict[str, Any]:
    """The DocumentReference as served, its content's URL pointing to the file in the zip."""
    res: dict[str, Any] = json.loads(served)
    content = [dict(c) for c in res.get("content") or []]
    if content:
        content[0]["attachment"] = {**content[0].get("attachment", {}), "url": path}
        res["content"] = content
    return res
