"""Per-address rate limits (issue 15 §3): a sliding window in the database, one atomic upsert per hit, shared by every
app instance on the database; the token endpoint answers 429 in OAuth's words, the portal a calm page."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from carnet import throttle
from carnet.app import create_app
from carnet.compose import build_services
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.tables import rate_limit, sign_in_failure
from tests.conftest import BASE
from tests.throttle.conftest import Clock, browser_at, new_address


@pytest.fixture
def second(services: Services, clock: Clock) -> Iterator[Services]:
    """Another Carnet on the same database (its own engine and services, the same settings and master key), as a
    second node would be; it reads the same clock as the first."""
    other = build_services(dataclasses.replace(services.settings), make_engine(services.settings.database_url,
                                                                                pool_size=5))
    other.clock = clock
    yield other
    other.engine.dispose()


def row(services: Services, name: str, subject: str) -> Any:
    with services.engine.connect() as conn:
        return conn.execute(select(rate_limit).where(
            rate_limit.c.key == throttle.keyed(services.keyring, "rate", name, subject))).first()


def test_a_limit_lets_count_hits_through_then_says_how_long_to_wait(services: Services, clock: Clock,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings, "rate_sign_in", (3, 60))
    clock.now = clock.now.replace(second=0)  # at the start of a window
    address = new_address()
    assert [throttle.hit(services, "sign_in", address) for _ in range(3)] == [0, 0, 0]
    assert throttle.hit(services, "sign_in", address) == 60 + 30  # this window's end, then half of the next
    clock.advance(60 + 29)
    assert throttle.hit(services, "sign_in", address) > 0  # a second early (and that hit counts too)
    clock.advance(60 + 40)
    assert throttle.hit(services, "sign_in", address) == 0  # two windows on: the old hits weigh nothing
    clock.advance(120)
    assert [throttle.hit(services, "sign_in", address) for _ in range(3)] == [0, 0, 0]
    assert address not in row(services, "sign_in", address).key  # no address in clear


def test_another_address_has_its_own_count(services: Services, clock: Clock,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings, "rate_sign_in", (1, 60))
    first, other = new_address(), new_address()
    assert throttle.hit(services, "sign_in", first) == 0
    assert throttle.hit(services, "sign_in", first) > 0
    assert throttle.hit(services, "sign_in", other) == 0


def test_hits_at_once_on_two_instances_all_count(services: Services, second: Services, clock: Clock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings, "rate_reset", (1000, 600))
    monkeypatch.setattr(second.settings, "rate_reset", (1000, 600))
    address = new_address()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: throttle.hit((services, second)[i % 2], "reset", address), range(40)))
    assert row(services, "reset", address).hits == 40


def test_the_sign_in_limit_holds_across_two_app_instances(app: Any, services: Services, second: Services,
                                                          clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    for s in (services, second):
        monkeypatch.setattr(s.settings, "rate_sign_in", (4, 300))
    address = new_address()
    nodes = [browser_at(app, address), browser_at(create_app(second), address)]
    answers = [nodes[i % 2].post("/portal/sign-in", data={"login": "someone", "password": "x" * 12}).status_code
               for i in range(6)]
    assert answers == [400, 400, 400, 400, 429, 429]
    calm = nodes[0].post("/portal/sign-in", data={"login": "someone", "password": "x" * 12})
    assert calm.status_code == 429 and int(calm.headers["retry-after"]) > 0
    assert "Merci de patienter un moment" in calm.text
    assert browser_at(app, new_address()).post("/portal/sign-in", data={
        "login": "someone", "password": "x" * 12}).status_code == 400  # another address is not held back


@pytest.mark.parametrize("path", ["/portal/code", "/portal/activate", "/portal/reset"])
def test_every_guessable_portal_form_is_rate_limited(app: Any, services: Services, clock: Clock, path: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("rate_code", "rate_activate", "rate_reset"):
        monkeypatch.setattr(services.settings, name, (2, 300))
    browser = browser_at(app, new_address())
    answers = [browser.post(path, data={"step": "ask", "login": "someone"}).status_code for _ in range(3)]
    assert answers[-1] == 429 and 429 not in answers[:2]


def test_the_token_endpoint_answers_429_with_retry_after_on_every_instance(
        services: Services, second: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    for s in (services, second):
        monkeypatch.setattr(s.settings, "rate_token", (3, 60))
    address = new_address()
    nodes = [TestClient(app, base_url=BASE, client=(address, 1)),
             TestClient(create_app(second), base_url=BASE, client=(address, 1))]
    form = {"grant_type": "client_credentials"}
    answers = [nodes[i % 2].post("/oauth/token", data=form) for i in range(4)]
    assert [r.status_code for r in answers] == [400, 400, 400, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) > 0 and refused.headers["cache-control"] == "no-store"
    assert refused.json()["error"] == "slow_down" and "retry after" in refused.json()["error_description"]


def test_the_token_endpoint_counts_the_client_behind_a_trusted_proxy(
        services: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch, app: Any) -> None:
    monkeypatch.setattr(services.settings, "rate_token", (1, 60))
    proxy = new_address()
    monkeypatch.setattr(services.settings, "trusted_proxies", (proxy,))
    client = TestClient(app, base_url=BASE, client=(proxy, 1))
    form = {"grant_type": "client_credentials"}
    first, second_client = new_address(), new_address()
    assert client.post("/oauth/token", data=form, headers={"X-Forwarded-For": first}).status_code == 400
    assert client.post("/oauth/token", data=form, headers={"X-Forwarded-For": first}).status_code == 429
    assert client.post("/oauth/token", data=form, headers={"X-Forwarded-For": second_client}).status_code == 400


def test_the_worker_prunes_expired_counters_but_keeps_a_notice_still_due(
        services: Services, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.settings, "rate_sign_in", (5, 60))
    address = new_address()
    throttle.hit(services, "sign_in", address)
    who = throttle.subject(services, "PRUNE-ME", address)
    with services.engine.begin() as conn:
        for _ in range(services.settings.max_failed_attempts):
            throttle.record_failure(conn, services, who, None)
    clock.advance(services.settings.throttle_forget_hours * 3600 + 1)
    for job in services.periodic_jobs:
        job(services)
    assert row(services, "sign_in", address) is None
    with services.engine.connect() as conn:
        left = {r.kind for r in conn.execute(select(sign_in_failure.c.kind).where(
            sign_in_failure.c.key.in_([who.pair, who.address, who.login])))}
    assert left == {"login"}  # its notice is due (nobody to tell here, but it is not the pruner's to drop)


def test_a_rate_limit_setting_that_does_not_read_count_per_seconds_stops_the_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from carnet.config import Settings

    for bad in ("20", "20/0", "-1/60", "twenty/60"):
        monkeypatch.setenv("CARNET_RATE_TOKEN", bad)
        with pytest.raises(ValueError, match="CARNET_RATE_TOKEN"):
            Settings()
    monkeypatch.setenv("CARNET_RATE_TOKEN", "0/1")
    assert Settings().rate_token == (0, 1)  # off
