"""Signed checkpoints outside the database (issue 15 §2): what they commit to, and each attack of someone with write
access to the database (or to the checkpoint store) that ``carnet audit verify`` must report."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from carnet.audit import receipt as rc
from carnet.audit.anchor import Anchor, checkpoint, from_settings, name
from carnet.audit.anchor_verify import verify
from carnet.audit.log import chain_hash, verify_all
from carnet.blobs.signing import SigningKey
from carnet.context import Services
from carnet.db.tables import audit, audit_chain
from tests.audit.conftest import T0, fill


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def clock(minutes: int):  # type: ignore[no-untyped-def]
    return lambda: at(minutes)


def problems(services: Services, anchor: Anchor) -> list[str]:
    with services.engine.connect() as conn:
        return [str(p) for p in verify(conn, anchor).problems]


def test_each_checkpoint_commits_to_the_heads_that_moved_and_links_to_the_one_before(own: Services) -> None:
    anchor = from_settings(own.settings)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for key in (a, b, c):
        fill(own, key, 3)
    assert checkpoint(own.engine, anchor, clock(10)) == [1]
    assert checkpoint(own.engine, anchor, clock(11)) == []  # nothing moved: no checkpoint
    fill(own, b, 2)
    assert checkpoint(own.engine, anchor, clock(12)) == [2]
    first, second = anchor.get(1), anchor.get(2)
    assert first["tree_size"] == 3 and {h[0] for h in first["heads"]} == {str(a), str(b), str(c)}
    assert second["tree_size"] == 1 and second["heads"][0][:2] == [str(b), 5]
    assert second["previous"] == rc.checkpoint_hash(first)
    assert rc.signature_ok(second, anchor.public_raw)
    with own.engine.connect() as conn:
        row = conn.execute(select(audit_chain).where(audit_chain.c.dossier_key == b)).one()
        assert (row.anchored_seq, row.anchored_in) == (5, 2)
    assert problems(own, anchor) == []


def test_a_head_that_moves_while_its_checkpoint_is_written_stays_for_the_next(own: Services,
                                                                              monkeypatch: Any) -> None:
    """``moved`` (the flag that keeps a head in the partial index, set by every append: migration 0024) is cleared
    only for the head a checkpoint committed: a record appended between the checkpointer's read and its mark keeps
    the chain for the next checkpoint, which commits the new head."""
    anchor = from_settings(own.settings)
    a, b = uuid.uuid4(), uuid.uuid4()
    fill(own, a, 2)
    fill(own, b, 2)
    put = anchor.store.put

    def put_then_append(key: str, data: bytes) -> None:  # the checkpoint is durable; b moves before the mark
        put(key, data)
        fill(own, b, 1)

    monkeypatch.setattr(anchor.store, "put", put_then_append)
    assert checkpoint(own.engine, anchor, clock(10)) == [1]
    monkeypatch.setattr(anchor.store, "put", put)
    with own.engine.connect() as conn:
        chains = select(audit_chain).where(audit_chain.c.dossier_key.in_([a, b]))
        rows = {r.dossier_key: r for r in conn.execute(chains)}
    assert (rows[a].seq, rows[a].anchored_seq, rows[a].moved) == (2, 2, False)
    assert (rows[b].seq, rows[b].anchored_seq, rows[b].moved) == (3, 2, True)
    assert checkpoint(own.engine, anchor, clock(11)) == [2]
    assert anchor.get(2)["tree_size"] == 1 and anchor.get(2)["heads"][0][:2] == [str(b), 3]
    assert checkpoint(own.engine, anchor, clock(12)) == []
    assert problems(own, anchor) == []


def test_a_first_checkpoint_over_many_chains_is_cut_into_several(own: Services) -> None:
    anchor = from_settings(own.settings)
    for _ in range(5):
        fill(own, uuid.uuid4(), 1)
    assert checkpoint(own.engine, anchor, clock(10), max_heads=2) == [1, 2, 3]
    assert [anchor.get(n)["tree_size"] for n in (1, 2, 3)] == [2, 2, 1]
    assert problems(own, anchor) == []


def test_deleting_the_last_640_records_and_rewinding_the_head_is_reported(own: Services) -> None:
    """The attack of the issue: the chain alone verifies after it; the checkpoint does not."""
    anchor = from_settings(own.settings)
    key = uuid.uuid4()
    fill(own, key, 700, emergency_at=650)
    checkpoint(own.engine, anchor, clock(800))
    with own.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.dossier_key == key, audit.c.seq > 60))
        last = conn.execute(select(audit).where(audit.c.dossier_key == key, audit.c.seq == 60)).one()
        conn.execute(update(audit_chain).where(audit_chain.c.dossier_key == key)
                     .values(seq=60, head=last.hash, prev=last.prev_hash, anchored_seq=60))
    with own.engine.connect() as conn:
        assert verify_all(conn)[2] == []  # the hash chain alone cannot tell
    found = problems(own, anchor)
    assert f"truncated chain {key} at seq 61: checkpoint 1 commits to 700 records, the database holds 60" in found
    assert any(p.startswith(f"rewound chain {key} at seq 60") for p in found)


def test_deleting_a_whole_chain_is_reported(own: Services) -> None:
    anchor = from_settings(own.settings)
    key, other = uuid.uuid4(), uuid.uuid4()
    fill(own, key, 4)
    fill(own, other, 2)
    checkpoint(own.engine, anchor, clock(10))
    with own.engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.dossier_key == key))
        conn.execute(delete(audit_chain).where(audit_chain.c.dossier_key == key))
    assert problems(own, anchor) == [f"chain-deleted chain {key}: checkpoint 1 commits to 4 records"]


def test_a_chain_erased_by_the_retention_purge_is_counted_not_reported(own: Services) -> None:
    """``carnet purge`` deletes a dossier's chain and records ``dossier.purge`` naming it in the system chain (as
    :func:`carnet.dossier.lifecycle.purge_due` does, in one transaction)."""
    from carnet.access.actors import Actor, ActorKind
    from carnet.audit.log import record
    from carnet.ids import SYSTEM_CHAIN

    anchor = from_settings(own.settings)
    purged, deleted = uuid.uuid4(), uuid.uuid4()
    fill(own, purged, 3)
    fill(own, deleted, 3)
    checkpoint(own.engine, anchor, clock(10))
    with own.engine.begin() as conn:
        for key in (purged, deleted):
            conn.execute(delete(audit).where(audit.c.dossier_key == key))
            conn.execute(delete(audit_chain).where(audit_chain.c.dossier_key == key))
        record(conn, dossier_key=SYSTEM_CHAIN, actor=Actor(ActorKind.OPERATOR, id="carnet-purge"), action="D",
               event="dossier.purge", now=at(11), entity_type="Patient", entity_id=str(purged))
    with own.engine.connect() as conn:
        report = verify(conn, anchor)
    assert report.purged == 1
    assert [str(p) for p in report.problems] == [f"chain-deleted chain {deleted}: checkpoint 1 commits to 3 records"]


def test_rewriting_a_record_and_every_later_hash_is_reported(own: Services) -> None:
    anchor = from_settings(own.settings)
    key = uuid.uuid4()
    fill(own, key, 6, emergency_at=3)
    checkpoint(own.engine, anchor, clock(10))
    with own.engine.begin() as conn:  # the break-glass read becomes a normal one, and the chain is re-hashed
        rows = [dict(r) for r in conn.execute(select(audit).where(audit.c.dossier_key == key)
                                              .order_by(audit.c.seq)).mappings()]
        rows[2].update(mode="normal", reason=None)
        prev = rows[1]["hash"]
        for r in rows[2:]:
            r["prev_hash"], r["hash"] = prev, chain_hash(prev, r)
            prev = r["hash"]
            conn.execute(update(audit).where(audit.c.dossier_key == key, audit.c.seq == r["seq"])
                         .values(mode=r["mode"], reason=r["reason"], prev_hash=r["prev_hash"], hash=r["hash"]))
        conn.execute(update(audit_chain).where(audit_chain.c.dossier_key == key).values(head=prev))
    with own.engine.connect() as conn:
        assert verify_all(conn)[2] == []
    assert problems(own, anchor) == [f"rewritten chain {key} at seq 6: checkpoint 1 commits to another record"]


def test_a_deleted_checkpoint_is_reported_in_the_middle_and_at_the_end(own: Services) -> None:
    anchor = from_settings(own.settings)
    key = uuid.uuid4()
    for n in range(3):
        fill(own, key, 1)
        checkpoint(own.engine, anchor, clock(10 + n))
    anchor.store.delete(name(2))
    assert "checkpoint-missing checkpoint 2: a gap in the checkpoint log" in problems(own, anchor)
    anchor.store.delete(name(3))  # now the latest one: the database still says the chain was anchored in it
    assert problems(own, anchor) == [f"anchor-missing chain {key} at seq 3: marked as committed by checkpoint 3, "
                                     "which is missing or does not commit to it"]


def _rewrite(anchor: Anchor, number: int, cp: dict) -> None:  # type: ignore[type-arg]
    """What only someone with write access to the checkpoint store could do (the store never overwrites)."""
    anchor.store.delete(name(number))
    anchor.store.put(name(number), json.dumps(cp).encode())


def test_an_altered_checkpoint_or_a_forged_signature_is_reported(own: Services) -> None:
    anchor = from_settings(own.settings)
    key = uuid.uuid4()
    fill(own, key, 3)
    checkpoint(own.engine, anchor, clock(10))
    fill(own, key, 1)
    checkpoint(own.engine, anchor, clock(11))
    cp = anchor.get(1)
    _rewrite(anchor, 1, {**cp, "heads": [[str(key), 2, cp["heads"][0][2]]]})
    assert "checkpoint-invalid checkpoint 1: its heads do not match its signed root" in problems(own, anchor)
    forger = Anchor(anchor.store, SigningKey.generate().public_raw, SigningKey.generate())
    forged = forger.sign(1, rc.GENESIS, [(str(key), 2, cp["heads"][0][2])], at(10))
    _rewrite(anchor, 1, forged)
    found = problems(own, anchor)
    assert any(p.startswith("checkpoint-forged checkpoint 1") for p in found)
    # even signed with the right key, a checkpoint replaced by one committing to a shorter chain breaks the link
    with own.engine.connect() as conn:
        second = conn.execute(select(audit.c.hash).where(audit.c.dossier_key == key, audit.c.seq == 2)).scalar_one()
    _rewrite(anchor, 1, anchor.sign(1, rc.GENESIS, [(str(key), 2, second)], at(10)))
    assert "checkpoint-link checkpoint 2: checkpoint 1 was replaced or altered" in problems(own, anchor)


def test_records_kept_out_of_every_checkpoint_are_reported(own: Services) -> None:
    """Marking a chain as anchored in the database keeps its new records out of the next checkpoints; once they
    are older than the latest checkpoint by more than the grace, verify says so."""
    anchor = from_settings(own.settings)
    key, other = uuid.uuid4(), uuid.uuid4()
    fill(own, key, 2)
    checkpoint(own.engine, anchor, clock(10))
    fill(own, key, 2, start=at(20))
    with own.engine.begin() as conn:
        conn.execute(update(audit_chain).where(audit_chain.c.dossier_key == key).values(anchored_seq=4))
    fill(own, other, 1, start=at(60))
    checkpoint(own.engine, anchor, clock(61))
    found = problems(own, anchor)
    assert f"unanchored chain {key} at seq 3: recorded before the latest checkpoint, committed by none" in found
    assert any(p.startswith(f"anchor-missing chain {key} at seq 4") for p in found)  # the mark names checkpoint 1


def test_two_checkpointers_racing_do_not_fork_the_log(own: Services) -> None:
    """Two nodes (each its own view of the store) checkpoint at once, round after round, while records arrive."""
    nodes = [from_settings(own.settings), from_settings(own.settings)]
    errors: list[BaseException] = []
    keys = [uuid.uuid4() for _ in range(4)]

    def node(anchor: Anchor) -> None:
        try:
            for i in range(8):
                fill(own, keys[i % 4], 1, start=at(i))
                checkpoint(own.engine, anchor, clock(100 + i))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(a,)) for a in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(int(k) for k, _ in nodes[0].store.iter_blobs())
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 2
    for n in numbers[1:]:
        assert nodes[0].get(n)["previous"] == rc.checkpoint_hash(nodes[0].get(n - 1))
    checkpoint(own.engine, nodes[0], clock(200))
    assert problems(own, nodes[0]) == []


class _AtOnce:
    """A store whose first put waits for the other node's: both try to write the same number at the same moment."""

    def __init__(self, store: Any, barrier: threading.Barrier) -> None:
        self.store, self.barrier, self.first = store, barrier, True

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.store, attr)

    def put(self, key: str, data: bytes) -> None:
        if self.first:
            self.first = False
            self.barrier.wait(timeout=30)
        self.store.put(key, data)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_nodes_writing_the_same_number_at_once_one_wins_the_other_moves_on(
        own: Services, kind: str, request: pytest.FixtureRequest) -> None:
    base = from_settings(own.settings)
    store = base.store if kind == "local" else request.getfixturevalue("s3_server").store(prefix="carnet/checkpoints")
    barrier = threading.Barrier(2)
    nodes = [Anchor(_AtOnce(store, barrier), base.public_raw, base.key) for _ in range(2)]  # type: ignore[arg-type]
    fill(own, uuid.uuid4(), 2)
    fill(own, uuid.uuid4(), 1)
    made: list[list[int]] = []
    errors: list[BaseException] = []

    def node(anchor: Anchor, minute: int) -> None:
        try:
            made.append(checkpoint(own.engine, anchor, clock(minute)))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(a, 10 + i)) for i, a in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(int(k) for k, _ in store.iter_blobs())
    assert sorted(n for m in made for n in m) == numbers
    assert numbers[0] == 1 and numbers == list(range(1, len(numbers) + 1))  # 1, or 1 and 2: never two of one
    if len(numbers) == 2:
        assert nodes[0].get(2)["previous"] == rc.checkpoint_hash(nodes[0].get(1))
    assert problems(own, Anchor(store, base.public_raw)) == []
    if kind == "s3":  # beside the documents: the blob store (and so its garbage collector) never lists them
        documents = request.getfixturevalue("s3_server").store(bucket=store.bucket, prefix="carnet")
        assert list(documents.iter_blobs()) == []


def test_checkpoints_go_beside_the_documents_unless_told_otherwise(tmp_path: Any) -> None:
    from carnet.config import Settings

    assert Settings(var_dir=tmp_path, blob_url=None, checkpoint_url=None).effective_checkpoint_url == \
        str(tmp_path / "checkpoints")
    assert Settings(var_dir=tmp_path, blob_url="s3://docs/prod/", checkpoint_url=None).effective_checkpoint_url == \
        "s3://docs/prod/checkpoints"
    assert Settings(var_dir=tmp_path, blob_url="s3://docs/prod", checkpoint_url="/worm").effective_checkpoint_url == \
        "/worm"
    with pytest.raises(ValueError, match="must not be the document store"):
        from_settings(Settings(var_dir=tmp_path, blob_url=None, checkpoint_url=str(tmp_path / "blobs")))


def test_the_worker_signs_a_checkpoint_once_the_latest_is_older_than_the_interval(own: Services) -> None:
    from carnet.notify.worker import run_jobs

    anchor = from_settings(own.settings)
    key = uuid.uuid4()
    fill(own, key, 2)
    now = dt.datetime.now(dt.UTC)
    own.clock = lambda: now
    run_jobs(own)
    assert anchor.latest()[0] == 1
    fill(own, key, 1)
    run_jobs(own)  # the latest checkpoint is not CARNET_CHECKPOINT_SECONDS (60) old yet
    assert anchor.latest()[0] == 1
    own.clock = lambda: now + dt.timedelta(seconds=61)
    run_jobs(own)
    assert anchor.latest()[0] == 2 and anchor.get(2)["heads"][0][:2] == [str(key), 3]
