"""Document types (issue 15 §6, issue 16 §2): the ANS document-type value set mapped to classes, an unknown type (or
an unknown code system) refused naming ``DocumentReference.type``, and a document without a type filed where the
fewest professions read, as the independent oracle computes it from ``habilitations.json``."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from carnet.db.tables import document
from carnet.documents import codes
from carnet.documents.metadata import read_metadata
from carnet.errors import FhirError
from tests.access.oracle import HABILITATIONS, class_of_type, class_of_untyped_document, readers_of_class
from tests.conftest import World

PDF = b"%PDF-1.4\n% a synthetic test document\n%%EOF\n"
BASE: dict[str, Any] = {
    "resourceType": "DocumentReference", "status": "current", "masterIdentifier": {"value": "urn:uuid:1"},
    "content": [{"attachment": {"contentType": "text/plain"}}],
}
# The types the issues name as filed in a default class, and the official examples' types (PDSm 15507-7, MHD
# 28655-9), with the class each belongs to.
NAMED = {"SYNTH": "11", "74207-2": "10", "96173-0": "10", "77436-4": "10", "55115-0": "42", "18761-7": "10",
         "85208-7": "10", "28655-9": "10", "15507-7": "10"}


def typed(*codings: dict[str, Any], category: str | None = None) -> dict[str, Any]:
    res = copy.deepcopy(BASE)
    if codings:
        res["type"] = {"coding": list(codings)}
    if category is not None:
        res["category"] = [{"coding": [{"system": codes.TRE_A03, "code": category}]}]
    return res


def refusal(res: dict[str, Any]) -> FhirError:
    with pytest.raises(FhirError) as caught:
        read_metadata(res)
    return caught.value


def expressions(exc: FhirError) -> list[str]:
    return [e for issue in exc.issues for e in issue.expression]


# --- the value set ------------------------------------------------------------------------------------------------

def test_every_known_type_has_a_class_a_french_label_and_a_code_system() -> None:
    assert set(codes.TYPE_LABELS) == set(codes.TYPE_CLASS) == set(codes.TYPE_SYSTEM_OF)
    assert set(codes.TYPE_CLASS.values()) <= set(codes.CLASSES)
    assert all(label.strip() for label in codes.TYPE_LABELS.values())
    for code in codes.TYPE_CLASS:
        assert codes.known_type(codes.type_system(code), code), code


@pytest.mark.parametrize(("code", "cls"), NAMED.items())
def test_the_ans_types_the_issues_name_are_filed_in_their_class(code: str, cls: str) -> None:
    meta = read_metadata(typed({"system": codes.type_system(code), "code": code}))
    assert (meta.type_code, meta.class_code) == (code, cls)


def test_the_vsm_and_the_ips_carry_their_own_labels() -> None:
    assert codes.TYPE_LABELS["SYNTH"] == "Volet de synthèse médicale"
    assert "IPS" in codes.TYPE_LABELS["60591-5"] and "Volet" not in codes.TYPE_LABELS["60591-5"]
    assert set(codes.SUMMARY_TYPES) == {"60591-5", "SYNTH"}


def test_domain_md_types_keep_the_class_the_oracle_gives_them() -> None:
    for code in codes.TYPE_CLASS:
        if class_of_type(code) is not None:
            assert codes.TYPE_CLASS[code] == class_of_type(code), code


def test_both_spellings_of_each_code_system_are_known() -> None:
    for system in (codes.LOINC, codes.LOINC_OID):
        assert read_metadata(typed({"system": system, "code": "74207-2"})).class_code == "10"
    for system in (codes.TRE_A05, codes.TRE_A05_OID):
        assert read_metadata(typed({"system": system, "code": "SYNTH"})).class_code == "11"


# --- fail closed --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("coding", [
    pytest.param({"system": codes.LOINC, "code": "99999-9"}, id="unknown-loinc-code"),
    pytest.param({"system": "http://snomed.info/sct", "code": "721912009"}, id="unknown-system"),
    pytest.param({"code": "11488-4"}, id="no-system"),
    pytest.param({"system": codes.TRE_A05, "code": "11488-4"}, id="loinc-code-in-tre-a05"),
    pytest.param({"system": codes.LOINC, "code": "SYNTH"}, id="tre-a05-code-in-loinc"),
    pytest.param({"system": codes.LOINC, "code": "28653-4"}, id="social-sector-left-out"),
    pytest.param({"system": codes.LOINC, "code": "83901-9"}, id="psychological-left-out"),
])
def test_an_unknown_type_is_refused_naming_the_type(coding: dict[str, Any]) -> None:
    exc = refusal(typed(coding))
    assert exc.status == 422
    assert expressions(exc) == ["DocumentReference.type"]


def test_a_type_with_no_coding_is_refused() -> None:
    res = copy.deepcopy(BASE)
    res["type"] = {"text": "Compte rendu"}
    assert expressions(refusal(res)) == ["DocumentReference.type"]


def test_a_known_coding_beside_a_translation_in_another_system_decides() -> None:
    meta = read_metadata(typed({"system": "http://snomed.info/sct", "code": "371530004"},
                               {"system": codes.LOINC, "code": "18748-4"}))
    assert (meta.type_code, meta.class_code) == ("18748-4", "31")


# --- no type at all -----------------------------------------------------------------------------------------------

def test_the_untyped_class_is_the_one_the_fewest_professions_read_computed_from_the_matrix() -> None:
    matrix = json.loads(HABILITATIONS.read_text(encoding="utf-8"))
    assert codes.UNTYPED_CLASS == class_of_untyped_document(matrix)
    fewest = min(readers_of_class(c, matrix) for c in codes.CLASSES)
    assert readers_of_class(codes.UNTYPED_CLASS, matrix) == fewest


def test_a_document_without_a_type_is_filed_in_the_untyped_class() -> None:
    meta = read_metadata(typed())
    assert (meta.type_code, meta.class_code) == ("", codes.UNTYPED_CLASS)
    assert read_metadata(typed(category=codes.UNTYPED_CLASS)).class_code == codes.UNTYPED_CLASS


def test_a_document_without_a_type_may_not_declare_another_class() -> None:
    exc = refusal(typed(category="10"))
    assert exc.status == 422 and expressions(exc) == ["DocumentReference.category[0]"]


# --- through the API ----------------------------------------------------------------------------------------------

def _docref(world: World, type_: dict[str, Any] | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "subject": {"reference": f"Patient/{world.dossier}"},
        "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}}]}
    if type_ is not None:
        res["type"] = type_
    return res


def _documents(world: World) -> int:
    with world.services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(document).where(
            document.c.dossier_key == world.dossier)).scalar_one())


def _found(world: World, role: str) -> set[str]:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers(role))
    assert r.status_code == 200, r.text
    return {e["resource"]["id"] for e in r.json().get("entry", [])}


def test_an_unknown_type_is_refused_through_iti105_and_nothing_is_stored(world: World) -> None:
    before = _documents(world)
    r = world.client.post("/fhir/DocumentReference", headers=world.headers("gp"),
                          json=_docref(world, {"coding": [{"system": codes.LOINC, "code": "99999-9"}]}))
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == ["DocumentReference.type"]
    assert _documents(world) == before


def test_an_untyped_document_is_read_by_doctors_but_not_by_nurses_pharmacists_or_physiotherapists(
        world: World) -> None:
    r = world.client.post("/fhir/DocumentReference", json=_docref(world, None), headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    with world.services.engine.connect() as conn:
        row = conn.execute(select(document.c.class_code, document.c.type_code).where(
            document.c.document_id == uuid.UUID(doc_id))).one()
    assert tuple(row) == (codes.UNTYPED_CLASS, "")
    assert doc_id in _found(world, "doctor")
    for role in ("nurse", "pharmacist", "physio"):
        assert doc_id not in _found(world, role), role
