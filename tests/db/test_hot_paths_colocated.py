"""The hot paths stay single-shard on Citus, checked without Citus: every SQL statement they run is watched, and none
may join tables of two co-location groups (``carnet/db/distribution.toml``: that would need a repartition join) or
lock rows (``FOR UPDATE``) without naming its group's key.

Watched: a portal sign-in and the pages after it (the session look-up), a patient app's code and refresh exchanges
and its API calls (``grant_alive``), the worker's outbox claim, the claims ingest (its look-up and bulk audit), and a
professional's first read (the audit append that records the access marker). None may have a top-level RETURNING
that reads a CTE: Citus moves the CTEs of an ``INSERT … SELECT`` into its SELECT, and the shard then never sees the CTE
("relation … does not exist", found on Citus 13.2.2: docs/SCALE.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from carnet.audit import log
from carnet.claims.ingest import ingest
from carnet.context import Context, Services, run
from carnet.db import distribution
from carnet.notify import worker
from tests.auth.test_smart import app_for, bearer, document_ids, signed_in  # noqa: F401
from tests.claims.helpers import byte_lines, claims_file, sample
from tests.conftest import World
from tests.notify.conftest import pro
from tests.portal.conftest import Patient, browser, patient  # noqa: F401

_PLACEMENT = distribution.load()
_TABLE = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?([a-z_]+)', re.IGNORECASE)


def groups_in(statement: str) -> set[str]:
    """The co-location groups of the distributed tables a statement names (reference tables are everywhere)."""
    found = set()
    for name in _TABLE.findall(statement):
        group = _PLACEMENT.group_of(name.lower())
        if group is not None:
            found.add(group.name)
    return found


def _locks_without_key(statement: str) -> bool:
    if not re.search(r"\bFOR (UPDATE|NO KEY UPDATE|SHARE)\b", statement, re.IGNORECASE):
        return False
    tables = [n.lower() for n in _TABLE.findall(statement)]
    groups = [_PLACEMENT.group_of(t) for t in tables]
    columns = {g.column for g in groups if g is not None}
    where = statement.upper().split("WHERE", 1)[-1]
    return not all(re.search(rf"\b{c.upper()}\s*=\s*(%\(|:|\$|%s|\()", where) for c in columns)


def _returning_reads_a_cte(statement: str) -> bool:
    ctes = re.findall(r"(?:\bWITH|\),)\s*([a-z_]+)\s+AS\s*\(", statement, re.IGNORECASE)
    for found in re.finditer(r"\bRETURNING\b", statement, re.IGNORECASE):
        before = statement[:found.start()]
        if before.count("(") == before.count(")"):  # the statement's own RETURNING, not a CTE's
            tail = statement[found.end():]
            return any(re.search(rf"\bFROM\s+{c}\b", tail, re.IGNORECASE) for c in ctes)
    return False


@contextmanager
def watched(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def assert_single_shard(statements: list[str]) -> None:
    assert statements
    across = [s for s in statements if len(groups_in(s)) > 1]
    assert across == [], "joins across co-location groups (a repartition join on Citus)"
    unkeyed = [s for s in statements if _locks_without_key(s)]
    assert unkeyed == [], "row locks without the distribution key (refused across shards on Citus)"
    unseen = [s for s in statements if _returning_reads_a_cte(s)]
    assert unseen == [], "a RETURNING that reads a CTE (the CTE is not sent to the shard on Citus)"


def test_the_guard_sees_a_join_across_groups() -> None:
    assert groups_in("SELECT * FROM web_session JOIN account ON account.account_id = web_session.account_id") == {
        "web_session", "account"}
    assert groups_in("SELECT * FROM document JOIN practitioner ON practitioner.national_id = document.author_id"
                     ) == {"dossier"}
    assert _locks_without_key("SELECT 1 FROM outbox WHERE status = 'pending' FOR UPDATE SKIP LOCKED")
    assert not _locks_without_key("SELECT 1 FROM outbox WHERE outbox.dossier_key = %(k)s FOR UPDATE")
    before = ("WITH h AS (UPDATE audit_chain SET seq = seq + 1 WHERE dossier_key = :k RETURNING seq), "
              "s AS (INSERT INTO professional_seen SELECT :k, :m, :t FROM h RETURNING 1 AS added) "
              "INSERT INTO audit (dossier_key, seq) SELECT :k, h.seq FROM h "
              "RETURNING (SELECT count(*) FROM s) AS added")
    assert _returning_reads_a_cte(before)
    assert not _returning_reads_a_cte(log._APPEND_MARK_PG)  # noqa: SLF001 - the statement itself
    assert not _returning_reads_a_cte("INSERT INTO audit_chain (dossier_key) VALUES (:k) RETURNING seq")


def test_portal_sign_in_and_pages_are_single_shard(patient: Patient) -> None:  # noqa: F811
    with watched(patient.services.engine) as statements:
        patient.ready()
        assert patient.browser.get("/portal/").status_code == 200
    assert_single_shard(statements)


def test_a_patient_apps_exchanges_and_calls_are_single_shard(world: World, signed_in: Patient,  # noqa: F811
                                                             app_for: Any) -> None:  # noqa: F811
    app = app_for()
    with watched(world.services.engine) as statements:
        first = app.tokens()
        second = app.refresh(first["refresh_token"]).json()
        assert document_ids(world, world.dossier, bearer(second["access_token"])).status_code == 200
    assert_single_shard(statements)


def test_the_outbox_claim_and_the_claims_ingest_are_single_shard(world: World) -> None:
    services: Services = world.services
    with watched(services.engine) as statements:
        ingest(services, byte_lines(claims_file(sample(world.ins, services.clock().date()))))
        worker.claim(services, limit=5)
    assert_single_shard(statements)


def test_a_professionals_first_read_is_one_statement_the_shard_can_run(world: World) -> None:
    def read(ctx: Context) -> bool:
        return log.record_marked(ctx.conn, dossier_key=world.dossier, actor=ctx.actor, action="R",
                                 event="document.read", now=ctx.now, mark="test:colocated")

    with watched(world.services.engine) as statements:
        assert run(world.services, pro(world), read) is True
    assert_single_shard(statements)
