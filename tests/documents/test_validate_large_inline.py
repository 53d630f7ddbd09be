"""Large inline contents are checked as base64 apart from the model (no copy of many megabytes), and still refused
with the field named when they are not base64."""

from __future__ import annotations

import base64

import pytest

from carnet.documents.validate import BIG_INLINE, validate
from carnet.errors import FhirError


def docref(data: str) -> dict[str, object]:
    return {"resourceType": "DocumentReference", "status": "current",
            "content": [{"attachment": {"contentType": "application/pdf", "data": data}}]}


BIG = base64.b64encode(b"%PDF" + b"x" * BIG_INLINE).decode()


def test_a_large_valid_inline_content_is_accepted_and_left_unchanged() -> None:
    resource = docref(BIG)
    assert validate(resource, "DocumentReference") is resource
    assert resource["content"][0]["attachment"]["data"] == BIG  # type: ignore[index]


@pytest.mark.parametrize("bad", [BIG[:-1], BIG[:1000] + "!" + BIG[1001:], BIG[:-4] + "A===", " " + BIG[1:]])
def test_a_large_inline_content_that_is_not_base64_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(FhirError) as err:
        validate(docref(bad), "DocumentReference")
    assert err.value.status == 422
    assert "DocumentReference.content[0].attachment.data" in str(err.value.outcome())


def test_a_large_binary_in_a_bundle_is_named_from_the_bundle() -> None:
    with pytest.raises(FhirError) as err:
        validate({"resourceType": "Binary", "contentType": "application/pdf", "data": BIG[:-1]}, "Binary",
                 "Bundle.entry[2].resource")
    assert "Bundle.entry[2].resource.data" in str(err.value.outcome())


def test_a_small_inline_content_still_goes_through_the_model() -> None:
    with pytest.raises(FhirError) as err:
        validate(docref("not base64!"), "DocumentReference")
    assert err.value.status == 422
