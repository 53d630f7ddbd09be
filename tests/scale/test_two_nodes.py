"""Two real ``carnet serve`` processes (two machines, to a load balancer) over one PostgreSQL database and one blob
directory behave as one service: whatever one node spent, counted or revoked holds on the other (issue 9 §3,
docs/SCALE.md). Every test alternates nodes; a browser's cookies go to both, as behind a load balancer.

The nodes share only what docs/SCALE.md says they share: the database URL, the blob store, the master key (in
``CARNET_MASTER_KEY``), the token signing key file, the demo identity provider's key file and the settings. Each has
its own ``CARNET_VAR_DIR``. Personas are built through the real services on the same database; the nodes see them
as they would see an operator's changes.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from carnet import admin
from carnet.accounts import service as accounts
from carnet.auth.assertions import make_client_assertion
from carnet.auth.keys import ServerKey
from carnet.auth.smart import pkce_challenge
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.db.tables import account, account_dossier, outbox
from tests.conftest import SmtpInbox, World, fresh_postgres_database, require_postgres
from tests.notify.conftest import add_account, publish
from tests.servers import free_port
from tests.test_examples import carnet

PUBLIC = "http://carnet.test"  # the load balancer's name: every node's CARNET_BASE_URL, and the Host it forwards
HOST = {"Host": "carnet.test"}
REDIRECT = "https://app.example.test/callback"
PASSWORD = "correct horse battery staple"
MAX_FAILED = 8  # CARNET_MAX_FAILED_ATTEMPTS on both nodes
RATE_RESET = 6  # CARNET_RATE_RESET on both nodes: password reset forms per client address in 300 s
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Cluster:
    services: Services  # the test's own view of the shared database, blob store and keys
    env: dict[str, str]
    nodes: list[str]
    smtp: SmtpInbox
    root: Path

    def url(self, node: int, path: str) -> str:
        return self.nodes[node % len(self.nodes)] + path

    def node_env(self, node: int) -> dict[str, str]:
        return {**self.env, "CARNET_VAR_DIR": str(self.root / f"node{node}")}


def _start(cluster_root: Path, env: dict[str, str], args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(carnet(*args), cwd=cluster_root, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"a carnet node did not become ready at {base}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from aiosmtpd.controller import Controller

    require_postgres()  # SQLite is one node by nature; under CI=true a missing PostgreSQL fails the run
    url, drop = fresh_postgres_database()
    upgrade(url)
    root = tmp_path_factory.mktemp("cluster")
    shared = root / "shared"
    (shared / "blobs").mkdir(parents=True)
    token_key = shared / "token-key.pem"
    token_key.write_bytes(ServerKey.generate().to_pem())
    token_key.chmod(0o600)
    master = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    smtp = SmtpInbox()
    smtp.port = free_port()
    controller = Controller(smtp, hostname=smtp.host, port=smtp.port)
    controller.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARNET_")}
    env.update(CARNET_DATABASE_URL=url, CARNET_BLOB_URL=str(shared / "blobs"), CARNET_MASTER_KEY=master,
               CARNET_TOKEN_KEY_FILE=str(token_key), CARNET_DEMO_IDP_KEY_FILE=str(shared / "demo-idp-key.pem"),
               CARNET_BASE_URL=PUBLIC, CARNET_COOKIE_SECURE="false", CARNET_SMTP_HOST=smtp.host,
               CARNET_SMTP_PORT=str(smtp.port), CARNET_MAX_FAILED_ATTEMPTS=str(MAX_FAILED),
               CARNET_RATE_RESET=f"{RATE_RESET}/300", CARNET_TRUSTED_PROXIES="127.0.0.1")
    settings = Settings(var_dir=root / "test", database_url=url, blob_url=str(shared / "blobs"), master_key=master,
                        token_key_file=str(token_key), base_url=PUBLIC, cookie_secure=False, smtp_host=smtp.host,
                        smtp_port=smtp.port, max_failed_attempts=MAX_FAILED, rate_reset=(RATE_RESET, 300),
                        trusted_proxies=("127.0.0.1",))
    services = build_services(settings, make_engine(url, pool_size=5))
    ports = [free_port(), free_port()]
    cluster = Cluster(services, env, [f"http://127.0.0.1:{p}" for p in ports], smtp, root)
    procs = [_start(root, cluster.node_env(i), ["serve", "--port", str(p)], root / f"node{i}.log")
             for i, p in enumerate(ports)]
    try:
        for base, proc in zip(cluster.nodes, procs, strict=True):
            _wait_ready(base, proc)
        yield cluster
    finally:
        _stop(procs)
        controller.stop()
        services.engine.dispose()
        drop()


@pytest.fixture
def world(cluster: Cluster) -> World:
    return World(cluster.services, None)  # type: ignore[arg-type]  # tokens come from the nodes, not a test client


_addresses = iter(range(1, 10**6))


def client_at(address: str | None = None) -> httpx.Client:
    """A browser behind the load balancer (127.0.0.1, a trusted proxy) at a client address of its own, which the
    balancer forwards in X-Forwarded-For: the rate limits and sign-in counters of one test do not reach another."""
    n = next(_addresses)
    forwarded = address or f"198.18.{n // 256 % 256}.{n % 256}"
    return httpx.Client(headers={**HOST, "X-Forwarded-For": forwarded}, timeout=30, follow_redirects=False)


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    """One browser: its cookies (for 127.0.0.1, whatever the port) reach both nodes, as behind a load balancer."""
    with client_at() as c:
        yield c


# --- helpers ------------------------------------------------------------------------------------------------------

def assertion_form(world: World, kind: str = "professional", jti: str | None = None, **claims: Any) -> dict[str, str]:
    if kind == "professional" and "professional_id" not in claims:
        claims["professional_id"] = world.pros["gp"]
    assertion = make_client_assertion(world.key, world.client_ids[kind], f"{PUBLIC}/oauth/token", int(time.time()),
                                      jti=jti, **claims)
    return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION, "client_assertion": assertion}


def token(cluster: Cluster, node: int, world: World, role: str = "gp") -> str:
    r = httpx.post(cluster.url(node, "/oauth/token"), headers=HOST,
                   data=assertion_form(world, professional_id=world.pros[role]))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def read_patient(cluster: Cluster, node: int, world: World, access_token: str) -> int:
    return httpx.get(cluster.url(node, f"/fhir/Patient/{world.dossier}"),
                     headers={**HOST, "Authorization": f"Bearer {access_token}"}).status_code


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def last_code(cluster: Cluster, address: str) -> str:
    received = cluster.smtp.to(address)
    assert received, f"no message to {address}"
    m = re.search(r"\b(\d{6})\b", received[-1].get_content())
    assert m, "no code in the message"
    return m.group(1)


class Person:
    """The world's patient, whose account is activated on node 0 through the activation page."""

    def __init__(self, cluster: Cluster, world: World, browser: httpx.Client) -> None:
        self.cluster, self.world, self.browser = cluster, world, browser
        self.email = f"patient-{world.n}-{uuid.uuid4().hex[:6]}@example.test"
        with cluster.services.engine.begin() as conn:
            self.account_id = conn.execute(select(account_dossier.c.account_id).where(
                account_dossier.c.dossier_key == world.dossier, account_dossier.c.role == "owner")).scalar_one()
            code = accounts.new_code(conn, self.account_id, "activation", "post", cluster.services.clock(),
                                     dt.timedelta(days=1))
        r = browser.post(cluster.url(0, "/portal/activate"), data={
            "login": world.ins, "code": code, "birth_date": "1980-05-17", "password": PASSWORD, "password2": PASSWORD,
            "email": self.email, "phone": "", "otp_channel": "email"})
        assert r.status_code == 303, r.text

    def password(self, node: int, password: str = PASSWORD, client: httpx.Client | None = None,
                 nxt: str = "/portal/") -> httpx.Response:
        return (client or self.browser).post(self.cluster.url(node, "/portal/sign-in"),
                                             data={"login": self.world.ins, "password": password, "next": nxt})

    def code(self, node: int, code: str, nxt: str = "/portal/") -> httpx.Response:
        page = self.browser.get(self.cluster.url(node, "/portal/code"))
        assert page.status_code == 200
        return self.browser.post(self.cluster.url(node, "/portal/code"),
                                 data={"csrf": csrf_of(page.text), "next": nxt, "code": code})

    def sign_in(self, password_node: int = 0, code_node: int = 1, nxt: str = "/portal/") -> None:
        assert self.password(password_node, nxt=nxt).status_code == 303
        assert self.code(code_node, last_code(self.cluster, self.email), nxt).status_code == 303

    def row(self) -> Any:
        with self.cluster.services.engine.connect() as conn:
            return conn.execute(select(account).where(account.c.account_id == self.account_id)).one()


# --- API clients: the client assertion's jti, access tokens, disabled clients and professionals -----------------

@pytest.mark.parametrize("first", [0, 1])
def test_a_client_assertion_accepted_by_one_node_is_refused_by_the_other(cluster: Cluster, world: World,
                                                                         first: int) -> None:
    form = assertion_form(world, jti=f"jti-{uuid.uuid4()}")
    assert httpx.post(cluster.url(first, "/oauth/token"), headers=HOST, data=form).status_code == 200
    replay = httpx.post(cluster.url(first + 1, "/oauth/token"), headers=HOST, data=form)
    assert replay.status_code in (400, 401) and replay.json()["error"] == "invalid_client"
    assert httpx.post(cluster.url(first, "/oauth/token"), headers=HOST, data=form).status_code in (400, 401)


def test_an_access_token_issued_by_one_node_is_honoured_by_the_other(cluster: Cluster, world: World) -> None:
    for issuer in (0, 1):
        access = token(cluster, issuer, world)
        assert [read_patient(cluster, n, world, access) for n in (issuer + 1, issuer)] == [200, 200]


def test_a_disabled_professional_is_refused_at_once_on_every_node(cluster: Cluster, world: World) -> None:
    access = token(cluster, 0, world, "doctor")
    assert [read_patient(cluster, n, world, access) for n in (0, 1)] == [200, 200]  # both nodes have seen it
    with cluster.services.engine.begin() as conn:
        assert admin.set_practitioner_enabled(conn, world.pros["doctor"], False)
    assert [read_patient(cluster, n, world, access) for n in (1, 0)] == [401, 401]
    for node in (0, 1):
        r = httpx.post(cluster.url(node, "/oauth/token"), headers=HOST,
                       data=assertion_form(world, professional_id=world.pros["doctor"]))
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_a_disabled_client_is_refused_at_once_on_every_node(cluster: Cluster, world: World) -> None:
    access = token(cluster, 1, world, "nurse")
    assert [read_patient(cluster, n, world, access) for n in (1, 0)] == [200, 200]
    with cluster.services.engine.begin() as conn:
        assert admin.set_client_enabled(conn, world.client_ids["professional"], False)
    assert [read_patient(cluster, n, world, access) for n in (0, 1)] == [401, 401]
    for node in (0, 1):
        r = httpx.post(cluster.url(node, "/oauth/token"), headers=HOST, data=assertion_form(world))
        assert r.status_code in (400, 401) and r.json()["error"] == "invalid_client"


def test_a_clinician_signs_in_across_nodes_and_a_disabled_one_is_signed_out_on_every_node(
        cluster: Cluster, world: World, browser: httpx.Client) -> None:
    nid = world.pros["doctor"]
    r = browser.get(cluster.url(0, "/pro/login"))  # node 0 starts the sign-in (state, nonce, PKCE in a cookie)
    assert r.status_code == 302 and r.headers["location"].startswith("/demo-idp/authorize?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(r.headers["location"]).query).items()}
    verifier = str(browser.cookies.get("carnet_pro_login")).split(".")[2]
    page = browser.get(cluster.url(1, "/demo-idp/authorize"), params={**params, "find": nid})  # node 1's page
    token = re.search(r'name="idp_csrf" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token, page.text
    r = browser.post(cluster.url(1, "/demo-idp/authorize"),  # node 1 signs
                     data={**params, "national_id": nid, "idp_csrf": token.group(1)})
    assert r.status_code in (302, 303), r.text
    back = urlsplit(r.headers["location"])
    assert back.path == "/pro/callback"
    r = browser.get(cluster.url(0, f"/pro/callback?{back.query}"))  # node 0 exchanges the code node 1 signed
    assert r.status_code in (302, 303) and r.headers["location"] == "/pro/", r.text
    # the code is spent on every node: node 1's token endpoint refuses it now
    code = parse_qs(back.query)["code"][0]
    replay = httpx.post(cluster.url(1, "/demo-idp/token"), headers=HOST, data={
        "grant_type": "authorization_code", "code": code, "client_id": params["client_id"],
        "redirect_uri": params["redirect_uri"], "code_verifier": verifier})
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert [browser.get(cluster.url(n, "/pro/")).status_code for n in (1, 0)] == [200, 200]
    with cluster.services.engine.begin() as conn:
        assert admin.set_practitioner_enabled(conn, nid, False)
    for node in (0, 1):
        r = browser.get(cluster.url(node, "/pro/"))
        assert r.status_code in (302, 303) and r.headers["location"].startswith("/pro/sign-in")


# --- the patient portal: session, CSRF token, one-time code, code tries, lock-out --------------------------------

def test_a_portal_session_and_its_csrf_token_hold_on_every_node(cluster: Cluster, world: World,
                                                                browser: httpx.Client) -> None:
    person = Person(cluster, world, browser)
    person.sign_in(password_node=1, code_node=0)
    home = browser.get(cluster.url(1, "/portal/"))
    assert home.status_code == 200
    csrf = csrf_of(browser.get(cluster.url(0, "/portal/")).text)
    assert csrf == csrf_of(home.text)
    refused = browser.post(cluster.url(0, "/portal/sign-out"), data={"csrf": "not-the-token"})
    assert refused.status_code == 403
    assert browser.get(cluster.url(1, "/portal/")).status_code == 200  # still signed in
    assert browser.post(cluster.url(1, "/portal/sign-out"), data={"csrf": csrf}).status_code == 303
    for node in (0, 1):
        r = browser.get(cluster.url(node, "/portal/"))
        assert r.status_code == 303 and r.headers["location"].startswith("/portal/sign-in")


def test_a_one_time_code_sent_to_both_nodes_at_once_signs_in_once(cluster: Cluster, world: World,
                                                                   browser: httpx.Client) -> None:
    person = Person(cluster, world, browser)
    assert person.password(0).status_code == 303
    code = last_code(cluster, person.email)
    csrf = csrf_of(browser.get(cluster.url(1, "/portal/code")).text)
    form = {"csrf": csrf, "code": code, "next": "/portal/"}
    pending = {"carnet_session": str(browser.cookies.get("carnet_session"))}

    def submit(node: int) -> httpx.Response:  # the same form, double-submitted to both nodes
        with httpx.Client(headers=HOST, cookies=pending, timeout=30) as c:
            return c.post(cluster.url(node, "/portal/code"), data=form)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(submit, (0, 1)))
    signed_in = [r for r in answers if r.status_code == 303 and r.headers["location"] == "/portal/"]
    assert len(signed_in) == 1, [(r.status_code, r.headers.get("location")) for r in answers]
    for node in (0, 1):  # replayed later, on either node, it signs nobody in
        r = submit(node)
        assert not (r.status_code == 303 and r.headers["location"] == "/portal/")


def test_wrong_codes_on_both_nodes_burn_the_code_for_every_node(cluster: Cluster, world: World,
                                                                browser: httpx.Client) -> None:
    person = Person(cluster, world, browser)
    assert person.password(0).status_code == 303
    code = last_code(cluster, person.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for node in range(accounts.CODE_TRIES):  # five wrong tries, alternating nodes
        assert person.code(node, wrong).status_code == 400
    for node in (0, 1):
        assert person.code(node, code).status_code == 400  # the right code no longer works anywhere


def test_failures_on_every_node_even_at_once_slow_that_address_but_not_the_patient_elsewhere(
        cluster: Cluster, world: World, browser: httpx.Client) -> None:
    person = Person(cluster, world, browser)
    at_once = MAX_FAILED - 2
    with ThreadPoolExecutor(at_once) as pool:  # failures arriving together on both nodes all count
        codes = list(pool.map(lambda n: person.password(n, "not the password at all").status_code, range(at_once)))
    assert codes == [400] * at_once
    for node in (0, 1):
        assert person.password(node, "still not the password").status_code == 400
    for node in (1, 0):  # this address waits on every node, even with the right password
        r = person.password(node)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with client_at() as home:  # the patient, elsewhere, is not locked out
        assert person.password(1, client=home).status_code == 303


def test_a_rate_limit_holds_across_the_nodes(cluster: Cluster, world: World, browser: httpx.Client) -> None:
    answers = [browser.post(cluster.url(n, "/portal/reset"), data={"step": "ask", "login": world.ins}).status_code
               for n in range(RATE_RESET + 2)]
    assert answers == [200] * RATE_RESET + [429, 429]
    with client_at() as other:
        assert other.post(cluster.url(0, "/portal/reset"), data={"step": "ask", "login": world.ins}).status_code == 200


# --- SMART: an authorization code and a refresh token are spent once, on every node ---------------------------

def test_a_smart_code_and_a_refresh_token_used_on_one_node_are_dead_on_the_other(
        cluster: Cluster, world: World, browser: httpx.Client) -> None:
    client_id = f"test-app-{uuid.uuid4().hex[:8]}"
    with cluster.services.engine.begin() as conn:
        admin.add_client(conn, client_id=client_id, name="Appli Test", kind="patient_app", jwks=None, scopes=None,
                         redirect_uris=[REDIRECT])
    person = Person(cluster, world, browser)
    person.sign_in()
    verifier = secrets.token_urlsafe(48)

    def code(consent_node: int, answer_node: int) -> str:
        params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "s1",
                  "scope": "launch/patient patient/*.rs offline_access", "aud": f"{PUBLIC}/fhir",
                  "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256"}
        page = browser.get(cluster.url(consent_node, "/oauth/authorize"), params=params)
        assert page.status_code == 200, page.text
        r = browser.post(cluster.url(answer_node, "/oauth/authorize"), data={
            **params, "csrf": csrf_of(page.text), "decision": "allow", "dossier": str(world.dossier)})
        assert r.status_code == 303 and r.headers["location"].startswith(REDIRECT), r.text
        return parse_qs(urlsplit(r.headers["location"]).query)["code"][0]

    def exchange(node: int, value: str) -> httpx.Response:
        return httpx.post(cluster.url(node, "/oauth/token"), headers=HOST, data={
            "grant_type": "authorization_code", "code": value, "redirect_uri": REDIRECT, "client_id": client_id,
            "code_verifier": verifier})

    def refresh(node: int, value: str) -> httpx.Response:
        return httpx.post(cluster.url(node, "/oauth/token"), headers=HOST, data={
            "grant_type": "refresh_token", "refresh_token": value, "client_id": client_id})

    first = code(0, 1)
    issued = exchange(0, first)
    assert issued.status_code == 200, issued.text
    access = issued.json()["access_token"]
    assert read_patient(cluster, 1, world, access) == 200
    assert exchange(1, first).json()["error"] == "invalid_grant"  # the code again, on the other node
    assert [read_patient(cluster, n, world, access) for n in (0, 1)] == [401, 401]  # and its grant is revoked

    r1 = exchange(1, code(1, 0)).json()["refresh_token"]
    rotated = refresh(0, r1)
    assert rotated.status_code == 200, rotated.text
    r2 = rotated.json()["refresh_token"]
    assert refresh(1, r1).json()["error"] == "invalid_grant"  # spent on node 0, dead on node 1
    assert refresh(0, r2).json()["error"] == "invalid_grant"  # and the whole family went with it


# --- the worker on two nodes: each notification exactly once, none skipped --------------------------------------

def test_workers_on_two_nodes_send_each_notification_exactly_once(cluster: Cluster, world: World) -> None:
    addresses = [f"worker-{world.n}-{i}@example.org" for i in range(20)]
    for address in addresses:
        add_account(world, email=address)
    procs = [_start(cluster.root, cluster.node_env(i), ["worker", "--interval", "0.1"],
                    cluster.root / f"worker{i}.log") for i in (0, 1)]
    try:
        for _ in range(3):  # three documents, each a notice to every account, published while both workers run
            publish(cluster.services, world)
            time.sleep(0.2)
        mine = (outbox.c.dossier_key == world.dossier) & outbox.c.address.in_(addresses)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with cluster.services.engine.connect() as conn:
                waiting = conn.execute(select(func.count()).where(mine, outbox.c.status != "sent")).scalar_one()
            if waiting == 0:
                break
            time.sleep(0.2)
        assert all(p.poll() is None for p in procs), "a worker stopped"
    finally:
        _stop(procs)
    with cluster.services.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.status, outbox.c.attempts).where(mine)).all()
    assert len(rows) == 3 * len(addresses)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}
    for address in addresses:
        assert len(cluster.smtp.to(address)) == 3, address
    ids = [m["Message-ID"] for a in addresses for m in cluster.smtp.to(a)]
    assert len(set(ids)) == len(ids)
