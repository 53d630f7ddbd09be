"""SubmissionSets (IHE MHD ``List``): what was submitted together, found later by ITI-66.

An ITI-65 bundle carries its own SubmissionSet; ITI-105 (and a deposit in the portal) carries none, and the Document
Recipient makes one (:func:`implicit_submission_set`). Each is stored with its dossier's key and a locator for its id,
in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Text, cast, insert, or_

from carnet.context import Context
from carnet.db import prepared
from carnet.db.tables import resource_locator, submission_set
from carnet.documents.service import fhir_instant
from carnet.errors import FhirError

_INSERT = insert(submission_set)  # built once: a hot statement (every publish records its submission set)
# The same on PostgreSQL as plain SQL run prepared (carnet.db.prepared; tests/db/test_prepared.py compares them).
_INSERT_SQL = ("INSERT INTO submission_set (dossier_key, list_id, code, status, source_id, designation_type, "
               "identifiers, date, author_id, document_ids, last_updated, resource) VALUES (%(dossier_key)s, "
               "%(list_id)s, %(code)s, %(status)s, %(source_id)s, %(designation_type)s, "
               "CAST(%(identifiers)s AS jsonb), %(date)s, %(author_id)s, CAST(%(document_ids)s AS jsonb), "
               "%(last_updated)s, %(resource)s)")
MHD_LIST_TYPES = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
DESIGNATION_TYPE = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"


def record_submission_set(ctx: Context, key: uuid.UUID, list_id: uuid.UUID, served: dict[str, Any], *, code: str,
                          source_id: str | None, identifiers: list[str], date: Any,
                          document_ids: list[str], located: bool = False) -> None:
    """Store a SubmissionSet (or folder) List, found later by ITI-66, and its id's dossier (``located``: a document
    of the submission already entered it in ``resource_locator``, see :func:`~carnet.documents.publishing.publish`)."""
    row = dict(
        dossier_key=key, list_id=list_id, code=code, status=served.get("status") or "current", source_id=source_id,
        designation_type=designation_of(served),
        identifiers=identifiers, date=date, author_id=ctx.actor.audit_id, document_ids=document_ids,
        last_updated=ctx.now, resource=json.dumps(served, ensure_ascii=False, separators=(",", ":")))
    if prepared.on_postgres(ctx.conn):
        prepared.execute(ctx.conn, _INSERT_SQL, {**row, "identifiers": json.dumps(identifiers, ensure_ascii=False),
                                                 "document_ids": json.dumps(document_ids, ensure_ascii=False)})
    else:
        ctx.conn.execute(_INSERT, row)
    if not located:
        ctx.conn.execute(insert(resource_locator).values(resource_id=list_id, dossier_key=key))


def implicit_submission_set(ctx: Context, key: uuid.UUID, document_id: uuid.UUID, list_id: uuid.UUID,
                            located: bool = False) -> None:
    """ITI-105 carries no SubmissionSet; the Document Recipient makes one, so that ITI-66 finds the submission
    (``located``: the document's publish already entered ``list_id`` in ``resource_locator``)."""
    served = {"resourceType": "List", "id": str(list_id),
              "meta": {"versionId": "1", "lastUpdated": fhir_instant(ctx.now)},
              "status": "current", "mode": "working",
              "code": {"coding": [{"system": MHD_LIST_TYPES, "code": "submissionset"}]},
              "subject": {"reference": f"Patient/{key}"}, "date": fhir_instant(ctx.now),
              "entry": [{"item": {"reference": f"DocumentReference/{document_id}"}}]}
    record_submission_set(ctx, key, list_id, served, code="submissionset", source_id=ctx.actor.client_id,
                          identifiers=[f"urn:uuid:{list_id}"], date=ctx.now, document_ids=[str(document_id)],
                          located=located)


def designation_of(resource: dict[str, Any]) -> str | None:
    """``system|code`` of a List's ``ihe-designationType`` extension (its first coding), as stored for ITI-66."""
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == DESIGNATION_TYPE:
            for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                if isinstance(c, dict) and c.get("code"):
                    return f"{c.get('system') or ''}|{c['code']}"[:300]
    return None


def _json_list_holds(col: Any, value: str) -> Any:
    """The JSON list of strings ``col`` holds ``value`` (its JSON text, compared as text on both databases)."""
    needles = {json.dumps(value, ensure_ascii=False), json.dumps(value)}  # JSONB keeps UTF-8, json.dumps escapes
    return or_(*[cast(col, Text).like("%" + n.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%",
                                      escape="\\") for n in sorted(needles)])


def list_conditions(params: list[tuple[str, str]]) -> list[Any]:
    """ITI-66's parameters (IHE MHD 4.2 §2:3.66.4.1.2.1) as SQL conditions on the SubmissionSets (for
    :func:`carnet.documents.service.search_lists`, which adds the dossier and the caller's visibility): ``code``,
    ``status``, ``identifier`` (the value of one of its identifiers: uniqueId or entryUUID), ``designationType``
    (``system|code``, or a code of any system), ``sourceId`` and ``date`` (R4 date prefixes). No modifier is
    supported; a bad value is refused (400) naming the parameter."""
    from carnet.documents.search_params import date_condition, token_values

    conds: list[Any] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base in ("patient", "patient.identifier", "subject", "_count", "_offset", "_format"):
            continue
        if modifier:
            raise FhirError(400, "not-supported", "Unsupported modifier", name)
        values = token_values(value)
        if base == "code":
            conds.append(submission_set.c.code.in_([c for s, c in values if s in (None, "", MHD_LIST_TYPES)]))
        elif base == "status":
            conds.append(submission_set.c.status.in_([c for _, c in values]))
        elif base == "identifier":
            conds.append(or_(*[_json_list_holds(submission_set.c.identifiers, c) for _, c in values]))
        elif base == "sourceId":
            conds.append(submission_set.c.source_id.in_([c for _, c in values]))
        elif base == "designationType":
            conds.append(or_(*[submission_set.c.designation_type == f"{s}|{c}" if s is not None else
                               submission_set.c.designation_type.endswith(f"|{c}", autoescape=True)
                               for s, c in values]))
        elif base == "date":
            conds.append(date_condition(submission_set.c.date, value, name))
        else:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
    return conds
