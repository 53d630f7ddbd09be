"""The blob garbage collector (carnet.documents.blob_gc) on SQLite and PostgreSQL, local files and S3: a crash
between the blob write and the commit leaves an orphan that a pass with no grace removes, that the default grace
keeps, and a referenced blob is never removed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from carnet.access.actors import Actor, ActorKind
from carnet.config import Settings
from carnet.context import Services, run
from carnet.db.engine import make_engine
from carnet.db.tables import document
from carnet.documents import blob_refs
from carnet.documents import service as documents
from carnet.documents.blob_gc import collect
from tests.conftest import World
from tests.fhir.routes.test_documents import docref

PDF = b"%PDF-1.4\n% gc\n%%EOF\n"


@pytest.fixture(params=["local", "s3"])
def blob_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "local":
        return str(tmp_path / "blobs")
    server = request.getfixturevalue("s3_server")
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    return f"s3://{server.new_bucket()}/blobs"


@pytest.fixture
def gc_services(services: Services, blob_url: str, tmp_path: Path) -> Any:
    """The session's database, a blob store of this test's own."""
    settings = Settings(var_dir=tmp_path / "var", database_url=services.settings.database_url, blob_url=blob_url,
                        base_url=services.settings.base_url, master_key=None)
    svc = Services.build(settings, make_engine(services.settings.effective_database_url, pool_size=2))
    yield svc
    svc.engine.dispose()


def publish(svc: Services, world: World, data: bytes = PDF) -> str:
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    res = docref(world, data=data)
    res["content"][0]["attachment"].pop("data")
    run(svc, gp, lambda ctx: documents.publish(ctx, world.dossier, res, documents.Content(data, "application/pdf"),
                                               "ITI-65"))
    with svc.engine.connect() as conn:
        return str(conn.execute(select(document.c.blob_key).where(
            document.c.master_identifier == res["masterIdentifier"]["value"])).scalar_one())


CRASH = textwrap.dedent("""
    import json, os, sys, uuid
    from sqlalchemy.engine.base import Transaction
    from carnet.access.actors import Actor, ActorKind
    from carnet.config import Settings
    from carnet.context import Services, run
    from carnet.documents import service as documents
    a = json.loads(sys.argv[1])
    svc = Services.build(Settings(var_dir=__import__("pathlib").Path(a["var"]), database_url=a["db"],
                                  blob_url=a["blobs"]))
    def crash(self):
        os._exit(9)  # the process dies between the blob write and the commit
    Transaction.commit = crash
    gp = Actor(ActorKind.PROFESSIONAL, id=a["gp"], profession="10")
    run(svc, gp, lambda ctx: documents.publish(ctx, uuid.UUID(a["dossier"]), a["res"],
                                               documents.Content(a["data"].encode(), "application/pdf"), "ITI-65"))
""")


def crash_while_publishing(svc: Services, world: World) -> None:
    res = docref(world, data=PDF)
    res["content"][0]["attachment"].pop("data")
    args = {"var": str(svc.settings.var_dir), "db": svc.settings.database_url, "blobs": svc.settings.blob_url,
            "gp": world.pros["gp"], "dossier": str(world.dossier), "res": res, "data": PDF.decode()}
    env = {**os.environ, "CARNET_MASTER_KEY": ""}
    done = subprocess.run([sys.executable, "-c", CRASH, json.dumps(args)], env=env, capture_output=True,
                          timeout=120)
    assert done.returncode == 9, done.stderr.decode()[-2000:]


def test_a_crash_between_blob_and_commit_leaves_an_orphan_that_only_a_pass_past_the_grace_removes(
        gc_services: Services, world: World) -> None:
    kept = publish(gc_services, world)
    crash_while_publishing(gc_services, world)
    listed = {k for k, _ in gc_services.blobs.iter_blobs()}
    orphans = listed - {kept}
    assert len(orphans) == 1  # the crashed publish's blob is in the store, and no row has it
    with gc_services.engine.connect() as conn:
        assert blob_refs.referenced(conn, listed) == {kept}

    report = collect(gc_services)  # the default grace (24 h): too young to be an orphan for sure
    assert (report.old, report.removed) == (0, 0)
    assert {k for k, _ in gc_services.blobs.iter_blobs()} == listed

    report = collect(gc_services, grace=dt.timedelta(0), dry_run=True, now=dt.datetime.now(dt.UTC)
                     + dt.timedelta(seconds=5))
    assert report.removed == 1 and {k for k, _ in gc_services.blobs.iter_blobs()} == listed

    report = collect(gc_services, grace=dt.timedelta(0), now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert report.removed == 1
    assert {k for k, _ in gc_services.blobs.iter_blobs()} == {kept}  # the referenced blob stays
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    with gc_services.engine.connect() as conn:
        doc_id = conn.execute(select(document.c.document_id).where(document.c.blob_key == kept)).scalar_one()
    data, _, _ = run(gc_services, gp, lambda ctx: documents.retrieve(ctx, str(doc_id)))
    assert data == PDF


def test_referenced_blobs_are_never_removed_whatever_their_age(gc_services: Services, world: World) -> None:
    keys = {publish(gc_services, world, PDF + str(i).encode()) for i in range(3)}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    report = collect(gc_services, grace=dt.timedelta(0), now=later)
    assert (report.old, report.removed) == (3, 0)
    assert {k for k, _ in gc_services.blobs.iter_blobs()} == keys


def test_the_reference_lookup_goes_in_batches(gc_services: Services, world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    kept = publish(gc_services, world)
    monkeypatch.setattr(blob_refs, "BATCH", 7)
    unknown = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(30)]
    with gc_services.engine.connect() as conn:
        assert blob_refs.referenced(conn, [*unknown, kept]) == {kept}


def test_the_document_blob_key_is_indexed() -> None:
    assert any([c.name for c in ix.columns] == ["blob_key"] for ix in document.indexes)
    assert blob_refs.REFERENCING_COLUMNS == (document.c.blob_key,)


def test_stale_temp_files_go_too(tmp_path: Path, services: Services) -> None:
    settings = Settings(var_dir=tmp_path / "var", database_url=services.settings.database_url,
                        blob_url=str(tmp_path / "blobs"))
    svc = Services.build(settings, services.engine)
    key = hashlib.sha256(b"x").hexdigest()
    svc.blobs.put(key, b"x")
    leftover = svc.blobs.path_for(key).parent / f".tmp-{key}-1-abc"  # type: ignore[attr-defined]
    leftover.write_bytes(b"partial")
    assert collect(svc).leftovers == 0 and leftover.exists()
    report = collect(svc, grace=dt.timedelta(0), now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert report.leftovers == 1 and not leftover.exists()
    assert report.removed == 1  # and the blob no row references


def test_the_cli_refuses_a_grace_shorter_than_the_transaction_bound(tmp_path: Path, services: Services,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     session_key_file: Path) -> None:
    from carnet.cli import app

    monkeypatch.setenv("CARNET_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CARNET_DATABASE_URL", services.settings.effective_database_url)
    runner = CliRunner()
    r = runner.invoke(app, ["blobs", "gc", "--grace", "10m"])
    assert r.exit_code == 2 and "--force" in r.output
    r = runner.invoke(app, ["blobs", "gc", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "would remove 0 unreferenced" in r.output
    r = runner.invoke(app, ["blobs", "gc", "--grace", "0s", "--force"])
    assert r.exit_code == 0 and "removed 0 unreferenced" in r.output


def test_the_worker_runs_the_gc_every_interval(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from carnet.notify import worker

    stop = threading.Event()
    passes: list[int] = []

    def counted(svc: Services) -> None:
        passes.append(1)
        stop.set()

    monkeypatch.setattr(worker, "collect_blobs", counted)
    monkeypatch.setattr(services.settings, "blob_gc_interval_hours", 1e-12)
    worker.loop(services, interval=0.01, stop=stop, channels=worker.channels_for(services.settings))
    assert passes == [1]


def test_a_transaction_that_wrote_a_blob_and_outlived_the_bound_rolls_back(gc_services: Services, world: World,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from carnet.errors import FhirError

    monkeypatch.setattr(gc_services.settings, "transaction_seconds", -1)  # any duration is now too long
    with pytest.raises(FhirError) as info:
        publish(gc_services, world)
    assert info.value.status == 503 and info.value.issues[0].code == "transient"
    assert list(gc_services.blobs.iter_blobs()) == []  # its blob removed, its row never committed
