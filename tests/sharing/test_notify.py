"""The patient is told when a link they shared is opened: once per link and day, with no health content, as their
notification choices say (group ``shares``)."""

from __future__ import annotations

from carnet.notify import outbox as notify_outbox
from tests.conftest import World
from tests.notify.conftest import TITLE, add_account, messages
from tests.sharing.helpers import make_link, open_link


def test_an_opening_is_notified_once_a_day_per_link(world: World) -> None:
    acc = add_account(world, email=f"share-{world.n}@example.org")
    first, second = make_link(world, label=TITLE[:40]), make_link(world)
    for _ in range(3):
        assert open_link(world.client, first.shlink).status_code == 200
    assert len(messages(world.services, world.dossier, event="share.opened", account_id=acc)) == 1
    assert open_link(world.client, second.shlink).status_code == 200
    sent = messages(world.services, world.dossier, event="share.opened", account_id=acc)
    assert len(sent) == 2
    assert all(TITLE[:40] not in repr(tuple(m)) for m in sent)  # the label stays out of the message


def test_a_person_may_turn_these_messages_off(world: World) -> None:
    nothing = {group: [] for group, _ in notify_outbox.EVENT_GROUPS}
    acc = add_account(world, email=f"quiet-{world.n}@example.org", notify=nothing)
    assert open_link(world.client, make_link(world).shlink).status_code == 200
    assert messages(world.services, world.dossier, event="share.opened", account_id=acc) == []
