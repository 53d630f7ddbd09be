"""What the drills check once the dust has settled: no half-written rows, no row without its blob, the audit chains
whole. An orphan blob (written, then the process died before the commit) is allowed: the blob garbage collector
(carnet.documents.blob_gc) takes it after its grace period. A row pointing to a missing blob is not."""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from carnet.blobs import BlobStore
from carnet.db.tables import document, document_identifier, resource_locator, submission_set
from tests.test_examples import carnet


@dataclass
class Findings:
    documents: int = 0
    orphan_blobs: int = 0  # allowed: the garbage collector's
    problems: list[str] = field(default_factory=list)


def check(engine: Engine, store: BlobStore) -> Findings:
    """Every document has its blob, its masterIdentifier lookup, its locator and a SubmissionSet that lists it;
    every SubmissionSet lists only documents that exist; every lookup points at a document."""
    f = Findings()
    with engine.connect() as conn:
        docs = {(r.dossier_key, r.document_id): r for r in conn.execute(select(
            document.c.dossier_key, document.c.document_id, document.c.master_identifier, document.c.blob_key,
            document.c.submission_set_id))}
        idents = {r.master_identifier: r for r in conn.execute(select(document_identifier))}
        locators = {r.resource_id: r.dossier_key for r in conn.execute(select(resource_locator))}
        sets = {(r.dossier_key, r.list_id): r for r in conn.execute(select(
            submission_set.c.dossier_key, submission_set.c.list_id, submission_set.c.document_ids))}
    f.documents = len(docs)
    blobs = {key for key, _ in store.iter_blobs()}
    referenced = {r.blob_key for r in docs.values()}
    f.orphan_blobs = len(blobs - referenced)
    for (key, doc_id), r in docs.items():
        if r.blob_key not in blobs:
            f.problems.append(f"document {doc_id}: its blob is missing")
        ident = idents.get(r.master_identifier)
        if ident is None or (ident.dossier_key, ident.document_id) != (key, doc_id):
            f.problems.append(f"document {doc_id}: no masterIdentifier lookup pointing to it")
        if locators.get(doc_id) != key:
            f.problems.append(f"document {doc_id}: no resource locator")
        s = sets.get((key, r.submission_set_id))
        if s is None or str(doc_id) not in _ids(s.document_ids):
            f.problems.append(f"document {doc_id}: no SubmissionSet lists it")
    for (key, list_id), s in sets.items():
        for doc_id in _ids(s.document_ids):
            if (key, uuid.UUID(doc_id)) not in docs:
                f.problems.append(f"SubmissionSet {list_id} lists {doc_id}, which does not exist")
    for master, ident in idents.items():
        if (ident.dossier_key, ident.document_id) not in docs:
            f.problems.append(f"masterIdentifier {master} points to no document")
    return f


def _ids(value: object) -> list[str]:
    return [str(v) for v in (json.loads(value) if isinstance(value, str) else value or [])]


def audit_verify(env: dict[str, str], cwd: str) -> subprocess.CompletedProcess[str]:
    """``carnet audit verify`` as an operator runs it."""
    return subprocess.run(carnet("audit", "verify"), cwd=cwd, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=300)
