"""The application's HTTP errors (:mod:`carnet.app`): a 405 lists in ``Allow`` every method really served at the
path (issue 15 §5)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from carnet.fhir.routes import ROUTES
from tests.conftest import World


def _allow(r: Any) -> set[str]:
    assert r.status_code == 405, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    return {m.strip() for m in r.headers["allow"].split(",")}


def test_a_405_on_fhir_condition_lists_get_as_well_as_post(world: World) -> None:
    r = world.client.put("/fhir/Condition", json={}, headers=world.headers("doctor"))
    assert _allow(r) == {"GET", "HEAD", "POST"}
    assert world.client.delete("/fhir/Condition", headers=world.headers("doctor")).headers["allow"] == \
        "GET, HEAD, POST"


def test_a_405_on_a_path_two_route_templates_match_lists_the_methods_of_both(world: World) -> None:
    # /fhir/DocumentReference/_search (POST) is also /fhir/DocumentReference/{id} (GET, PATCH, DELETE)
    r = world.client.put("/fhir/DocumentReference/_search", json={}, headers=world.headers())
    assert _allow(r) == {"DELETE", "GET", "HEAD", "PATCH", "POST"}


def test_a_405_on_a_portal_page_lists_get_and_post(world: World) -> None:
    assert _allow(world.client.put("/portal/sign-in")) == {"GET", "HEAD", "POST"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x-1", path)


@pytest.mark.parametrize("path", sorted({_concrete(r.path) for r in ROUTES}))
def test_every_fhir_path_lists_in_allow_every_method_it_serves_and_only_those(world: World, path: str) -> None:
    served = {r.method for r in ROUTES if re.fullmatch(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(r.path)), path)}
    unserved = next(m for m in ("PUT", "OPTIONS", "TRACE", "PATCH", "DELETE") if m not in served)
    allow = _allow(world.client.request(unserved, path, headers=world.headers()))
    assert served <= allow and allow - served <= {"HEAD"}, (served, allow)
    for method in allow - {"HEAD"}:  # each method it names is answered, if only with a refusal
        assert world.client.request(method, path, headers=world.headers()).status_code != 405, method
