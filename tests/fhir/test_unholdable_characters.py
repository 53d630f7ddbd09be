"""Characters Carnet could not store or serve back (NUL, other C0 controls, lone surrogates, U+FFFE/U+FFFF) are refused
at the door with a 422 naming the field (issue 15 §1): never a 500 on PostgreSQL, never an XML answer that fails."""

from __future__ import annotations

import json

import pytest

from tests.conftest import World
from tests.fhir.routes.test_documents import docref


def post(world: World, path: str, body: str) -> tuple[int, dict[str, object]]:
    r = world.client.post(path, content=body.encode("utf-8", "surrogatepass"),
                          headers={**world.headers(), "Content-Type": "application/fhir+json"})
    return r.status_code, r.json()


def expressions(outcome: dict[str, object]) -> list[str]:
    return [e for issue in outcome["issue"] for e in issue.get("expression", [])]  # type: ignore[attr-defined]


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x0b", "\x1f", "\ufffe", "\uffff"])
def test_a_control_character_in_a_title_is_refused_naming_the_field(world: World, char: str) -> None:
    res = docref(world)
    res["content"][0]["attachment"]["title"] = f"Compte{char}rendu"
    status, outcome = post(world, "/fhir/DocumentReference", json.dumps(res))
    assert status == 422
    assert expressions(outcome) == ["DocumentReference.content[0].attachment.title"]


def test_a_lone_surrogate_is_refused(world: World) -> None:
    res = docref(world)
    res["content"][0]["attachment"]["title"] = "__LONE__"
    status, outcome = post(world, "/fhir/DocumentReference", json.dumps(res).replace("__LONE__", "\\ud800"))
    assert status == 422
    assert expressions(outcome) == ["DocumentReference.content[0].attachment.title"]


def test_a_nul_in_a_field_name_is_refused(world: World) -> None:
    res = docref(world)
    res["content"][0]["attachment"]["ti\x00tle"] = "x"
    status, outcome = post(world, "/fhir/DocumentReference", json.dumps(res))
    assert status == 422
    assert expressions(outcome) == ["DocumentReference.content[0].attachment"]


def test_a_nul_in_a_patients_name_is_refused_and_creates_nothing(world: World) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "Dupo\x00nt", "given": ["Anne"]}]}
    before = world.client.get("/fhir/Patient", params={"family": "Dupont"}, headers=world.headers())
    status, outcome = post(world, "/fhir/Patient", json.dumps(body))
    assert status == 422
    assert expressions(outcome) == ["Patient.name[0].family"]
    after = world.client.get("/fhir/Patient", params={"family": "Dupont"}, headers=world.headers())
    assert after.status_code == before.status_code and after.text.count('"Patient"') == before.text.count('"Patient"')


def test_tabs_and_line_breaks_are_ordinary_text(world: World) -> None:
    res = docref(world)
    res["content"][0]["attachment"]["title"] = "Compte\trendu\r\nde consultation"
    status, outcome = post(world, "/fhir/DocumentReference", json.dumps(res))
    assert status == 201, outcome
