"""Signed checkpoints of the audit chains, written once outside the database (issue 15 §2; docs/AUDIT.md).

The head of every chain (``audit_chain``) lives in the database it protects: someone with write access could delete
a chain's last records and rewind its head. So, as Certificate Transparency does with signed tree heads (RFC 9162),
Carnet regularly signs a **checkpoint**: number ``n``, time, the hash of checkpoint ``n-1``, and the Merkle root
(RFC 9162 hashing, :mod:`carnet.audit.receipt`) over the heads ``<chain>:<seq>:<head>`` that moved since the last
checkpoint (those listed in it, sorted by chain). It is written **once** to the checkpoint store
(``CARNET_CHECKPOINT_URL``: a directory, by default ``var/checkpoints``, or a prefix of the S3 store), through the
blob store's no-overwrite put (local: O_EXCL temp file, fsync, hard link that cannot replace; S3:
``If-None-Match: *``). Two nodes that race for number ``n`` cannot both write it: the loser gets
:class:`~carnet.blobs.BlobConflict`, reads the winner's and tries ``n+1``, so the log never forks.

Which heads moved: ``audit_chain.seq <> anchored_seq``, flagged by ``moved`` (set by every append) and found through a
partial index on that flag, which holds only those chains (no scan of millions of chains; a flag rather than a
predicate on ``seq``, so that an append updates its head in place: migration 0024). Once a checkpoint is durable the
checkpointer sets ``anchored_seq``/``anchored_in`` for the heads it committed (never backwards) and clears ``moved``
unless the head moved again since; a crash in between only makes the next checkpoint commit them again.

:mod:`carnet.audit.anchor_verify` checks the chains against the checkpoints; :func:`receipt` gives a dossier's
receipt for the complete copy.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from carnet.audit import receipt as rc
from carnet.blobs import BlobConflict, BlobNotFound, BlobStore, blobstore_from_url
from carnet.blobs.signing import SigningKey
from carnet.config import Settings
from carnet.db.tables import audit_chain

MAX_HEADS = 50_000  # heads in one checkpoint: a first checkpoint over millions of chains is cut into several
MARK_BATCH = 1_000  # anchored marks per transaction (the head rows are locked until it commits)
NAME_DIGITS = 16


def name(number: int) -> str:
    """The checkpoint's key in the store: its number, zero-padded (``0000000000000042``)."""
    return f"{number:0{NAME_DIGITS}d}"


def _ts(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass
class Anchor:
    """The checkpoint store and the key: what a process needs to make, verify and cite checkpoints."""

    store: BlobStore
    public_raw: bytes
    key: SigningKey | None = None  # None: this process verifies only (CARNET_CHECKPOINT_PUBLIC_KEY)
    _latest: tuple[int, str, dt.datetime] | None = field(default=None, repr=False)  # number, hash, time (a hint)

    def get(self, number: int) -> dict[str, Any]:
        """Checkpoint ``number`` as stored (:class:`~carnet.blobs.BlobNotFound` if absent, ValueError if not
        JSON)."""
        doc = json.loads(self.store.get(name(number)))
        if not isinstance(doc, dict):
            raise ValueError("not a checkpoint")
        return doc

    def latest(self) -> tuple[int, str, dt.datetime | None]:
        """The highest checkpoint number in the store, its hash and time (0, genesis, None for an empty store).
        O(log n) existence probes from the last one this process saw, then forward while a next one exists."""
        start = self._latest[0] if self._latest else 0
        if start and not self.store.exists(name(start)):
            start = 0
        if not start:
            hi = 1
            while self.store.exists(name(hi)):
                hi *= 2
            lo = hi // 2  # exists (or 0), hi does not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self.store.exists(name(mid)):
                    lo = mid
                else:
                    hi = mid
            start = lo
        while self.store.exists(name(start + 1)):
            start += 1
        if not start:
            return 0, rc.GENESIS, None
        doc = self.get(start)
        self._latest = (start, rc.checkpoint_hash(doc), parse_time(doc["time"]))
        return self._latest

    def sign(self, number: int, previous: str, heads: list[tuple[str, int, str]], now: dt.datetime) -> dict[str, Any]:
        heads = sorted(heads)
        root = rc.merkle_root([rc.leaf_hash(rc.leaf_bytes(*h)) for h in heads])
        cp: dict[str, Any] = {"format": rc.CHECKPOINT_FORMAT, "number": number, "time": _ts(now),
                              "previous": previous, "tree_size": len(heads), "root": root.hex(),
                              "key_id": rc.key_id(self.public_raw)}
        if self.key is None:
            raise RuntimeError("no checkpoint signing key in this process (CARNET_CHECKPOINT_PUBLIC_KEY only)")
        cp["signature"] = base64.b64encode(self.key.sign(rc.signed_text(cp))).decode("ascii")
        cp["heads"] = [list(h) for h in heads]
        return cp


def from_settings(settings: Settings) -> Anchor:
    """The checkpoint store (``CARNET_CHECKPOINT_URL``, see :attr:`Settings.effective_checkpoint_url`) and the
    signing key (``CARNET_CHECKPOINT_KEY``, else the file ``CARNET_CHECKPOINT_KEY_FILE`` or
    ``var/checkpoint-key.pem``, created on first use); an auditor's process that only verifies sets
    ``CARNET_CHECKPOINT_PUBLIC_KEY`` (base64) instead, and holds no private key."""
    if _same_place(settings.effective_checkpoint_url, settings.effective_blob_url):
        # checkpoint names are valid blob keys that no document references: the blob garbage collector would erase them
        raise ValueError("CARNET_CHECKPOINT_URL must not be the document store itself (CARNET_BLOB_URL)")
    store = blobstore_from_url(settings.effective_checkpoint_url)
    if settings.checkpoint_public_key and not settings.checkpoint_key:
        try:
            public = base64.b64decode(settings.checkpoint_public_key, validate=True)
        except ValueError:
            raise ValueError("CARNET_CHECKPOINT_PUBLIC_KEY is not valid base64") from None
        if len(public) != 32:
            raise ValueError("CARNET_CHECKPOINT_PUBLIC_KEY must be a 32-byte Ed25519 public key in base64")
        return Anchor(store, public)
    if settings.checkpoint_key:
        key = SigningKey.from_seed_b64(settings.checkpoint_key)
    else:
        settings.ensure_var()
        key = SigningKey.load_or_create(Path(settings.checkpoint_key_file) if settings.checkpoint_key_file
                                        else settings.var_dir / "checkpoint-key.pem")
    return Anchor(store, key.public_raw, key)


def _same_place(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        if url.lower().startswith("s3://"):
            return url.rstrip("/").lower()
        return str(Path(url.removeprefix("file://")).resolve())
    return norm(a) == norm(b)


_CHANGED = (select(audit_chain.c.dossier_key, audit_chain.c.seq, audit_chain.c.head)
            .where(audit_chain.c.moved, audit_chain.c.seq != audit_chain.c.anchored_seq)
            .order_by(audit_chain.c.dossier_key).limit(bindparam("n")))
# ``moved`` cleared only if the head is still the one committed (the row is locked: an append either came before and
# keeps it set, or comes after and sets it again)
_MARK = (update(audit_chain)
         .where(audit_chain.c.dossier_key == bindparam("k"), audit_chain.c.anchored_seq < bindparam("s"))
         .values(anchored_seq=bindparam("s"), anchored_in=bindparam("cp"),
                 moved=audit_chain.c.seq != bindparam("s")))


def checkpoint(engine: Engine, anchor: Anchor, clock: Callable[[], dt.datetime], *, max_heads: int = MAX_HEADS,
               attempts: int = 20) -> list[int]:
    """Commit every chain head that moved since the last checkpoint in one or more new checkpoints; returns their
    numbers (none when no head moved). Safe to run on several nodes at once."""
    made: list[int] = []
    lost = 0
    while True:
        now = clock()  # before the heads are read: every record committed before this time is in them
        with engine.connect() as conn:
            rows = [(str(r.dossier_key), int(r.seq), str(r.head))
                    for r in conn.execute(_CHANGED, {"n": max_heads})]
        if not rows:
            return made
        number, previous, _ = anchor.latest()
        cp = anchor.sign(number + 1, previous, rows, now)
        try:
            anchor.store.put(name(number + 1), json.dumps(cp, separators=(",", ":")).encode())
        except BlobConflict:  # another node wrote this number first: read it, then try the next one
            lost += 1
            if lost >= attempts:
                raise
            continue
        anchor._latest = (number + 1, rc.checkpoint_hash(cp), now)
        made.append(number + 1)
        for i in range(0, len(rows), MARK_BATCH):
            with engine.begin() as conn:
                conn.execute(_MARK, [{"k": uuid.UUID(k), "s": s, "cp": number + 1} for k, s, _ in
                                     rows[i:i + MARK_BATCH]])
        if len(rows) < max_heads:
            return made


def due(anchor: Anchor, now: dt.datetime, every: dt.timedelta) -> bool:
    """Whether the latest checkpoint (made by any node) is older than ``every``."""
    _, _, when = anchor.latest()
    return when is None or now - when >= every


# --- a dossier's receipt (the complete copy) -----------------------------------------------------------------------

def receipt(conn: Connection, anchor: Anchor, chain: uuid.UUID) -> dict[str, Any] | None:
    """The receipt of ``chain``'s latest anchored head: the checkpoint that commits to it, the leaf's inclusion proof
    and the public key (:mod:`carnet.audit.receipt` checks it offline). None when no checkpoint commits to the
    chain yet, or the checkpoint named in the database is not in the store."""
    row = conn.execute(select(audit_chain.c.anchored_seq, audit_chain.c.anchored_in)
                       .where(audit_chain.c.dossier_key == chain)).first()
    if row is None or not row.anchored_in:
        return None
    try:
        cp = anchor.get(int(row.anchored_in))
    except (BlobNotFound, ValueError):
        return None
    heads = [(str(c), int(s), str(h)) for c, s, h in cp.get("heads") or []]
    mine = [i for i, h in enumerate(heads) if h[0] == str(chain)]
    if not mine:
        return None
    index = mine[0]
    leaves = [rc.leaf_hash(rc.leaf_bytes(*h)) for h in heads]
    signed = {k: cp[k] for k in ("format", "number", "time", "previous", "tree_size", "root", "key_id",
                                 "signature")}
    return {"format": rc.RECEIPT_FORMAT, "chain": str(chain), "seq": heads[index][1], "head": heads[index][2],
            "checkpoint": signed, "leaf_index": index,
            "proof": [p.hex() for p in rc.inclusion_proof(index, leaves)],
            "public_key": base64.b64encode(anchor.public_raw).decode("ascii"),
            "public_key_id": rc.key_id(anchor.public_raw)}
