"""The audit checkpoints in a backup (issue 15 §2 and §8; docs/AUDIT.md, docs/OPERATIONS.md).

A backup carries the checkpoints signed *before* its database snapshot began: each commits to chain heads that were
committed before it was signed, so the snapshot holds every record they name, and ``carnet audit verify`` on the
restored deployment is clean. Later checkpoints name records the snapshot does not hold; on the machine being
replaced they stay where they are (write-once), and verifying the restored database against them would report, truly,
the records lost since the snapshot (docs/OPERATIONS.md says how to run that check).

They are copied by number from the checkpoint store, whatever it is (a local directory, S3), and restored into the
configured checkpoint store, which must be empty. Their signing key is an ordinary item of the backup
(``keys/checkpoint-key.pem``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from carnet.audit.anchor import name, parse_time
from carnet.blobs import BlobStore, LocalBlobStore, blobstore_from_url
from carnet.config import Settings

DIRECTORY = "checkpoints"


def _store(settings: Settings) -> BlobStore:
    return blobstore_from_url(settings.effective_checkpoint_url)


def copy_out(settings: Settings, snapshot_at: dt.datetime, target: Path) -> int:
    """Copy the checkpoints signed before ``snapshot_at`` into ``target/checkpoints``; returns how many."""
    store = _store(settings)
    copy: BlobStore | None = None
    number = 0
    while store.exists(name(number + 1)):
        data = store.get(name(number + 1))
        doc = json.loads(data)
        if not isinstance(doc, dict) or parse_time(str(doc["time"])) > snapshot_at:
            break  # numbered in time order: the first one signed after the snapshot ends the copy
        if copy is None:
            copy = LocalBlobStore(target / DIRECTORY)
        copy.put(name(number + 1), data)
        number += 1
    return number


def refuse_non_empty(settings: Settings) -> str | None:
    """Why the configured checkpoint store cannot receive a backup's checkpoints (it already holds one), or None."""
    if _store(settings).exists(name(1)):
        return f"the checkpoint store {settings.effective_checkpoint_url} holds checkpoints: restore into an empty one"
    return None


def copy_in(settings: Settings, source: Path) -> int:
    """Write the backup's checkpoints into the configured checkpoint store; returns how many."""
    folder = source / DIRECTORY
    if not folder.is_dir():
        return 0
    copy, store = LocalBlobStore(folder), _store(settings)
    number = 0
    while copy.exists(name(number + 1)):
        store.put(name(number + 1), copy.get(name(number + 1)))
        number += 1
    return number
