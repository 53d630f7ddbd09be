"""The one route table (:mod:`carnet.fhir.routes`): the CapabilityStatement lists exactly its routes, in JSON or XML;
a path or method it lacks is an OperationOutcome."""

from __future__ import annotations

from tests.conftest import World


def test_the_capability_statement_lists_the_routes_that_exist(world: World) -> None:
    from carnet.fhir.routes import ROUTES

    cs = world.client.get("/fhir/metadata").json()
    listed = {(r["type"], i["code"]) for r in cs["rest"][0]["resource"] for i in r["interaction"]}
    assert listed == {(r.resource, r.interaction) for r in ROUTES if r.resource and r.interaction != "operation"}
    operations = {(r["type"], o["name"]) for r in cs["rest"][0]["resource"] for o in r.get("operation", [])}
    assert operations == {(r.resource, r.operation) for r in ROUTES if r.interaction == "operation"}
    smart = world.client.get("/.well-known/smart-configuration").json()
    assert "private_key_jwt" in smart["token_endpoint_auth_methods_supported"]



def test_an_unknown_path_and_a_wrong_method_are_operation_outcomes(world: World) -> None:
    r = world.client.get("/fhir/Nothing/1")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    r = world.client.delete(f"/fhir/Patient/{world.dossier}")
    assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome"



def test_the_capability_statement_and_resources_are_served_as_xml_on_request(world: World) -> None:
    r = world.client.get("/fhir/metadata", params={"_format": "xml"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+xml")
    assert r.text.lstrip().startswith("<?xml") and "<CapabilityStatement" in r.text
    r = world.client.get(f"/fhir/Patient/{world.dossier}",
                         headers={**world.headers("gp"), "Accept": "application/fhir+xml"})
    assert r.status_code == 200 and "<Patient" in r.text
    r = world.client.get("/fhir/Patient/not-a-uuid", headers={**world.headers("gp"), "Accept": "application/fhir+xml"})
    assert r.status_code == 404 and "<OperationOutcome" in r.text



def test_every_family_declares_into_the_one_table_and_no_route_twice() -> None:
    from carnet.fhir.routes import FAMILIES, ROUTES

    assert [r for family in FAMILIES for r in family.ROUTES] == list(ROUTES)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)
