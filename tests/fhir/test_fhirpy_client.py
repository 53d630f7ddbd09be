"""Carnet driven by an independent FHIR client library (fhirpy) over real HTTP, on SQLite and PostgreSQL.

A uvicorn server runs in a background thread on a free 127.0.0.1 port, with its own application whose ``base_url``
is that address, so that the links and locations Carnet writes are ones fhirpy can follow.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from fhirpy import SyncFHIRClient

import tests.conftest as conftest
from carnet.app import create_app
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from tests.conftest import INS_SYSTEM, World
from tests.servers import free_port, wait_healthy

PDF = b"%PDF-1.4\n% sent by fhirpy\n%%EOF\n"


@dataclass
class Live:
    base: str
    services: Services
    app: object


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    var: Path = tmp_path_factory.mktemp("fhirpy-var")
    services = build_services(Settings(var_dir=var, database_url=database_url, base_url=base),
                              make_engine(database_url))
    app = create_app(services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    if not wait_healthy(base, thread.is_alive, 20):
        server.should_exit = True
        pytest.fail("the uvicorn server did not start")
    yield Live(base, services, app)
    server.should_exit = True
    thread.join(timeout=10)
    services.engine.dispose()


@pytest.fixture
def people(live: Live, monkeypatch: pytest.MonkeyPatch) -> World:
    # World signs its client assertions for the audience {conftest.BASE}/oauth/token: here, the live server's.
    monkeypatch.setattr(conftest, "BASE", live.base)
    return World(live.services, TestClient(live.app, base_url=live.base))  # type: ignore[arg-type]


def fhir(people: World, live: Live, role: str = "gp") -> SyncFHIRClient:
    return SyncFHIRClient(f"{live.base}/fhir", authorization=f"Bearer {people.token(role)}")


def docref(people: World, title: str) -> dict[str, object]:
    return {"resourceType": "DocumentReference", "status": "current",
            "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
            "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
            "subject": {"reference": f"Patient/{people.dossier}"},
            "content": [{"attachment": {"contentType": "application/pdf", "title": title,
                                        "data": base64.b64encode(PDF).decode()}}]}


def test_fhirpy_finds_the_patient_by_ins(people: World, live: Live) -> None:
    client = fhir(people, live)
    found = client.resources("Patient").search(identifier=f"{INS_SYSTEM}|{people.ins}").fetch_all()
    assert [p.id for p in found] == [str(people.dossier)]
    assert any(i.get("value") == people.ins for i in found[0]["identifier"])


def test_fhirpy_publishes_searches_and_reads_documents(people: World, live: Live) -> None:
    client = fhir(people, live)
    created = []
    for n in range(3):
        res = client.resource("DocumentReference", **docref(people, f"Compte rendu {n}"))
        res.save()
        assert res.id
        created.append(res.id)
    found = client.resources("DocumentReference").search(patient=str(people.dossier)).fetch_all()
    assert {d.id for d in found} == set(created)
    doc = client.reference("DocumentReference", created[0]).to_resource()
    assert doc.id == created[0]
    assert doc["status"] == "current"
    assert doc["subject"]["reference"] == f"Patient/{people.dossier}"
    url = doc["content"][0]["attachment"]["url"]
    assert url == f"{live.base}/fhir/Binary/{created[0]}"
    r = httpx.get(url, headers={"Authorization": f"Bearer {people.token('gp')}", "Accept": "*/*"})
    assert r.status_code == 200 and r.content == PDF


def test_fhirpy_follows_carnets_next_links_through_every_page(people: World, live: Live) -> None:
    client = fhir(people, live)
    created = set()
    for n in range(5):
        res = client.resource("DocumentReference", **docref(people, f"Page {n}"))
        res.save()
        created.add(res.id)
    found = client.resources("DocumentReference").search(patient=str(people.dossier)).limit(2).fetch_all()
    assert sorted(d.id for d in found) == sorted(created)


def test_fhirpy_counts_with_lenient_handling_and_searches_as_before(people: World, live: Live) -> None:
    """fhirpy's ``.count()`` sends ``_count=0&_totalMethod=count`` (``_totalMethod`` is Aidbox's): with
    ``Prefer: handling=lenient`` Carnet ignores it, and ``_count=0`` answers the total alone (issue 16 §4)."""
    client = SyncFHIRClient(f"{live.base}/fhir", authorization=f"Bearer {people.token('gp')}",
                            extra_headers={"Prefer": "handling=lenient"})
    created = set()
    for n in range(3):
        res = client.resource("DocumentReference", **docref(people, f"Compté {n}"))
        res.save()
        created.add(res.id)
    search = client.resources("DocumentReference").search(patient=str(people.dossier))
    assert search.count() == 3
    assert {d.id for d in search.fetch_all()} == created
    assert client.resources("Practitioner").search(identifier=people.pros["gp"]).count() == 1


def test_fhirpy_count_without_lenient_handling_is_refused_naming_the_parameter(people: World, live: Live) -> None:
    from fhirpy.base.exceptions import OperationOutcome

    client = fhir(people, live)
    with pytest.raises(OperationOutcome) as refused:
        client.resources("DocumentReference").search(patient=str(people.dossier)).count()
    assert "_totalMethod" in str(refused.value)
