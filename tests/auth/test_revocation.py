"""RFC 7009 token revocation for patient apps (``POST /oauth/revoke``, :func:`carnet.auth.smart.revocation_endpoint`)
and the SMART endpoints the server declares (issue 16 §4)."""

from __future__ import annotations

from typing import Any

from tests.auth.test_smart import app_for, bearer, document_ids, signed_in  # noqa: F401
from tests.conftest import BASE, World
from tests.portal.conftest import Patient, browser, patient  # noqa: F401


def revoke(world: World, client_id: str, token: str, **extra: str) -> Any:
    return world.client.post("/oauth/revoke", data={"token": token, "client_id": client_id, **extra})


def test_revoking_a_refresh_token_ends_the_grant_and_its_access_tokens_at_once(
        world: World, signed_in: Patient, app_for: Any) -> None:  # noqa: F811
    app = app_for()
    body = app.tokens()
    assert document_ids(world, world.dossier, bearer(body["access_token"])).status_code == 200
    r = revoke(world, app.client_id, body["refresh_token"])
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert document_ids(world, world.dossier, bearer(body["access_token"])).status_code == 401
    assert app.refresh(body["refresh_token"]).json()["error"] == "invalid_grant"


def test_another_apps_or_an_unknown_token_is_answered_200_and_revokes_nothing(
        world: World, signed_in: Patient, app_for: Any) -> None:  # noqa: F811
    owner, thief = app_for(), app_for()
    body = owner.tokens()
    assert revoke(world, thief.client_id, body["refresh_token"]).status_code == 200
    assert revoke(world, owner.client_id, "not-a-token").status_code == 200
    assert document_ids(world, world.dossier, bearer(body["access_token"])).status_code == 200
    assert owner.refresh(body["refresh_token"]).status_code == 200


def test_revocation_needs_a_known_app_and_refuses_access_tokens(
        world: World, signed_in: Patient, app_for: Any) -> None:  # noqa: F811
    app = app_for()
    body = app.tokens()
    r = revoke(world, "nobody", body["refresh_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = revoke(world, app.client_id, body["access_token"], token_type_hint="access_token")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_token_type"
    assert revoke(world, app.client_id, "").json()["error"] == "invalid_request"


def test_the_capability_statement_and_the_smart_configuration_list_the_same_endpoints_that_exist(
        world: World) -> None:
    cs = world.client.get("/fhir/metadata").json()
    ext = cs["rest"][0]["security"]["extension"][0]
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris == {"authorize": f"{BASE}/oauth/authorize", "token": f"{BASE}/oauth/token",
                    "revoke": f"{BASE}/oauth/revoke", "manage": f"{BASE}/portal/apps"}
    conf = world.client.get("/.well-known/smart-configuration").json()
    assert (conf["authorization_endpoint"], conf["token_endpoint"], conf["revocation_endpoint"],
            conf["management_endpoint"]) == (uris["authorize"], uris["token"], uris["revoke"], uris["manage"])
    assert "registration_endpoint" not in conf  # apps are registered by the operator (carnet client add)
    for path, method in (("/oauth/authorize", "get"), ("/oauth/token", "post"), ("/oauth/revoke", "post")):
        assert getattr(world.client, method)(path).status_code != 404, path
