"""Bad input, generated: whatever a client sends, the answer is a 2xx or a 4xx OperationOutcome (never a 500, never
exception text), and a refused request leaves nothing behind (no document row, no blob)."""

from __future__ import annotations

import base64
import copy
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from carnet.db.tables import document
from tests.conftest import World, provide_bundle

VALID: dict[str, Any] = {
    "resourceType": "DocumentReference", "status": "current",
    "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:00000000-0000-4000-8000-000000000000"},
    "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
    "category": [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A03-ClasseDocument/FHIR/"
                                        "TRE-A03-ClasseDocument", "code": "10"}]}],
    "securityLabel": [{"coding": [{"system": "https://mos.esante.gouv.fr/NOS/TRE_A07-StatusVisibiliteDocument/FHIR/"
                                             "TRE-A07-StatusVisibiliteDocument", "code": "N"}]}],
    "date": "2025-01-10T10:00:00Z",
    "content": [{"attachment": {"contentType": "text/plain", "data": base64.b64encode(b"hello").decode(),
                                "creation": "2025-01-09T10:00:00Z"}}],
}
PATHS = [("status",), ("masterIdentifier",), ("masterIdentifier", "value"), ("type",), ("category",),
         ("securityLabel",), ("date",), ("content",), ("content", 0, "attachment", "contentType"),
         ("content", 0, "attachment", "data"), ("content", 0, "attachment", "creation"), ("subject",),
         ("resourceType",), ("relatesTo",), ("context",)]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                 st.sampled_from(["superseded", "entered-in-error", "MASQUE_PS", "2025-13-45", "application/zip",
                                  "!!notbase64!!", "Patient/00000000-0000-0000-0000-000000000000", "1.5", ""]))


def _set(res: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = res
    for key in path[:-1]:
        target = target[key]
    if value is None and isinstance(target, dict):
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def mutate(resource: dict[str, Any], mutations: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    for path, value in mutations:
        try:
            _set(resource, path, value)
        except (KeyError, IndexError, TypeError):
            continue
    return resource


def fresh_document(world: World) -> dict[str, Any]:
    """The valid DocumentReference, with its own masterIdentifier, for the world's dossier."""
    res = copy.deepcopy(VALID)
    res["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    res["subject"] = {"reference": f"Patient/{world.dossier}"}
    return res


def _rows(world: World, table: Any) -> int:
    with world.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def post_stored_or_refused(world: World, path: str, body: Any, table: Any, stored: int, **headers: str) -> None:
    """POST ``body``: either it is stored (``stored`` status, one more row in ``table``) or refused with a 4xx
    OperationOutcome and ``table`` unchanged."""
    before = _rows(world, table)
    r = world.client.post(path, json=body, headers={**world.headers(), **headers})
    after = _rows(world, table)
    if r.status_code == stored:
        assert after == before + 1
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert after == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), JUNK), min_size=1, max_size=3))
def test_a_mutated_document_is_stored_or_refused_cleanly(world: World,
                                                           mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    res = mutate(fresh_document(world), mutations)
    before = _rows(world, document)
    blobs_before = {p for p in world.services.blobs.root.rglob("*") if p.is_file()}  # type: ignore[attr-defined]
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers())
    after = _rows(world, document)
    blobs_after = {p for p in world.services.blobs.root.rglob("*") if p.is_file()}  # type: ignore[attr-defined]
    if r.status_code == 201:
        assert after == before + 1
        return
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert all("Traceback" not in i.get("diagnostics", "") for i in body["issue"])
    assert after == before
    assert blobs_after == blobs_before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                      st.sampled_from([b"[]", b"{}", b'{"resourceType":"Bundle","type":"transaction"}',
                                       b'{"resourceType":"Bundle","type":"transaction","entry":[{}]}',
                                       b'{"resourceType":"Bundle","type":"batch","entry":[]}', b"null", b"1"])))
def test_garbage_sent_to_the_transaction_endpoint_is_a_4xx_outcome(world: World, body: bytes) -> None:
    r = world.client.post("/fhir", content=body, headers={**world.headers(), "Content-Type": "application/fhir+json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


PATIENT_PATHS = [("identifier",), ("identifier", 0, "value"), ("identifier", 0, "system"), ("name",),
                 ("name", 0, "family"), ("name", 0, "given"), ("birthDate",), ("gender",), ("extension",),
                 ("extension", 0, "valueAddress"), ("extension", 1, "valueBoolean")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(PATIENT_PATHS), JUNK), min_size=1, max_size=3),
       index=st.integers(min_value=0, max_value=10**6))
def test_a_mutated_patient_is_created_or_refused_cleanly(world: World, mutations: list[tuple[tuple[Any, ...], Any]],
                                                         index: int) -> None:
    from carnet.db.tables import dossier
    from carnet.identity.ins import fake_nir_for

    res = mutate(world.patient_resource(fake_nir_for(20_000_000 + index)), mutations)
    post_stored_or_refused(world, "/fhir/Patient", res, dossier, 201)


BUNDLE_PATHS = [("entry",), ("entry", 0), ("entry", 0, "resource"), ("entry", 0, "request", "method"),
                ("entry", 1, "resource", "content", 0, "attachment", "url"), ("entry", 1, "fullUrl"),
                ("entry", 2, "resource", "data"), ("entry", 2, "resource", "contentType"), ("entry", 2, "fullUrl"),
                ("entry", 0, "resource", "subject"), ("entry", 1, "resource", "subject"), ("type",),
                ("entry", 1, "resource", "relatesTo"), ("entry", 0, "resource", "date")]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(BUNDLE_PATHS), JUNK), min_size=1, max_size=3))
def test_a_mutated_provide_bundle_is_stored_whole_or_not_at_all(world: World,
                                                                 mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    doc = fresh_document(world)
    doc["content"][0]["attachment"] = {"contentType": "text/plain"}
    bundle = provide_bundle(doc, b"hello")
    post_stored_or_refused(world, "/fhir", mutate(bundle, mutations), document, 200)


CONSENT_PATHS = [("provision",), ("provision", "type"), ("provision", "actor"), ("provision", "actor", 0),
                 ("provision", "actor", 0, "reference"), ("provision", "actor", 0, "reference", "reference"),
                 ("provision", "actor", 0, "role"), ("provision", "purpose"), ("patient",), ("patient", "reference"),
                 ("status",)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(st.tuples(st.sampled_from(CONSENT_PATHS), JUNK), min_size=1, max_size=3))
def test_a_mutated_consent_is_recorded_or_refused_cleanly(world: World,
                                                           mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    from carnet.db.tables import access_grant

    doctor = {"reference": f"Practitioner/{world.pros['doctor']}"}
    consent: dict[str, Any] = {
        "resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
        "category": [{"coding": [{"code": "59284-0", "system": "http://loinc.org"}]}],
        "patient": {"reference": f"Patient/{world.dossier}"},
        "provision": {"type": "permit", "actor": [{"role": {"coding": [{"code": "authorized"}]},
                                                   "reference": doctor}]}}
    mutate(consent, mutations)
    before = _rows(world, access_grant)
    r = world.client.post("/fhir/Consent", json=consent, headers=world.headers(None, kind="patient_portal"))
    after = _rows(world, access_grant)
    if r.status_code == 201:
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    assert after == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.one_of(JUNK, st.lists(st.one_of(JUNK, st.fixed_dictionaries(
    {"op": st.sampled_from(["replace", "add", "remove", "move", "test", 1]),
     "path": st.sampled_from(["/status", "/securityLabel", "/securityLabel/0", "/securityLabel/-", "/subject",
                              "/content", 3]),
     "value": JUNK})), max_size=3)))
def test_a_garbled_patch_changes_nothing_unless_accepted(world: World, ops: Any) -> None:
    from tests.fhir.routes.test_documents import publish

    doc_id = publish(world)
    before = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=world.headers()).json()
    r = world.client.patch(f"/fhir/DocumentReference/{doc_id}", json=ops,
                           headers={**world.headers(), "Content-Type": "application/json-patch+json"})
    if r.status_code == 200:
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    after = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=world.headers()).json()
    assert after == before
