"""Portal test base: an HTTPS test client (session cookies are Secure) and a patient who activates and signs in
through the real pages, reading the one-time code from the message Carnet sent."""

from __future__ import annotations

import datetime as dt
import email
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from carnet.accounts import service as accounts
from carnet.context import Services
from carnet.db.tables import account, account_dossier
from tests.conftest import World

PORTAL_BASE = "https://testserver"


@pytest.fixture
def browser(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=PORTAL_BASE, follow_redirects=False) as c:
        yield c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def last_code_sent_to(services: Services, address: str) -> str:
    """The latest one-time code mailed to ``address`` (the embedded default writes emails to var/mail)."""
    best: tuple[float, str] | None = None
    for path in (services.settings.var_dir / "mail").glob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes())
        if msg["To"] != address:
            continue
        stamp = path.stat().st_mtime_ns
        if best is None or stamp > best[0]:
            body = msg.get_payload(decode=True)
            assert isinstance(body, bytes)
            m = re.search(r"\b(\d{6})\b", body.decode())
            assert m, "no code in the message"
            best = (stamp, m.group(1))
    assert best is not None, f"no message to {address}"
    return best[1]


class Patient:
    """The World's patient, with an account activated through the activation page."""

    def __init__(self, world: World, browser: TestClient) -> None:
        self.world = world
        self.browser = browser
        self.services = world.services
        self.login = world.ins
        self.email = f"patient{world.n}@example.test"
        self.password = "correct horse battery staple"
        with self.services.engine.begin() as conn:
            row = conn.execute(select(account_dossier.c.account_id).where(
                account_dossier.c.dossier_key == world.dossier, account_dossier.c.role == "owner")).one()
            self.account_id: uuid.UUID = row.account_id
            self.activation_code = accounts.new_code(conn, self.account_id, "activation", "post",
                                                     self.services.clock(), dt.timedelta(days=1))

    def activate(self, **overrides: Any) -> Any:
        form = {"login": self.login, "code": self.activation_code, "birth_date": "1980-05-17",
                "password": self.password, "password2": self.password, "email": self.email, "phone": "",
                "otp_channel": "email", **overrides}
        return self.browser.post("/portal/activate", data=form)

    def sign_in(self, password: str | None = None, code: str | None = None) -> Any:
        r = self.browser.post("/portal/sign-in", data={"login": self.login, "password": password or self.password,
                                                       "next": "/portal/"})
        if r.status_code != 303:
            return r
        assert r.headers["location"].startswith("/portal/code")
        page = self.browser.get("/portal/code")
        return self.browser.post("/portal/code", data={"csrf": csrf_of(page.text), "next": "/portal/",
                                                       "code": code or last_code_sent_to(self.services, self.email)})

    def ready(self) -> Patient:
        assert self.activate().status_code == 303
        r = self.sign_in()
        assert r.status_code == 303, r.text
        return self

    def account_row(self) -> Any:
        with self.services.engine.connect() as conn:
            return conn.execute(select(account).where(account.c.account_id == self.account_id)).one()


@pytest.fixture
def patient(world: World, browser: TestClient) -> Patient:
    return Patient(world, browser)
