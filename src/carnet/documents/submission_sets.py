"""SubmissionSets (IHE MHD ``List``): what was submitted together, found later by ITI-66.

An ITI-65 bundle carries its own SubmissionSet; ITI-105 (and a deposit in the portal) carries none, and the Document
Recipient makes one (:func:`implicit_submission_set`). Each is stored with its dossier's key and a locator for its id,
in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import insert

from carnet.context import Context
from carnet.db.tables import resource_locator, submission_set
from carnet.documents.service import fhir_instant

MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"


def record_submission_set(ctx: Context, key: uuid.UUID, list_id: uuid.UUID, served: dict[str, Any], *, code: str,
                          source_id: str | None, identifiers: list[str], date: Any,
                          document_ids: list[str]) -> None:
    """Store a SubmissionSet (or folder) List, found later by ITI-66, and its id's dossier."""
    ctx.conn.execute(insert(submission_set).values(
        dossier_key=key, list_id=list_id, code=code, status=served.get("status") or "current", source_id=source_id,
        identifiers=identifiers, date=date, author_id=ctx.actor.audit_id, document_ids=document_ids,
        last_updated=ctx.now, resource=json.dumps(served, ensure_ascii=False, separators=(",", ":"))))
    ctx.conn.execute(insert(resource_locator).values(resource_id=list_id, dossier_key=key))


def implicit_submission_set(ctx: Context, key: uuid.UUID, document_id: uuid.UUID, list_id: uuid.UUID) -> None:
    """ITI-105 carries no SubmissionSet; the Document Recipient makes one, so that ITI-66 finds the submission."""
    served = {"resourceType": "List", "id": str(list_id),
              "meta": {"versionId": "1", "lastUpdated": fhir_instant(ctx.now)},
              "status": "current", "mode": "working",
              "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
              "subject": {"reference": f"Patient/{key}"}, "date": fhir_instant(ctx.now),
              "entry": [{"item": {"reference": f"DocumentReference/{document_id}"}}]}
    record_submission_set(ctx, key, list_id, served, code="submissionset", source_id=ctx.actor.client_id,
                          identifiers=[f"urn:uuid:{list_id}"], date=ctx.now, document_ids=[str(document_id)])


def list_conditions(params: list[tuple[str, str]]) -> list[Any]:
    """ITI-66's ``code`` and ``status`` parameters as SQL conditions on the SubmissionSets (for
    :func:`carnet.documents.service.search_lists`, which adds the dossier and the caller's visibility)."""
    conds: list[Any] = []
    q = dict(params)
    if "code" in q:
        conds.append(submission_set.c.code.in_([v.split("|")[-1] for v in q["code"].split(",")]))
    if "status" in q:
        conds.append(submission_set.c.status.in_(q["status"].split(",")))
    return conds
