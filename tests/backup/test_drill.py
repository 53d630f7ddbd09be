"""The backup and restore drill, as an operator runs it (docs/OPERATIONS.md; issue 15 §8): a running Carnet with the
demo data and documents of several types (one large, streamed), ``carnet backup create`` while it serves, then
``carnet backup restore`` on an empty machine (a new var directory and an empty database), and Carnet started on
what was restored: every document opens with its exact bytes, ``carnet audit verify`` is clean, a patient signs in.
A backup that does not match its manifest, and a target that is not empty, are refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from carnet.auth.assertions import make_client_assertion
from carnet.db.engine import make_engine
from carnet.db.tables import document, ins_lookup
from carnet.demo import DEMO_PASSWORD, patient_ins
from tests.conftest import fresh_postgres_database, require_postgres
from tests.scale.consistency import audit_verify
from tests.scale.nodes import ASSERTION, HOST, PUBLIC, Node, binary, clean_env, pdf
from tests.test_examples import carnet

GP = "810900000018"  # the demo's médecin traitant
DEMO_INS = "100103690200014"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x1f\x15\xc4\x89" + \
    bytes.fromhex("0000000d49444154789c6300010000050001") + b"\x0d\x0a\x2d\xb4" + \
    bytes.fromhex("0000000049454e44ae426082")


def demo_token(http: httpx.Client, base: str, key_file: Path) -> str:
    from joserfc.jwk import ECKey

    key = ECKey.import_key(json.loads(key_file.read_text()))
    assertion = make_client_assertion(key, "demo-practice", f"{PUBLIC}/oauth/token", int(time.time()),
                                      professional_id=GP)
    r = http.post(f"{base}/oauth/token", headers=HOST, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION, "client_assertion": assertion})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(carnet(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)  # noqa: S603


@pytest.fixture(params=["sqlite", "postgresql"])
def machines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """Two machines' settings: the one backed up, and an empty one to restore on."""
    drops = []

    def database(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / name / 'var' / 'carnet.db'}"
        require_postgres()
        url, drop = fresh_postgres_database()
        drops.append(drop)
        return url

    try:
        yield tuple(clean_env(CARNET_VAR_DIR=str(tmp_path / name / "var"), CARNET_DATABASE_URL=database(name),
                              CARNET_COOKIE_SECURE="false") for name in ("old", "new"))  # type: ignore[misc]
    finally:
        for drop in drops:
            drop()


def publish(http: httpx.Client, base: str, access: str, patient: str, kind: str, data: bytes, loinc: str,
            ctype: str) -> str:
    import base64
    import uuid

    from tests.conftest import provide_bundle

    doc = {"resourceType": "DocumentReference", "status": "current",
           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
           "type": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
           "subject": {"reference": f"Patient/{patient}"},
           "content": [{"attachment": {"contentType": ctype, "data": base64.b64encode(data).decode()}}]}
    headers = {**HOST, "Authorization": f"Bearer {access}", "Accept": "application/fhir+json"}
    if kind == "ITI-105":
        r = http.post(f"{base}/fhir/DocumentReference", json=doc, headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])
    r = http.post(f"{base}/fhir", json=provide_bundle(doc, data), headers=headers)
    assert r.status_code == 200, r.text
    return next(e["response"]["location"].split("/")[1] for e in r.json()["entry"]
                if e["response"]["location"].startswith("DocumentReference/"))


def readable(http: httpx.Client, base: str, access: str, ids: list[str]) -> dict[str, bytes]:
    """The documents the demo GP reads, with their bytes (ITI-68)."""
    out = {}
    for doc_id in ids:
        r = binary(http, base, access, doc_id)
        if r.status_code == 200:
            out[doc_id] = r.content
    return out


def sign_in(http: httpx.Client, base: str, var: Path) -> None:
    r = http.post(f"{base}/portal/sign-in", headers=HOST,
                  data={"login": patient_ins(1), "password": DEMO_PASSWORD, "next": "/portal/"})
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/code"), r.text
    newest = max((var / "mail").iterdir(), key=lambda p: p.stat().st_mtime)
    code = re.search(r"\b(\d{6})\b", newest.read_text())
    assert code, "no one-time code in the newest message"
    page = http.get(f"{base}/portal/code", headers=HOST)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    r = http.post(f"{base}/portal/code", headers=HOST,
                  data={"csrf": csrf.group(1), "code": code.group(1), "next": "/portal/"})
    assert r.status_code == 303 and r.headers["location"] == "/portal/", r.text
    assert http.get(f"{base}/portal/", headers=HOST).status_code == 200


def test_a_backup_restored_on_an_empty_machine_opens_every_document_and_verifies(
        machines: tuple[dict[str, str], dict[str, str]], tmp_path: Path) -> None:
    old, new = machines
    for cmd in (("db", "upgrade"), ("demo",)):
        done = run(old, tmp_path, *cmd)
        assert done.returncode == 0, done.stdout + done.stderr
    engine = make_engine(old["CARNET_DATABASE_URL"], pool_size=1)
    with engine.connect() as conn:
        patient = str(conn.execute(select(ins_lookup.c.dossier_key).where(ins_lookup.c.ins == DEMO_INS)).scalar())
    client_key = Path(old["CARNET_VAR_DIR"]) / "demo-client-key.json"
    node = Node(tmp_path, old, "old-node").start()
    backup = tmp_path / "backup"
    try:
        with httpx.Client(timeout=60) as http:
            access = demo_token(http, node.base, client_key)
            for kind, data, loinc, ctype in (
                    ("ITI-105", pdf(30_000), "11488-4", "application/pdf"),
                    ("ITI-65", "Compte rendu en texte, accentué.\n".encode(), "11490-0", "text/plain"),
                    ("ITI-105", PNG, "18748-4", "image/png"),
                    ("ITI-65", pdf(5 * 1024 * 1024 + 7), "11502-2", "application/pdf")):  # streamed: 6 segments
                publish(http, node.base, access, patient, kind, data, loinc, ctype)
            with engine.connect() as conn:
                ids = [str(i) for i in conn.execute(select(document.c.document_id)).scalars()]
            before = readable(http, node.base, access, ids)
            done = run(old, tmp_path, "audit", "checkpoint")  # the audit chains anchored outside the database
            assert done.returncode == 0 and "written" in done.stdout, done.stdout + done.stderr
            done = run(old, tmp_path, "backup", "create", str(backup))  # while the node serves
            assert done.returncode == 0, done.stdout + done.stderr
            print(done.stdout)
            # a checkpoint signed after the snapshot names records the backup does not hold: it stays out of it
            publish(http, node.base, access, patient, "ITI-105", pdf(2_000), "11488-4", "application/pdf")
            done = run(old, tmp_path, "audit", "checkpoint")
            assert done.returncode == 0 and "written" in done.stdout, done.stdout + done.stderr
    finally:
        node.stop()
        engine.dispose()
    assert len(before) >= 4 and any(len(b) > 4 * 1024 * 1024 for b in before.values())
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert manifest["documents"] == len(ids) and "keys/master-key.json" in manifest["files"]
    assert "keys/checkpoint-key.pem" in manifest["files"] and manifest["checkpoints"] >= 1
    assert len(list((Path(old["CARNET_VAR_DIR"]) / "checkpoints").rglob("0*"))) > manifest["checkpoints"]

    tampered = tmp_path / "tampered"  # a damaged copy is refused before anything is written
    shutil.copytree(backup, tampered)
    victim = next(p for p in (tampered / "blobs").rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes()[:-1] + bytes([victim.read_bytes()[-1] ^ 1]))
    done = run(new, tmp_path, "backup", "restore", str(tampered))
    assert done.returncode == 1 and "does not match the manifest" in done.stdout, done.stdout + done.stderr
    assert not (Path(new["CARNET_VAR_DIR"]) / "master-key.json").exists()

    done = run(new, tmp_path, "backup", "restore", str(backup))
    assert done.returncode == 0, done.stdout + done.stderr
    print(done.stdout)
    again = run(new, tmp_path, "backup", "restore", str(backup))  # never over a deployment
    assert again.returncode == 1 and "empty" in again.stdout, again.stdout

    verified = audit_verify(new, str(tmp_path))
    assert verified.returncode == 0 and " 0 problems" in verified.stdout, verified.stdout + verified.stderr
    assert f"{manifest['checkpoints']} checkpoints" in verified.stdout, verified.stdout  # checked against them
    node = Node(tmp_path, new, "new-node").start()
    try:
        with httpx.Client(timeout=60) as http:
            access = demo_token(http, node.base, client_key)
            after = readable(http, node.base, access, list(before))
            assert after == before  # every document, its exact bytes
            with httpx.Client(timeout=60, follow_redirects=False) as browser:
                sign_in(browser, node.base, Path(new["CARNET_VAR_DIR"]))
    finally:
        node.stop()
