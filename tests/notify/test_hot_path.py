"""The hot path's shortcuts (issue 11) keep what they replace: the access marker recorded by the audit append says
once that it is new and leaves the chain whole; a publish tells the notification rule its document's visibility
(no read-back) and enters its submission set's locator with its own."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, func, select

from carnet.audit import log
from carnet.context import Context, run
from carnet.db.tables import professional_seen, resource_locator
from carnet.documents import service as documents
from carnet.documents.submission_sets import implicit_submission_set
from carnet.ids import new_id
from tests.conftest import World
from tests.notify.conftest import PDF, add_account, docref, messages, pro


def test_the_marker_goes_in_with_the_audit_record_once_and_the_chain_stays_whole(world: World) -> None:
    mark = f"test:{uuid.uuid4().hex[:12]}"

    def twice(ctx: Context) -> list[bool]:
        return [log.record_marked(ctx.conn, dossier_key=world.dossier, actor=ctx.actor, action="R",
                                  event="document.read", now=ctx.now, mark=mark) for _ in range(2)]

    assert run(world.services, pro(world), twice) == [True, False]
    assert run(world.services, pro(world), twice) == [False, False]
    with world.services.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(professional_seen).where(
            professional_seen.c.dossier_key == world.dossier, professional_seen.c.subject_id == mark)).scalar() == 1
        assert log.verify_chain(conn, world.dossier) == []


def test_a_publish_does_not_read_its_document_back_and_locates_its_submission_set_with_it(world: World) -> None:
    acc = add_account(world, email=f"hot-{world.n}@example.org")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    list_id = new_id()

    def work(ctx: Context) -> documents.Published:
        event.listen(ctx.conn, "before_cursor_execute", count)
        try:
            pub = documents.publish(ctx, world.dossier, docref(), documents.Content(PDF, "application/pdf"),
                                    "ITI-105", submission_set_id=list_id, locate=(list_id,))
            implicit_submission_set(ctx, world.dossier, pub.document_id, list_id, located=True)
            return pub
        finally:
            event.remove(ctx.conn, "before_cursor_execute", count)

    pub = run(world.services, pro(world), work)
    assert not [s for s in statements if s.lstrip().upper().startswith("SELECT") and "invisible_patient" in s]
    assert len([s for s in statements if "INSERT INTO resource_locator" in s]) == 1
    assert len(messages(world.services, world.dossier, event="document.new", account_id=acc)) == 1  # still told
    with world.services.engine.connect() as conn:
        located = dict(conn.execute(select(resource_locator.c.resource_id, resource_locator.c.dossier_key).where(
            resource_locator.c.resource_id.in_([pub.document_id, list_id]))).all())
    assert located == {pub.document_id: world.dossier, list_id: world.dossier}
