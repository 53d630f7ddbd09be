"""The copy's signed receipt of the access history (issue 15 §2; docs/AUDIT.md "The patient's receipt").

Three files under ``audit/``:

* ``history.json``: the dossier's audit chain, every record with its content as Carnet hashed it (the canonical
  fields of :func:`carnet.audit.log.canonical`), its position and hashes;
* ``receipt.json``: the latest head of the chain that a signed checkpoint commits to, that checkpoint (signed part
  only), the Merkle inclusion proof and the public key (:func:`carnet.audit.anchor.receipt`);
* ``verify_receipt.py``: :mod:`carnet.audit.receipt` itself, which checks both with Python and ``cryptography``
  only: ``python3 audit/verify_receipt.py audit/receipt.json audit/history.json fhir/bundle.json``.

They are written only when the copy shows the whole chain: when some records are left out of the copy's history
(about a document the caller may not see yet), a chain with gaps would reveal that they exist, so the copy carries
no receipt. None either when no checkpoint commits to the chain yet (a dossier created minutes ago), or when the
checkpoint store cannot be reached (the copy is not refused for it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from carnet.audit import anchor
from carnet.audit import receipt as rc
from carnet.audit.log import canonical
from carnet.blobs import BlobStoreError
from carnet.context import Context

HISTORY_FORMAT = "carnet-audit-history/1"
logger = structlog.get_logger("carnet")


def files(ctx: Context, dossier_key: uuid.UUID, rows: Sequence[Any]) -> list[tuple[str, bytes]]:
    """The ``audit/`` files of the copy (``[]`` when it carries no receipt), given the history rows it shows (in
    ``seq`` order)."""
    if not rows or [int(r.seq) for r in rows] != list(range(1, len(rows) + 1)):
        return []
    try:
        got = anchor.receipt(ctx.conn, anchor.from_settings(ctx.settings), dossier_key)
    except BlobStoreError as exc:  # the checkpoint store is away: the copy goes out without its receipt
        logger.warning("copy.receipt_unavailable", error_type=type(exc).__name__)
        return []
    if got is None or int(got["seq"]) > len(rows):
        return []
    history = {"format": HISTORY_FORMAT, "chain": str(dossier_key),
               "records": [{"seq": int(r.seq), "prev_hash": r.prev_hash, "hash": r.hash,
                            "body": json.loads(canonical(r._asdict()))} for r in rows]}
    return [("audit/history.json", _dump(history)), ("audit/receipt.json", _dump(got)),
            ("audit/verify_receipt.py", Path(rc.__file__).read_bytes())]


def _dump(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode()
