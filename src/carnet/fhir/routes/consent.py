"""Consent: the patient's authorizations, blocks and objections, and the choice of a médecin traitant
(DOMAIN.md: each is a Consent resource).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from carnet.context import Context
from carnet.documents.validate import validate
from carnet.dossier import service as dossiers
from carnet.errors import unprocessable
from carnet.fhir.http import FhirResponse, json_body
from carnet.fhir.routes.base import Call, Route
from carnet.fhir.transaction import resolve_patient


async def consent_create(call: Call) -> Response:
    body = await json_body(call.request, 256 * 1024)
    validate(body, "Consent")
    action = _consent_action(body)

    def work(ctx: Context) -> str:
        key = resolve_patient(ctx, (body.get("patient") or {}).get("reference"), {}, call.base, "Consent.patient")
        kind, subject, relation, extra = action
        if kind == "objection":
            dossiers.set_objections(ctx, key, **extra)
        elif kind == "treating_gp":
            dossiers.set_treating_gp(ctx, key, subject)
        else:
            dossiers.change_access(ctx, key, kind, subject or "", relation)
        return str(key)

    key = await call.run(work)
    served = {**body, "id": str(uuid.uuid4()), "patient": {"reference": f"Patient/{key}"}}
    return FhirResponse(served, 201)


CONSENT_ROLE = f"{dossiers.CANONICAL}/CodeSystem/access-role"


def _consent_action(body: dict[str, Any]) -> tuple[str, str | None, str | None, dict[str, Any]]:
    """Read a Consent (DOMAIN.md: authorizations, blocks and objections are Consent resources):
    permit + actor → authorization (role ``authorized``, ``gp_rights`` or ``treating_gp``);
    deny + actor → block; deny + purpose ETREAT / ``REGULATION`` → objection; ``inactive`` + actor → withdrawal."""
    prov = body.get("provision") or {}
    ptype = prov.get("type")
    actors = prov.get("actor") or []
    purposes = {c.get("code") for c in prov.get("purpose") or []}
    if ptype == "deny" and not actors and purposes & {"ETREAT", "REGULATION"}:
        on = body.get("status") == "active"
        extra: dict[str, Any] = {"break_glass": on if "ETREAT" in purposes else None,
                                 "regulation": on if "REGULATION" in purposes else None}
        return "objection", None, None, extra
    if len(actors) != 1:
        raise unprocessable("Consent.provision.actor must name one professional or organisation",
                            "Consent.provision.actor")
    ref = (actors[0].get("reference") or {}).get("reference") or ""
    role = next((c.get("code") for c in (actors[0].get("role") or {}).get("coding") or []), "authorized")
    if ref.startswith("Practitioner/"):
        kind, subject = "practitioner", ref.split("/", 1)[1]
    elif ref.startswith("Organization/"):
        kind, subject = "organisation", ref.split("/", 1)[1]
    else:
        raise unprocessable("actor must reference Practitioner/{national id} or Organization/{id}",
                            "Consent.provision.actor[0].reference")
    if body.get("status") == "inactive":
        return kind, subject, None, {}
    if ptype == "deny":
        return kind, subject, "blocked", {}
    if role == "treating_gp" and kind == "practitioner":
        return "treating_gp", subject, None, {}
    if role not in ("authorized", "gp_rights"):
        raise unprocessable("Unknown access role", "Consent.provision.actor[0].role")
    return kind, subject, role, {}


ROUTES: tuple[Route, ...] = (
    Route("Consent", "create", "POST", "/fhir/Consent", consent_create, ("Consent", "c"),
          spec="authorizations, blocks, objections"),
)
