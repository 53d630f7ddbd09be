"""A real `carnet serve` hit by an unexpected error with synthetic health data in flight writes no health data to its
log: one allow-listed line with the error's id (also given to the client), no traceback, no statement parameters."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from carnet.db.migrate import upgrade
from carnet.identity.ins import fake_nir_for
from carnet.logs import ALLOWED
from tests.conftest import fresh_postgres_database, require_postgres
from tests.servers import free_port

FAMILY = "LEFEVRE-SYNTHETIQUE-QZX"
BIRTH = "1958-03-14"
NIR = fake_nir_for(4242)

# The launcher makes the token endpoint's client look-up run a statement that PostgreSQL refuses while quoting the
# value it refused (a family name), with the INS and a birth date bound beside it, then serves as `carnet serve` does.
LAUNCHER = f"""
import sys
from sqlalchemy import text
import carnet.auth.web as web

def failing(services, client_id):
    with services.engine.connect() as conn:
        conn.execute(text("SELECT CAST(:family AS integer), :nir, :birth"),
                     {{"family": {FAMILY!r}, "nir": {NIR!r}, "birth": {BIRTH!r}}})

web.client_record = failing
from carnet.server import serve
serve("127.0.0.1", int(sys.argv[1]), 1)
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_an_unexpected_error_with_health_data_in_flight_logs_only_its_type_and_id(tmp_path: Path) -> None:
    require_postgres()
    url, drop = fresh_postgres_database()
    try:
        upgrade(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
        env.update(CARNET_DATABASE_URL=url, CARNET_VAR_DIR=str(tmp_path / "var"), CARNET_BASE_URL=base)
        (tmp_path / "launch.py").write_text(LAUNCHER)
        log_path = tmp_path / "server.log"
        with log_path.open("w") as log:
            server = subprocess.Popen([sys.executable, str(tmp_path / "launch.py"), str(port)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None and time.time() < deadline, log_path.read_text()
                time.sleep(0.3)
            assertion = ".".join([b64url(b'{"alg":"ES256","typ":"JWT"}'),
                                  b64url(json.dumps({"iss": "cabinet-x", "sub": "cabinet-x"}).encode()),
                                  b64url(b"not-a-signature")])
            r = httpx.post(f"{base}/oauth/token", data={
                "grant_type": "client_credentials", "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, timeout=30)
            time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(15)
    finally:
        drop()

    assert r.status_code == 500
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    error_id = outcome["issue"][0]["diagnostics"].removeprefix("Internal error (request ").removesuffix(")")
    assert FAMILY not in r.text and NIR not in r.text

    written = log_path.read_text()
    for secret in (FAMILY, NIR, BIRTH, "Traceback", "parameters", "SELECT"):
        assert secret not in written, secret
    lines = [line for line in written.splitlines() if line.strip()]
    failed = [json.loads(line) for line in lines if '"request.failed"' in line]
    assert [f["request_id"] for f in failed] == [error_id]
    assert failed[0]["error_type"] == "DataError"
    for line in lines:  # every line the server wrote is an allow-listed structured event
        assert set(json.loads(line)) <= ALLOWED, line
