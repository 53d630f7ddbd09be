"""The signalling socket (:mod:`carnet.portal.signalling`), through Starlette's test client: bound to the signed-in
session of each side and to the visit; nobody else gets in; messages pass from one side to the other through the
database relay; the professional's end closes both."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from carnet.accounts import sessions
from carnet.auth import pro_sessions
from tests.conftest import BASE, World
from tests.teleconsult.helpers import activate, book_now, patient_cookie, pro_cookie, publish

ORIGIN = {"origin": BASE}


def patient_socket(client: TestClient, cid: uuid.UUID, token: str, headers: dict[str, str] | None = None) -> Any:
    return client.websocket_connect(f"/portal/teleconsultations/{cid}/ws",
                                    headers={**ORIGIN, **(headers or {}), "cookie": f"{sessions.COOKIE}={token}"})


def pro_socket(client: TestClient, world: World, cid: uuid.UUID, token: str) -> Any:
    return client.websocket_connect(f"/pro/dossier/{world.dossier}/teleconsult/{cid}/ws",
                                    headers={**ORIGIN, "cookie": f"{pro_sessions.COOKIE}={token}"})


def next_of(ws: Any, kind: str, limit: int = 20) -> dict[str, Any]:
    for _ in range(limit):
        m = ws.receive_json()
        if m["type"] == kind:
            return dict(m)
    raise AssertionError(f"no {kind}")


@pytest.fixture
def visit(world: World) -> tuple[uuid.UUID, str, str]:
    cid = book_now(world)
    return cid, pro_cookie(world.services, world.pros["gp"]), patient_cookie(world, activate(world))


def test_the_two_sides_negotiate_through_the_relay_and_the_end_closes_both(
        client: TestClient, world: World, visit: tuple[uuid.UUID, str, str]) -> None:
    cid, pro_token, patient_token = visit
    doc = publish(world, "Compte rendu", "texte")
    with pro_socket(client, world, cid, pro_token) as gp, patient_socket(client, cid, patient_token) as me:
        assert gp.receive_json()["type"] == "joined"
        joined = me.receive_json()
        assert joined["type"] == "joined" and joined["peer"] is True and joined["ice"] == []
        next_of(gp, "peer-joined")
        gp.send_json({"type": "offer", "sdp": "v=0 offer"})
        assert next_of(me, "offer")["sdp"] == "v=0 offer"
        me.send_json({"type": "answer", "sdp": "v=0 answer"})
        assert next_of(gp, "answer")["sdp"] == "v=0 answer"
        gp.send_json({"type": "show", "document": doc})
        shown = next_of(me, "shown")["shown"]
        assert shown["document"] == doc and shown["by"] == "clinician" and "texte" not in str(shown)
        gp.send_json({"type": "end"})
        assert next_of(me, "ended")
        with pytest.raises(WebSocketDisconnect) as closed:
            me.receive_json()
        assert closed.value.code == 4409


@pytest.mark.parametrize("who", ["other professional", "nobody", "other patient"])
def test_nobody_else_can_join(client: TestClient, world: World, visit: tuple[uuid.UUID, str, str],
                              who: str) -> None:
    cid, _, _ = visit
    with pytest.raises(WebSocketDisconnect) as refused:
        if who == "other professional":  # authorized on the dossier, but not this visit's professional
            with pro_socket(client, world, cid, pro_cookie(world.services, world.pros["doctor"])) as ws:
                ws.receive_json()
        elif who == "nobody":
            with client.websocket_connect(f"/portal/teleconsultations/{cid}/ws", headers=ORIGIN) as ws:
                ws.receive_json()
        else:  # signed in to their own dossier: this visit is not theirs
            other = World(world.services, world.client)
            with patient_socket(client, cid, patient_cookie(other, activate(other))) as ws:
                ws.receive_json()
    assert refused.value.code in (4403, 4404)


def test_a_page_of_another_site_cannot_open_the_socket(client: TestClient, visit: tuple[uuid.UUID, str, str]
                                                       ) -> None:
    cid, _, patient_token = visit
    with pytest.raises(WebSocketDisconnect) as refused:
        with patient_socket(client, cid, patient_token, {"origin": "https://evil.example"}) as ws:
            ws.receive_json()
    assert refused.value.code == 4403


def test_a_second_tab_replaces_the_first_and_a_dropped_side_can_join_again(
        client: TestClient, world: World, visit: tuple[uuid.UUID, str, str]) -> None:
    cid, pro_token, patient_token = visit
    with pro_socket(client, world, cid, pro_token) as gp:
        gp.receive_json()
        with patient_socket(client, cid, patient_token) as first:
            first.receive_json()
            with patient_socket(client, cid, patient_token) as second:
                assert second.receive_json()["type"] == "joined"
                assert next_of(first, "replaced")
                with pytest.raises(WebSocketDisconnect) as closed:
                    first.receive_json()
                assert closed.value.code == 4001
                second.send_json({"type": "answer", "sdp": "v=0 from the second tab"})
                assert next_of(gp, "answer")["sdp"] == "v=0 from the second tab"
        assert next_of(gp, "peer-left")
        with patient_socket(client, cid, patient_token) as again:  # a dropped connection rejoins
            assert again.receive_json()["type"] == "joined"
            assert next_of(gp, "peer-joined")


def test_the_two_sides_on_two_nodes_still_reach_each_other(
        client: TestClient, world: World, visit: tuple[uuid.UUID, str, str]) -> None:
    """Two Carnet nodes (two applications, each with its own services and connection pool) over one database: the
    professional on one, the patient on the other. Nothing is relayed in a process."""
    from carnet.app import create_app
    from carnet.compose import build_services
    from carnet.db.engine import make_engine

    cid, pro_token, patient_token = visit
    settings = world.services.settings
    other = build_services(settings, make_engine(settings.effective_database_url, pool_size=2))
    try:
        with TestClient(create_app(other), base_url=BASE) as node_b:
            with pro_socket(client, world, cid, pro_token) as gp, patient_socket(node_b, cid, patient_token) as me:
                gp.receive_json()
                me.receive_json()
                gp.send_json({"type": "offer", "sdp": "v=0 from node A"})
                assert next_of(me, "offer")["sdp"] == "v=0 from node A"
                me.send_json({"type": "ice", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
                                                           "sdpMid": "0", "sdpMLineIndex": 0}})
                assert next_of(gp, "ice")["candidate"]["sdpMid"] == "0"
    finally:
        other.engine.dispose()


def test_on_postgresql_a_message_wakes_the_other_sides_socket(world: World) -> None:
    """The relay's NOTIFY wakes the sockets waiting on that visit in this process (the table stays the truth; polling
    remains for SQLite and for a lost notification)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from carnet import teleconsult
    from carnet.context import run
    from tests.teleconsult.helpers import pro

    waker = teleconsult.wakeups(world.services.engine)
    if waker is None:
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    cid = book_now(world)
    joined = run(world.services, pro(world, "gp"), lambda ctx: teleconsult.join(ctx, world.dossier, cid, "clinician"))

    async def wait_for_wake() -> bool:
        woken = asyncio.Event()
        waker.register(str(cid), woken)
        try:
            for _ in range(5):  # the listener thread starts with the first call: a message sent before it listens
                await asyncio.to_thread(teleconsult.relay, world.services, world.dossier, cid, "clinician",
                                        joined.conn, {"type": "offer", "sdp": "v=0"})
                try:
                    await asyncio.wait_for(woken.wait(), 2)
                    return True
                except TimeoutError:
                    continue
            return False
        finally:
            waker.unregister(str(cid), woken)

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (Playwright's sync API may hold this thread's)
        assert pool.submit(asyncio.run, wait_for_wake()).result()
