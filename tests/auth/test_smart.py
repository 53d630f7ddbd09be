"""Patients' apps: the SMART standalone launch through the real portal pages, then the API with the app's token
(issue 4 §4; carnet.auth.smart and carnet.portal.pages.authorize)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from carnet import admin
from carnet.access.actors import Actor, ActorKind
from carnet.accounts import service as accounts
from carnet.auth.smart import pkce_challenge
from carnet.context import Services, run
from carnet.db.tables import account_dossier, refresh_token, representative
from carnet.dossier import service as dossiers
from carnet.identity.ins import fake_nir_for
from tests.conftest import BASE, World, _counter
from tests.fhir.routes.test_documents import publish
from tests.portal.conftest import Patient, browser, csrf_of, last_code_sent_to, patient  # noqa: F401

REDIRECT = "https://app.example.test/callback"
AUD = f"{BASE}/fhir"


def add_app(services: Services, scopes: str | None = None) -> str:
    cid = f"test-app-{next(_counter)}"
    with services.engine.begin() as conn:
        admin.add_client(conn, client_id=cid, name="Appli Test", kind="patient_app", jwks=None, scopes=scopes,
                         redirect_uris=[REDIRECT, "http://127.0.0.1:8765/callback"])
    return cid


class App:
    """A patient's app: PKCE, the authorization request, the token requests."""

    def __init__(self, services: Services, pages: TestClient, api: TestClient, client_id: str) -> None:
        self.services, self.browser, self.api, self.client_id = services, pages, api, client_id
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(12)

    def params(self, **overrides: str) -> dict[str, str]:
        values = {"response_type": "code", "client_id": self.client_id, "redirect_uri": REDIRECT,
                  "scope": "launch/patient patient/*.rs offline_access", "state": self.state, "aud": AUD,
                  "code_challenge": pkce_challenge(self.verifier), "code_challenge_method": "S256", **overrides}
        return {k: v for k, v in values.items() if v != ""}

    def authorize(self, **overrides: str) -> Any:
        return self.browser.get("/oauth/authorize", params=self.params(**overrides))

    def answer(self, page: Any, decision: str = "allow", dossier: str | None = None, **overrides: str) -> Any:
        assert page.status_code == 200, page.text
        form = {**self.params(**overrides), "csrf": csrf_of(page.text), "decision": decision}
        form["dossier"] = dossier or self.dossier_on(page.text)
        return self.browser.post("/oauth/authorize", data=form)

    @staticmethod
    def dossier_on(html: str) -> str:
        import re

        checked = re.search(r'name="dossier" value="([^"]+)" checked', html)
        found = checked or re.search(r'name="dossier" value="([^"]+)"', html)
        assert found, "no dossier on the consent page"
        return found.group(1)

    def code(self, **overrides: str) -> str:
        r = self.answer(self.authorize(**overrides), **overrides)
        assert r.status_code == 303, r.text
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["state"] == [self.state]
        return query["code"][0]

    def exchange(self, code: str, **overrides: str) -> Any:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                "client_id": self.client_id, "code_verifier": self.verifier, **overrides}
        return self.api.post("/oauth/token", data=form)

    def tokens(self, **overrides: str) -> dict[str, Any]:
        r = self.exchange(self.code(**overrides))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def refresh(self, token: str, **extra: str) -> Any:
        return self.api.post("/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token,
                                                   "client_id": self.client_id, **extra})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"}


def document_ids(world: World, dossier_key: Any, headers: dict[str, str]) -> Any:
    return world.client.get("/fhir/DocumentReference", params={"patient": str(dossier_key)}, headers=headers)


@pytest.fixture
def app_for(world: World, browser: TestClient) -> Iterator[Any]:  # noqa: F811
    def make(scopes: str | None = None) -> App:
        return App(world.services, browser, world.client, add_app(world.services, scopes))
    yield make


@pytest.fixture
def signed_in(patient: Patient) -> Patient:  # noqa: F811
    return patient.ready()


# --- the whole flow ---------------------------------------------------------------------------------------------


def test_the_whole_launch_goes_through_sign_in_consent_and_token_then_reads_only_the_patients_documents(
        world: World, patient: Patient, app_for: Any) -> None:  # noqa: F811
    app = app_for()
    doc_id = publish(world)
    assert patient.activate().status_code == 303
    r = app.authorize()
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/sign-in?next=")
    nxt = unquote(r.headers["location"].split("next=", 1)[1])
    assert nxt.startswith("/oauth/authorize?")
    assert patient.browser.get(r.headers["location"]).status_code == 200
    r = patient.browser.post("/portal/sign-in", data={"login": patient.login, "password": patient.password,
                                                      "next": nxt})
    assert r.status_code == 303
    code_page = patient.browser.get(r.headers["location"])
    r = patient.browser.post("/portal/code", data={"csrf": csrf_of(code_page.text), "next": nxt,
                                                   "code": last_code_sent_to(patient.services, patient.email)})
    assert r.status_code == 303 and r.headers["location"] == nxt
    consent = patient.browser.get(nxt)
    assert consent.status_code == 200 and "Appli Test" in consent.text
    assert "https://app.example.test" in consent.headers["content-security-policy"]
    r = app.answer(consent)
    assert r.status_code == 303 and r.headers["location"].startswith(REDIRECT + "?code=")
    code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
    r = app.exchange(code)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["patient"] == str(world.dossier)
    assert set(body["scope"].split()) == {"launch/patient", "patient/*.rs", "offline_access"}
    assert body["refresh_token"] and r.headers["cache-control"] == "no-store"

    headers = bearer(body["access_token"])
    found = document_ids(world, world.dossier, headers)
    assert found.status_code == 200
    assert doc_id in {e["resource"]["id"] for e in found.json()["entry"]}
    assert world.client.get(f"/fhir/Binary/{doc_id}", headers={**headers, "Accept": "*/*"}).status_code == 200
    other = World(world.services, world.client)
    publish(other)
    assert document_ids(world, other.dossier, headers).status_code in (403, 404)


def test_the_access_token_carries_the_patients_claims_and_its_grant(signed_in: Patient, app_for: Any) -> None:
    import json

    from carnet.auth.jwt import b64url_object

    body = app_for().tokens()
    claims = b64url_object(body["access_token"].split(".")[1])
    assert claims["extensions"]["ihe_iua"]["person_id"] == signed_in.world.ins
    assert claims["extensions"]["carnet"]["client_kind"] == "patient_app"
    uuid.UUID(claims["extensions"]["carnet"]["grant_id"])
    assert "refresh_token" not in json.dumps(claims)


def test_the_smart_configuration_announces_the_standalone_launch(world: World) -> None:
    conf = world.client.get("/.well-known/smart-configuration").json()
    assert conf["authorization_endpoint"] == f"{BASE}/oauth/authorize"
    assert set(conf["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert conf["code_challenge_methods_supported"] == ["S256"]
    for capability in ("launch-standalone", "client-public", "context-standalone-patient", "permission-patient",
                       "permission-offline", "client-confidential-asymmetric"):
        assert capability in conf["capabilities"]


# --- refresh tokens ---------------------------------------------------------------------------------------------


def test_a_refresh_rotates_the_token_and_a_reused_one_revokes_the_whole_family(
        world: World, signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    first = app.tokens()
    r = app.refresh(first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["patient"] == str(world.dossier)
    assert document_ids(world, world.dossier, bearer(second["access_token"])).status_code == 200

    replay = app.refresh(first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert app.refresh(second["refresh_token"]).json()["error"] == "invalid_grant"
    assert document_ids(world, world.dossier, bearer(second["access_token"])).status_code == 401


def test_a_refresh_token_carries_its_grant_and_one_issued_without_it_still_works(
        world: World, signed_in: Patient, app_for: Any) -> None:
    import hashlib

    from carnet.auth.jwt import b64url_object

    app = app_for()
    first = app.tokens()
    grant = b64url_object(first["access_token"].split(".")[1])["extensions"]["carnet"]["grant_id"]
    assert first["refresh_token"].split(".")[0] == grant  # found on its grant's shard (docs/SCALE.md)
    legacy = secrets.token_urlsafe(32)  # a token issued before tokens carried their grant
    with world.services.engine.begin() as conn:
        conn.execute(update(refresh_token).where(
            refresh_token.c.token_hash == hashlib.sha256(first["refresh_token"].encode()).hexdigest())
            .values(token_hash=hashlib.sha256(legacy.encode()).hexdigest()))
    r = app.refresh(legacy)
    assert r.status_code == 200, r.text
    assert r.json()["refresh_token"].split(".")[0] == grant
    assert app.refresh(legacy).json()["error"] == "invalid_grant"  # spent, and the family with it


def test_without_offline_or_online_access_no_refresh_token_is_given(signed_in: Patient, app_for: Any) -> None:
    body = app_for().tokens(scope="patient/DocumentReference.rs")
    assert "refresh_token" not in body and body["scope"] == "patient/DocumentReference.rs"


def test_a_refresh_token_belongs_to_its_app(signed_in: Patient, app_for: Any) -> None:
    first = app_for().tokens()
    thief = app_for()
    assert thief.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_signing_out_everywhere_stops_the_apps_tokens_at_once(world: World, signed_in: Patient,
                                                               app_for: Any) -> None:
    body = app_for().tokens()
    home = signed_in.browser.get("/portal/apps")
    r = signed_in.browser.post("/portal/sign-out", data={"csrf": csrf_of(home.text), "everywhere": "1"})
    assert r.status_code == 303
    assert document_ids(world, world.dossier, bearer(body["access_token"])).status_code == 401


def test_the_connected_apps_page_lists_the_app_and_withdraws_its_access(world: World, signed_in: Patient,
                                                                        app_for: Any) -> None:
    app = app_for()
    body = app.tokens()
    page = signed_in.browser.get("/portal/apps")
    assert page.status_code == 200 and "Appli Test" in page.text
    import re

    grant = re.search(r'name="grant" value="([^"]+)"', page.text)
    assert grant
    r = signed_in.browser.post("/portal/apps/revoke", data={"csrf": csrf_of(page.text), "grant": grant.group(1)})
    assert r.status_code == 303
    assert "Appli Test" not in signed_in.browser.get("/portal/apps").text
    assert document_ids(world, world.dossier, bearer(body["access_token"])).status_code == 401
    assert app.refresh(body["refresh_token"]).json()["error"] == "invalid_grant"


# --- what the token endpoint refuses ---------------------------------------------------------------------------


def test_a_wrong_pkce_verifier_is_refused_and_burns_the_code(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    code = app.code()
    r = app.exchange(code, code_verifier=secrets.token_urlsafe(48))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert app.exchange(code).json()["error"] == "invalid_grant"


def test_a_missing_pkce_verifier_is_an_invalid_request(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    assert app.exchange(app.code(), code_verifier="").json()["error"] == "invalid_request"


def test_the_token_request_must_repeat_the_redirect_uri(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    r = app.exchange(app.code(), redirect_uri="http://127.0.0.1:8765/callback")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_an_unknown_client_gets_invalid_client_at_the_token_endpoint(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    r = app.exchange(app.code(), client_id="no-such-app")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_a_code_used_twice_is_refused_and_revokes_what_it_gave(world: World, signed_in: Patient,
                                                               app_for: Any) -> None:
    app = app_for()
    code = app.code()
    first = app.exchange(code).json()
    again = app.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert document_ids(world, world.dossier, bearer(first["access_token"])).status_code == 401
    assert app.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_a_code_expires_after_a_minute(world: World, signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    code = app.code()
    real = world.services.clock
    try:
        world.services.clock = lambda: real() + dt.timedelta(seconds=61)
        r = app.exchange(code)
    finally:
        world.services.clock = real
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_patient_app_cannot_use_client_credentials_and_backend_clients_still_can(world: World,
                                                                                   app_for: Any) -> None:
    from carnet.auth.assertions import make_client_assertion

    app = app_for()
    assertion = make_client_assertion(world.key, app.client_id, f"{BASE}/oauth/token", int(time.time()),
                                      patient_ins=world.ins)
    r = world.client.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
    assert r.status_code in (400, 401) and r.json()["error"] in ("unauthorized_client", "invalid_client")
    assert document_ids(world, world.dossier, world.headers("gp")).status_code == 200
    assert document_ids(world, world.dossier, world.headers(None, kind="patient_portal")).status_code == 200


# --- what the authorization endpoint refuses ---------------------------------------------------------------------


def test_an_unknown_client_is_shown_a_page_and_never_redirected(browser: TestClient, app_for: Any) -> None:  # noqa: F811
    app = app_for()
    r = app.authorize(client_id="no-such-app")
    assert r.status_code == 400 and "location" not in r.headers


def test_a_redirect_uri_that_was_not_registered_is_shown_a_page_and_never_redirected(app_for: Any) -> None:
    app = app_for()
    r = app.authorize(redirect_uri="https://evil.example.test/callback")
    assert r.status_code == 400 and "location" not in r.headers
    assert "evil" not in r.text


def test_other_errors_go_back_to_the_app_with_the_state(app_for: Any) -> None:
    app = app_for()
    for overrides, error in (({"code_challenge_method": "plain"}, "invalid_request"),
                             ({"code_challenge": ""}, "invalid_request"),
                             ({"aud": "https://elsewhere.example.test/fhir"}, "invalid_request"),
                             ({"response_type": "token"}, "unsupported_response_type"),
                             ({"scope": "system/*.rs"}, "invalid_scope"),
                             ({"scope": "patient/DocumentReference.cruds"}, "invalid_scope")):
        r = app.authorize(**overrides)
        assert r.status_code == 303, overrides
        location = urlsplit(r.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
        query = parse_qs(location.query)
        assert query["error"] == [error] and query["state"] == [app.state], overrides


def test_denying_consent_sends_access_denied_and_gives_no_code(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    r = app.answer(app.authorize(), decision="deny")
    assert r.status_code == 303
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == [app.state] and "code" not in query


def test_the_consent_form_is_csrf_protected(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    page = app.authorize()
    form = {**app.params(), "csrf": "forged", "decision": "allow", "dossier": app.dossier_on(page.text)}
    r = app.browser.post("/oauth/authorize", data=form)
    assert r.status_code == 403 and "location" not in r.headers


def test_the_consent_screen_says_in_plain_words_what_the_app_asks(signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    page = app.authorize(scope="patient/Patient.rs patient/AuditEvent.rs")
    assert page.status_code == 200
    assert "Appli Test" in page.text and "(nom, date de naissance, INS)" in page.text
    assert "qui a consulté le dossier" in page.text and "<li>patient/" not in page.text


# --- scopes --------------------------------------------------------------------------------------------------------


def test_a_narrower_scope_restricts_the_routes(world: World, signed_in: Patient, app_for: Any) -> None:
    body = app_for().tokens(scope="patient/Patient.rs")
    headers = bearer(body["access_token"])
    assert document_ids(world, world.dossier, headers).status_code == 403
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=headers).status_code == 200


def test_an_app_gets_no_write_scope_and_cannot_write(world: World, signed_in: Patient, app_for: Any) -> None:
    app = app_for()
    r = app.authorize(scope="patient/*.cruds offline_access")
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_scope"]
    body = app.tokens(scope="patient/*.cruds patient/*.rs offline_access")
    assert set(body["scope"].split()) == {"patient/*.rs", "offline_access"}
    doc_id = publish(world)
    r = world.client.delete(f"/fhir/DocumentReference/{doc_id}", headers=bearer(body["access_token"]))
    assert r.status_code == 403
    assert world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=bearer(body["access_token"])).status_code \
        == 200


def test_registering_a_patient_app_with_a_write_scope_or_a_key_is_refused(services: Services) -> None:
    with services.engine.begin() as conn:
        with pytest.raises(ValueError):
            admin.add_client(conn, client_id="bad-app", name="x", kind="patient_app", jwks=None,
                             scopes="patient/*.cruds", redirect_uris=[REDIRECT])
        with pytest.raises(ValueError):
            admin.add_client(conn, client_id="bad-app", name="x", kind="patient_app", jwks=None,
                             redirect_uris=["http://app.example.test/callback"])
        with pytest.raises(ValueError):
            admin.add_client(conn, client_id="bad-app", name="x", kind="patient_app", jwks=None)


# --- legal representatives -----------------------------------------------------------------------------------------


def representative_signed_in(world: World, browser: TestClient) -> tuple[uuid.UUID, uuid.UUID]:  # noqa: F811
    """A child's dossier with a parent who signs in through the portal pages; returns (dossier, representative)."""
    services = world.services
    resource = world.patient_resource(fake_nir_for(next(_counter)))
    resource["birthDate"] = "2015-06-02"
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    child, _ = run(services, gp, lambda ctx: dossiers.create(ctx, resource))
    email, password = f"parent{next(_counter)}@example.test", "violet stapler mountain 42"
    op = Actor(ActorKind.OPERATOR, id="test")
    rep_id = run(services, op, lambda ctx: dossiers.add_representative(
        ctx, child, "minor", "Parent", "Camille", "MTH", {"telecom": [{"system": "email", "value": email}]}))
    with services.engine.begin() as conn:
        row = accounts.by_login(conn, email)
        code = accounts.new_code(conn, row.account_id, "activation", "post", services.clock(), dt.timedelta(days=1))
        accounts.activate(services, conn, services.clock(), login=email, code=code, birth_date=None,
                          password=password, email=email, phone=None, otp_channel="email")
    r = browser.post("/portal/sign-in", data={"login": email, "password": password, "next": "/portal/"})
    assert r.status_code == 303
    page = browser.get("/portal/code")
    r = browser.post("/portal/code", data={"csrf": csrf_of(page.text), "next": "/portal/",
                                           "code": last_code_sent_to(services, email)})
    assert r.status_code == 303
    return child, rep_id


def test_a_representatives_app_reads_the_childs_dossier_until_the_child_comes_of_age(
        world: World, browser: TestClient, app_for: Any) -> None:  # noqa: F811
    child, _ = representative_signed_in(world, browser)
    app = app_for()
    body = app.tokens()
    assert body["patient"] == str(child)
    headers = bearer(body["access_token"])
    assert document_ids(world, child, headers).status_code == 200
    assert document_ids(world, world.dossier, headers).status_code in (403, 404)
    real = world.services.clock
    try:
        world.services.clock = lambda: real() + dt.timedelta(days=365 * 30)
        assert document_ids(world, child, headers).status_code == 403
    finally:
        world.services.clock = real


def test_a_representatives_app_loses_the_dossier_when_the_representation_ends(
        world: World, browser: TestClient, app_for: Any) -> None:  # noqa: F811
    child, rep_id = representative_signed_in(world, browser)
    app = app_for()
    body = app.tokens()
    headers = bearer(body["access_token"])
    assert document_ids(world, child, headers).status_code == 200
    now = world.services.clock()
    with world.services.engine.begin() as conn:
        conn.execute(update(representative).where(representative.c.representative_id == rep_id)
                     .values(ended_at=now))
        conn.execute(update(account_dossier).where(account_dossier.c.dossier_key == child).values(ended_at=now))
    assert document_ids(world, child, headers).status_code in (401, 403)
    assert app.refresh(body["refresh_token"]).json()["error"] == "invalid_grant"
    with world.services.engine.connect() as conn:
        rows = conn.execute(select(refresh_token.c.revoked_at).where(refresh_token.c.dossier_key == child)).all()
    assert rows and all(r.revoked_at is not None for r in rows)
