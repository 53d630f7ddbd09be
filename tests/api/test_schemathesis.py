"""A bounded schemathesis run over every operation of the FHIR API's OpenAPI description (issue 15 §8), against a
real ``carnet serve`` on SQLite and on PostgreSQL, as the treating GP (an authorized professional, through the real
token endpoint) and as nobody (no token).

Two parts: fuzzing through schemathesis' Python API (positive and negative examples, and positive ones on the
World's dossier), and its coverage phase through its command line (boundary, missing and wrong-type values).
Checks: no 5xx (``not_a_server_error``), every status and content type one the description declares, every
successful JSON answer of the shape it declares. Both are deterministic (Hypothesis ``derandomize``, schemathesis'
``--generation-deterministic``) so that CI is reproducible; ``CARNET_SCHEMATHESIS_EXAMPLES`` widens the fuzzing by
hand (docs/API.md). Each failure it found is fixed in Carnet and kept as a hand-made regression test in
``tests/api/test_issue15_cases.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from carnet.compose import build_services
from carnet.config import Settings
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from tests.conftest import BASE, World, fresh_postgres_database, require_postgres
from tests.servers import free_port

#: Examples per operation and mode (positive and negative) for the authorized caller; nobody, whom every operation
#: but the two descriptions answers 401 before reading anything, gets a third as many. CI: 59 operations, 2 databases.
EXAMPLES = int(os.environ.get("CARNET_SCHEMATHESIS_EXAMPLES", "6"))
STATUSES: Counter[int] = Counter()  # what the run was answered, printed at the end of each run (-s)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass
class Server:
    url: str
    world: World
    root: Path


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "carnet.cli", "serve", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp(f"schemathesis-{request.param}")
    drop = None
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'carnet.db'}"
    else:
        require_postgres()
        url, drop = fresh_postgres_database()
    upgrade(url)
    settings = Settings(var_dir=root / "var", database_url=url, base_url=BASE)
    services = build_services(settings, make_engine(url, pool_size=2))
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(CARNET_DATABASE_URL=url, CARNET_VAR_DIR=str(root / "var"), CARNET_BASE_URL=BASE,
               CARNET_TOKEN_LIFETIME="3600")
    proc = _start(env, port, root / "server.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{address}/health/live", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (root / "server.log").read_text()
            time.sleep(0.2)
        with httpx.Client(base_url=address, timeout=30) as http:
            yield Server(address, World(services, http), root)  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        services.engine.dispose()
        if drop:
            drop()


def _anchors(operation: Any, server: Server) -> dict[str, Any]:
    """Fixed values that reach past the look-up: the World's dossier as the Patient id or the ``patient`` searched."""
    key = str(server.world.dossier)
    out: dict[str, Any] = {}
    if operation.path.startswith("/fhir/Patient/{id}"):
        out["path_parameters"] = {"id": key}
    if any(p.name == "patient" for p in operation.query):
        out["query"] = {"patient": f"Patient/{key}"}
    return out


def _run(server: Server, headers: dict[str, str], examples: int) -> tuple[list[str], int]:
    """Every operation, positive and negative examples, and, for the authorized caller, positive examples on the
    World's dossier; returns the failures (one line each) and the calls made."""
    schema = schemathesis.openapi.from_url(f"{server.url}/fhir/openapi.json")
    failures: list[str] = []
    calls = 0
    positive, negative = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
    for result in schema.get_all_operations():
        operation = result.ok()
        anchors = _anchors(operation, server) if headers else {}
        runs = [("positive", positive, {}), ("negative", negative, {})] + (
            [("on the dossier", positive, anchors)] if anchors else [])
        for label, mode, fixed in runs:
            made, failure = _exercise(server.url, operation.as_strategy(generation_mode=mode, **fixed), headers,
                                      examples)
            calls += made
            if failure:
                failures.append(f"{operation.label} [{label}]: {failure}")
    return failures, calls


def _exercise(url: str, strategy: Any, headers: dict[str, str], examples: int) -> tuple[int, str | None]:
    """Up to ``examples`` calls of one operation; the calls made and the failure found (its checks and its curl)."""
    made = 0

    @hypothesis.settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
    @hypothesis.given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        nonlocal made
        made += 1
        response = case.call(base_url=url, headers=headers)
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (a path id: any string is one)
        pass
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is collected, reported together
        lines = [x.strip() for x in str(exc).strip().splitlines() if x.strip()]
        return made, " / ".join([x for x in lines if x.startswith(("- ST", "Received", "curl"))] or lines[:3])
    return made, None


@pytest.mark.parametrize("caller", ["treating_gp", "nobody"])
def test_no_operation_answers_a_5xx_or_an_undeclared_status(server: Server, caller: str) -> None:
    headers = {"Authorization": f"Bearer {server.world.token('gp')}"} if caller == "treating_gp" else {}
    started = time.monotonic()
    STATUSES.clear()
    failures, calls = _run(server, headers, EXAMPLES if headers else max(1, EXAMPLES // 3))
    print(f"schemathesis: {calls} calls in {time.monotonic() - started:.0f} s as {caller}: {sorted(STATUSES.items())}")
    assert calls > 0
    assert not failures, "\n".join(failures)


def test_the_coverage_phase_finds_no_5xx_as_the_treating_gp(server: Server) -> None:
    """Schemathesis' coverage phase (its command line): for every operation, deterministic boundary and
    missing-or-wrong-type values of each parameter and body element, about 7,000 calls. One worker: with two, the
    installed Hypothesis sometimes fails inside schemathesis' own generation (a race in its lambda cache)."""
    token = server.world.token("gp")
    st = Path(sys.executable).parent / "schemathesis"
    done = subprocess.run(
        [str(st), "run", f"{server.url}/fhir/openapi.json", "-H", f"Authorization: Bearer {token}",
         "--phases", "coverage", "--generation-deterministic", "--workers", "1", "--no-color",
         "--checks", ",".join(c.__name__ for c in CHECKS)],
        cwd=server.root, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    summary = done.stdout[done.stdout.find("SUMMARY"):] if "SUMMARY" in done.stdout else done.stdout[-3000:]
    print(f"schemathesis coverage phase: {summary}")
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-3000:]
