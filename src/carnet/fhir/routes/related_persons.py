"""RelatedPerson: the patient's legal representatives (created here) and emergency contacts (searched here; the
patient side changes them in the portal).
"""

from __future__ import annotations

import json
import uuid

from starlette.responses import Response

from carnet.context import Context
from carnet.dossier import service as dossiers
from carnet.errors import FhirError, invalid, unprocessable
from carnet.fhir.http import json_body
from carnet.fhir.routes.base import Call, Route, created
from carnet.fhir.transaction import resolve_patient

MINOR_ROLES = {"MTH", "FTH", "PRN", "NMTH", "NFTH", "STPPRN"}

PROTECTED_ROLES = {"GUARD", "POWATT", "HPOWATT"}


async def related_person_create(call: Call) -> Response:
    """A legal representative: a parent of a minor (MTH, FTH, PRN…) or a protected adult's tutor (GUARD…)."""
    body = await json_body(call.request, 64 * 1024)
    from fhir.resources.R4B.relatedperson import RelatedPerson
    from pydantic import ValidationError

    if body.get("resourceType") != "RelatedPerson":
        raise invalid("Expected resourceType RelatedPerson", "resourceType")
    try:
        RelatedPerson.model_validate(body)
    except ValidationError:
        raise FhirError(422, "invalid", "Invalid resource", "RelatedPerson") from None
    codes = {c.get("code") for r in body.get("relationship") or [] for c in r.get("coding") or []}
    kind = "minor" if codes & MINOR_ROLES else "protected_adult" if codes & PROTECTED_ROLES else None
    if kind is None:
        raise unprocessable("relationship must name a parent (MTH, FTH, PRN) or a guardian (GUARD, POWATT)",
                            "RelatedPerson.relationship")
    name = (body.get("name") or [{}])[0]
    if not name.get("family") or not name.get("given"):
        raise unprocessable("name (family and given) is required", "RelatedPerson.name", "required")
    relationship = sorted(codes & (MINOR_ROLES | PROTECTED_ROLES))[0]

    def work(ctx: Context) -> tuple[uuid.UUID, uuid.UUID]:
        key = resolve_patient(ctx, (body.get("patient") or {}).get("reference"), {}, call.base,
                              "RelatedPerson.patient")
        return key, dossiers.add_representative(ctx, key, kind, name["family"], " ".join(name["given"]),
                                                relationship, body)

    key, rep_id = await call.run(work)
    served = {**body, "id": str(rep_id), "patient": {"reference": f"Patient/{key}"}}
    return created(json.dumps(served, ensure_ascii=False), f"{call.base}/RelatedPerson/{rep_id}")


async def related_person_search(call: Call) -> Response:
    """The dossier's emergency contacts as ``RelatedPerson`` (relationship ``C``), for whoever may read the dossier,
    emergency modes included (issue 3 §2); the patient side changes them in the portal. ``patient`` is required;
    ``_id`` narrows to one contact. Legal representatives are not served here."""
    from carnet.dossier import contacts

    params = call.params()
    count, offset = call.page()
    for name, _ in params:
        if name not in ("patient", "_id", "_count", "_offset", "_format"):
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    given = dict(params)
    ref = given.get("patient")
    if not ref:
        raise FhirError(400, "required", "RelatedPerson search requires patient", "patient")
    ref = ref if "/" in ref else f"Patient/{ref}"
    wanted = {v.strip() for v in given["_id"].split(",")} if given.get("_id") else None

    def work(ctx: Context) -> tuple[list[str], int]:
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        found = [c for c in contacts.list_contacts(ctx, key) if wanted is None or str(c.contact_id) in wanted]
        page = found[offset:offset + count]
        return [json.dumps(contacts.as_related_person(key, c), ensure_ascii=False) for c in page], len(found)

    rows, total = await call.run(work)
    return call.searchset("RelatedPerson", rows, total, params, count, offset)


ROUTES: tuple[Route, ...] = (
    Route("RelatedPerson", "create", "POST", "/fhir/RelatedPerson", related_person_create,
          ("RelatedPerson", "c"), spec="legal representatives"),
    Route("RelatedPerson", "search-type", "GET", "/fhir/RelatedPerson", related_person_search,
          ("RelatedPerson", "s"), (("patient", "reference"), ("_id", "token")), spec="emergency contacts"),
)
