"""The hot requests' plain SQL (:mod:`carnet.db.prepared`, issue 11) gives on PostgreSQL the rows, and the column
names, of the Core statement it mirrors: the caller, the dossier with the caller's standing (each kind of caller,
locked or not), the locator and the document of a retrieve, and the page of a search for every visibility the policy
hands out (:mod:`tests.access.test_policy_sql`'s documents and visibilities). SQLite runs Core alone: nothing to
compare there. And the publish's statements (the masterIdentifier taken, the document, its locators, tokens and
submission set inserted, the notification links read) write and read alike."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, String, and_, cast, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from carnet import context
from carnet.access.actors import Actor, ActorKind
from carnet.access.policy import Visibility
from carnet.auth import web
from carnet.context import Context, run
from carnet.db import prepared
from carnet.db.tables import (
    access_grant,
    account,
    document,
    document_identifier,
    document_token,
    dossier,
    resource_locator,
    shared_link,
    submission_set,
)
from carnet.documents import publishing, reading, stored, submission_sets
from carnet.documents import service as documents
from carnet.dossier.rights import add_representative
from carnet.notify import outbox
from tests.access.test_policy_sql import (  # noqa: F401 - db: the module's fixture, used here too
    NOW,
    Loaded,
    db,
    decided_visibilities,
    hand_made_visibilities,
)
from tests.conftest import World
from tests.notify.conftest import PDF, add_account, docref, pro


@pytest.fixture
def pg_world(world: World) -> World:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("the prepared statements are PostgreSQL's")
    return world


def same_rows(conn: Connection, core: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Both statements' rows (as tuples, in order) and column names must agree; the rows, for more checks."""
    result = conn.execute(core, params)
    names, core_rows = list(result.keys()), [tuple(r) for r in result.all()]
    raw = prepared.fetch_all(conn, sql, dict(params))
    assert [tuple(r) for r in raw] == core_rows
    if raw:
        assert list(raw[0]._fields) == names
    return core_rows


@pytest.mark.parametrize("link_id", ["not-a-uuid", "0190d4a6-0000-7000-8000-00000000dead"])  # no such link
def test_a_link_recipient_without_a_link_of_this_dossier_gets_nothing(world: World, link_id: str) -> None:
    """A recipient whose id is no UUID joins the nil id (no link has it; Citus cannot route ``link_id = NULL``) and,
    like one whose link does not exist, has no standing: nothing to read, not even the dossier's existence."""
    who = Actor(ActorKind.LINK_RECIPIENT, id=link_id, display="Dr Ruiz")
    _row, decision = run(world.services, who, lambda ctx: ctx.dossier(world.dossier))
    assert not decision.read and not decision.check


def test_the_caller_is_read_alike(pg_world: World) -> None:
    w = pg_world
    with w.services.engine.begin() as conn:
        for cid, nid in ((w.client_ids["professional"], w.pros["gp"]), (w.client_ids["professional"], ""),
                         (w.client_ids["professional"], "899999999999"), (w.client_ids["patient_portal"], ""),
                         ("no-such-client", w.pros["gp"])):
            same_rows(conn, web._CALLER, web._CALLER_SQL, {"cid": cid, "nid": nid})  # noqa: SLF001
        assert same_rows(conn, web._CALLER, web._CALLER_SQL, {"cid": w.client_ids["professional"],  # noqa: SLF001
                                                              "nid": w.pros["gp"]})[0][2] == w.pros["gp"]


def test_the_dossier_and_each_callers_standing_are_read_alike(pg_world: World) -> None:
    w = pg_world
    patient = Actor(ActorKind.PATIENT, id=w.ins)
    rep = run(w.services, patient, lambda ctx: add_representative(ctx, w.dossier, "minor", "Parent", "Alex", "MTH"))
    link = uuid.uuid4()
    with w.services.engine.begin() as conn:
        conn.execute(insert(shared_link).values(
            dossier_key=w.dossier, link_id=link, kind="link", label="test", contents={"summary": True},
            sealed=b"\0", wrapped_key=b"\0", key_id="k", expires_at=NOW, max_opens=3, opens=1,
            created_at=NOW))
        org = f"ORG{w.n}"
        conn.execute(insert(access_grant), [  # the organisation's grant, and one revoked
            {"dossier_key": w.dossier, "grant_id": uuid.uuid4(), "subject_kind": "organisation", "subject_id": org,
             "relation": "authorized", "created_at": NOW, "created_by": "test"},
            {"dossier_key": w.dossier, "grant_id": uuid.uuid4(), "subject_kind": "practitioner",
             "subject_id": w.pros["stranger"], "relation": "authorized", "created_at": NOW, "created_by": "test",
             "revoked_at": NOW}])
    cases: list[tuple[Any, str, dict[str, Any]]] = [
        (context._DOSSIER, context._DOSSIER_SQL, {}),  # noqa: SLF001
        *((context._DOSSIER_FOR_PROFESSIONAL, context._DOSSIER_FOR_PROFESSIONAL_SQL,  # noqa: SLF001
           {"subjects": subjects}) for subjects in (
            [w.pros["gp"]], [w.pros["nurse"], org], [w.pros["blocked"]], [w.pros["stranger"], org], [org])),
        *((context._DOSSIER_FOR_REPRESENTATIVE, context._DOSSIER_FOR_REPRESENTATIVE_SQL,  # noqa: SLF001
           {"rep": r}) for r in (rep, uuid.uuid4())),
        *((context._DOSSIER_FOR_LINK, context._DOSSIER_FOR_LINK_SQL, {"link": k})  # noqa: SLF001
          for k in (link, uuid.uuid4(), uuid.UUID(int=0))),  # the nil id: what Context passes for no link
    ]
    with w.services.engine.begin() as conn:
        seen = []
        for core, sql, params in cases:
            for key in (w.dossier, uuid.uuid4()):
                seen.append(same_rows(conn, core, sql, {**params, "k": key}))
                same_rows(conn, core.with_for_update(of=dossier), sql + context._LOCK_SQL,  # noqa: SLF001
                          {**params, "k": key})
    assert all(rows for rows in seen[::2]) and not any(rows for rows in seen[1::2])  # the dossier; no such one
    assert any(len(rows) > 1 for rows in seen)  # a professional with grants of their own and of their organisation


def _decided(services: Any, caller: Any, key: uuid.UUID) -> Any:
    """What a request's first dossier read gives ``caller``: the actor, the dossier's columns and the decision; or the
    refusal (its status, OperationOutcome and headers)."""
    from carnet.errors import FhirError

    def work(ctx: Context) -> Any:
        row, decision = ctx.dossier(key)
        return ctx.actor, tuple(getattr(row, c.name) for c in dossier.c), decision

    try:
        return run(services, caller, work)
    except FhirError as exc:
        return exc.status, exc.outcome(), exc.headers


def test_the_caller_read_with_the_dossier_is_the_caller_read_first(pg_world: World) -> None:
    """The hot reads' caller (:class:`carnet.auth.web.TokenCaller`) is read in the statement of the first dossier
    (:data:`carnet.context._CALLER_AND_DOSSIER_SQL`): for every kind of caller and dossier, the actor, the dossier and
    the policy's decision are those of the caller read first (:func:`carnet.auth.web.resolve_actor`), and a caller
    that may not call gets the same refusal, before any 404."""
    from carnet import admin
    from carnet.auth.claims import AssertionClaims
    from carnet.db.tables import client, practitioner

    w = pg_world
    org = f"ORG{w.n}"
    disabled_pro = w.add_pro("10")
    with w.services.engine.begin() as conn:
        conn.execute(insert(access_grant), [  # the organisation's grant, and a revoked one
            {"dossier_key": w.dossier, "grant_id": uuid.uuid4(), "subject_kind": "organisation", "subject_id": org,
             "relation": "authorized", "created_at": NOW, "created_by": "test"},
            {"dossier_key": w.dossier, "grant_id": uuid.uuid4(), "subject_kind": "practitioner",
             "subject_id": w.pros["regulator"], "relation": "authorized", "created_at": NOW, "created_by": "test",
             "revoked_at": NOW}])
        conn.execute(update(practitioner).where(practitioner.c.national_id == disabled_pro).values(enabled=False))
        off = f"test-off-{w.n}"
        admin.add_client(conn, client_id=off, name=off, kind="professional",
                         jwks={"keys": [w.key.as_dict(private=False)]})
        conn.execute(update(client).where(client.c.client_id == off).values(enabled=False))
    pro_client, portal = w.client_ids["professional"], w.client_ids["patient_portal"]
    callers = [(pro_client, w.pros[role], o) for role in w.pros for o in (None, org, "ORG-OTHER")]
    callers += [(pro_client, disabled_pro, None), (pro_client, "899999999999", None), (off, w.pros["gp"], None),
                ("no-such-client", w.pros["gp"], None), (portal, w.pros["gp"], None),
                (w.client_ids["assurance_maladie"], w.pros["gp"], None)]
    joined = 0
    for cid, nid, organisation in callers:
        who = AssertionClaims(client_id=cid, jti="t", exp=0, professional_id=nid, organisation_id=organisation,
                              patient_ins=w.ins if cid == portal else None)
        for key in (w.dossier, uuid.uuid4()):
            first = _decided(w.services, lambda conn, who=who: web.resolve_actor(conn, who, lambda *a: True), key)
            lazy = _decided(w.services, web.TokenCaller(who, lambda *a: True), key)
            assert lazy == first, (cid, nid, organisation, key == w.dossier)
            joined += isinstance(lazy[0], Actor) and lazy[0].kind is ActorKind.PROFESSIONAL
    assert joined >= 3 * len(w.pros)  # every professional, with the organisation of the token or their own
    from sqlalchemy import event

    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(w.services.engine, "before_cursor_execute", count)
    try:
        who = AssertionClaims(client_id=pro_client, jti="t", exp=0, professional_id=w.pros["nurse"])
        _decided(w.services, lambda conn: web.resolve_actor(conn, who, lambda *a: True), w.dossier)
        first, sent[:] = list(sent), []
        _decided(w.services, web.TokenCaller(who, lambda *a: True), w.dossier)
    finally:
        event.remove(w.services.engine, "before_cursor_execute", count)
    assert len(sent) == len(first) - 1 and sent[0] == context._CALLER_AND_DOSSIER_SQL  # noqa: SLF001 - one trip


def test_the_document_read_with_its_dossier_is_the_document_read_apart(pg_world: World) -> None:
    """A professional's retrieve reads the document in the statement of its dossier and the caller
    (:class:`carnet.context.Joined`): for every professional (with the token's organisation or not), a disabled one and
    a disabled client, and for a document they see, a masked one, one the patient does not see yet, an id of the
    dossier that is no document and an id of nothing, the row, the decision and the refusal are those of the document
    read apart, and the retrieve sends one statement fewer."""
    from sqlalchemy import event

    from carnet import admin
    from carnet.auth.claims import AssertionClaims
    from carnet.db.tables import client, practitioner
    from carnet.errors import FhirError

    w = pg_world
    org = f"ORG{w.n}"
    disabled_pro = w.add_pro("10")
    ids = []
    for labels in ([], ["MASQUE_PS"], ["INVISIBLE_PATIENT"]):
        list_id = uuid.uuid4()
        pub = run(w.services, pro(w), lambda ctx, labels=labels, list_id=list_id: documents.publish(
            ctx, w.dossier, docref(labels), documents.Content(PDF, "application/pdf"), "ITI-105",
            submission_set_id=list_id, locate=(list_id,)))
        ids += [str(pub.document_id)]
    ids += [str(list_id), str(uuid.uuid4())]  # a submission set's id (located in the dossier), nothing
    with w.services.engine.begin() as conn:
        conn.execute(update(practitioner).where(practitioner.c.national_id == disabled_pro).values(enabled=False))
        off = f"test-doc-off-{w.n}"
        admin.add_client(conn, client_id=off, name=off, kind="professional",
                         jwks={"keys": [w.key.as_dict(private=False)]})
        conn.execute(update(client).where(client.c.client_id == off).values(enabled=False))
    pro_client = w.client_ids["professional"]
    callers = [(pro_client, w.pros[role], o) for role in w.pros for o in (None, org)]
    callers += [(pro_client, disabled_pro, None), (off, w.pros["gp"], None)]

    def read(caller: Any, resource_id: str) -> Any:
        def work(ctx: Context) -> Any:
            row, decision = stored.visible_document(ctx, resource_id, "ITI-68")
            return ctx.actor, tuple(row), row._fields, decision
        try:
            return run(w.services, caller, work)
        except FhirError as exc:
            return exc.status, exc.outcome(), exc.headers

    seen, refused = 0, 0
    for cid, nid, organisation in callers:
        who = AssertionClaims(client_id=cid, jti="t", exp=0, professional_id=nid, organisation_id=organisation)
        for rid in ids:
            apart = read(lambda conn, who=who: web.resolve_actor(conn, who, lambda *a: True), rid)
            joined = read(web.TokenCaller(who, lambda *a: True), rid)
            assert joined == apart, (cid, nid, organisation, rid)
            seen += isinstance(joined[0], Actor)
            refused += joined[0] == 404
    assert seen >= len(w.pros) and refused >= 2 * len(callers)  # documents seen, and refusals of every kind

    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    who = AssertionClaims(client_id=pro_client, jti="t", exp=0, professional_id=w.pros["gp"])
    event.listen(w.services.engine, "before_cursor_execute", count)
    try:
        read(lambda conn: web.resolve_actor(conn, who, lambda *a: True), ids[0])
        first, sent[:] = list(sent), []
        read(web.TokenCaller(who, lambda *a: True), ids[0])
    finally:
        event.remove(w.services.engine, "before_cursor_execute", count)
    assert len(sent) == len(first) - 2 and stored._JOINED.sql in sent  # noqa: SLF001 - the caller's and the row's


def test_the_locator_and_the_document_of_a_retrieve_are_read_alike(pg_world: World) -> None:
    w = pg_world
    pub = run(w.services, pro(w), lambda ctx: documents.publish(
        ctx, w.dossier, docref(), documents.Content(PDF, "application/pdf"), "ITI-105"))
    with w.services.engine.begin() as conn:
        for rid in (pub.document_id, uuid.uuid4()):
            same_rows(conn, stored._LOCATE, stored._LOCATE_SQL, {"rid": rid})  # noqa: SLF001
            for key in (w.dossier, uuid.uuid4()):
                params = {"k": key, "d": rid}
                same_rows(conn, stored._DOCUMENT, stored._DOCUMENT_SQL, params)  # noqa: SLF001
                same_rows(conn, stored._DOCUMENT.with_for_update(), stored._DOCUMENT_SQL + " FOR UPDATE",  # noqa: SLF001
                          params)
        assert len(same_rows(conn, stored._DOCUMENT, stored._DOCUMENT_SQL,  # noqa: SLF001
                             {"k": w.dossier, "d": pub.document_id})) == 1

    def through_context(ctx: Context) -> Any:  # and the functions that run them, as a retrieve does
        return stored.visible_document(ctx, str(pub.document_id), "ITI-68")[0]

    row = run(w.services, pro(w), through_context)
    assert (row.dossier_key, row.document_id, row.size) == (w.dossier, pub.document_id, len(PDF))
    assert isinstance(row.wrapped_key, bytes) and row.sha256 and row.blob_key


def test_a_search_page_is_the_same_for_every_visibility(db: Loaded) -> None:  # noqa: F811
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the prepared statements are PostgreSQL's")
    with db.engine.begin() as conn:  # each document's stored JSON names it, so that pages compare by document
        conn.execute(update(document).values(resource=cast(document.c.document_id, String)))
    visibilities = sorted(decided_visibilities() | set(hand_made_visibilities()), key=repr)
    assert len(visibilities) > 100
    some = 0
    with db.engine.begin() as conn:
        for vis in visibilities:
            for desc, offset, count in ((True, 0, 1000), (False, 0, 1000), (True, 7, 25)):
                q = reading.DocumentQuery(db.dossier_key, [], count, offset, sort_desc=desc)
                core = reading.page(conn, NOW, q, vis)
                assert reading.counted_page(conn, NOW, q, vis)[0] == core, vis
                some += bool(core)
            # the page with the search's total, in one statement: the same pages and totals as Core's two, the page
            # past the last one included
            everything = {desc: reading.page(conn, NOW, reading.DocumentQuery(db.dossier_key, [], 1000, 0, desc), vis)
                          for desc in (True, False)}
            for desc, offset, count in ((True, 0, 1000), (True, 0, 3), (False, 2, 5), (True, 7, 25), (True, 999, 5),
                                         (True, 0, 0), (True, 3, 0)):
                q = reading.DocumentQuery(db.dossier_key, [], count, offset, sort_desc=desc)
                rows, total = reading.counted_page(conn, NOW, q, vis)
                assert (rows, total) == reading.counted_page(conn, NOW, q, vis, core=True), vis
                assert (rows, total) == (everything[desc][offset:offset + count], len(everything[desc])), vis
                # uncounted (_total=none): the same page, and in place of the total the page's end, one more when a
                # document follows it (what the next link needs)
                rows, end = reading.counted_page(conn, NOW, replace(q, total=False), vis)
                assert (rows, end) == reading.counted_page(conn, NOW, replace(q, total=False), vis, core=True), vis
                assert rows == everything[desc][offset:offset + count], vis
                assert end == offset + len(rows) + (len(everything[desc]) > offset + count), vis
            # and the documents it returns are those the policy allows (the page holds them all)
            assert {uuid.UUID(r) for r in reading.counted_page(
                conn, NOW, reading.DocumentQuery(db.dossier_key, [], 1000, 0), vis)[0]} == db.allowed(vis)
    assert some > 100
    # the request's time is a parameter, not a constant: the same visibility at another time sees other documents
    later = NOW + dt.timedelta(days=30)
    patient_view = next(v for v in visibilities if v.hide_invisible_patient and not v.nothing and v.rights is None)
    with db.engine.begin() as conn:
        q = reading.DocumentQuery(db.dossier_key, [], 1000, 0)
        assert reading.counted_page(conn, later, q, patient_view)[0] == reading.page(conn, later, q, patient_view)
        assert len(reading.counted_page(conn, later, q, patient_view)[0]) > len(
            reading.counted_page(conn, NOW, q, patient_view)[0])


def written_alike(conn: Connection, table: Any, core: Any, sql: str, rows: list[dict[str, Any]],
                  raw_params: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """Insert ``rows[0]`` with Core and ``rows[1]`` with the SQL text (``raw_params``: its parameters, when they differ
    from the row's); both, read back, must be the same but for the ``key`` columns that tell them apart."""
    conn.execute(core, rows[0])
    prepared.execute(conn, sql, raw_params[1] if raw_params else rows[1])
    back = []
    for row in rows:
        found = conn.execute(select(table).where(*(table.c[k] == row[k] for k in key))).mappings().one()
        back.append({k: v for k, v in found.items() if k not in key})
    assert back[0] == back[1]
    return back


def test_a_publishs_inserts_write_alike(pg_world: World) -> None:
    w = pg_world
    pub = run(w.services, pro(w), lambda ctx: documents.publish(
        ctx, w.dossier, docref(), documents.Content(PDF, "application/pdf"), "ITI-105"))
    with w.services.engine.connect() as conn, conn.begin() as tx:
        doc = dict(conn.execute(select(document).where(document.c.document_id == pub.document_id)).mappings().one())
        a, b = uuid.uuid4(), uuid.uuid4()
        rows = [{**doc, "document_id": a, "master_identifier": f"urn:uuid:{a}"},
                {**doc, "document_id": b, "master_identifier": f"urn:uuid:{b}"}]
        back = written_alike(conn, document, publishing._INSERT_DOCUMENT, publishing._INSERT_DOCUMENT_SQL,  # noqa: SLF001
                             rows, [], ("document_id", "master_identifier"))
        assert back[0]["wrapped_key"] == doc["wrapped_key"] and back[0]["date"] == doc["date"]

        core_take = pg_insert(document_identifier).on_conflict_do_nothing().returning(
            document_identifier.c.document_id)
        for rid in (a, b):
            ident = {"master_identifier": f"urn:uuid:{rid}", "dossier_key": w.dossier, "document_id": rid}
            if rid == a:
                assert conn.execute(core_take, ident).first() is not None
            else:
                assert prepared.fetch_one(conn, publishing._TAKE_IDENTIFIER_SQL, ident) is not None  # noqa: SLF001
            assert conn.execute(core_take, ident).first() is None  # taken: no row, either way
            assert prepared.fetch_one(conn, publishing._TAKE_IDENTIFIER_SQL, ident) is None  # noqa: SLF001

        for n in (1, 2, 3):
            ids = [uuid.uuid4() for _ in range(n)]
            params: dict[str, Any] = {f"r{i}": r for i, r in enumerate(ids)}
            prepared.execute(conn, publishing._insert_locators_sql(n), {**params, "k": w.dossier})  # noqa: SLF001
            assert dict(conn.execute(select(resource_locator.c.resource_id, resource_locator.c.dossier_key).where(
                resource_locator.c.resource_id.in_(ids))).all()) == dict.fromkeys(ids, w.dossier)
        tokens = [("type", "http://loinc.org", "11488-4"), ("class", "urn:oid:1.2", "10"), ("event", "s", "c")]
        for n, d in ((1, a), (3, b)):
            params = {"k": w.dossier, "d": d}
            for i, (p, s, c) in enumerate(tokens[:n]):
                params[f"p{i}"], params[f"s{i}"], params[f"c{i}"] = p, s, c
            prepared.execute(conn, publishing._insert_tokens_sql(n), params)  # noqa: SLF001
            assert sorted(conn.execute(select(document_token.c.param, document_token.c.system, document_token.c.code)
                                       .where(document_token.c.document_id == d)).all()) == sorted(tokens[:n])

        served = {"resourceType": "List", "status": "current"}
        sets = [{"dossier_key": w.dossier, "list_id": lid, "code": "submissionset", "status": "current",
                 "source_id": "src", "designation_type": None, "identifiers": [f"urn:uuid:{a}", "é"],
                 "date": NOW, "author_id": "x", "document_ids": [str(a), str(b)], "last_updated": NOW,
                 "resource": json.dumps(served)} for lid in (uuid.uuid4(), uuid.uuid4())]
        raw = {**sets[1], "identifiers": json.dumps(sets[1]["identifiers"], ensure_ascii=False),
               "document_ids": json.dumps(sets[1]["document_ids"])}
        back = written_alike(conn, submission_set, submission_sets._INSERT, submission_sets._INSERT_SQL,  # noqa: SLF001
                             sets, [{}, raw], ("list_id",))
        assert back[0]["identifiers"] == sets[0]["identifiers"]
        tx.rollback()


def test_a_dossiers_notification_links_are_read_alike(pg_world: World) -> None:
    w = pg_world
    email = f"prepared-{w.n}@example.org"
    add_account(w, email=email)
    with w.services.engine.begin() as conn:
        assert same_rows(conn, outbox._LINKS, outbox._LINKS_SQL, {"k": w.dossier})  # noqa: SLF001
        assert same_rows(conn, outbox._LINKS, outbox._LINKS_SQL, {"k": uuid.uuid4()}) == []  # noqa: SLF001
        # and the one account's row, for each status an account may have, and for no such account
        account_id = conn.execute(select(account.c.account_id).where(account.c.email == email)).scalar_one()
        live = 0
        for status in ("invited", "active", "disabled", "closed"):
            conn.execute(update(account).where(account.c.account_id == account_id).values(status=status))
            core = [tuple(r) for r in conn.execute(outbox._ACCOUNTS, {"ids": [account_id]})]  # noqa: SLF001
            raw = prepared.fetch_all(conn, outbox._ACCOUNT_SQL, {"id": account_id})  # noqa: SLF001
            assert [tuple(r) for r in raw] == core and (not raw or raw[0]._fields == (
                "account_id", "email", "phone", "lang")), status
            live += bool(core)
        assert live == 2
        assert prepared.fetch_all(conn, outbox._ACCOUNT_SQL, {"id": uuid.uuid4()}) == []  # noqa: SLF001


def test_a_visibility_clause_that_computes_with_the_time_is_not_prepared(db: Loaded,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Were the policy's clause to derive a value from the request's time (or the caller's id), the stand-ins would
    be baked into the cached text: such a clause is found out when it is compiled, and runs through Core."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the prepared statements are PostgreSQL's")
    where = Visibility.where

    def computing(self: Visibility, t: Any, now: dt.datetime) -> Any:
        return and_(where(self, t, now), t.c.date <= now - dt.timedelta(days=1))

    monkeypatch.setattr(Visibility, "where", computing)
    monkeypatch.setattr(reading, "_PAGES", {})
    vis = Visibility(nothing=False)
    q = reading.DocumentQuery(db.dossier_key, [], 1000, 0)
    with db.engine.begin() as conn:
        for now in (NOW, NOW - dt.timedelta(days=40)):  # the documents are 30 days old: all of them, then none
            assert reading.counted_page(conn, now, q, vis)[0] == reading.page(conn, now, q, vis)
        assert reading.counted_page(conn, NOW, q, vis)[0] and not reading.counted_page(
            conn, NOW - dt.timedelta(days=40), q, vis)[0]
    assert list(reading._PAGES.values()) == [None]  # noqa: SLF001 - found out, not prepared


def test_the_page_index_carries_every_column_the_visibility_clause_reads() -> None:
    """ix_document_page carries (INCLUDE) the columns the policy's clause reads, so that PostgreSQL counts a search's
    documents from the index alone (migration 0025): a policy that reads another column must add it there."""
    from sqlalchemy import Column
    from sqlalchemy.sql import visitors

    from carnet.db.tables import PAGE_INCLUDE

    index = next(i for i in document.indexes if i.name == "ix_document_page")
    assert [c.name for c in index.columns] == ["dossier_key", "date", "document_id"]
    assert index.dialect_options["postgresql"]["include"] == PAGE_INCLUDE
    read: set[str] = set()
    for vis in sorted(decided_visibilities() | set(hand_made_visibilities()), key=repr):
        for now in (NOW, NOW - dt.timedelta(days=400)):
            read |= {c.name for c in visitors.iterate(vis.where(document, now))
                     if isinstance(c, Column) and c.table is document}
    assert read <= set(PAGE_INCLUDE), read - set(PAGE_INCLUDE)
    assert read == set(PAGE_INCLUDE)  # and it carries nothing the clause does not read


def test_the_first_page_of_a_search_is_planned_once(db: Loaded) -> None:  # noqa: F811
    """The first page's statement has no OFFSET, so PostgreSQL keeps the generic plan of the prepared statement
    instead of planning it at every search (docs/PERFORMANCE.md, "Stage 4"); later pages keep the parameter."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the prepared statements are PostgreSQL's")
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    vis = Visibility(nothing=False)
    fresh = create_engine(db.engine.url, poolclass=NullPool)  # a session of its own: its prepared statements only
    with fresh.begin() as conn:
        for i in range(12):
            reading.counted_page(conn, NOW, reading.DocumentQuery(db.dossier_key, [], 1 + i % 3, 0), vis)
            reading.counted_page(conn, NOW, reading.DocumentQuery(db.dossier_key, [], 2, 1 + i % 2), vis)
        plans = {("OFFSET" in r.statement): (r.generic_plans, r.custom_plans) for r in conn.execute(text(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE "
            "'%AS total FROM document%'"))}
    fresh.dispose()
    assert set(plans) == {False, True}
    assert plans[False][0] >= 6, plans  # the first page: generic after the first executions
