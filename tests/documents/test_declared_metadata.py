"""What a published document says about itself is checked, not trusted (issue 15 §6): its declared class
(``category``) against the class of its type, written from DOMAIN.md by the independent oracle."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from carnet.db.tables import document
from carnet.documents import codes
from carnet.documents.metadata import read_metadata
from carnet.errors import FhirError
from tests.access.oracle import category_is_accepted, class_of_type, security_label_is_accepted
from tests.api.test_bad_input import fresh_document
from tests.conftest import World

DOMAIN_TYPES = ("11488-4", "11490-0", "11502-2", "11526-1", "34874-8", "18748-4", "60591-5", "34133-9", "68599-0",
                "57833-6", "57832-8", "60593-1", "18776-5", "80565-5", "11369-6", "87273-9", "59284-0", "REMB",
                "EXPPAT_3", *(f"DOCPAT0{i}" for i in range(1, 10)))
TRE_A03_CLASSES = ("10", "11", "31", "42", "43", "44", "45", "52", "60", "90", "95")
BASE: dict[str, Any] = {
    "resourceType": "DocumentReference", "status": "current", "masterIdentifier": {"value": "urn:uuid:1"},
    "content": [{"attachment": {"contentType": "text/plain"}}],
}


def resource(doc_type: str, declared: str | None) -> dict[str, Any]:
    res = copy.deepcopy(BASE)
    res["type"] = {"coding": [{"system": codes.type_system(doc_type), "code": doc_type}]}
    if declared is not None:
        res["category"] = [{"coding": [{"system": codes.TRE_A03, "code": declared}]}]
    return res


def refusal(res: dict[str, Any]) -> FhirError | None:
    try:
        read_metadata(res)
    except FhirError as exc:
        return exc
    return None


def expressions(exc: FhirError) -> list[str]:
    return [e for issue in exc.issues for e in issue.expression]


def test_carnet_derives_the_class_of_every_domain_type_as_the_oracle_does() -> None:
    for doc_type in DOMAIN_TYPES:
        assert read_metadata(resource(doc_type, None)).class_code == class_of_type(doc_type), doc_type


@pytest.mark.parametrize("doc_type", DOMAIN_TYPES)
def test_a_category_that_contradicts_the_type_is_refused_and_a_matching_one_is_accepted(doc_type: str) -> None:
    for declared in TRE_A03_CLASSES:
        exc = refusal(resource(doc_type, declared))
        if category_is_accepted(doc_type, declared):
            assert exc is None, (doc_type, declared, exc)
            assert read_metadata(resource(doc_type, declared)).class_code == declared
        else:
            assert exc is not None and exc.status == 422, (doc_type, declared)
            assert expressions(exc)[0].startswith("DocumentReference.category"), expressions(exc)


def _documents(world: World) -> int:
    with world.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(document)).scalar_one())


def test_an_imaging_report_declared_a_summary_is_refused_with_422_naming_the_category(world: World) -> None:
    res = fresh_document(world)
    res["type"] = {"coding": [{"system": codes.LOINC, "code": "18748-4"}]}
    res["category"] = [{"coding": [{"system": codes.TRE_A03, "code": "11"}]}]
    before = _documents(world)
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers())
    assert r.status_code == 422, r.text
    assert any("DocumentReference.category" in e for i in r.json()["issue"] for e in i.get("expression", []))
    assert _documents(world) == before


def test_an_imaging_report_declared_imaging_is_accepted(world: World) -> None:
    res = fresh_document(world)
    res["type"] = {"coding": [{"system": codes.LOINC, "code": "18748-4"}]}
    res["category"] = [{"coding": [{"system": codes.TRE_A03, "code": "31"}]}]
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers())
    assert r.status_code == 201, r.text


# --- security labels: a mask is either enforced or refused ----------------------------------------------------------

LABEL_SYSTEMS = (None, "", "urn:oid:1.2.250.1.213.1.1.4.13", codes.TRE_A07,
                 "https://mos.esante.gouv.fr/NOS/TRE_A07-StatutVisibiliteDocument/FHIR/TRE-A07-StatutVisibiliteDocument",
                 codes.V3_CONFIDENTIALITY, "http://example.org/masks", "urn:oid:1.2.3")
LABEL_CODES = (None, "N", "MASQUE_PS", "INVISIBLE_PATIENT", "INVISIBLE_REPRESENTANTS_LEGAUX", "R", "V", "masque_ps",
               "SECRET")


def labelled(system: str | None, code: str | None) -> dict[str, Any]:
    res = resource("11488-4", None)
    coding = {k: v for k, v in (("system", system), ("code", code)) if v is not None}
    res["securityLabel"] = [{"coding": [coding]}]
    return res


@pytest.mark.parametrize("system", LABEL_SYSTEMS)
def test_a_security_label_of_a_missing_or_unknown_system_or_code_is_refused(system: str | None) -> None:
    for code in LABEL_CODES:
        exc = refusal(labelled(system, code))
        if security_label_is_accepted(system or None, code):
            assert exc is None, (system, code, exc)
        else:
            assert exc is not None and exc.status == 422, (system, code)
            assert expressions(exc)[0].startswith("DocumentReference.securityLabel"), expressions(exc)


def test_an_accepted_masque_ps_label_masks_the_document() -> None:
    assert read_metadata(labelled("urn:oid:1.2.250.1.213.1.1.4.13", "MASQUE_PS")).masked


@pytest.mark.parametrize("system", [None, "http://example.org/masks"])
def test_masque_ps_without_a_known_system_is_refused_over_the_api_and_nothing_is_stored(world: World,
                                                                                       system: str | None) -> None:
    res = fresh_document(world)
    res["securityLabel"] = [{"coding": [{"code": "MASQUE_PS", **({"system": system} if system else {})}]}]
    before = _documents(world)
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers())
    assert r.status_code == 422, r.text
    assert any("DocumentReference.securityLabel" in e for i in r.json()["issue"] for e in i.get("expression", []))
    assert _documents(world) == before
