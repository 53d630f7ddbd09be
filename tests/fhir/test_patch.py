"""The PATCH plan: JSON Patch and FHIRPath Patch on status and securityLabel, applied to the stored labels."""

from __future__ import annotations

import pytest

from carnet.errors import FhirError
from carnet.fhir.patch import parse

N = {"coding": [{"code": "N"}]}
M = {"coding": [{"code": "MASQUE_PS"}]}
R = {"coding": [{"code": "R"}]}


def test_a_replace_at_an_index_changes_only_that_label() -> None:
    plan = parse([{"op": "replace", "path": "/securityLabel/0", "value": M}])
    assert plan.new_labels([N, R]) == [M, R]


def test_add_appends_or_inserts_and_remove_drops() -> None:
    assert parse([{"op": "add", "path": "/securityLabel/-", "value": M}]).new_labels([N]) == [N, M]
    assert parse([{"op": "add", "path": "/securityLabel/0", "value": M}]).new_labels([N]) == [M, N]
    assert parse([{"op": "remove", "path": "/securityLabel/1"}]).new_labels([N, M]) == [N]


def test_an_index_past_the_end_is_refused() -> None:
    with pytest.raises(FhirError) as err:
        parse([{"op": "replace", "path": "/securityLabel/2", "value": M}]).new_labels([N])
    assert err.value.status == 422


def test_a_failed_test_operation_refuses_the_whole_patch() -> None:
    plan = parse([{"op": "test", "path": "/status", "value": "current"},
                  {"op": "replace", "path": "/status", "value": "entered-in-error"}])
    plan.check_tests({"status": "current"})
    with pytest.raises(FhirError) as err:
        plan.check_tests({"status": "superseded"})
    assert err.value.status == 409


def test_other_paths_are_refused() -> None:
    with pytest.raises(FhirError) as err:
        parse([{"op": "replace", "path": "/subject", "value": {}}])
    assert err.value.issues[0].expression == ["[0].path"]


def test_a_fhirpath_patch_adds_or_replaces_a_label() -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": "DocumentReference.securityLabel"},
        {"name": "value", "valueCodeableConcept": M}]}]}
    assert parse(body).new_labels([N]) == [N, M]
    body["parameter"][0]["part"][0]["valueCode"] = "replace"
    assert parse(body).new_labels([N, R]) == [M]
