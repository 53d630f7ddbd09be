"""The demo identity provider's authorize endpoint: exact redirect URI, CSRF token and Origin check (issue 15 §4)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc.jwk import ECKey
from markupsafe import escape

from carnet.auth.keys import ServerKey
from carnet.pro import demo_idp, oidc
from tests.conftest import World
from tests.pro.conftest import authorize_params, pick_form, signed_in

EVIL = ["https://evil.example/pro/callback", "https://testserver.evil.example/pro/callback",
        "https://testserver/pro/callback/../../evil", "https://testserver/pro/callback?next=https://evil.example",
        "https://testserver:8443/pro/callback", "//evil.example/pro/callback", "/pro/callback"]


@pytest.mark.parametrize("evil", EVIL)
def test_a_redirect_uri_other_than_the_portals_registered_one_is_refused_and_no_code_is_issued(
        world: World, browser: Any, evil: str) -> None:
    params = authorize_params(browser)
    form = pick_form(browser, params, world.pros["doctor"])
    page = browser.get("/demo-idp/authorize", params={**params, "redirect_uri": evil})
    assert page.status_code == 400 and "national_id" not in page.text
    r = browser.post("/demo-idp/authorize", data={**form, "redirect_uri": evil})
    assert r.status_code == 400 and "location" not in r.headers and "code=" not in r.text


def test_the_registered_redirect_uri_is_the_one_the_portal_builds(world: World, browser: Any) -> None:
    params = authorize_params(browser)
    assert params["redirect_uri"] == oidc.redirect_uri(world.services.settings, "https://testserver")
    r = browser.post("/demo-idp/authorize", data=pick_form(browser, params, world.pros["doctor"]))
    assert r.status_code == 303 and r.headers["location"].startswith("https://testserver/pro/callback?code=")


def test_a_post_without_the_pages_csrf_token_is_refused(world: World, browser: Any) -> None:
    params = authorize_params(browser)
    r = browser.post("/demo-idp/authorize", data={**params, "national_id": world.pros["doctor"]})
    assert r.status_code == 403 and "location" not in r.headers


def test_a_forged_expired_or_other_requests_csrf_token_is_refused(world: World, browser: Any) -> None:
    settings = world.services.settings
    params = authorize_params(browser)
    form = pick_form(browser, params, world.pros["doctor"])
    stranger = ServerKey(ECKey.generate_key("P-256", private=True))
    now = int(time.time())
    forged = stranger.sign({"h": demo_idp._params_hash(params), "iat": now, "exp": now + 60}, typ="demo-form")
    expired = demo_idp.form_token(settings, params, now=now - demo_idp.FORM_SECONDS - 1)
    other = demo_idp.form_token(settings, {**params, "state": "another state"})
    code = demo_idp.key(settings).sign({"h": demo_idp._params_hash(params), "exp": now + 60}, typ="demo-code")
    for token in ("", "garbage", forged, expired, other, code, form["idp_csrf"] + "x"):
        r = browser.post("/demo-idp/authorize", data={**form, "idp_csrf": token})
        assert r.status_code == 403 and "location" not in r.headers, token
    # the token is bound to the parameters: the page's token does not carry over to another state
    r = browser.post("/demo-idp/authorize", data={**form, "state": "another state"})
    assert r.status_code == 403 and "location" not in r.headers


def test_a_post_from_another_sites_origin_or_referer_is_refused(world: World, browser: Any) -> None:
    params = authorize_params(browser)
    form = pick_form(browser, params, world.pros["doctor"])
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/page"},
                    {"Origin": "https://testserver.evil.example"}):
        r = browser.post("/demo-idp/authorize", data=form, headers=headers)
        assert r.status_code == 403 and "location" not in r.headers, headers
    r = browser.post("/demo-idp/authorize", data=form, headers={"Origin": "https://testserver"})
    assert r.status_code == 303


def test_the_normal_demo_sign_in_still_works(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    assert browser.get("/pro/").status_code == 200


def test_the_demo_says_it_is_the_demo_and_names_professions_in_words(world: World, browser: Any) -> None:
    sign_in_page = browser.get("/pro/sign-in").text
    assert str(escape("Se connecter avec le fournisseur d'identité de démonstration")) in sign_in_page
    assert "Se connecter avec Pro Santé Connect" not in sign_in_page  # not a Pro Santé Connect button in the demo
    params = authorize_params(browser)
    page = browser.get("/demo-idp/authorize", params={**params, "find": world.pros["nurse"]}).text
    line = page[page.index(f'<span class="meta">{world.pros["nurse"]}'):].split("</span>")[0]
    assert "Infirmier" in line and " · 60" not in line, line
