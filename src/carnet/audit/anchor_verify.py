"""``carnet audit verify``, second half: the checkpoint log, and the chains against it (docs/AUDIT.md).

The checkpoint log: every checkpoint from 1 to the highest present must be there (a gap is reported), signed by the
deployment's key, with the Merkle root of its heads, and naming the hash of the one before it (a checkpoint
rewritten or replaced breaks the link after it).

The chains: for every head a checkpoint commits to (``chain:seq:head``), the database must hold that chain, a record
at that seq, with that hash. So are reported: a chain deleted, a chain truncated (its records past some committed
seq gone, whatever its head says), a head rewound below what was committed, a record rewritten (even with every later
hash recomputed: the committed hash no longer matches). And from the database side: a chain marked as anchored in a
checkpoint that is not in the store (the latest checkpoints deleted), and a record older than the latest checkpoint
by more than :data:`GRACE` that no checkpoint commits to (the anchoring itself was tampered with). A chain the
retention purge erased (a ``dossier.purge`` record names it) is counted as purged, not reported.

Findings name a chain key, a position, a checkpoint number: never a record's content.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from carnet.audit import receipt as rc
from carnet.audit.anchor import Anchor, name, parse_time
from carnet.audit.archive import Archives
from carnet.audit.archive import load as load_archives
from carnet.blobs import BlobNotFound, BlobStore
from carnet.db.tables import audit, audit_chain

# A record committed before a checkpoint's time is in it; one recorded earlier may commit later (a long
# transaction: CARNET_TRANSACTION_SECONDS, 600 by default), so only records older than this are expected anchored.
GRACE = dt.timedelta(minutes=15)
PURGE_EVENT = "dossier.purge"  # carnet.dossier.lifecycle.purge_due: a chain erased after the retention period


@dataclass(frozen=True)
class Problem:
    problem: str  # checkpoint-missing | checkpoint-invalid | checkpoint-forged | checkpoint-link | chain-deleted
    #               | truncated | rewound | rewritten | anchor-missing | unanchored
    where: str  # "checkpoint 12" or "chain <key> at seq 800"
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.problem} {self.where}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Report:
    checkpoints: int = 0
    highest: int = 0  # the highest checkpoint number in the store
    heads: int = 0  # committed heads checked
    purged: int = 0  # chains committed to, then erased by the retention purge (recorded as dossier.purge)
    latest_time: dt.datetime | None = None
    problems: list[Problem] = field(default_factory=list)
    archives: Archives = field(default_factory=Archives)  # the archived months, read and checked


def _numbers(anchor: Anchor) -> list[int]:
    return sorted(int(k) for k, _ in anchor.store.iter_blobs() if k.isdigit())


def read_log(anchor: Anchor, report: Report) -> dict[str, dict[int, tuple[str, int]]]:
    """Check every checkpoint; returns what the valid ones commit to: chain → {seq: (head, checkpoint)}."""
    committed: dict[str, dict[int, tuple[str, int]]] = {}
    numbers = _numbers(anchor)
    present = set(numbers)
    report.checkpoints = len(numbers)
    report.highest = numbers[-1] if numbers else 0
    prev_hash: dict[int, str] = {0: rc.GENESIS}
    my_id = rc.key_id(anchor.public_raw)
    for n in range(1, (numbers[-1] if numbers else 0) + 1):
        where = f"checkpoint {n}"
        if n not in present:
            report.problems.append(Problem("checkpoint-missing", where, "a gap in the checkpoint log"))
            continue
        try:
            cp = anchor.get(n)
            heads = [(str(c), int(s), str(h)) for c, s, h in cp["heads"]]
            if int(cp["number"]) != n or cp.get("format") != rc.CHECKPOINT_FORMAT:
                raise ValueError("number")
        except (BlobNotFound, ValueError, KeyError, TypeError):
            report.problems.append(Problem("checkpoint-invalid", where, "unreadable or misnumbered"))
            continue
        if cp.get("key_id") != my_id or not rc.signature_ok(cp, anchor.public_raw):
            report.problems.append(Problem("checkpoint-forged", where, "the signature does not verify with the "
                                                                        f"checkpoint key {my_id}"))
            continue
        if int(cp["tree_size"]) != len(heads) or rc.merkle_root(
                [rc.leaf_hash(rc.leaf_bytes(*h)) for h in heads]).hex() != cp["root"]:
            report.problems.append(Problem("checkpoint-invalid", where, "its heads do not match its signed root"))
            continue
        if n - 1 in prev_hash and cp["previous"] != prev_hash[n - 1]:
            report.problems.append(Problem("checkpoint-link", where, f"checkpoint {n - 1} was replaced or altered"))
        prev_hash[n] = rc.checkpoint_hash(cp)
        report.latest_time = parse_time(cp["time"])
        for chain, seq, head in heads:
            seen = committed.setdefault(chain, {})
            if seq in seen and seen[seq][0] != head:
                report.problems.append(Problem("rewritten", f"chain {chain} at seq {seq}",
                                               f"checkpoints {seen[seq][1]} and {n} commit to different records"))
            seen.setdefault(seq, (head, n))
    return committed


def _hashes(conn: Connection, chain: uuid.UUID) -> Iterator[tuple[int, str, Any]]:
    result = conn.execution_options(yield_per=5000).execute(
        select(audit.c.seq, audit.c.hash, audit.c.recorded).where(audit.c.dossier_key == chain)
        .order_by(audit.c.seq))
    for seq, h, recorded in result:
        yield int(seq), str(h), recorded


def verify(conn: Connection, anchor: Anchor, archive_store: BlobStore | None = None) -> Report:
    """Check the checkpoint log, then the archived months (``archive_store``: each file on its own, and its records
    against the checkpoints), then every chain against the checkpoints (and against the database's anchoring
    marks)."""
    report = Report()
    committed = read_log(anchor, report)
    highest = report.highest

    def archived_record(chain: str, seq: int, h: str) -> None:
        seen = committed.get(chain, {}).get(seq)
        if seen is not None and seen[0] != h:
            report.problems.append(Problem("rewritten", f"chain {chain} at seq {seq}",
                                           f"checkpoint {seen[1]} commits to another record (archived)"))

    if archive_store is not None:
        report.archives = load_archives(conn, archive_store, anchor.public_raw, archived_record)
        report.problems += [Problem(*p) for p in report.archives.problems]
    db_heads = {str(r.dossier_key): r for r in conn.execute(select(
        audit_chain.c.dossier_key, audit_chain.c.seq, audit_chain.c.anchored_seq, audit_chain.c.anchored_in))}
    chains = set(committed) | set(db_heads) | set(report.archives.runs)
    gone: dict[str, Problem] = {}  # chains a checkpoint commits to that the database no longer holds
    for chain in sorted(chains):
        seqs = committed.get(chain, {})
        head_row = db_heads.get(chain)
        top = max(seqs) if seqs else 0
        report.heads += len(seqs)
        try:
            key = uuid.UUID(chain)
        except ValueError:
            report.problems.append(Problem("checkpoint-invalid", f"chain {chain!r}", "not a chain key"))
            continue
        last, first_unanchored = 0, None
        for seq, h, recorded in _hashes(conn, key):
            last = seq
            if seq in seqs and seqs[seq][0] != h:
                report.problems.append(Problem("rewritten", f"chain {chain} at seq {seq}",
                                               f"checkpoint {seqs[seq][1]} commits to another record"))
            if seq == top + 1:
                first_unanchored = recorded
        if head_row is None and last == 0:  # gone from the database (what archives hold of it stays there)
            if seqs:
                gone[chain] = Problem("chain-deleted", f"chain {chain}",
                                      f"checkpoint {seqs[top][1]} commits to {top} records")
            continue
        last = max(last, report.archives.last_seq(chain))
        if last < top:
            report.problems.append(Problem("truncated", f"chain {chain} at seq {last + 1}",
                                           f"checkpoint {seqs[top][1]} commits to {top} records, "
                                           f"the database holds {last}"))
        if head_row is not None and int(head_row.seq) < top:
            report.problems.append(Problem("rewound", f"chain {chain} at seq {int(head_row.seq)}",
                                           f"checkpoint {seqs[top][1]} commits to seq {top}"))
        if head_row is not None and head_row.anchored_in and int(head_row.anchored_seq) > top:
            cp_number = int(head_row.anchored_in)  # made after the log was read, or missing?
            if cp_number <= highest or not anchor.store.exists(name(cp_number)):
                report.problems.append(Problem("anchor-missing", f"chain {chain} at seq {int(head_row.anchored_seq)}",
                                               f"marked as committed by checkpoint {cp_number}, which is missing or "
                                               "does not commit to it"))
        if first_unanchored is not None and report.latest_time is not None:
            recorded = first_unanchored if first_unanchored.tzinfo else first_unanchored.replace(tzinfo=dt.UTC)
            if recorded < report.latest_time - GRACE:
                report.problems.append(Problem("unanchored", f"chain {chain} at seq {top + 1}",
                                               "recorded before the latest checkpoint, committed by none"))
    purged = _purged(conn, list(gone))
    report.purged = len(purged)
    report.problems.extend(p for chain, p in gone.items() if chain not in purged)
    return report


def _purged(conn: Connection, chains: list[str]) -> set[str]:
    """Which of ``chains`` the retention purge erased: a ``dossier.purge`` record (itself in an anchored chain) names
    each. Looked up in whichever chain holds it (only when chains are gone: a reporting path, not a hot one)."""
    found: set[str] = set()
    for i in range(0, len(chains), 500):
        batch = chains[i:i + 500]
        found |= {str(e) for e in conn.execute(select(audit.c.entity_id).where(
            audit.c.event == PURGE_EVENT, audit.c.entity_type == "Patient", audit.c.entity_id.in_(batch))).scalars()}
    return found


def public_key_text(anchor: Anchor) -> str:
    """What ``carnet audit public-key`` prints: the key id and the key (raw base64 and PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = Ed25519PublicKey.from_public_bytes(anchor.public_raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return json.dumps({"key_id": rc.key_id(anchor.public_raw),
                       "public_key": base64.b64encode(anchor.public_raw).decode("ascii"), "pem": pem}, indent=2)


__all__ = ["GRACE", "Problem", "Report", "name", "public_key_text", "read_log", "verify"]
