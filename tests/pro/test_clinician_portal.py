"""The clinician portal end to end through its pages, on both databases: OIDC sign-in against the demo identity
provider, find by INS, consent, create, documents, break the glass, the review queue."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
from joserfc.jwk import ECKey
from markupsafe import escape
from sqlalchemy import func, select, update

from carnet.access.actors import Actor, ActorKind
from carnet.context import run
from carnet.db.tables import access_review, audit, practitioner
from carnet.documents import codes
from carnet.documents import service as documents
from carnet.dossier import service as dossiers
from carnet.identity.ins import fake_nir_for, format_nir
from carnet.ids import SYSTEM_CHAINS
from carnet.pro import demo_idp, oidc
from carnet.pro.pages.dossier import age_on
from tests.clinical import samples
from tests.conftest import World
from tests.pro.conftest import authorize_params, csrf_of, pick_form, signed_in


def test_a_professional_signs_in_through_the_demo_identity_provider(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    home = browser.get("/pro/")
    assert home.status_code == 200 and "carnet_pro" in browser.cookies


def test_a_callback_with_a_wrong_state_is_refused(world: World, browser: Any) -> None:
    params = authorize_params(browser)
    r = browser.post("/demo-idp/authorize", data=pick_form(browser, params, world.pros["doctor"]))
    location = r.headers["location"].replace("https://testserver", "").replace(params["state"], "forged")
    assert browser.get(location).status_code == 400
    assert "carnet_pro" not in browser.cookies


def test_the_token_endpoint_checks_the_pkce_verifier(world: World, browser: Any) -> None:
    params = authorize_params(browser)
    r = browser.post("/demo-idp/authorize", data=pick_form(browser, params, world.pros["doctor"]))
    code = r.headers["location"].split("code=")[1].split("&")[0]
    answer = browser.post("/demo-idp/token", data={"grant_type": "authorization_code", "code": code,
                                                   "redirect_uri": params["redirect_uri"],
                                                   "client_id": params["client_id"], "code_verifier": "wrong"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_a_forged_id_token_or_a_wrong_nonce_is_refused(services: Any) -> None:
    settings = services.settings
    claims = {"iss": oidc.issuer(settings), "aud": settings.psc_client_id, "sub": "810000000001",
              "nonce": "n1", "acr": oidc.DEMO_ACR, "exp": int(time.time()) + 60}
    jwks = demo_idp.key(settings).public_jwks()
    good = demo_idp.key(settings).sign(claims, typ="JWT")
    assert oidc.verify_id_token(settings, good, jwks, "n1").national_id == "810000000001"
    with pytest.raises(oidc.LoginError):
        oidc.verify_id_token(settings, good, jwks, "another nonce")
    from carnet.auth.keys import ServerKey

    forged = ServerKey(ECKey.generate_key("P-256", private=True)).sign(claims, typ="JWT")
    with pytest.raises(oidc.LoginError):
        oidc.verify_id_token(settings, forged, jwks, "n1")


def test_a_disabled_professional_cannot_sign_in(world: World, browser: Any) -> None:
    nid = world.add_pro("10")
    with world.services.engine.begin() as conn:
        conn.execute(update(practitioner).where(practitioner.c.national_id == nid).values(enabled=False))
    params = authorize_params(browser)
    form = pick_form(browser, params, world.pros["doctor"]) | {"national_id": nid}
    r = browser.post("/demo-idp/authorize", data=form)
    assert r.status_code == 403 and "carnet_pro" not in browser.cookies


def find(browser: Any, ins: str) -> Any:
    return browser.get("/pro/", params={"system": "test", "ins": ins})


def test_find_by_ins_shows_traits_only_to_whoever_may_read(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    r = find(browser, world.ins)
    assert "Testé" in r.text and "75056" in r.text
    browser.cookies.clear()
    signed_in(browser, world.pros["stranger"])
    r = find(browser, world.ins)
    assert r.status_code == 200 and "Testé" not in r.text and 'action="/pro/consent"' in r.text
    absent = find(browser, fake_nir_for(world.n + 5000))
    assert 'href="/pro/new?' in absent.text


def test_the_patient_consents_then_the_dossier_opens(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    assert browser.get(f"/pro/dossier/{world.dossier}").status_code == 403
    page = find(browser, world.ins)
    r = browser.post("/pro/consent", data={"csrf": csrf_of(page.text), "dossier": str(world.dossier),
                                           "confirm": "1"})
    assert r.status_code == 303
    opened = browser.get(f"/pro/dossier/{world.dossier}")
    assert opened.status_code == 200 and "Testé" in opened.text


def test_the_dossier_opens_on_the_emergency_summary_with_an_allergy_recorded_through_the_api(
        world: World, browser: Any) -> None:
    samples.grant_clinical_scopes(world)
    r = world.client.post("/fhir/AllergyIntolerance", json=samples.allergy(world.dossier),
                          headers=world.headers("doctor"))
    assert r.status_code == 201, r.text
    signed_in(browser, world.pros["gp"])
    html = browser.get(f"/pro/dossier/{world.dossier}").text
    summary = html[html.index('id="summary"'):html.index('id="new"')]
    assert "Penicillin" in summary and html.index('id="summary"') < html.index('id="documents"')
    pdf = browser.get(f"/pro/dossier/{world.dossier}/summary.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")


def test_a_post_without_the_csrf_token_is_refused(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    r = browser.post("/pro/consent", data={"dossier": str(world.dossier), "confirm": "1"})
    assert r.status_code == 403


def test_a_professional_creates_the_dossier_of_a_patient_present(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    ins = fake_nir_for(world.n + 7000)
    page = browser.get("/pro/new", params={"ins": ins, "system": "test"})
    form = {"csrf": csrf_of(page.text), "ins": ins, "system": "test", "family": "Nouveau", "given": "Paul",
            "birth_date": "1990-02-03", "gender": "male", "birthplace": "75056"}
    assert browser.post("/pro/new", data=form).status_code == 422  # no consent box
    r = browser.post("/pro/new", data={**form, "consent": "1"})
    assert r.status_code == 303 and r.headers["location"].startswith("/pro/dossier/")
    opened = browser.get(r.headers["location"]).text
    header = opened[opened.index('id="patient"'):].split("</p>")[0]
    age = age_on(dt.date(1990, 2, 3), dt.datetime.now(dt.UTC).date())
    assert "Nouveau" in header and "né le 3 février 1990" in header and f"({age} ans)" in header
    assert f"INS <span class=\"nowrap\">{format_nir(ins)}</span> (identité de test)" in header  # as the DMP shows it
    assert "Masculin" in header and "male" not in header  # the sex in words, not the FHIR code


def test_the_age_shown_changes_on_the_birthday() -> None:
    assert age_on(dt.date(1958, 3, 14), dt.date(2026, 3, 13)) == 67
    assert age_on(dt.date(1958, 3, 14), dt.date(2026, 3, 14)) == 68
    assert age_on(dt.date(2000, 2, 29), dt.date(2026, 2, 28)) == 25
    assert age_on(dt.date(2000, 2, 29), dt.date(2026, 3, 1)) == 26


def add_document(browser: Any, key: Any, title: str, **extra: str) -> Any:
    page = browser.get(f"/pro/dossier/{key}/add")
    return browser.post(f"/pro/dossier/{key}/add", data={"csrf": csrf_of(page.text), "type": "11488-4",
                                                        "title": title, "text": f"Texte de {title}", **extra})


def patient_titles(world: World) -> list[str]:
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    page = run(world.services, patient,
               lambda ctx: documents.browse(ctx, world.dossier, documents.DocumentFilter()))
    return [d.title for d in page.documents]


def test_the_add_form_offers_every_professional_type_of_the_ans_value_set_grouped_by_class(world: World,
                                                                                      browser: Any) -> None:
    signed_in(browser, world.pros["pharmacist"])
    html = browser.get(f"/pro/dossier/{world.dossier}/add").text
    select_ = html[html.index('<select id="type"'):html.index("</select>")]
    offered = re.findall(r'<option value="([^"]+)"', select_)
    professional = {t for t, c in codes.TYPE_CLASS.items() if c not in ("60", "90") and t != "EXPPAT_3"}
    assert set(offered) == professional and len(offered) == len(professional)
    groups = re.findall(r'<optgroup label="([^"]+)">(.*?)</optgroup>', select_)
    for label, body in groups:  # each type under its own class
        cls = next(c for c, name in codes.CLASSES.items() if str(escape(name)) == label)
        assert {codes.TYPE_CLASS[t] for t in re.findall(r'value="([^"]+)"', body)} == {cls}
    r = add_document(browser, world.dossier, "Délivrance du jour", type="60593-1")  # a pharmacist's dispensation
    assert r.status_code == 303
    assert "Délivrance du jour" in patient_titles(world)


def test_add_replace_and_withdraw_ones_own_document(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    assert add_document(browser, world.dossier, "Consultation v1").status_code == 303
    view = browser.get(f"/pro/dossier/{world.dossier}")
    doc_id = view.text.split("Consultation v1")[0].rsplit("/documents/", 1)[1].split('"')[0]
    assert add_document(browser, world.dossier, "Consultation v2", replaces=doc_id).status_code == 303
    view = browser.get(f"/pro/dossier/{world.dossier}")
    assert "Consultation v2" in view.text and "Consultation v1" not in view.text and "2 versions" in view.text
    new_id = view.text.split("Consultation v2")[0].rsplit("/documents/", 1)[1].split('"')[0]
    page = browser.get(f"/pro/dossier/{world.dossier}/documents/{new_id}")
    assert "Texte de Consultation v2" in page.text
    r = browser.post(f"/pro/dossier/{world.dossier}/documents/{new_id}/withdraw", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    assert "Consultation v2" not in browser.get(f"/pro/dossier/{world.dossier}").text


def test_a_document_invisible_to_the_patient_is_released_later(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["doctor"])
    assert add_document(browser, world.dossier, "Annonce", invisible="1").status_code == 303
    assert "Annonce" not in patient_titles(world)
    view = browser.get(f"/pro/dossier/{world.dossier}")
    doc_id = view.text.split("Annonce")[0].rsplit("/documents/", 1)[1].split('"')[0]
    page = browser.get(f"/pro/dossier/{world.dossier}/documents/{doc_id}")
    r = browser.post(f"/pro/dossier/{world.dossier}/documents/{doc_id}/release", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    assert "Annonce" in patient_titles(world)


def test_break_the_glass_needs_a_reason_and_shows_on_every_page(world: World, browser: Any) -> None:
    signed_in(browser, world.pros["stranger"])
    page = browser.get("/pro/emergency")
    assert browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": " "}).status_code == 400
    r = browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": "Coma aux urgences",
                                             "next": f"/pro/dossier/{world.dossier}"})
    assert r.status_code == 303
    for path in (f"/pro/dossier/{world.dossier}", "/pro/", "/pro/emergency"):
        text = browser.get(path).text
        assert 'role="alert" id="mode-banner"' in text and "Coma aux urgences" in text
    with world.services.engine.connect() as conn:
        modes = set(conn.execute(select(audit.c.mode).where(audit.c.dossier_key == world.dossier,
                                                            audit.c.actor_id == world.pros["stranger"])).scalars())
    assert modes == {"emergency"}


def test_an_objection_to_break_the_glass_makes_it_refused(world: World, browser: Any) -> None:
    patient = Actor(ActorKind.PATIENT, id=world.ins)
    run(world.services, patient, lambda ctx: dossiers.set_objections(ctx, world.dossier, True, None))
    signed_in(browser, world.pros["stranger"])
    page = browser.get("/pro/emergency")
    browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": "Urgence"})
    r = browser.get(f"/pro/dossier/{world.dossier}")
    assert r.status_code == 403 and "Testé" not in r.text


def test_the_review_queue_lists_the_emergency_access_and_records_a_review(world: World, browser: Any,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    signed_in(browser, world.pros["stranger"])
    page = browser.get("/pro/emergency")
    browser.post("/pro/emergency", data={"csrf": csrf_of(page.text), "reason": f"Détresse {world.n}"})
    assert browser.get(f"/pro/dossier/{world.dossier}").status_code == 200
    browser.cookies.clear()
    reviewer = world.pros["gp"]
    signed_in(browser, world.pros["doctor"])
    assert browser.get("/pro/review").status_code == 403  # not a reviewer
    monkeypatch.setattr(world.services.settings, "reviewers", frozenset({reviewer}))
    browser.cookies.clear()
    signed_in(browser, reviewer)
    queue = browser.get("/pro/review")
    assert queue.status_code == 200 and f"Détresse {world.n}" in queue.text and str(world.dossier) in queue.text
    assert "Testé" not in queue.text  # no health content, no identity
    seq = queue.text.split(f'value="{world.dossier}"><input type="hidden" name="seq" value="')[1].split('"')[0]
    r = browser.post("/pro/review", data={"csrf": csrf_of(queue.text), "dossier": str(world.dossier), "seq": seq,
                                          "outcome": "justified", "note": "Vu"})
    assert r.status_code == 303
    with world.services.engine.connect() as conn:
        row = conn.execute(select(access_review).where(access_review.c.dossier_key == world.dossier)).one()
        events = set(conn.execute(select(audit.c.event).where(audit.c.dossier_key.in_(SYSTEM_CHAINS),
                                                              audit.c.actor_id == reviewer)).scalars())
    assert row.outcome == "justified" and row.reviewed_by == reviewer and "access.review" in events


def test_the_care_history_follows_the_habilitation_matrix_in_the_clinician_portal(world: World, browser: Any) -> None:
    from carnet.claims.ingest import ingest
    from tests.claims.helpers import byte_lines, claims_file, sample

    ingest(world.services, byte_lines(claims_file(sample(world.ins, world.services.clock().date()))))
    signed_in(browser, world.pros["gp"])
    page = browser.get(f"/pro/dossier/{world.dossier}/care-history")
    assert page.status_code == 200 and "Paracétamol 500 mg" in page.text
    browser.cookies.clear()
    signed_in(browser, world.pros["nurse"])  # nurses do not read class 60 (matrix)
    refused = browser.get(f"/pro/dossier/{world.dossier}/care-history")
    assert refused.status_code == 403 and "Paracétamol" not in refused.text


def test_the_demo_identity_provider_is_not_served_once_pro_sante_connect_is_configured(services: Any) -> None:
    import dataclasses

    from starlette.testclient import TestClient

    from carnet.app import create_app

    settings = dataclasses.replace(services.settings, psc_issuer="https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet")
    production = create_app(dataclasses.replace(services, settings=settings))
    with TestClient(production, base_url="https://testserver") as c:
        assert c.get("/demo-idp/.well-known/openid-configuration").status_code == 404
        assert c.get("/demo-idp/authorize").status_code == 404
        assert c.post("/demo-idp/token", data={}).status_code in (404, 405)


def test_a_heavy_dossier_shows_every_class_with_the_latest_of_each_and_a_link_to_the_rest(
        world: World, browser: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from carnet.documents import current
    from tests.tasks.helpers import docref

    monkeypatch.setattr(current, "PER_CLASS", 3)  # as 25 of 300 documents, with 5 of 6
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    for i, loinc in enumerate(["11488-4"] * 5 + ["18748-4"]):
        res = docref(world, loinc=loinc)
        res["content"][0]["attachment"]["title"] = f"Doc {i}"
        res["date"] = f"2025-01-{10 + i:02d}T10:00:00Z"
        run(world.services, gp, lambda ctx, r=res: documents.publish(  # type: ignore[misc]
            ctx, world.dossier, r, documents.Content(b"%PDF-1.4\n%%EOF\n", "application/pdf"), "ITI-105"))
    signed_in(browser, world.pros["gp"])
    html = browser.get(f"/pro/dossier/{world.dossier}").text
    listing = html[html.index('id="documents"'):]
    assert all(f"Doc {i}<" in listing for i in (2, 3, 4, 5)) and "Doc 0<" not in listing and "Doc 1<" not in listing
    assert f'href="/pro/dossier/{world.dossier}?class=10#documents"' in listing
    assert "Voir les 5 documents : Compte rendu" in listing and "Imagerie" in listing  # the imaging is not cut off
    one = browser.get(f"/pro/dossier/{world.dossier}", params={"class": "10"}).text
    one = one[one.index('id="documents"'):]
    assert all(f"Doc {i}<" in one for i in range(5)) and "Voir les" not in one and "Doc 5<" not in one


def test_opening_a_dossier_writes_one_audit_record_per_thing_read_and_reads_nothing_twice(
        world: World, browser: Any) -> None:
    signed_in(browser, world.pros["gp"])
    with world.services.engine.connect() as conn:
        before = conn.execute(select(func.max(audit.c.seq)).where(audit.c.dossier_key == world.dossier)).scalar()
    assert browser.get(f"/pro/dossier/{world.dossier}").status_code == 200
    with world.services.engine.connect() as conn:
        rows = conn.execute(select(audit.c.event, audit.c.detail, audit.c.actor_id).where(
            audit.c.dossier_key == world.dossier, audit.c.seq > before).order_by(audit.c.seq)).all()
    assert {r.actor_id for r in rows} == {world.pros["gp"]}
    seen = sorted(f"{r.event} {(r.detail or {}).get('query', '')}".strip() for r in rows)
    assert seen == ["ITI-67 pro-portal", "ITI-67 summary:directives", "ITI-67 summary:vsm", "contact.read",
                    "measures.list", "patient.read", "summary.read"]  # measures.list: the measurements section
