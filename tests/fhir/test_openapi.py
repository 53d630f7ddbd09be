"""The OpenAPI description of the FHIR API (issue 15 §8): generated from the route table, valid OpenAPI 3.1, served
without a token at /fhir/openapi.json, and the only description the server serves."""

from __future__ import annotations

from dataclasses import replace

from openapi_spec_validator import validate

from carnet import __version__
from carnet.fhir.openapi import openapi_document, operation_id
from carnet.fhir.routes import ROUTES
from tests.conftest import BASE, World

DOC = openapi_document(BASE, __version__)


def test_the_description_is_valid_openapi() -> None:
    validate(DOC)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_of_the_table_is_described_with_its_method_and_nothing_else_is() -> None:
    described = {(path, method.upper()) for path, ops in DOC["paths"].items() for method in ops}
    table = {(r.path, r.method) for r in ROUTES}
    assert table <= described
    assert described - table == {("/fhir/metadata", "GET"), ("/fhir/openapi.json", "GET")}


def test_a_route_added_to_the_table_appears_in_the_description() -> None:
    extra = replace(ROUTES[0], path="/fhir/Example", method="PUT", interaction="update", resource="Example")
    doc = openapi_document(BASE, "0", (*ROUTES, extra))
    assert doc["paths"]["/fhir/Example"]["put"]["x-fhir-interaction"] == "update"


def test_operation_ids_are_unique() -> None:
    ids = [operation_id(r) for r in ROUTES]
    assert len(ids) == len(set(ids))


def test_the_ihe_transactions_are_named_in_their_operations() -> None:
    found = {op["x-ihe-transaction"]: op for ops in DOC["paths"].values() for op in ops.values()
             if "x-ihe-transaction" in op}
    assert {"ITI-65", "ITI-66", "ITI-67", "ITI-68", "ITI-78", "ITI-105"} <= set(found)
    assert DOC["paths"]["/fhir"]["post"]["operationId"].startswith("ITI-65_")
    assert "Provide Document Bundle" in DOC["paths"]["/fhir"]["post"]["summary"]
    assert DOC["paths"]["/fhir/DocumentReference"]["post"]["summary"].startswith("ITI-105 Simplified Publish")
    assert DOC["paths"]["/fhir/Binary/{id}"]["get"]["x-ihe-transaction"] == "ITI-68"


def test_each_search_lists_the_parameters_of_its_route_and_paging() -> None:
    for route in ROUTES:
        if route.interaction != "search-type" or route.method != "GET":
            continue
        names = {p["name"] for p in DOC["paths"][route.path]["get"]["parameters"]}
        assert {n for n, _ in route.search_params} | {"_count", "_offset"} <= names, route.path


def test_bodies_reference_the_schema_of_what_they_create() -> None:
    body = DOC["paths"]["/fhir/Patient"]["post"]["requestBody"]["content"]["application/fhir+json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Patient"}
    assert set(DOC["components"]["schemas"]["Patient"]["required"]) >= {"identifier", "birthDate"}


def test_every_refusal_is_an_operation_outcome_and_every_operation_declares_them() -> None:
    for status, response in DOC["components"]["responses"].items():
        assert response["content"]["application/fhir+json"]["schema"] == {
            "$ref": "#/components/schemas/OperationOutcome"}, status
    for ops in DOC["paths"].values():
        for op in ops.values():
            if op.get("security") != []:
                assert {"400", "401", "403", "404", "422"} <= set(op["responses"]), op["operationId"]


def test_operations_need_the_smart_scope_of_their_route_and_the_schemes_point_at_smart() -> None:
    op = DOC["paths"]["/fhir/DocumentReference"]["post"]
    assert {"smart_backend": ["system/DocumentReference.c"]} in op["security"]
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["smart_backend"]["flows"]["clientCredentials"]["tokenUrl"] == f"{BASE}/oauth/token"
    assert f"{BASE}/fhir/.well-known/smart-configuration" in schemes["smart_backend"]["description"]


def test_it_is_served_without_a_token_and_is_the_one_generated_from_the_table(world: World) -> None:
    r = world.client.get("/fhir/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == DOC
    assert world.client.get("/openapi.json").status_code == 404  # FastAPI's own description is switched off
    assert world.client.get("/docs").status_code == 404


def test_the_capability_statement_points_to_it(world: World) -> None:
    cs = world.client.get("/fhir/metadata").json()
    assert f"{BASE}/fhir/openapi.json" in cs["rest"][0]["documentation"]
