"""Accounts and sign-in through the portal pages (issue 4 §1)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from carnet.db.tables import account, web_session
from tests.portal.conftest import Patient, csrf_of


def test_a_new_dossier_has_an_invited_account_for_its_owner_identified_by_the_ins(patient: Patient) -> None:
    row = patient.account_row()
    assert row.status == "invited" and row.login == patient.world.ins and row.password_hash is None


def test_activation_with_the_code_sets_an_argon2id_password_and_the_code_is_single_use(patient: Patient) -> None:
    assert patient.activate().headers["location"] == "/portal/sign-in?flash=activated"
    row = patient.account_row()
    assert row.status == "active" and row.password_hash.startswith("$argon2id$")
    again = patient.activate()
    assert again.status_code == 400


def test_activation_refuses_a_wrong_birth_date_and_a_wrong_code(patient: Patient) -> None:
    assert patient.activate(birth_date="1980-05-18").status_code == 400
    assert patient.activate(code="AAAA-BBBB-CCCC").status_code == 400
    assert patient.account_row().status == "invited"


def test_activation_refuses_a_short_password(patient: Patient) -> None:
    r = patient.activate(password="short", password2="short")
    assert r.status_code == 400 and "10" in r.text
    assert patient.account_row().status == "invited"


def test_sign_in_needs_the_password_then_the_one_time_code(patient: Patient) -> None:
    patient.ready()
    home = patient.browser.get("/portal/")
    assert home.status_code == 200
    assert patient.account_row().last_sign_in_at is not None


def test_a_page_without_a_session_redirects_to_sign_in(browser) -> None:  # type: ignore[no-untyped-def]
    r = browser.get("/portal/choose")
    assert r.status_code == 303 and r.headers["location"].startswith("/portal/sign-in?next=")


def test_a_wrong_password_is_refused_with_the_same_message_as_an_unknown_identifier(patient: Patient) -> None:
    patient.activate()
    wrong = patient.browser.post("/portal/sign-in", data={"login": patient.login, "password": "not the password"})
    unknown = patient.browser.post("/portal/sign-in", data={"login": "nobody@example.test", "password": "x" * 12})
    assert wrong.status_code == unknown.status_code == 400
    assert "correct" in wrong.text or "not right" in wrong.text
    assert wrong.text.count("alert") == unknown.text.count("alert")


def test_a_wrong_code_does_not_sign_in_and_a_used_code_cannot_be_replayed(patient: Patient) -> None:
    patient.activate()
    assert patient.sign_in(code="000000").status_code == 400
    patient.browser.cookies.clear()
    r = patient.sign_in()
    assert r.status_code == 303
    from tests.portal.conftest import last_code_sent_to
    used = last_code_sent_to(patient.services, patient.email)
    patient.browser.cookies.clear()
    assert patient.sign_in(code=used).status_code == 400


def test_repeated_wrong_passwords_from_one_address_make_that_address_wait_even_for_the_right_password(
        patient: Patient) -> None:
    patient.activate()
    for _ in range(patient.services.settings.max_failed_attempts):
        r = patient.browser.post("/portal/sign-in", data={"login": patient.login, "password": "wrong password!"})
        assert r.status_code == 400
    r = patient.browser.post("/portal/sign-in", data={"login": patient.login, "password": patient.password})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_a_code_expires(patient: Patient) -> None:
    patient.activate()
    services = patient.services
    real = services.clock
    r = patient.browser.post("/portal/sign-in", data={"login": patient.login, "password": patient.password})
    assert r.status_code == 303
    code = __import__("tests.portal.conftest", fromlist=["x"]).last_code_sent_to(services, patient.email)
    page = patient.browser.get("/portal/code")
    try:
        services.clock = lambda: real() + dt.timedelta(minutes=services.settings.code_minutes + 1)
        late = patient.browser.post("/portal/code", data={"csrf": csrf_of(page.text), "code": code})
    finally:
        services.clock = real
    assert late.status_code in (303, 400)
    assert late.status_code == 400 or late.headers["location"].startswith("/portal/sign-in")


def test_a_post_without_the_csrf_token_is_refused(patient: Patient) -> None:
    patient.ready()
    r = patient.browser.post("/portal/sign-out", data={})
    assert r.status_code == 403


def test_sign_out_everywhere_revokes_every_session(patient: Patient) -> None:
    patient.ready()
    first = dict(patient.browser.cookies)
    patient.browser.cookies.clear()
    patient.sign_in()
    page = patient.browser.get("/portal/")
    r = patient.browser.post("/portal/sign-out", data={"csrf": csrf_of(page.text), "everywhere": "1"})
    assert r.status_code == 303
    patient.browser.cookies.clear()
    patient.browser.cookies.update(first)
    assert patient.browser.get("/portal/").status_code == 303
    with patient.services.engine.connect() as conn:
        live = conn.execute(select(web_session).where(web_session.c.account_id == patient.account_id,
                                                      web_session.c.revoked_at.is_(None))).all()
    assert live == []


def test_password_reset_changes_the_password_and_revokes_sessions(patient: Patient) -> None:
    patient.ready()
    b = patient.browser
    b.cookies.clear()
    assert b.post("/portal/reset", data={"step": "ask", "login": patient.login}).status_code == 200
    from tests.portal.conftest import last_code_sent_to
    code = last_code_sent_to(patient.services, patient.email)
    new = "a completely new passphrase"
    r = b.post("/portal/reset", data={"step": "set", "login": patient.login, "code": code, "password": new,
                                      "password2": new})
    assert r.status_code == 303
    patient.password = new
    assert patient.sign_in().status_code == 303
    with patient.services.engine.connect() as conn:
        assert conn.execute(select(account.c.password_changed_at).where(
            account.c.account_id == patient.account_id)).scalar() is not None


def test_a_refused_password_at_activation_does_not_spend_the_activation_code(patient: Patient) -> None:
    assert patient.activate(password="short", password2="short").status_code == 400
    assert patient.activate().status_code == 303


def test_a_minors_dossier_sends_no_activation_letter_to_the_child(world) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.db.tables import outbox
    from carnet.dossier import service as dossiers
    from carnet.identity.ins import fake_nir_for

    res = world.patient_resource(fake_nir_for(700_000 + world.n))
    res["birthDate"] = (world.services.clock().date() - dt.timedelta(days=365 * 8)).isoformat()
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    key, _ = run(world.services, gp, lambda ctx: dossiers.create(ctx, res))
    with world.services.engine.connect() as conn:
        letters = conn.execute(select(outbox.c.template).where(outbox.c.dossier_key == key)).scalars().all()
    assert "activation" not in letters
    with world.services.engine.connect() as conn:
        adult = conn.execute(select(outbox.c.template).where(outbox.c.dossier_key == world.dossier)).scalars().all()
    assert "activation" in adult
