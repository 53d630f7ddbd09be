"""``benchmarks/fill.py`` (issue 10 §5) writes what Carnet itself would: on a fresh PostgreSQL database, Carnet's
services find the filled documents, open their sealed contents (data key unwrapped by the var dir's master key, the
AAD and the SHA-256 checked), and ``carnet audit verify`` accepts every chain; a second run adds to the same
database (resumable, incremental) and the chains still verify."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import run
from carnet.db.engine import make_engine
from carnet.db.tables import audit, audit_chain, document, document_token, dossier, resource_locator
from carnet.documents import reading
from tests.conftest import fresh_postgres_database, require_postgres
from tests.scale.nodes import clean_env
from tests.test_examples import carnet

ROOT = Path(__file__).resolve().parents[2]
PER_DOSSIER = 10


def fill(url: str, var: Path, documents: int) -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fill.py"), "--database-url", url, "--var-dir",
                    str(var), "--documents", str(documents), "--docs-per-dossier", str(PER_DOSSIER), "--chunk", "5",
                    "--processes", "2"], check=True, cwd=ROOT, env=clean_env(), capture_output=True, timeout=300)


def verify(url: str, var: Path) -> str:
    done = subprocess.run(carnet("audit", "verify"), cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=clean_env(CARNET_DATABASE_URL=url, CARNET_VAR_DIR=str(var)))
    assert done.returncode == 0, done.stdout + done.stderr
    return " ".join(done.stdout.split())


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    require_postgres()
    url, drop = fresh_postgres_database()
    var = tmp_path / "var"
    try:
        fill(url, var, 200)
        yield url, var
    finally:
        drop()


def test_filled_documents_read_back_and_chains_verify(filled: tuple[str, Path]) -> None:
    url, var = filled
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from load import pro_actor

    services = build_services(Settings(var_dir=var, database_url=url, base_url="http://127.0.0.1:8000"),
                              make_engine(url, pool_size=1))
    try:
        with services.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(dossier)).scalar() == 20
            assert conn.execute(select(func.count()).select_from(document)).scalar() == 200
            assert conn.execute(select(func.count()).select_from(resource_locator)).scalar() == 200
            assert conn.execute(select(func.count()).select_from(document_token)).scalar() >= 200
            assert conn.execute(select(func.count()).select_from(audit)).scalar() == 20 * (2 + PER_DOSSIER)
            keys = list(conn.execute(select(dossier.c.dossier_key).order_by(dossier.c.dossier_key)).scalars())
        actor = pro_actor()
        for key in (keys[0], keys[-1]):  # the professional the dossiers were created by finds and opens them
            found, total = run(services, actor, lambda ctx, k=key: reading.search(
                ctx, reading.DocumentQuery(k, [], 20, 0)))
            assert total == PER_DOSSIER and len(found) == PER_DOSSIER
            doc_id = found[0].split('"id":"', 1)[1].split('"', 1)[0]
            data, content_type, row = run(services, actor, lambda ctx, d=doc_id: reading.retrieve(ctx, d))
            assert content_type == "application/pdf" and len(data) == 1024 and data.startswith(b"%PDF-1.4")
            assert row.dossier_key == key
        with services.engine.connect() as conn:  # each read appended to its dossier's chain
            assert conn.execute(select(audit_chain.c.seq).where(audit_chain.c.dossier_key == keys[0])).scalar() \
                == 2 + PER_DOSSIER + 2
    finally:
        services.engine.dispose()
    out = verify(url, var)
    assert "20 chains, 244 records" in out and " 0 problems" in out

    fill(url, var, 400)  # incremental: the next 200 documents, in new dossiers
    fill(url, var, 400)  # nothing left to do
    services = build_services(Settings(var_dir=var, database_url=url), make_engine(url, pool_size=1))
    try:
        with services.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(document)).scalar() == 400
            assert conn.execute(select(func.count()).select_from(dossier)).scalar() == 40
    finally:
        services.engine.dispose()
    assert "40 chains, 484 records" in verify(url, var)


def test_the_templates_give_what_carnet_writes_and_stop_the_fill_when_they_do_not(tmp_path: Path) -> None:
    """The filler fills each document's rows (COPY text), served resource, tokens and audit body from templates made
    once by Carnet's own functions and seals its content without the stream's machinery; each chunk checks one
    document against the functions themselves (and opens its blob with Carnet's reader), and a mismatch stops it."""
    import datetime as dt
    import hashlib
    import uuid

    from carnet.blobs import KeyRing
    from carnet.documents.stored import aad

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fill as filler
    from load import pdf_bytes, pro_actor

    keyring = KeyRing.load_or_create(tmp_path / "master-key.json")
    tpl = filler._Templates(pro_actor(), filler.BASE_URL, 900)
    doc, key, event = filler._new_id(), filler._new_id(), filler._new_id()
    assert doc.version == 7 and doc.variant == uuid.RFC_4122 and doc != key
    now = dt.datetime.now(dt.UTC)
    data = pdf_bytes(doc.hex, 900)
    master = f"urn:uuid:{uuid.uuid4()}"
    sha256 = hashlib.sha256(data).hexdigest()

    def check(blob: bytes, wrapped: bytes, key_id: str) -> None:
        tpl.check(keyring, master, doc, key, now, data, sha256, event, blob, wrapped, key_id)

    sealed = filler._seal_small(keyring, data, aad(key, doc))
    check(*sealed)  # agrees: no error
    assert master in tpl.served_json(master, str(doc), str(key), "2026-12-05T00:00:00.000Z", data)
    for name, changed in (("audit", tpl.audit.replace('"ITI-105"', '"ITI-65"')),
                          ("served", tpl.served.replace('"current"', '"superseded"')),
                          ("document", tpl.document.replace("\tcurrent\t", "\tsuperseded\t"))):
        saved = getattr(tpl, name)
        assert changed != saved
        setattr(tpl, name, changed)
        with pytest.raises(AssertionError, match="no longer give what Carnet writes"):
            check(*sealed)
        setattr(tpl, name, saved)
    from carnet.blobs import IntegrityError

    blob, wrapped, key_id = sealed
    with pytest.raises(IntegrityError):  # a blob sealed for another document does not open
        check(filler._seal_small(keyring, data, aad(key, filler._new_id()))[0], wrapped, key_id)
