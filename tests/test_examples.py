"""examples/walkthrough.py, run for real: a fresh var directory, ``carnet db upgrade``, ``carnet demo``, a
``carnet serve`` subprocess on a free port, then the script (twice: it must be idempotent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "walkthrough.py"
STEPS = ("1. token (professional): 200 OK", "2. dossier check (ITI-78): 200 OK",
         "3. provide document bundle (ITI-65): 200 OK", "4. find documents (ITI-67): 200 OK",
         "5. retrieve document (ITI-68): 200 OK", "6. token (patient portal): 200 OK",
         "7. access history (AuditEvent): 200 OK", "walkthrough complete")


def carnet(*args: str) -> list[str]:
    return [sys.executable, "-c", "from carnet.cli import app; app()", *args]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(CARNET_VAR_DIR=str(var), CARNET_BASE_URL=base)
    for cmd in (("db", "upgrade"), ("demo",)):
        done = subprocess.run(carnet(*cmd), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(carnet("serve", "--port", str(port)), cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        if not wait_healthy(base, lambda: server.poll() is None):
            pytest.fail("carnet serve did not start: " + (tmp_path / "server.log").read_text())
        yield base, var, env
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_the_walkthrough_runs_every_step_against_a_demo_server_and_can_run_again(
        demo_server: tuple[str, Path, dict[str, str]], tmp_path: Path) -> None:
    base, var, env = demo_server
    for _ in range(2):
        done = subprocess.run([sys.executable, str(SCRIPT), "--base", base, "--var", str(var)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = [line.strip() for line in done.stdout.splitlines()]
        for expected in STEPS:
            assert any(line.startswith(expected) for line in lines), (expected, done.stdout)
        assert "entries: 201 Created, 201 Created, 201 Created" in done.stdout
        assert "identical" in done.stdout


def test_the_walkthrough_fails_with_a_non_zero_status_when_no_server_answers(tmp_path: Path) -> None:
    for name in ("demo-client-key.json", "demo-portal-key.json"):
        key = ECKey.generate_key("P-256", auto_kid=True)
        (tmp_path / name).write_text(json.dumps(key.as_dict(private=True)))
    done = subprocess.run([sys.executable, str(SCRIPT), "--base", f"http://127.0.0.1:{free_port()}",
                           "--var", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "FAILED: cannot reach" in done.stderr


def test_the_walkthrough_says_to_run_carnet_demo_when_the_demo_keys_are_missing(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--var", str(tmp_path / "nowhere")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "carnet demo" in done.stderr and "Traceback" not in done.stderr


PATIENT_APP = ROOT / "examples" / "patient_app.py"
PATIENT_APP_STEPS = ("1. discovery (smart-configuration): 200 OK", "5. consent screen: 200 OK",
                     "7. token (authorization_code + PKCE): 200 OK", "8. find documents (ITI-67): 200 OK",
                     "9. retrieve a document (ITI-68): 200 OK", "10. refresh (a new refresh token each time): 200 OK",
                     "patient app complete")


def test_the_patient_app_example_launches_reads_and_refreshes_against_a_demo_server(
        demo_server: tuple[str, Path, dict[str, str]], tmp_path: Path) -> None:
    base, var, env = demo_server
    for _ in range(2):  # each run is a new launch: it can run again
        done = subprocess.run([sys.executable, str(PATIENT_APP), "--base", base, "--client-id", "demo-patient-app",
                               "--login", "100103690200014", "--password", "demo-carnet-2026",
                               "--mail-dir", str(var / "mail")], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        lines = [line.strip() for line in done.stdout.splitlines()]
        for expected in PATIENT_APP_STEPS:
            assert expected in lines, (expected, done.stdout)


def test_the_patient_app_example_fails_with_a_non_zero_status_when_no_server_answers(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(PATIENT_APP), "--base", f"http://127.0.0.1:{free_port()}",
                           "--mail-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "FAILED: cannot reach" in done.stderr
