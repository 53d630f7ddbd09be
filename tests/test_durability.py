"""An acknowledged document survives the server being killed at once (SIGKILL, no shutdown), on SQLite and
PostgreSQL: contents reach disk before the metadata commits, and the commit is durable before the 201."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from carnet.db.engine import make_engine
from carnet.db.tables import ins_lookup
from tests.servers import free_port, wait_healthy
from tests.test_examples import carnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from walkthrough import get_token  # noqa: E402

DEMO_INS = "100103690200014"


def start(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(carnet("serve", "--port", str(port)), cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if wait_healthy(f"http://127.0.0.1:{port}", lambda: server.poll() is None):
        return server
    server.kill()
    pytest.fail("carnet serve did not start")


@contextlib.contextmanager
def _killed_on_failure(server: subprocess.Popen[bytes]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        server.kill()
        server.wait()
        raise


def test_an_acknowledged_document_survives_a_kill_9(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(CARNET_VAR_DIR=str(var), CARNET_BASE_URL=base)
    if database_url.startswith("postgresql"):
        from tests.conftest import fresh_postgres_database

        url, drop = fresh_postgres_database()
        env["CARNET_DATABASE_URL"] = url
    else:
        url, drop = f"sqlite:///{var / 'carnet.db'}", None
    try:
        for cmd in (("db", "upgrade"), ("demo",)):
            done = subprocess.run(carnet(*cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
        engine = make_engine(url, pool_size=1)
        with engine.connect() as conn:
            patient = conn.execute(select(ins_lookup.c.dossier_key).where(ins_lookup.c.ins == DEMO_INS)).scalar()
        engine.dispose()
        data = b"%PDF-1.4\n" + uuid.uuid4().bytes * 512 + b"\n%%EOF\n"
        server = start(tmp_path, env, port)
        with httpx.Client(timeout=30) as http, _killed_on_failure(server):
            token = get_token(http, base, var / "demo-client-key.json", "demo-practice",
                              {"ihe_iua": {"national_provider_identifier": "810900000018"}}).json()["access_token"]
            body = {"resourceType": "DocumentReference", "status": "current",
                    "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
                    "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "content": [{"attachment": {"contentType": "application/pdf",
                                                "data": base64.b64encode(data).decode()}}]}
            r = http.post(f"{base}/fhir/DocumentReference", json=body,
                          headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
            os.kill(server.pid, signal.SIGKILL)  # no shutdown, no flush: the answer was already given
            server.wait()
            doc_id = r.json()["id"]
        server = start(tmp_path, env, port)
        try:
            with httpx.Client(timeout=30) as http:
                token = get_token(http, base, var / "demo-client-key.json", "demo-practice",
                                  {"ihe_iua": {"national_provider_identifier": "810900000018"}}
                                  ).json()["access_token"]
                got = http.get(f"{base}/fhir/Binary/{doc_id}",
                               headers={"Authorization": f"Bearer {token}", "Accept": "application/pdf"})
            assert got.status_code == 200
            assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
        finally:
            server.terminate()
            server.wait(15)
    finally:
        if drop is not None:
            drop()
