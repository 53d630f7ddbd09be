"""Finding and reading a dossier: by INS (TD0.2, PDQm by identifier: does a dossier exist, and may the caller access
it?), by traits (PDQm: only the dossiers the caller may read), and reading its Patient; each answer carries what the
caller may do (:func:`with_access`), and each is audited."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import select

from carnet.access.policy import Decision
from carnet.context import Context
from carnet.db.tables import ins_lookup, patient_index
from carnet.dossier.patient import EXT_DOSSIER_ACCESS, ins_value, norm
from carnet.errors import FhirError, forbidden, not_found


def lookup(ctx: Context, ins: str) -> uuid.UUID | None:
    return ctx.conn.execute(select(ins_lookup.c.dossier_key).where(ins_lookup.c.ins == ins)).scalar()


def with_access(served: str, row: Any, decision: Decision) -> str:
    """The Patient as served, with the TD0.2 answer: dossier status and what this caller may do.

    A caller who may not read the dossier (the existence check only) gets no identity traits back: just the id, the
    INS they already gave and the answer, so that the check cannot be used to collect names and birth dates."""
    res = json.loads(served)
    if not decision.read:
        res = {"resourceType": "Patient", "id": res["id"], "meta": res.get("meta", {}),
               "identifier": [{"system": row.ins_system, "value": row.ins}]}
    res.setdefault("extension", []).append({"url": EXT_DOSSIER_ACCESS, "extension": [
        {"url": "status", "valueCode": row.status},
        {"url": "access", "valueCode": decision.basis if decision.read else "none"},
        {"url": "canRead", "valueBoolean": decision.read},
        {"url": "canWrite", "valueBoolean": decision.add_classes != "none"},
        # issue 13 §1: the patient requires an access code of professionals not yet authorized (what the caller's
        # software should ask for instead of recording a consent)
        {"url": "requiresCode", "valueBoolean": decision.refusal_code == "code-needed"},
    ]})
    return json.dumps(res, ensure_ascii=False, separators=(",", ":"))


def read(ctx: Context, dossier_key: uuid.UUID) -> str:
    row, decision = ctx.dossier(dossier_key)
    if not decision.read:
        if decision.check:
            raise ctx.refuse(dossier_key, "R", "patient.read", forbidden(decision.refusal))
        raise ctx.refuse(dossier_key, "R", "patient.read", not_found("Patient"))
    ctx.audit(dossier_key, "R", "patient.read", entity_type="Patient", entity_id=str(dossier_key))
    return with_access(row.resource, row, decision)


def check_by_ins(ctx: Context, system: str, value: str, query_text: str) -> list[str]:
    """TD0.2 / PDQm by identifier: does a dossier exist for this INS, and may the caller access it?"""
    from carnet.ids import SYSTEM_CHAIN

    key = lookup(ctx, ins_value(system, value, "identifier"))
    if key is None:
        ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "identifier", "returned": 0})
        return []
    row, decision = ctx.dossier(key)
    if not decision.check:
        if decision.refusal_code == "closed":  # to those who feed it, a closed dossier looks absent
            ctx.audit(key, "E", "ITI-78", detail={"query": query_text, "returned": 0})
            return []
        raise ctx.refuse(key, "E", "ITI-78", forbidden(decision.refusal), detail={"query": query_text})
    ctx.audit(key, "E", "ITI-78", entity_type="Patient", entity_id=str(key),
              detail={"query": query_text, "returned": 1})
    return [with_access(row.resource, row, decision)]


def search_demographics(ctx: Context, family: str | None, given: str | None, birth_date: dt.date | None,
                        gender: str | None, exact: bool, limit: int, query_text: str) -> list[str]:
    """PDQm by traits. Only dossiers the caller may read are returned: a demographic search must not reveal who
    has a dossier. Goes through ``patient_index`` (keyed by the searched name), then each dossier by its key."""
    from carnet.ids import SYSTEM_CHAIN

    if not family and not given and not birth_date:
        raise FhirError(400, "required", "Search by family, given or birthdate (or by identifier)")
    q = select(patient_index.c.dossier_key)
    if family:
        f = norm(family)
        q = q.where(patient_index.c.family_norm == f if exact else patient_index.c.family_norm.startswith(f))
    if given:
        g = norm(given)
        q = q.where(patient_index.c.given_norm == g if exact else patient_index.c.given_norm.contains(g))
    if birth_date:
        q = q.where(patient_index.c.birth_date == birth_date)
    if gender:
        q = q.where(patient_index.c.gender == gender)
    out = []
    for key in ctx.conn.execute(q.limit(500)).scalars():
        row, decision = ctx.dossier(key)
        if decision.read:
            out.append(with_access(row.resource, row, decision))
            ctx.audit(key, "E", "ITI-78", entity_type="Patient", entity_id=str(key), detail={"query": query_text})
            if len(out) >= limit:
                break
    if not out:
        ctx.audit(SYSTEM_CHAIN, "E", "ITI-78", detail={"query": "demographics", "returned": 0})
    return out
