"""Documents: publish (ITI-65, ITI-105), find (ITI-67), read, retrieve (ITI-68), update status and labels; the one
entry the rest of Carnet calls (``from carnet.documents import service as documents``).

Every function takes a :class:`~carnet.context.Context`; the dossier and the caller's decision come from
``ctx.dossier()``, document visibility is the policy's SQL clause, and the audit record is written in the same
transaction. A document the caller may not see answers 404, exactly like one that does not exist.

Contents are sealed (AES-256-GCM, a fresh data key per document) and written durably to the blob store *before* the
metadata is inserted; if the transaction then fails, :func:`carnet.context.run` removes the blob.

The work is done by one module per concept: :mod:`~carnet.documents.stored` (the one way to a document the caller
may see, its content opened and checked), :mod:`~carnet.documents.publishing` (deposit),
:mod:`~carnet.documents.lifecycle` (replace, withdraw, relabel, mask, delete), :mod:`~carnet.documents.reading`
(read, retrieve, search) and :mod:`~carnet.documents.listing` (the patient's portal's views).
"""

from __future__ import annotations

from carnet.documents.lifecycle import delete_from_dossier, patch, set_masked
from carnet.documents.listing import (
    LISTED_COLUMNS,
    DocumentFilter,
    DocumentPage,
    HomeDocuments,
    Listed,
    browse,
    filter_conditions,
    home_documents,
    listed_from_rows,
    newly_added,
    open_document,
)
from carnet.documents.patch_plan import PatchPlan
from carnet.documents.publishing import Content, Published, publish, require_write
from carnet.documents.reading import (
    DocumentQuery,
    read,
    retrieve,
    retrieve_or_stream,
    search,
    search_lists,
    token_condition,
)
from carnet.documents.stored import (
    content_stream,
    doc_facts,
    dossier_of,
    fhir_instant,
    open_content,
    visible_document,
)

__all__ = [
    "LISTED_COLUMNS", "Content", "DocumentFilter", "DocumentPage", "DocumentQuery", "HomeDocuments", "Listed",
    "PatchPlan", "Published", "browse", "delete_from_dossier", "doc_facts", "dossier_of", "fhir_instant",
    "content_stream", "filter_conditions", "home_documents", "listed_from_rows", "newly_added", "open_content",
    "open_document", "patch", "publish", "read", "require_write", "retrieve", "retrieve_or_stream", "search",
    "search_lists", "set_masked", "token_condition", "visible_document",
]
