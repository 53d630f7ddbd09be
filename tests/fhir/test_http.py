"""Request bodies on the FHIR API (:mod:`carnet.fhir.http`): nesting too deep is a clear 400, never a 500, and a body
over the route's limit is refused with 413 while it is read (issue 15 §5)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from starlette.requests import Request

from carnet.errors import FhirError
from carnet.fhir import http, transaction
from tests.clinical import samples
from tests.conftest import World, run_async

# (route, who may post there, nesting that fits under the route's size limit): 100,000 levels take 200 kB
ROUTES = [("/fhir/Condition", "doctor", 100_000), ("/fhir/Observation", "doctor", 100_000),
          ("/fhir/Patient", "doctor", 100_000), ("/fhir/DocumentReference", "doctor", 100_000),
          ("/fhir", "doctor", 100_000), ("/fhir/Task", "doctor", 30_000),
          ("/fhir/RelatedPerson", "assurance_maladie", 30_000)]


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _nested_extension(levels: int) -> str:
    """A Condition whose extensions nest ``levels`` deep (as text: ``json.dumps`` itself recurses)."""
    inner = '{"url": "urn:x", "valueString": "deep"}'
    return '{"resourceType": "Condition", "extension": [' + '{"url": "urn:x", "extension": [' * levels + inner + \
        "]}" * levels + "]}"


def _refused_as_too_deep(r: Any) -> None:
    assert r.status_code == 400, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "The body is nested deeper than 64 levels" in outcome["issue"][0]["diagnostics"]


@pytest.mark.parametrize(("route", "who", "levels"), ROUTES)
def test_json_nested_100000_deep_is_a_400_naming_the_body_on_every_fhir_route(
        world: World, route: str, who: str, levels: int) -> None:
    samples.grant_clinical_scopes(world)
    headers = world.headers(None, kind=who) if who == "assurance_maladie" else world.headers(who)
    r = world.client.post(route, content=_deep(levels), headers={**headers, "Content-Type": "application/fhir+json"})
    _refused_as_too_deep(r)


def test_json_deep_enough_for_validation_to_recurse_but_parsable_is_a_400_too(world: World) -> None:
    samples.grant_clinical_scopes(world)
    for levels in (65, 300, 900):
        r = world.client.post("/fhir/Condition", content=_nested_extension(levels),
                              headers={**world.headers("doctor"), "Content-Type": "application/fhir+json"})
        _refused_as_too_deep(r)


def test_xml_nested_too_deep_is_a_400_too(world: World) -> None:
    samples.grant_clinical_scopes(world)
    for levels in (100, 250, 5_000):
        body = '<Condition xmlns="http://hl7.org/fhir">' + "<extension url=\"urn:x\">" * levels + \
            "</extension>" * levels + "</Condition>"
        r = world.client.post("/fhir/Condition", content=body,
                              headers={**world.headers("doctor"), "Content-Type": "application/fhir+xml"})
        assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome", (levels, r.text)


def test_the_depth_limit_counts_objects_and_arrays_and_lets_real_resources_through() -> None:
    http.check_depth(json.loads(_nested_extension(20)))
    http.check_depth([[[[{"a": [1]}]]]], limit=6)
    with pytest.raises(http.TooDeep):
        http.check_depth([[[[{"a": [1]}]]]], limit=5)
    with pytest.raises(FhirError) as err:
        http.loads_bounded(_deep(100_000))
    assert err.value.status == 400


def test_a_deep_json_patch_inside_an_iti65_binary_is_refused_not_a_500() -> None:
    data = base64.b64encode(_deep(100_000).encode()).decode()
    with pytest.raises(FhirError) as err:
        transaction._patch_status({"resourceType": "Binary", "data": data}, 0)
    assert 400 <= err.value.status < 500
    items = base64.b64encode(b"[1, \"x\", null]").decode()  # not objects: refused as any other PATCH, no 500
    with pytest.raises(FhirError):
        transaction._patch_status({"resourceType": "Binary", "data": items}, 0)


def _chunked_request(chunks: int, size: int, consumed: list[int], content_type: str = "application/fhir+json"
                     ) -> Request:
    """A request with no Content-Length whose body arrives in ``chunks`` chunks; ``consumed`` counts those read."""
    scope = {"type": "http", "method": "POST", "path": "/fhir/Condition", "query_string": b"",
             "headers": [(b"content-type", content_type.encode()), (b"transfer-encoding", b"chunked")]}

    async def receive() -> dict[str, Any]:
        consumed[0] += 1
        return {"type": "http.request", "body": b"[" * size, "more_body": consumed[0] < chunks}
    return Request(scope, receive)


def test_a_chunked_body_over_the_limit_is_refused_with_413_before_it_is_read_whole() -> None:
    consumed = [0]
    request = _chunked_request(chunks=1000, size=64 * 1024, consumed=consumed)  # 64 MB on offer, 256 kB allowed
    with pytest.raises(FhirError) as err:
        run_async(http.json_body(request, 256 * 1024))
    assert err.value.status == 413
    assert consumed[0] <= 5  # refused at the first chunk past the limit, not after reading 64 MB


def test_a_chunked_body_over_a_routes_limit_is_a_413_through_the_api(world: World) -> None:
    samples.grant_clinical_scopes(world)

    def body() -> Any:
        for _ in range(8):
            yield b" " * (64 * 1024)  # 512 kB, no Content-Length: /fhir/Condition takes 256 kB
    r = world.client.post("/fhir/Condition", content=body(),
                          headers={**world.headers("doctor"), "Content-Type": "application/fhir+json"})
    assert r.status_code == 413 and r.json()["resourceType"] == "OperationOutcome"
