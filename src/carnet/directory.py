"""The professionals' directory, read-only: served as FHIR Practitioner and PractitionerRole (by the FHIR face,
:mod:`carnet.fhir.routes.directory`), found by name or number (the portals), named on screens and in summaries.

The directory is reference data (no health data); reading it needs an authenticated client but no dossier right.
The operator's changes to it are :mod:`carnet.admin`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_, select

from carnet.context import Context
from carnet.db.tables import practitioner
from carnet.errors import FhirError, not_found
from carnet.identity import practitioners
from carnet.identity.professionals import IDNPS_SYSTEM
from carnet.identity.professions import PROFESSION_SYSTEM, SPECIALTY_SYSTEM


def practitioner_resource(row: Any) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": row.national_id, "active": bool(row.enabled),
            "identifier": [{"system": IDNPS_SYSTEM, "value": row.national_id,
                            "type": {"coding": [{"system": "https://hl7.fr/ig/fhir/core/CodeSystem/"
                                                           "fr-core-cs-v2-0203", "code": "IDNPS"}]}}],
            "name": [{"family": row.family, "given": row.given.split()}]}


def role_resource(row: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "PractitionerRole", "id": row.national_id, "active": bool(row.enabled),
        "practitioner": {"reference": f"Practitioner/{row.national_id}"},
        "code": [{"coding": [{"system": PROFESSION_SYSTEM, "code": row.profession}]}],
    }
    if row.specialty:
        res["specialty"] = [{"coding": [{"system": SPECIALTY_SYSTEM, "code": row.specialty}]}]
    if row.organisation_id:
        res["organization"] = {"identifier": {"system": "urn:oid:1.2.250.1.71.4.2.2", "value": row.organisation_id},
                               "display": row.organisation_name}
    return res


def _dump(res: dict[str, Any]) -> str:
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


def read(ctx: Context, national_id: str, rtype: str) -> str:
    row = ctx.conn.execute(select(practitioner).where(practitioner.c.national_id == national_id)).first()
    if row is None:
        raise not_found(rtype)
    return _dump(practitioner_resource(row) if rtype == "Practitioner" else role_resource(row))


def _starts(value: str) -> str:
    """An ``ILIKE`` pattern: starts with ``value`` (FHIR string search), its wildcards escaped."""
    return value.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


def _given_starts(value: str) -> Any:
    """One of the space-joined given names starts with ``value``."""
    col = practitioner.c.given
    return or_(col.ilike(_starts(value), escape="\\"), col.ilike("% " + _starts(value), escape="\\"))


def search(ctx: Context, params: list[tuple[str, str]], rtype: str) -> list[str]:
    q = select(practitioner).order_by(practitioner.c.family).limit(500)
    for name, value in params:
        if name in ("_count", "_offset", "_format"):
            continue
        if name == "identifier":
            q = q.where(practitioner.c.national_id == value.split("|")[-1])
        elif name == "family" and rtype == "Practitioner":
            q = q.where(practitioner.c.family.ilike(_starts(value), escape="\\"))
        elif name == "given" and rtype == "Practitioner":
            q = q.where(_given_starts(value))
        elif name == "name" and rtype == "Practitioner":  # R4: any part of the name (family or a given name)
            q = q.where(or_(practitioner.c.family.ilike(_starts(value), escape="\\"), _given_starts(value)))
        elif name == "practitioner" and rtype == "PractitionerRole":
            q = q.where(practitioner.c.national_id == value.rsplit("/", 1)[-1])
        elif name == "organization" and rtype == "PractitionerRole":
            q = q.where(practitioner.c.organisation_id == value.rsplit("/", 1)[-1].split("|")[-1])
        else:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    fn = practitioner_resource if rtype == "Practitioner" else role_resource
    return [_dump(fn(r)) for r in ctx.conn.execute(q)]


def find(ctx: Context, text: str, limit: int = 20) -> list[Any]:
    """The portal's "find a professional": enabled professionals by number (RPPS, ADELI or national id) or by name
    (every word starts the family or given name, any case). Reference data: no dossier right, no audit."""
    from sqlalchemy import func, or_

    words = text.split()[:4]
    if not words:
        return []
    q = select(practitioner).where(practitioner.c.enabled.is_(True))
    compact = "".join(words)
    if compact.isdigit():
        ids = {11: ["8" + compact], 9: ["0" + compact], 12: [compact]}.get(len(compact), [])
        if not ids:
            return []
        q = q.where(practitioner.c.national_id.in_(ids))
    else:
        for w in words:
            w = w.lower()
            q = q.where(or_(func.lower(practitioner.c.family).startswith(w, autoescape=True),
                            func.lower(practitioner.c.given).startswith(w, autoescape=True)))
    return list(ctx.conn.execute(q.order_by(practitioner.c.family, practitioner.c.given,
                                            practitioner.c.national_id).limit(limit)).all())


def by_ids(ctx: Context, national_ids: set[str] | list[str]) -> dict[str, Any]:
    """Directory rows for these national ids (a name, a profession and an organisation to show), by id."""
    return practitioners.by_ids(ctx.conn, national_ids)


def organisation_names(ctx: Context, organisation_ids: set[str] | list[str]) -> dict[str, str]:
    """The name the directory gives each organisation (from its professionals' records), by organisation id."""
    return practitioners.organisation_names(ctx.conn, organisation_ids)
