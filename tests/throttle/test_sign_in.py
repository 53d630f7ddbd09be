"""Sign-in throttling through the portal pages (issue 15 §3): unknown, known and throttled identifiers answer alike
and cost the same work; an attacker elsewhere cannot keep the patient out; delays grow; the patient is told once."""

from __future__ import annotations

import html
from typing import Any

from sqlalchemy import select

from carnet import throttle
from carnet.db.tables import sign_in_failure
from carnet.identity.ins import fake_nir_for
from carnet.notify import worker
from carnet.portal.i18n import language
from tests.conftest import SmtpInbox, World
from tests.notify.conftest import smtp_channels
from tests.portal.conftest import Patient, csrf_of, last_code_sent_to
from tests.throttle.conftest import Clock, CountingHasher

WRONG = "not the password at all"


def answer(r: Any, login: str) -> tuple[int, str, list[tuple[str, str]]]:
    """What a client sees: status, text (with the identifier it typed, which the form shows again, blanked) and every
    header (cookies included). Both identifiers have the same length, so Content-Length compares too."""
    return r.status_code, r.text.replace(login, "<login>"), sorted(r.headers.multi_items())


def notices(inbox: SmtpInbox, address: str) -> list[Any]:
    subject = "Carnet : des tentatives de connexion à votre compte ont échoué"
    return [m for m in inbox.to(address) if m["Subject"] == subject]


def post_sign_in(browser: Any, login: str, password: str) -> Any:
    return browser.post("/portal/sign-in", data={"login": login, "password": password, "next": "/portal/"})


def ready_patient(world: World, browser: Any) -> Patient:
    patient = Patient(world, browser)
    assert patient.activate().status_code == 303
    return patient


def test_unknown_known_and_throttled_identifiers_get_the_same_answer_for_the_same_work(
        world: World, browsers: Any, clock: Clock, defaults: Any, argon2: CountingHasher) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    unknown = fake_nir_for(800_000 + world.n)
    assert len(unknown) == len(patient.login)
    seen: dict[str, Any] = {}
    for attempt in range(defaults.max_failed_attempts):
        for who, login in (("known", patient.login), ("unknown", unknown)):
            argon2.verifies = 0
            r = post_sign_in(browser, login, WRONG)
            assert argon2.verifies == 1, who  # one Argon2 verification, a dummy one for the unknown identifier
            seen[who] = answer(r, login)
        assert seen["known"] == seen["unknown"], attempt
        assert seen["known"][0] == 400 and "set-cookie" not in dict(seen["known"][2])
    throttled = {}
    for who, login, password in (("known, right password", patient.login, patient.password),
                                 ("known, wrong password", patient.login, WRONG), ("unknown", unknown, WRONG)):
        argon2.verifies = 0
        r = post_sign_in(browser, login, password)
        assert argon2.verifies == 1, who  # the work is done before the throttle is looked at
        throttled[who] = answer(r, login)
    assert len(set(map(repr, throttled.values()))) == 1, throttled
    status, text, headers = throttled["unknown"]
    assert status == 429 and dict(headers)["retry-after"] == "60"
    assert "bloqué" not in text and "locked" not in text


def test_an_attacker_at_one_address_cannot_keep_the_patient_out_at_another(
        world: World, browsers: Any, clock: Clock, defaults: Any) -> None:
    attacker, home = browsers(), browsers()
    patient = ready_patient(world, home)
    answers = [post_sign_in(attacker, patient.login, f"{WRONG} {i}").status_code for i in range(40)]
    assert answers[:5] == [400] * 5 and set(answers[5:]) == {429}
    assert post_sign_in(attacker, patient.login, patient.password).status_code == 429
    assert patient.sign_in().status_code == 303  # right password then code, from home: in
    assert patient.browser.get("/portal/").status_code == 200


def test_many_addresses_on_one_identifier_slow_those_addresses_but_not_a_clean_one(
        world: World, browsers: Any, clock: Clock, defaults: Any, monkeypatch: Any, services: Any) -> None:
    monkeypatch.setattr(services.settings, "max_failed_per_identifier", 12)
    home = browsers()
    patient = ready_patient(world, home)
    botnet = [browsers() for _ in range(6)]
    for bot in botnet:  # two tries each, below the per-pair threshold
        assert [post_sign_in(bot, patient.login, WRONG).status_code for _ in range(2)] == [400, 400]
    assert {post_sign_in(bot, patient.login, WRONG).status_code for bot in botnet} == {429}
    assert patient.sign_in().status_code == 303  # a clean address with the right password is not slowed


def test_the_delay_grows_with_each_failure_and_a_completed_sign_in_clears_it(
        world: World, browsers: Any, clock: Clock, defaults: Any) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    for _ in range(defaults.max_failed_attempts):
        assert post_sign_in(browser, patient.login, WRONG).status_code == 400
    delays = []
    for _ in range(3):
        refused = post_sign_in(browser, patient.login, WRONG)
        assert refused.status_code == 429
        delays.append(int(refused.headers["retry-after"]))
        clock.advance(delays[-1] - 1)
        assert post_sign_in(browser, patient.login, WRONG).status_code == 429  # a second early: still waiting
        clock.advance(1)
        assert post_sign_in(browser, patient.login, WRONG).status_code == 400  # looked at, and counted
    assert delays == [60, 120, 240]
    clock.advance(480)
    assert patient.sign_in().status_code == 303
    browser.cookies.clear()
    assert post_sign_in(browser, patient.login, WRONG).status_code == 400  # the pair starts again


def test_wrong_sign_in_codes_count_like_wrong_passwords(
        world: World, browsers: Any, clock: Clock, defaults: Any) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    for _ in range(defaults.max_failed_attempts):
        assert patient.sign_in(code="000000").status_code == 400
        browser.cookies.clear()
    assert post_sign_in(browser, patient.login, patient.password).status_code == 429


def test_the_429_page_is_calm_and_in_the_persons_language(
        world: World, browsers: Any, clock: Clock, defaults: Any) -> None:
    browser = browsers()
    for _ in range(defaults.max_failed_attempts):
        post_sign_in(browser, world.ins, WRONG)
    fr = post_sign_in(browser, world.ins, WRONG)
    assert fr.status_code == 429 and "Merci de réessayer dans 1 minute." in fr.text
    browser.cookies.set("carnet_lang", "en")
    en = post_sign_in(browser, world.ins, WRONG)
    assert en.status_code == 429 and "Please try again in 1 minute." in en.text


def test_the_patient_is_told_once_per_period_over_smtp_with_no_health_data(
        world: World, browsers: Any, clock: Clock, defaults: Any, smtp_server: SmtpInbox, services: Any) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    channels = smtp_channels(services, smtp_server)
    for _ in range(defaults.max_failed_attempts - 1):
        post_sign_in(browser, patient.login, WRONG)
    worker.run_once(services, channels)
    assert notices(smtp_server, patient.email) == []  # below the threshold: nothing yet
    post_sign_in(browser, patient.login, WRONG)
    worker.run_once(services, channels)
    worker.run_once(services, channels)
    received = notices(smtp_server, patient.email)
    assert len(received) == 1
    body = received[0].get_content()
    assert "n'est pas bloqué" in body
    for private in (patient.login, "Testé", "Alix", "1980"):
        assert private not in body
    for _ in range(3):  # the attack goes on within the period: no second message
        clock.advance(3600)
        post_sign_in(browser, patient.login, WRONG)
        worker.run_once(services, channels)
    assert len(notices(smtp_server, patient.email)) == 1
    clock.advance(services.settings.throttle_notice_hours * 3600)
    post_sign_in(browser, patient.login, WRONG)
    worker.run_once(services, channels)
    assert len(notices(smtp_server, patient.email)) == 2  # a new period, still attacked: told again


def test_an_unknown_identifier_is_counted_like_a_known_one_and_tells_nobody(
        world: World, browsers: Any, clock: Clock, defaults: Any, services: Any) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    unknown = fake_nir_for(810_000 + world.n)
    for _ in range(defaults.max_failed_attempts):
        post_sign_in(browser, patient.login, WRONG)
        post_sign_in(browser, unknown, WRONG)
    rows = {}
    with services.engine.connect() as conn:
        for login in (patient.login, unknown):
            rows[login] = conn.execute(select(sign_in_failure).where(
                sign_in_failure.c.key == throttle.keyed(services.keyring, "login", login))).one()
    assert rows[patient.login].account_id == patient.account_id and rows[unknown].account_id is None
    for row in rows.values():  # the same bookkeeping; no identifier in clear
        assert (row.kind, row.failures, row.notice_due is not None) == ("login", defaults.max_failed_attempts, True)
        assert unknown not in row.key and patient.login not in row.key
    with services.engine.begin() as conn:
        told = throttle.claim_notices(conn, services)
    assert patient.account_id in told and None not in told


def test_activation_answers_alike_for_unknown_and_known_identifiers_and_reveals_no_name(
        world: World, browsers: Any, clock: Clock, defaults: Any) -> None:
    browser = browsers()
    patient = Patient(world, browser)
    unknown = fake_nir_for(820_000 + world.n)
    named = "Testé-Alix-2024!"  # holds the holder's name: said only once the code is proven
    answers = {login: answer(patient.activate(login=login, code="AAAA-BBBB-CCCC", password=named, password2=named),
                             login) for login in (patient.login, unknown)}
    assert answers[patient.login] == answers[unknown] and answers[unknown][0] == 400
    name_rule = html.escape(language("fr").gettext("Your password must not contain your identifier or your name."))
    assert name_rule not in answers[unknown][1]
    r = patient.activate(password=named, password2=named)
    assert r.status_code == 400 and name_rule in r.text
    assert patient.activate().status_code == 303  # the name refusal did not spend the code


def test_reset_answers_alike_and_sends_its_code_after_the_answer(
        world: World, browsers: Any, clock: Clock, defaults: Any, services: Any) -> None:
    browser = browsers()
    patient = ready_patient(world, browser)
    unknown = fake_nir_for(830_000 + world.n)
    asks = {login: answer(browser.post("/portal/reset", data={"step": "ask", "login": login}), login)
            for login in (patient.login, unknown)}
    assert asks[patient.login] == asks[unknown] and asks[unknown][0] == 200
    code = last_code_sent_to(services, patient.email)  # sent by the background task, once the answer went
    new = "another long passphrase"
    wrong = {login: answer(browser.post("/portal/reset", data={
        "step": "set", "login": login, "code": "000000", "password": new, "password2": new}), login)
        for login in (patient.login, unknown)}
    assert wrong[patient.login] == wrong[unknown] and wrong[unknown][0] == 400
    r = browser.post("/portal/reset", data={"step": "set", "login": patient.login, "code": code, "password": new,
                                            "password2": new})
    assert r.status_code == 303


def test_reset_codes_to_one_identifier_are_limited_whatever_the_address(
        world: World, browsers: Any, clock: Clock, services: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services.settings, "rate_code_sending", (2, 900))
    patient = ready_patient(world, browsers())
    mail = services.settings.var_dir / "mail"
    before = len(list(mail.glob("*.eml"))) if mail.exists() else 0
    for _ in range(4):
        r = browsers().post("/portal/reset", data={"step": "ask", "login": patient.login})
        assert r.status_code == 200  # the same page, sent or not
    assert len(list(mail.glob("*.eml"))) - before == 2


def test_a_new_sign_in_code_is_limited_per_account(world: World, browsers: Any, clock: Clock, services: Any,
                                                   monkeypatch: Any) -> None:
    monkeypatch.setattr(services.settings, "rate_code_sending", (2, 900))
    browser = browsers()
    patient = ready_patient(world, browser)
    assert post_sign_in(browser, patient.login, patient.password).status_code == 303
    page = browser.get("/portal/code")
    codes = [browser.post("/portal/code", data={"csrf": csrf_of(page.text), "resend": "1"}).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]


def test_a_refusal_leaves_one_allow_listed_log_line_with_no_identifier_nor_address(
        world: World, browsers: Any, clock: Clock, defaults: Any, capsys: Any) -> None:
    address = "10.250.1.2"
    browser = browsers(address)
    for _ in range(defaults.max_failed_attempts + 1):
        post_sign_in(browser, world.ins, WRONG)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "throttle.refused" in line]
    assert len(lines) == 1 and "/portal/sign-in" in lines[0] and "429" in lines[0]
    assert world.ins not in err and address not in err
