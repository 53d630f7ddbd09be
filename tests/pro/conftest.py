"""Clinician portal test base: an HTTPS test client, and a professional who signs in through the demo identity
provider's real pages (authorize → callback → token exchange in process)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

BASE = "https://testserver"


@pytest.fixture
def browser(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=BASE, follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def authorize_params(browser: TestClient) -> dict[str, str]:
    r = browser.get("/pro/login")
    assert r.status_code == 302, r.text
    loc = r.headers["location"]
    assert loc.startswith("/demo-idp/authorize?")
    return {k: v[0] for k, v in parse_qs(urlsplit(loc).query).items()}


def idp_csrf_of(html: str) -> str:
    m = re.search(r'name="idp_csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the demo identity provider's page"
    return m.group(1)


def pick_form(browser: TestClient, params: dict[str, str], national_id: str) -> dict[str, str]:
    """What the demo identity provider's page posts when ``national_id`` is picked (its CSRF token included)."""
    page = browser.get("/demo-idp/authorize", params={**params, "find": national_id})
    assert page.status_code == 200 and national_id in page.text, page.text
    return {**params, "national_id": national_id, "idp_csrf": idp_csrf_of(page.text)}


def sign_in(browser: TestClient, national_id: str) -> Any:
    """Sign in as ``national_id``; returns the callback's response."""
    params = authorize_params(browser)
    r = browser.post("/demo-idp/authorize", data=pick_form(browser, params, national_id))
    assert r.status_code == 303, r.text
    return browser.get(r.headers["location"].replace("https://testserver", ""))


def signed_in(browser: TestClient, national_id: str) -> TestClient:
    r = sign_in(browser, national_id)
    assert r.status_code == 303 and r.headers["location"] == "/pro/", r.text
    return browser
