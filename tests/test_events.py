"""Events: subscribers hear the events of their type, in order, inside the publisher's transaction."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import delete, insert, select

from carnet.access.actors import Actor, ActorKind
from carnet.context import Context, Services, run
from carnet.db.tables import creation_objection
from carnet.errors import FhirError, conflict
from carnet.events import Audited, DocumentReplaced, Subscribers

OPERATOR = Actor(ActorKind.OPERATOR, id="test-events")


def test_subscribers_hear_only_their_event_type_in_the_order_they_subscribed() -> None:
    heard: list[str] = []
    events: Subscribers[str] = Subscribers()
    events.subscribe(DocumentReplaced, lambda ctx, e: heard.append(f"first {ctx}"))
    events.subscribe(DocumentReplaced, lambda ctx, e: heard.append(f"second {ctx}"))
    events.subscribe(Audited, lambda ctx, e: heard.append("audited"))
    key = uuid.uuid4()
    events.publish("ctx", DocumentReplaced(key, uuid.uuid4(), uuid.uuid4()))
    assert heard == ["first ctx", "second ctx"]
    events.publish("ctx", object())  # nobody listens: nothing happens
    assert heard == ["first ctx", "second ctx"]


def _writing_subscriber(services: Services, ins: str) -> Services:
    """``services`` with one subscriber, which writes a row in the publisher's transaction."""
    wired = dataclasses.replace(services, events=Subscribers())

    def write(ctx: Context, _: DocumentReplaced) -> None:
        ctx.conn.execute(insert(creation_objection).values(ins=ins, recorded_at=ctx.now, recorded_by="test"))

    wired.events.subscribe(DocumentReplaced, write)
    return wired


def _row(services: Services, ins: str) -> object:
    with services.engine.begin() as conn:
        return conn.execute(select(creation_objection.c.ins).where(creation_objection.c.ins == ins)).first()


@pytest.mark.parametrize("fails", [False, True])
def test_what_a_subscriber_writes_commits_or_rolls_back_with_the_publisher(services: Services, fails: bool) -> None:
    ins = f"9{uuid.uuid4().int % 10**12:012d}"  # no real NIR starts with 9: it cannot clash with a test dossier
    wired = _writing_subscriber(services, ins)

    def work(ctx: Context) -> None:
        ctx.publish(DocumentReplaced(uuid.uuid4(), uuid.uuid4(), uuid.uuid4()))
        if fails:
            raise conflict("the publisher fails after the event")

    try:
        if fails:
            with pytest.raises(FhirError):
                run(wired, OPERATOR, work)
            assert _row(services, ins) is None
        else:
            run(wired, OPERATOR, work)
            assert _row(services, ins) is not None
    finally:
        with services.engine.begin() as conn:
            conn.execute(delete(creation_objection).where(creation_objection.c.ins == ins))
