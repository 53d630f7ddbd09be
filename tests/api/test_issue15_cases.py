"""Issue 15's hand-made cases, in one place: where each is tested, and the regressions for what the schemathesis run
(``tests/api/test_schemathesis.py``, issue 15 §8) found.

| issue point | case | test |
|---|---|---|
| §1 | NUL in a family name → 422 naming it (PostgreSQL too) | fhir/test_unholdable_characters.py |
| §1 | lone surrogate → 422 | fhir/test_unholdable_characters.py |
| §1 | NUL in a query parameter or an id → 400, never a 500 (found by schemathesis) | here |
| §1 | an unexpected error logs no health data | test_logs_server.py |
| §4 | demo IdP: redirect_uri exact match, CSRF on its form | pro/test_demo_idp.py |
| §5 | JSON nested 100,000 deep → 400 | fhir/test_http.py |
| §5 | a 1.1 MB form field to /portal/sign-in → 413 page | portal/test_web.py |
| §5 | 405 on /fhir/Condition: Allow lists GET and POST | test_app.py |
| §5 | a query parameter with an empty name, answered in XML → 400 (found by schemathesis) | here |
| §5 | `$dispute` with a parameter that is not an object → 422 (found by schemathesis) | here |
| §5 | a FHIRPath Patch whose `parameter` is not a list → 422 (found by schemathesis) | here |
| §6 | a category contradicting the type → 422 | documents/test_declared_metadata.py |
| §6 | an unknown security label → 422 | documents/test_declared_metadata.py |
| §6 | a nurse as médecin traitant → refused | dossier/test_designations.py |
| §6 | a nurse as SAMU regulator → refused | test_cli.py |
"""

from __future__ import annotations

import importlib

import pytest

from tests.conftest import World

ELSEWHERE = {
    "tests.fhir.test_unholdable_characters": ["test_a_nul_in_a_patients_name_is_refused_and_creates_nothing",
                                              "test_a_lone_surrogate_is_refused"],
    "tests.test_logs_server": ["test_an_unexpected_error_with_health_data_in_flight_logs_only_its_type_and_id"],
    "tests.pro.test_demo_idp": [
        "test_a_redirect_uri_other_than_the_portals_registered_one_is_refused_and_no_code_is_issued",
        "test_a_post_without_the_pages_csrf_token_is_refused"],
    "tests.fhir.test_http": ["test_json_nested_100000_deep_is_a_400_naming_the_body_on_every_fhir_route"],
    "tests.portal.test_web": ["test_a_form_field_of_1_1_mb_posted_to_sign_in_is_a_413_page"],
    "tests.test_app": ["test_a_405_on_fhir_condition_lists_get_as_well_as_post"],
    "tests.documents.test_declared_metadata": [
        "test_an_imaging_report_declared_a_summary_is_refused_with_422_naming_the_category",
        "test_a_security_label_of_a_missing_or_unknown_system_or_code_is_refused"],
    "tests.dossier.test_designations": [
        "test_a_nurse_declaring_herself_medecin_traitant_through_a_consent_is_refused_with_422"],
    "tests.test_cli": ["test_a_nurse_cannot_be_registered_as_a_samu_regulator"],
}


@pytest.mark.parametrize("module", sorted(ELSEWHERE))
def test_the_cases_tested_elsewhere_are_still_there(module: str) -> None:
    found = importlib.import_module(module)
    for name in ELSEWHERE[module]:
        assert callable(getattr(found, name, None)), f"{module}.{name} (issue 15) was renamed or removed"


@pytest.mark.parametrize("query", ["family=%00", "family=a%1Fb", "%01=x", "identifier=x%7C%EF%BF%BE"])
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_query_parameter_holding_a_character_carnet_cannot_hold_is_a_400(world: World, query: str, fmt: str
                                                                             ) -> None:
    r = world.client.get(f"/fhir/Patient?{query}&_format={fmt}", headers=world.headers("gp"))
    assert r.status_code == 400, r.text
    assert "cannot be stored" in r.text and ("<OperationOutcome" in r.text) == (fmt == "xml")


@pytest.mark.parametrize("path", ["/fhir/DocumentReference/a%00b", "/fhir/Task/%00", "/fhir/Practitioner/%1F",
                                  "/fhir/Condition/x%00"])
def test_an_id_holding_a_nul_is_a_400_not_a_database_error(world: World, path: str) -> None:
    r = world.client.get(path, headers=world.headers("gp"))
    assert r.status_code == 400, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def test_a_query_parameter_with_an_empty_name_answered_in_xml_is_a_400_outcome(world: World) -> None:
    """An empty name was echoed as an empty FHIRPath expression, which the XML rendering refused: a 500."""
    r = world.client.get("/fhir/Task?=x&_format=xml", headers=world.headers("gp"))
    assert r.status_code == 400, r.text
    assert r.text.startswith("<") and "<expression" not in r.text


def test_nobody_sending_a_control_character_is_refused_without_reaching_anything(world: World) -> None:
    r = world.client.get("/fhir/Task/x?=%10&_format=application/fhir%2Bxml")
    assert r.status_code == 400 and "<OperationOutcome" in r.text


@pytest.mark.parametrize("parameter", [[[None, None]], ["text"], 5, {"name": "text"}])
def test_a_dispute_whose_parameters_are_not_objects_is_a_422(world: World, parameter: object) -> None:
    r = world.client.post("/fhir/Condition/anything/$dispute", headers=world.headers("gp"),
                          json={"resourceType": "Parameters", "parameter": parameter})
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("parameter", [5, "x", [5], [{"name": "operation", "part": 5}]])
def test_a_fhirpath_patch_of_the_wrong_shape_is_a_422(world: World, parameter: object) -> None:
    r = world.client.patch("/fhir/DocumentReference/anything", headers=world.headers("gp"),
                           json={"resourceType": "Parameters", "parameter": parameter})
    assert r.status_code == 422, r.text
