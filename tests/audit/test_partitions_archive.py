"""The audit partitioned by month (PostgreSQL) and past months archived to the object store (issue 10 §3;
docs/AUDIT.md "Partitions" and "Archives"): partitions made ahead, appends landing in their month, archive → a
signed file in the store and the month dropped, verification across archives and live records, tampering and
deletion reported, the current month and unanchored months refused, idempotence, a crash between write and drop."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from carnet.access.actors import Actor, ActorKind
from carnet.audit import archive as arch
from carnet.audit import partitions as parts
from carnet.audit.anchor import checkpoint, from_settings
from carnet.audit.anchor_verify import verify
from carnet.audit.log import verify_all
from carnet.blobs import BlobStore
from carnet.context import Services, run
from carnet.db.tables import access_review, audit, audit_archive, dossier
from carnet.history.audit_events import archived_before
from tests.audit.conftest import fill

MARCH = dt.date(2026, 3, 1)
APRIL = dt.date(2026, 4, 1)
MAY_NOW = dt.datetime(2026, 5, 2, 8, 0, tzinfo=dt.UTC)


def _at(month: dt.date, day: int = 10) -> dt.datetime:
    return dt.datetime(month.year, month.month, day, 9, 0, tzinfo=dt.UTC)


def _partition_of(services: Services, key: uuid.UUID, seq: int) -> str:
    """The partition holding a record (on Citus the query runs on a shard, whose name ends in ``_<shard id>``)."""
    with services.engine.connect() as conn:
        name = str(conn.execute(text("SELECT tableoid::regclass::text FROM audit WHERE dossier_key = :k AND seq = :s"),
                                {"k": key, "s": seq}).scalar())
    return re.sub(r"_\d+$", "", name)


def _problems(services: Services, store: BlobStore) -> list[str]:
    """Everything ``carnet audit verify`` would report."""
    with services.engine.connect() as conn:
        report = verify(conn, from_settings(services.settings), store)
        _, _, findings = verify_all(conn, report.archives.runs)
    return [str(p) for p in report.problems] + [f"{f.problem} chain {f.dossier_key} at seq {f.seq}" for f in findings]


def _two_months(services: Services) -> tuple[uuid.UUID, uuid.UUID]:
    """Chain a: 3 records in March, 2 in April; chain b: 2 in March. Then a checkpoint commits to them."""
    a, b = uuid.uuid4(), uuid.uuid4()
    fill(services, a, 3, start=_at(MARCH))
    fill(services, b, 2, start=_at(MARCH, 20))
    fill(services, a, 2, start=_at(APRIL))
    assert checkpoint(services.engine, from_settings(services.settings), lambda: MAY_NOW)
    return a, b


def _archive(services: Services, store: BlobStore, before: dt.date = APRIL) -> list[arch.Done]:
    return arch.archive_before(services.engine, store, from_settings(services.settings), before, MAY_NOW,
                               checkpoints_on=True)


def test_partitions_are_made_ahead_once_and_an_append_lands_in_its_month(own: Services) -> None:
    with own.engine.connect() as conn:
        pg = parts.partitioned(conn)
    assert pg == (own.engine.dialect.name == "postgresql")
    now = dt.datetime(2031, 1, 15, tzinfo=dt.UTC)
    made = parts.make_ahead(own.engine, now, 2)
    assert parts.make_ahead(own.engine, now, 2) == []  # idempotent
    if not pg:
        assert made == []  # SQLite: one plain table
        return
    assert made == [dt.date(2031, 1, 1), dt.date(2031, 2, 1), dt.date(2031, 3, 1)]
    key = uuid.uuid4()
    fill(own, key, 1, start=dt.datetime(2031, 2, 28, 23, 59, tzinfo=dt.UTC))
    fill(own, key, 1, start=dt.datetime(2031, 3, 1, 0, 0, tzinfo=dt.UTC))
    assert _partition_of(own, key, 1) == "audit_y2031m02"
    assert _partition_of(own, key, 2) == "audit_y2031m03"
    # a month without a partition yet goes to the default partition; making it moves the record, unchanged
    fill(own, key, 1, start=dt.datetime(2035, 6, 1, tzinfo=dt.UTC))
    assert _partition_of(own, key, 3) == "audit_default"
    with own.engine.begin() as conn:
        assert parts.default_months(conn) == [dt.date(2035, 6, 1)]
        assert parts.make(conn, [dt.date(2035, 6, 1)]) == [dt.date(2035, 6, 1)]
    assert _partition_of(own, key, 3) == "audit_y2035m06"
    with own.engine.connect() as conn:
        assert verify_all(conn)[2] == []


def test_the_worker_makes_the_partitions_ahead(own: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    job = next(j for j in own.periodic_jobs if getattr(j, "__name__", "") == "make_audit_partitions")
    monkeypatch.setattr(own, "clock", lambda: dt.datetime(2034, 1, 20, tzinfo=dt.UTC))
    job(own)
    with own.engine.connect() as conn:
        made = set(parts.attached(conn))
    if own.engine.dialect.name == "postgresql":  # this month and CARNET_AUDIT_PARTITIONS_AHEAD (3) more
        assert {dt.date(2034, m, 1) for m in (1, 2, 3, 4)} <= made and dt.date(2034, 5, 1) not in made
    else:
        assert made == set()


def test_a_partition_maker_that_fails_is_reported_by_the_worker_and_tried_again_next_pass(
        own: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from carnet.notify.worker import run_jobs

    real = parts.make_ahead

    def not_now(*_: Any) -> list[dt.date]:
        raise RuntimeError("lock not had in time")

    monkeypatch.setattr(own, "periodic_jobs", [j for j in own.periodic_jobs
                                               if getattr(j, "__name__", "") == "make_audit_partitions"])
    monkeypatch.setattr(parts, "make_ahead", not_now)
    assert run_jobs(own).jobs_failed == ["make_audit_partitions"]
    monkeypatch.setattr(parts, "make_ahead", real)
    assert run_jobs(own).jobs_failed == []


@pytest.mark.parametrize("own", ["postgresql"], indirect=True)  # partitions exist on PostgreSQL only
def test_two_partition_makers_at_once_make_each_month_once(own: Services) -> None:
    now = dt.datetime(2032, 5, 3, tzinfo=dt.UTC)
    barrier = threading.Barrier(2)
    made: list[list[dt.date]] = []
    errors: list[BaseException] = []

    def maker() -> None:
        try:
            barrier.wait()
            made.append(parts.make_ahead(own.engine, now, 3))
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=maker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(made, key=len) == [[], [dt.date(2032, m, 1) for m in (5, 6, 7, 8)]]
    with own.engine.connect() as conn:
        assert {dt.date(2032, m, 1) for m in (5, 6, 7, 8)} <= set(parts.attached(conn))


def test_a_month_is_archived_to_the_store_dropped_and_verified_with_the_live_months(own: Services) -> None:
    store = arch.store_from_settings(own.settings)
    a, b = _two_months(own)
    done = _archive(own, store)
    assert [(d.month, d.records, d.written) for d in done] == [(MARCH, 5, True)]
    assert store.exists("2026-03-0001")
    with own.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.recorded < parts.bounds(APRIL)[0])).scalar() == 0
        assert conn.execute(select(func.count()).select_from(audit)).scalar() == 2  # April's, live
        assert conn.execute(select(audit_archive.c.records, audit_archive.c.chains)).one() == (5, 2)
        if parts.partitioned(conn):
            assert MARCH not in parts.attached(conn) and APRIL not in parts.attached(conn)
    # the file verifies on its own: its links into and out of the month, signed by the checkpoint key
    checked = arch.check(store.get_stream("2026-03-0001"), from_settings(own.settings).public_raw)
    assert checked.problems == []
    assert checked.manifest["runs"][0][1:3] == [1, "0" * 64] and checked.manifest["records"] == 5
    assert _problems(own, store) == []  # a: seq 1-3 archived, 4-5 live; b wholly archived
    fill(own, b, 1, start=MAY_NOW)  # the first live record of b links to its last archived one
    assert _problems(own, store) == []
    assert _archive(own, store) == []  # again: nothing more
    if own.engine.dialect.name == "postgresql":  # an empty month made ahead is dropped, no file written
        parts.make_ahead(own.engine, dt.datetime(2025, 12, 5, tzinfo=dt.UTC), 0)
        assert [(d.month, d.key) for d in _archive(own, store)] == [(dt.date(2025, 12, 1), "")]
        assert [k for k, _ in store.iter_blobs()] == ["2026-03-0001"]
    # the patient's history says from when it shows events (portal: "Events before … were moved to the archives")
    pro = Actor(ActorKind.PROFESSIONAL, id="810001045367", profession="10")
    assert run(own, pro, lambda ctx: archived_before(ctx, a)) == _at(APRIL) + dt.timedelta(minutes=3)  # 1 a minute
    assert run(own, pro, lambda ctx: archived_before(ctx, uuid.uuid4())) is None


def test_an_altered_or_missing_archive_is_reported_by_month_and_chain_only(own: Services) -> None:
    store = arch.store_from_settings(own.settings)
    a, _ = _two_months(own)
    _archive(own, store)
    path = store.path_for("2026-03-0001")  # type: ignore[attr-defined]
    original = path.read_bytes()
    lines = gzip.decompress(original).splitlines(keepends=True)
    record = json.loads(lines[0])
    body = json.loads(record["body"])
    body["actor_id"] = "899999999999"  # another professional, every hash left as it was
    record["body"] = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    lines[0] = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    path.chmod(0o600)
    path.write_bytes(gzip.compress(b"".join(lines)))
    found = _problems(own, store)
    assert any(p.startswith("archive-altered archive 2026-03 part 1: record of chain") and "was altered" in p
               for p in found), found
    assert any("content hash" in p for p in found), found
    path.unlink()
    found = _problems(own, store)
    assert "archive-missing archive 2026-03 part 1: not in the archive store" in found, found
    assert f"removed chain {a} at seq 4" in found  # the live records no longer follow anything
    assert all("Testé" not in p and "899999999999" not in p for p in found)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(original)
    assert _problems(own, store) == []


def test_the_current_month_and_a_month_no_checkpoint_covers_are_refused(own: Services) -> None:
    store = arch.store_from_settings(own.settings)
    fill(own, uuid.uuid4(), 2, start=_at(MARCH))
    with pytest.raises(arch.ArchiveRefused, match="current month is never archived"):
        arch.archive_before(own.engine, store, from_settings(own.settings), dt.date(2026, 6, 1), MAY_NOW,
                            checkpoints_on=True)
    with pytest.raises(arch.ArchiveRefused, match="2026-03: 1 chains have records no signed checkpoint"):
        _archive(own, store)
    with own.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit)).scalar() == 2  # nothing dropped
        assert conn.execute(select(func.count()).select_from(audit_archive)).scalar() == 0


def test_a_month_with_an_emergency_access_awaiting_review_is_refused_until_reviewed(own: Services) -> None:
    store = arch.store_from_settings(own.settings)
    key = uuid.uuid4()
    with own.engine.begin() as conn:  # access_review points to the dossier
        conn.execute(dossier.insert().values(
            dossier_key=key, status="active", ins_system="urn:oid:1.2.250.1.213.1.4.8", ins="279035121518989",
            family="Test", given="Alix", birth_date=dt.date(1979, 3, 5), gender="female", birthplace="75056",
            created_at=_at(MARCH), created_by="test", creation_channel="counter", last_updated=_at(MARCH),
            resource="{}"))
    fill(own, key, 3, start=_at(MARCH), emergency_at=2)
    checkpoint(own.engine, from_settings(own.settings), lambda: MAY_NOW)
    with pytest.raises(arch.ArchiveRefused, match="2026-03: 1 emergency or regulation accesses await their review"):
        _archive(own, store)
    with own.engine.begin() as conn:
        conn.execute(access_review.insert().values(dossier_key=key, seq=2, reviewed_at=MAY_NOW, reviewed_by="x",
                                                   outcome="justified"))
    assert [d.records for d in _archive(own, store)] == [3]


def test_a_run_stopped_between_the_write_and_the_drop_is_finished_by_the_next(
        own: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    store = arch.store_from_settings(own.settings)
    _two_months(own)
    real = arch.check

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed after the write")

    monkeypatch.setattr(arch, "check", dies)
    with pytest.raises(RuntimeError):
        _archive(own, store)
    assert store.exists("2026-03-0001")
    with own.engine.connect() as conn:  # the month is still whole in the database
        assert conn.execute(select(func.count()).select_from(audit)).scalar() == 7
    monkeypatch.setattr(arch, "check", real)
    done = _archive(own, store)
    assert [(d.key, d.written) for d in done] == [("2026-03-0001", False)]
    assert _problems(own, store) == []


@pytest.mark.parametrize("own", ["sqlite"], indirect=True)  # the store is what differs: once is enough
def test_a_month_is_archived_to_s3(own: Services, s3_server: Any) -> None:
    store = s3_server.store(prefix=f"carnet-{uuid.uuid4().hex[:8]}/audit-archive")
    _two_months(own)
    assert [d.key for d in _archive(own, store)] == ["2026-03-0001"]
    assert [k for k, _ in store.iter_blobs()] == ["2026-03-0001"]
    assert _problems(own, store) == []
    assert _archive(own, store) == []


def test_the_archive_store_is_beside_the_documents_and_never_the_documents_themselves(tmp_path: Any) -> None:
    from carnet.config import Settings

    assert Settings(var_dir=tmp_path, blob_url=None, audit_archive_url=None).effective_audit_archive_url == \
        str(tmp_path / "audit-archive")
    assert Settings(var_dir=tmp_path, blob_url="s3://docs/prod", audit_archive_url=None
                    ).effective_audit_archive_url == "s3://docs/prod/audit-archive"
    with pytest.raises(ValueError, match="must not be the document store"):
        arch.store_from_settings(Settings(var_dir=tmp_path, blob_url=str(tmp_path / "b"),
                                          audit_archive_url=str(tmp_path / "b")))


def test_an_archive_rewritten_and_signed_again_by_someone_holding_the_key_fails_against_the_checkpoints(
        own: Services) -> None:
    """The archive alone verifies (hashes recomputed, signed with the real key, its row in audit_archive updated);
    the checkpoint that committed to the original record does not."""
    import io

    from carnet.audit.log import chain_hash

    store = arch.store_from_settings(own.settings)
    a = uuid.uuid4()
    fill(own, a, 3, start=_at(MARCH))
    assert checkpoint(own.engine, from_settings(own.settings), lambda: _at(APRIL, 1)) == [1]  # commits to a:3
    fill(own, a, 2, start=_at(APRIL))
    assert checkpoint(own.engine, from_settings(own.settings), lambda: MAY_NOW) == [2]
    _archive(own, store)
    path = store.path_for("2026-03-0001")  # type: ignore[attr-defined]
    rows, heads = [], {}
    for raw in gzip.decompress(path.read_bytes()).splitlines()[:-1]:
        rec = json.loads(raw)
        row = {**json.loads(rec["body"]), "seq": rec["seq"]}
        if rec["chain"] == str(a) and rec["seq"] == 3:
            row["actor_id"] = "899999999999"
        row["prev_hash"] = heads.get(rec["chain"], rec["prev_hash"])
        row["hash"] = heads[rec["chain"]] = chain_hash(row["prev_hash"], row)
        rows.append(row)
    out = io.BytesIO()
    manifest = arch.write_file(iter(rows), MARCH, 1, from_settings(own.settings), out)
    path.chmod(0o600)
    path.write_bytes(out.getvalue())
    with own.engine.begin() as conn:
        conn.execute(audit_archive.update().values(content_sha256=manifest["content_sha256"]))
    assert arch.check(store.get_stream("2026-03-0001"), from_settings(own.settings).public_raw).problems == []
    found = _problems(own, store)
    assert any(p.startswith(f"rewritten chain {a} at seq 3: checkpoint 1 commits to another record") for p in found)
    assert f"reordered chain {a} at seq 4" in found  # April's first record links to the original
