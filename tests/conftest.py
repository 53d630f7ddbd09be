"""Shared test set-up: the suite runs against SQLite *and* PostgreSQL.

PostgreSQL comes from ``CARNET_TEST_DATABASE_URL`` (default: the server at 127.0.0.1:5432, user postgres); a fresh
database is created for the session and dropped afterwards. Every database the suite creates is named
``<CARNET_TEST_DB_PREFIX><pid>_<random>`` (prefix ``carnet_test_`` by default), so two runs on one PostgreSQL never
meet; those a failed test left behind are dropped when the session ends. ``CARNET_TEST_PG_URL`` names instead a
database made beforehand (already upgraded, e.g. distributed by ``carnet db distribute`` on a Citus coordinator:
docs/SCALE.md): the suite's PostgreSQL half then runs in it, neither creating, upgrading nor dropping it. With
``CI=true`` an unreachable PostgreSQL fails the run instead of skipping. Personas are built through the real services;
tokens through the real OAuth endpoint.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from carnet import admin
from carnet.access.actors import Actor, ActorKind
from carnet.accounts import secrets as password_secrets
from carnet.app import create_app
from carnet.auth.assertions import make_client_assertion
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services, run
from carnet.db.engine import make_engine
from carnet.db.migrate import upgrade
from carnet.dossier import service as dossiers
from carnet.identity.ins import OID_TEST, fake_nir_for
from carnet.identity.professionals import fake_rpps

# Argon2id at RFC 9106's profile costs a quarter to half a second of CPU per hash or verification, and the suite signs
# in thousands of times. The tests' process hashes with the same algorithm at its lowest cost (one pass, 8 KiB, one
# lane): every hash is still Argon2id, verified, compared and re-hashed the same way. The production parameters are
# kept in PRODUCTION_HASHER and asserted by tests/portal/test_password_hashing.py; servers a test starts in a
# subprocess keep them (they verify the cheap hashes, and re-hash them at the production cost on sign-in).
PRODUCTION_HASHER = password_secrets._HASHER
TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
password_secrets._HASHER = TEST_HASHER
password_secrets._DUMMY = TEST_HASHER.hash("not a password, spends the same time for unknown identifiers")

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
INS_SYSTEM = f"urn:oid:{OID_TEST}"
BASE = "http://testserver"
_counter = itertools.count(1)  # each session runs on fresh databases


def pg_admin_url() -> str:
    return os.environ.get("CARNET_TEST_DATABASE_URL", PG_DEFAULT)


def pg_precreated_url() -> str | None:
    """The pre-created database the PostgreSQL half runs in (``CARNET_TEST_PG_URL``), if any."""
    return os.environ.get("CARNET_TEST_PG_URL") or None


def pg_available() -> bool:
    try:
        eng = create_engine(make_url(pg_precreated_url() or pg_admin_url()).set(drivername="postgresql+psycopg"))
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


DB_PREFIX_DEFAULT = "carnet_test_"
_created: set[str] = set()  # databases this run made and has not dropped yet (dropped at the end of the session)


def db_prefix() -> str:
    """The start of the name of every database this run creates (``CARNET_TEST_DB_PREFIX``): lower-case letters,
    digits and ``_``, at most 40 characters (PostgreSQL names stop at 63)."""
    prefix = os.environ.get("CARNET_TEST_DB_PREFIX") or DB_PREFIX_DEFAULT
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,39}", prefix):
        raise pytest.UsageError(f"CARNET_TEST_DB_PREFIX={prefix!r}: use lower-case letters, digits and _ (at most 40)")
    return prefix


SHM = Path("/dev/shm")


def pytest_configure(config: pytest.Config) -> None:
    db_prefix()  # a bad prefix stops the run before any test, with its reason
    # The tests' temporary directories (the SQLite databases, var/ with its blobs, mail and keys) go to the memory
    # file system when there is one, where the fsyncs that Carnet rightly does on every commit and every file cost
    # nothing. pytest's own numbering and locking of pytest-of-<user>/pytest-<n> are kept (two runs never meet).
    # CARNET_TEST_TMP=disk (or --basetemp, or PYTEST_DEBUG_TEMPROOT) keeps them where they would be.
    if (os.environ.get("CARNET_TEST_TMP", "shm") == "shm" and config.option.basetemp is None
            and "PYTEST_DEBUG_TEMPROOT" not in os.environ and SHM.is_dir() and os.access(SHM, os.W_OK)):
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(SHM)


def fresh_database_name() -> str:
    """A new database name: the prefix, this process's id (two runs on one server never share a name) and a random
    part (two databases of one run neither)."""
    return f"{db_prefix()}{os.getpid()}_{uuid.uuid4().hex[:10]}"


def fresh_postgres_database() -> tuple[str, Any]:
    """Create a uniquely named database (:func:`fresh_database_name`) on ``CARNET_TEST_DATABASE_URL``'s server;
    returns its URL and a function that drops it. One that is not dropped is dropped when the session ends."""
    admin_url = make_url(pg_admin_url()).set(drivername="postgresql+psycopg")
    name = fresh_database_name()
    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
        # A test database need not survive a crash of the PostgreSQL server (no test crashes it; the crash tests kill
        # Carnet's processes, and a commit is in the server's WAL before it is acknowledged either way): commits do
        # not wait for the WAL's fsync, which the suite's tens of thousands of commits otherwise queue on.
        conn.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    _created.add(name)

    def drop() -> None:
        with eng.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _created.discard(name)
        eng.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_leftovers()


def drop_leftovers() -> None:
    """Drop the databases of this run that a test failing before its clean-up left behind."""
    if not _created:
        return
    eng = create_engine(make_url(pg_admin_url()).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            for name in sorted(_created):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        _created.clear()
    finally:
        eng.dispose()


def require_postgres() -> None:
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required when CI=true (CARNET_TEST_DATABASE_URL)")
        pytest.skip("PostgreSQL is not reachable")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "carnet.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    require_postgres()
    precreated = pg_precreated_url()
    if precreated is not None:
        yield make_url(precreated).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return
    url, drop = fresh_postgres_database()
    upgrade(url)
    yield url
    drop()


# The slow groups (seconds to minutes each: a browser, real servers in subprocesses, a fuzzer). Each test under one of
# these paths gets its group's marker and ``slow``: ``-m "not slow"`` is the quick run, ``-m browser`` one group
# (README, "Running part of the tests"). Markers are registered in pyproject.toml.
SLOW_GROUPS: dict[str, str] = {
    "tests/browser/": "browser",
    "tests/scale/": "scale",
    "tests/backup/test_drill.py": "scale",
    "tests/test_durability.py": "scale",
    "tests/audit/test_migration_0018.py": "scale",
    "tests/api/test_schemathesis.py": "schemathesis",
}
ROOT = Path(__file__).resolve().parents[1]


# Under pytest-xdist (``make test`` runs ``-n 3``: docs/CONTRIBUTING.md, "What a run costs") each worker is a session
# of its own (its own databases, var/, servers and ports). The slow groups keep to two workers, one test after the
# other on each as in a run without workers: the browser tests on one (one live server and one Chromium), the tests
# starting servers in subprocesses (scale, schemathesis) on another, since several of them at once on two cores make
# a server miss its start-up deadline. The scheduler below hands out the biggest groups first, so these two start at
# once and the quick tests, one at a time, fill the third worker and then the others. (xdist's own ``loadgroup``
# cannot group here: it renames the tests' node ids, which pytest 9 no longer lets it do.)
XDIST_GROUPS = {"browser": "browser", "scale": "subprocesses", "schemathesis": "subprocesses"}


def xdist_group_of(nodeid: str) -> str | None:
    for prefix, group in SLOW_GROUPS.items():
        if nodeid.startswith(prefix):
            return XDIST_GROUPS.get(group)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's scope scheduling, a scope being a slow group or else a single test."""

        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or nodeid

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.resolve().relative_to(ROOT).as_posix()
        for prefix, group in SLOW_GROUPS.items():
            if where.startswith(prefix):
                item.add_marker(group)
                item.add_marker("slow")


# Every test client of the session comes from one address ("testclient"): the per-address rate limits are off and
# the per-address failure threshold out of reach; tests/throttle turns them on, on addresses of their own.
UNLIMITED: dict[str, Any] = {"rate_sign_in": (0, 1), "rate_code": (0, 1), "rate_activate": (0, 1),
                             "rate_reset": (0, 1), "rate_token": (0, 1), "rate_code_sending": (0, 1),
                             "rate_access_code": (0, 1),
                             "max_failed_per_address": 10**9}


@pytest.fixture(scope="session")
def services(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    var = tmp_path_factory.mktemp("var")
    os.environ.pop("CARNET_MASTER_KEY", None)
    settings = Settings(var_dir=var, database_url=database_url, base_url=BASE, max_document_bytes=64 * 1024,
                        # one test client for the session: tests/sharing and tests/throttle limit theirs
                        shl_requests_per_minute=100_000, **UNLIMITED)
    svc = build_services(settings, make_engine(database_url, pool_size=5))
    # the session's master key is the one its database registers (carnet.admin.check_master_keys): a command line run
    # against this database by a test must be given it (fixture session_key_file), as an operator's node would be
    admin.check_master_keys(svc.engine, svc.keyring)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def session_key_file(services: Services, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The session's master key file, given to the command lines a test runs against the session's database."""
    path = services.settings.var_dir / "master-key.json"
    assert path.exists()
    monkeypatch.delenv("CARNET_MASTER_KEY", raising=False)
    monkeypatch.setenv("CARNET_MASTER_KEY_FILE", str(path))
    return path


@pytest.fixture(scope="session")
def app(services: Services):  # type: ignore[no-untyped-def]
    return create_app(services)


@pytest.fixture(scope="session")
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=BASE) as c:
        yield c


class World:
    """Personas on one fresh dossier: built through the real services, tokens through /oauth/token."""

    def __init__(self, services: Services, client: TestClient) -> None:
        self.services = services
        self.client = client
        self.n = next(_counter)
        self.key = ECKey.generate_key("P-256", auto_kid=True)
        self.client_ids: dict[str, str] = {}
        with services.engine.begin() as conn:
            for kind in ("professional", "patient_portal", "assurance_maladie"):
                cid = f"test-{kind}-{self.n}"
                admin.add_client(conn, client_id=cid, name=cid, kind=kind,
                                 jwks={"keys": [self.key.as_dict(private=False)]})
                self.client_ids[kind] = cid
        self.pros: dict[str, str] = {}
        for role, prof, reg in (("gp", "10", False), ("doctor", "10", False), ("nurse", "60", False),
                                ("pharmacist", "21", False), ("regulator", "10", True), ("blocked", "10", False),
                                ("stranger", "10", False), ("physio", "70", False)):
            self.pros[role] = self.add_pro(prof, reg)
        self.ins = fake_nir_for(self.n)
        self.dossier = self.create_dossier(self.ins)

    def add_pro(self, profession: str, regulator: bool = False) -> str:
        idx = next(_counter)
        with self.services.engine.begin() as conn:
            return admin.add_practitioner(conn, rpps=fake_rpps(idx), adeli=None, family=f"Doc{idx}", given="Test",
                                          profession=profession, organisation_id=f"ORG{self.n}",
                                          regulator=regulator)

    def patient_resource(self, ins: str, consent: bool = True) -> dict[str, Any]:
        res: dict[str, Any] = {
            "resourceType": "Patient", "identifier": [{"system": INS_SYSTEM, "value": ins}],
            "name": [{"use": "official", "family": "Testé", "given": ["Alix"]}], "birthDate": "1980-05-17",
            "gender": "female",
            "extension": [{"url": dossiers.BIRTHPLACE_EXT, "valueAddress": {"extension": [
                {"url": dossiers.INSEE_EXT, "valueCoding": {"code": "75056"}}]}}]}
        if consent:
            res["extension"].append({"url": dossiers.EXT_CREATION_CONSENT, "valueBoolean": True})
        return res

    def create_dossier(self, ins: str) -> uuid.UUID:
        gp = Actor(ActorKind.PROFESSIONAL, id=self.pros["gp"], profession="10")
        key, _ = run(self.services, gp, lambda ctx: dossiers.create(ctx, self.patient_resource(ins)))
        patient = Actor(ActorKind.PATIENT, id=ins)
        run(self.services, patient, lambda ctx: dossiers.set_treating_gp(ctx, key, self.pros["gp"]))
        for role in ("doctor", "nurse", "pharmacist", "physio"):
            run(self.services, patient, lambda ctx, r=role: dossiers.change_access(  # type: ignore[misc]
                ctx, key, "practitioner", self.pros[r], "authorized"))
        run(self.services, patient, lambda ctx: dossiers.change_access(ctx, key, "practitioner",
                                                                       self.pros["blocked"], "blocked"))
        return key

    def token(self, role: str | None = None, *, kind: str = "professional", mode: str = "normal",
              reason: str | None = None, patient_ins: str | None = None, scope: str | None = None) -> str:
        claims: dict[str, Any] = {}
        if kind == "professional":
            claims = {"professional_id": self.pros[role or "gp"], "mode": mode, "reason": reason}
        elif kind == "patient_portal":
            claims = {"patient_ins": patient_ins or self.ins}
        assertion = make_client_assertion(self.key, self.client_ids[kind], f"{BASE}/oauth/token",
                                          int(time.time()), **claims)
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion}
        if scope:
            form["scope"] = scope
        r = self.client.post("/oauth/token", data=form)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def headers(self, role: str | None = "gp", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **kw)}", "Accept": "application/fhir+json"}



def provide_bundle(doc: dict[str, Any], data: bytes, *, date: str = "2025-01-10T10:00:00Z",
                   ids: tuple[str, str, str] = ("urn:uuid:list-1", "urn:uuid:doc-1", "urn:uuid:bin-1")
                   ) -> dict[str, Any]:
    """An ITI-65 transaction Bundle of one SubmissionSet, the DocumentReference ``doc`` and its content ``data`` as a
    Binary (``ids``: the three fullUrls). The attachment's data moves to the Binary and the attachment points to it;
    the Binary's content type is the attachment's."""
    list_id, doc_id, bin_id = ids
    attachment = doc["content"][0]["attachment"]
    attachment.pop("data", None)
    attachment["url"] = bin_id
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": list_id, "request": {"method": "POST", "url": "List"},
         "resource": {"resourceType": "List", "status": "current", "mode": "working",
                      "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                                           "code": "submissionset"}]},
                      "subject": {"reference": doc["subject"]["reference"]}, "date": date,
                      "entry": [{"item": {"reference": doc_id}}]}},
        {"fullUrl": doc_id, "request": {"method": "POST", "url": "DocumentReference"}, "resource": doc},
        {"fullUrl": bin_id, "request": {"method": "POST", "url": "Binary"},
         "resource": {"resourceType": "Binary", "contentType": attachment["contentType"],
                      "data": base64.b64encode(data).decode()}}]}

@pytest.fixture
def world(services: Services, client: TestClient) -> World:
    return World(services, client)


# --- a real SMTP server in the test process (notifications, sign-in codes) -----------------------------------------

class SmtpInbox:
    """What an in-process aiosmtpd server received. ``fail_first`` answers that many DATA commands for each
    recipient with ``451`` (a temporary failure) before accepting; ``refuse`` answers every RCPT with ``550``."""

    def __init__(self, fail_first: int = 0, refuse: bool = False) -> None:
        self.messages: list[Any] = []  # email.message.EmailMessage
        self.ehlo_names: list[str] = []  # the name the client gave in EHLO, per accepted message
        self.attempts: dict[str, int] = {}  # DATA commands per recipient
        self.fail_first = fail_first
        self.refuse = refuse
        self.host = "127.0.0.1"
        self.port = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy

        rcpt = envelope.rcpt_tos[0]
        self.attempts[rcpt] = self.attempts.get(rcpt, 0) + 1
        if self.attempts[rcpt] <= self.fail_first:
            return "451 4.3.0 Try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.ehlo_names.append(str(session.host_name))
        return "250 OK"

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpInbox]:
    """An SMTP server on a free local port. Parametrize indirectly with ``{"fail_first": 1}`` or
    ``{"refuse": True}`` for the failing variants."""
    import socket

    from aiosmtpd.controller import Controller

    inbox = SmtpInbox(**getattr(request, "param", {}))
    with socket.socket() as s:  # aiosmtpd cannot bind port 0 and still find itself: pick a free port first
        s.bind(("127.0.0.1", 0))
        inbox.port = s.getsockname()[1]
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


# --- a real S3 server over HTTP (moto_server in a subprocess; CARNET_TEST_S3_ENDPOINT for another) -------------------

@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    from tests.s3server import serve

    yield from serve()


def run_async(coro: Any) -> Any:
    """``asyncio.run(coro)`` in a thread of its own: the browser tests' Playwright may hold an event loop in this one
    for the rest of the session, and ``asyncio.run`` refuses to start inside a running loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
