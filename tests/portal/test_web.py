"""The portals' page machinery (:mod:`carnet.portal.web`): a form too large or unreadable is a clear 4xx page, not a
500 (issue 15 §5)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.portal.conftest import PORTAL_BASE

BIG = "x" * (1100 * 1024)  # 1.1 MB: past Starlette's 1 MB a field


def _clear_4xx_page(r: Any, status: int) -> None:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    assert "Something went wrong on our side" not in r.text


@pytest.mark.parametrize("field", ["identifier", "password", "next"])
def test_a_form_field_of_1_1_mb_posted_to_sign_in_is_a_413_page(browser: Any, field: str) -> None:
    r = browser.post("/portal/sign-in", data={"identifier": "someone", "password": "secret", field: BIG})
    _clear_4xx_page(r, 413)
    assert "This form is too large" in r.text or "Ce formulaire est trop volumineux" in r.text


def test_a_multipart_field_of_1_1_mb_posted_to_sign_in_is_a_413_page(browser: Any) -> None:
    r = browser.post("/portal/sign-in", files={"identifier": (None, BIG), "password": (None, "secret")})
    _clear_4xx_page(r, 413)


def test_too_many_fields_is_a_413_page(browser: Any) -> None:
    r = browser.post("/portal/sign-in", content="&".join(f"f{i}=1" for i in range(1500)),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    _clear_4xx_page(r, 413)


def test_a_multipart_form_that_cannot_be_parsed_is_a_400_page(browser: Any) -> None:
    r = browser.post("/portal/sign-in", content=b"--nope\r\ngarbage",
                     headers={"Content-Type": "multipart/form-data"})  # no boundary
    _clear_4xx_page(r, 400)


def test_the_clinician_portals_forms_are_held_to_the_same_limits(browser: Any) -> None:
    r = browser.post("/demo-idp/authorize", data={"national_id": BIG}, headers={"Origin": PORTAL_BASE})
    _clear_4xx_page(r, 413)


@pytest.mark.parametrize("text", ["jeanne\x00", "a\x0bb", "\ufffe", "ok"])
def test_a_form_field_holding_a_character_carnet_cannot_keep_is_a_422_page(browser: Any, text: str) -> None:
    r = browser.post("/portal/sign-in", content=f"identifier={quote(text)}&password=secret".encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    if text == "ok":  # an ordinary identifier reaches the sign-in (which refuses it as unknown, not as unreadable)
        assert r.status_code != 422
        return
    _clear_4xx_page(r, 422)
    assert "cannot be kept" in r.text or "ne peut pas être conservé" in r.text
