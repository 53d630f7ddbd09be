"""Checking a patient's audit receipt offline, with Python and ``cryptography`` only.

This module imports nothing else of Carnet, so that the complete copy of a dossier can carry it as a script
(``audit/verify_receipt.py``) and anyone can run::

    python3 audit/verify_receipt.py audit/receipt.json audit/history.json fhir/bundle.json

(or ``python -m carnet.audit.receipt …``, or ``carnet audit verify-receipt …``). It checks, and says which check
failed:

1. ``history.json``: the dossier's audit records in order, each with its content; the hash of every record is
   recomputed as Carnet computes it (``sha256(prev ":" seq ":" sha256(canonical JSON of the content))``) and each
   record must link to the one before it, from the genesis hash;
2. the record at the receipt's position (``seq``) has the hash (``head``) the receipt names;
3. that head (``chain:seq:head``) is a leaf of the checkpoint's Merkle tree: the inclusion proof (RFC 9162 §2.1.3)
   leads to the checkpoint's ``root`` (leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || l || r)``);
4. the checkpoint (number, time, previous checkpoint's hash, tree size, root) is signed by the Ed25519 key given;
   compare that key's fingerprint with the one the operator of Carnet publishes.

Records after the receipt's position were written after the last checkpoint: they are checked for their links only.
Given the copy's ``fhir/bundle.json`` too, it checks that its ``AuditEvent`` resources tell the same history
(:func:`check_bundle`).

The same hashing serves the checkpoints themselves (:mod:`carnet.audit.anchor`), so that it is written once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any

GENESIS = "0" * 64
CHECKPOINT_FORMAT = "carnet-audit-checkpoint/1"
RECEIPT_FORMAT = "carnet-audit-receipt/1"


# --- the audit chain (the same formula as carnet.audit.log.link) ---------------------------------------------------

def canonical_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev: str, seq: int, body_hash: str) -> str:
    return hashlib.sha256(f"{prev}:{seq}:{body_hash}".encode()).hexdigest()


# --- RFC 9162 Merkle tree hashing ----------------------------------------------------------------------------------

def leaf_bytes(chain: str, seq: int, head: str) -> bytes:
    """A checkpoint's leaf: one chain's head, ``<chain key>:<seq>:<head hash>``."""
    return f"{chain}:{seq}:{head}".encode()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1 over already hashed leaves; the hash of the empty string for no leaf."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # bottom-up: pairing from the left gives the same tree as RFC 9162's split at the largest power of two
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the audit path of leaf ``index`` among the hashed ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError("leaf index out of range")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), merkle_root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), merkle_root(leaves[:k])]


def root_from_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or None if the proof cannot be one for (index,
    size)."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


# --- checkpoints --------------------------------------------------------------------------------------------------

def signed_text(cp: dict[str, Any]) -> bytes:
    """What the checkpoint's signature covers (and its hash, which the next checkpoint names): one line each."""
    return (f"{CHECKPOINT_FORMAT}\n{int(cp['number'])}\n{cp['time']}\n{cp['previous']}\n"
            f"{int(cp['tree_size'])}\n{cp['root']}\n").encode()


def checkpoint_hash(cp: dict[str, Any]) -> str:
    return hashlib.sha256(signed_text(cp)).hexdigest()


def key_id(public_raw: bytes) -> str:
    """A public key's fingerprint: the first 16 hex digits of SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def signature_ok(cp: dict[str, Any], public_raw: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(base64.b64decode(cp["signature"], validate=True),
                                                              signed_text(cp))
        return True
    except (InvalidSignature, ValueError, TypeError, KeyError):
        return False


# --- the receipt --------------------------------------------------------------------------------------------------

class ReceiptError(Exception):
    """A check failed; the message says which, with positions and hashes only."""


def verify(receipt: dict[str, Any], history: dict[str, Any]) -> str:
    """Run every check; returns a one-line summary, raises :class:`ReceiptError` on the first failure."""
    if receipt.get("format") != RECEIPT_FORMAT:
        raise ReceiptError("not a Carnet audit receipt")
    try:
        chain, seq, head = str(receipt["chain"]), int(receipt["seq"]), str(receipt["head"])
        cp, proof = receipt["checkpoint"], [bytes.fromhex(p) for p in receipt["proof"]]
        index, public_raw = int(receipt["leaf_index"]), base64.b64decode(receipt["public_key"], validate=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReceiptError(f"the receipt is incomplete or malformed ({type(exc).__name__})") from None
    if str(history.get("chain")) != chain:
        raise ReceiptError("the history and the receipt are about different chains")
    prev, found = GENESIS, None
    for expected, rec in enumerate(history.get("records") or [], start=1):
        if int(rec.get("seq", -1)) != expected:
            raise ReceiptError(f"history: record {expected} is missing (found seq {rec.get('seq')})")
        if rec.get("prev_hash") != prev:
            raise ReceiptError(f"history: record {expected} does not link to the record before it")
        body = rec.get("body")
        if not isinstance(body, dict) or str(body.get("dossier_key")) != chain:
            raise ReceiptError(f"history: record {expected} has no content for this chain")
        computed = link(prev, expected, hashlib.sha256(canonical_json(body)).hexdigest())
        if computed != rec.get("hash"):
            raise ReceiptError(f"history: record {expected} was altered (its hash does not match its content)")
        prev = computed
        if expected == seq:
            found = computed
    if found is None:
        raise ReceiptError(f"history: the record at seq {seq} named by the receipt is missing")
    if found != head:
        raise ReceiptError(f"history: the record at seq {seq} differs from the one the checkpoint commits to")
    if root_from_proof(index, int(cp["tree_size"]), leaf_bytes(chain, seq, head), proof) != bytes.fromhex(
            str(cp["root"])):
        raise ReceiptError(f"the inclusion proof does not lead to checkpoint {cp.get('number')}'s root")
    if cp.get("key_id") != key_id(public_raw) or not signature_ok(cp, public_raw):
        raise ReceiptError(f"checkpoint {cp.get('number')}'s signature does not verify with the key given")
    later = len(history.get("records") or []) - seq
    return (f"OK: {seq} records up to {cp['time']} are committed by checkpoint {cp['number']}, signed by key "
            f"{key_id(public_raw)}" + (f"; {later} later record(s) link correctly but are not yet anchored"
                                         if later else ""))


def check_bundle(bundle: dict[str, Any], history: dict[str, Any]) -> int:
    """The copy's FHIR ``Bundle`` tells the same history: every ``AuditEvent`` in it is a record of ``history.json``
    (same id, time, action, outcome, event, actor kind and access mode), and every record is in it. Returns how many
    were compared; raises :class:`ReceiptError` otherwise."""
    from datetime import datetime

    records = {str(r["body"]["event_id"]): r["body"] for r in history.get("records") or []}
    seen: set[str] = set()
    for entry in bundle.get("entry") or []:
        ev = entry.get("resource") or {}
        if ev.get("resourceType") != "AuditEvent":
            continue
        body = records.get(str(ev.get("id")))
        if body is None:
            raise ReceiptError(f"bundle: AuditEvent {ev.get('id')} is not in the history")
        exts = {e.get("url", "").rsplit("/", 1)[-1]: e.get("valueCode") for a in ev.get("agent") or []
                for e in a.get("extension") or []}
        told = (datetime.fromisoformat(str(ev.get("recorded")).replace("Z", "+00:00")), ev.get("action"),
                ev.get("outcome"), (ev.get("subtype") or [{}])[0].get("code"), exts.get("actor-kind"),
                exts.get("access-mode"))
        kept = (datetime.fromisoformat(str(body["recorded"]).replace("Z", "+00:00")), body["action"],
                body["outcome"], body["event"], body["actor_kind"], body["mode"])
        if told != kept:
            raise ReceiptError(f"bundle: AuditEvent {ev.get('id')} differs from its record in the history")
        seen.add(str(ev.get("id")))
    missing = set(records) - seen
    if missing:
        raise ReceiptError(f"bundle: {len(missing)} record(s) of the history have no AuditEvent")
    return len(seen)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["verify"]:
        args = args[1:]
    if len(args) not in (2, 3):
        print("usage: python3 verify_receipt.py receipt.json history.json [bundle.json]", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as r, open(args[1], encoding="utf-8") as h:
            receipt, history = json.load(r), json.load(h)
        summary = verify(receipt, history)
        if len(args) == 3:
            with open(args[2], encoding="utf-8") as b:
                summary += f"; the bundle's {check_bundle(json.load(b), history)} AuditEvents match the history"
        print(summary)
        return 0
    except ReceiptError as exc:
        print(f"FAILED: {exc}")
        return 1
    except (OSError, ValueError) as exc:
        print(f"FAILED: cannot read the files ({type(exc).__name__})")
        return 1


if __name__ == "__main__":
    sys.exit(main())
