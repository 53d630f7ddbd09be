"""SMART Health Links end to end through the public endpoints: what is shared, expiry, reuse, passcode, rate limit,
revocation, and who may share (issue 13 §4)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from carnet import sharing
from carnet.access.actors import Actor, ActorKind
from carnet.app import create_app
from carnet.clinical.service import create as create_item
from carnet.context import run
from carnet.db.tables import audit, shared_link, shared_link_lookup
from carnet.documents import service as documents
from carnet.errors import FhirError
from tests.clinical import samples
from tests.conftest import World
from tests.sharing.decoder import parse_shlink
from tests.sharing.helpers import decrypted_files, make_link, manifest_path, open_link, patient
from tests.tasks.helpers import audit_events, publish


@pytest.fixture
def w(world: World) -> World:
    gp = Actor(ActorKind.PROFESSIONAL, id=world.pros["gp"], profession="10")
    run(world.services, gp, lambda ctx: create_item(ctx, world.dossier, samples.allergy(world.dossier)))
    return world


def _expire(w: World, view: sharing.LinkView, **values: Any) -> None:
    with w.services.engine.begin() as conn:
        conn.execute(update(shared_link).where(shared_link.c.dossier_key == w.dossier,
                                               shared_link.c.link_id == view.link_id).values(**values))


def test_a_link_opens_to_the_live_emergency_summary_which_the_independent_decoder_reads(w: World) -> None:
    view = make_link(w)
    data = parse_shlink(view.shlink)
    assert view.shlink.startswith(f"{w.services.settings.base_url}/shl/view#shlink:/")
    assert data["url"] == f"{w.services.settings.base_url}/shl/{data['url'].rsplit('/', 1)[1]}"
    assert len(data["url"].rsplit("/", 1)[1]) == 43 and "P" not in data.get("flag", "")
    r = open_link(w.client, view.shlink)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    [bundle] = decrypted_files(w.client, view.shlink, r.json())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "document"
    texts = [e["resource"].get("code", {}).get("text") for e in bundle["entry"]]
    assert "Penicillin" in texts
    events = audit_events(w)
    assert "share.create" in events and "share.open" in events and "summary.read" in events
    with w.services.engine.connect() as conn:
        who = conn.execute(select(audit.c.actor_kind, audit.c.actor_name).where(
            audit.c.dossier_key == w.dossier, audit.c.event == "share.open")).one()
    assert tuple(who) == ("link_recipient", "Dr Ana Ruiz, Hospital del Mar")


def test_the_key_and_the_public_id_are_not_stored_in_clear(w: World) -> None:
    view = make_link(w)
    data = parse_shlink(view.shlink)
    public_id = data["url"].rsplit("/", 1)[1]
    with w.services.engine.connect() as conn:
        row = conn.execute(select(shared_link).where(shared_link.c.link_id == view.link_id)).one()
        lookups = conn.execute(select(shared_link_lookup.c.id_hash).where(
            shared_link_lookup.c.link_id == view.link_id)).scalars().all()
    stored = repr(tuple(row)) + repr(lookups)
    assert public_id not in stored and data["key"] not in stored


def test_chosen_documents_travel_inline_and_a_document_hidden_later_drops_out(w: World) -> None:
    shown, hidden = publish(w), publish(w)
    view = make_link(w, summary=False, documents=(shown, hidden))
    files = decrypted_files(w.client, view.shlink, open_link(w.client, view.shlink).json())
    assert sorted(f["id"] for f in files) == sorted([shown, hidden])
    assert files[0]["content"][0]["attachment"]["data"] and "url" not in files[0]["content"][0]["attachment"]
    run(w.services, patient(w), lambda ctx: documents.set_masked(ctx, hidden, True))  # the patient hides it
    files = decrypted_files(w.client, view.shlink, open_link(w.client, view.shlink).json())
    assert [f["id"] for f in files] == [shown]


def test_a_document_hidden_from_professionals_cannot_be_chosen(w: World) -> None:
    hidden = publish(w, labels=["MASQUE_PS"])
    with pytest.raises(FhirError) as err:
        make_link(w, documents=(hidden,))
    assert err.value.status == 422


def test_an_expired_link_answers_404(w: World) -> None:
    view = make_link(w)
    assert open_link(w.client, view.shlink).status_code == 200
    _expire(w, view, expires_at=w.services.clock() - dt.timedelta(seconds=1))
    r = open_link(w.client, view.shlink)
    assert r.status_code == 404
    assert "share.open" in audit_events(w, entity_id=None, outcome="4")


def test_a_link_for_one_opening_opens_once(w: World) -> None:
    view = make_link(w, max_opens=1)
    assert open_link(w.client, view.shlink).status_code == 200
    assert open_link(w.client, view.shlink).status_code == 404
    [listed] = run(w.services, patient(w), lambda ctx: sharing.links(ctx, w.dossier))
    assert (listed.opens, listed.state) == (1, "used-up")


def test_a_passcode_is_required_counted_and_kills_the_link_after_the_limit(w: World) -> None:
    view = make_link(w, passcode="4711-blue")
    assert parse_shlink(view.shlink)["flag"] == "P"
    limit = w.services.settings.shl_passcode_attempts
    r = open_link(w.client, view.shlink)  # no passcode: asked for, not counted
    assert (r.status_code, r.json()) == (401, {"remainingAttempts": limit})
    r = open_link(w.client, view.shlink, passcode="guess")
    assert (r.status_code, r.json()) == (401, {"remainingAttempts": limit - 1})
    assert open_link(w.client, view.shlink, passcode="4711-blue").status_code == 200
    for n in range(2, limit + 1):
        r = open_link(w.client, view.shlink, passcode="guess")
        assert (r.status_code, r.json()["remainingAttempts"]) == (401, limit - n)
    assert open_link(w.client, view.shlink, passcode="4711-blue").status_code == 404
    [listed] = run(w.services, patient(w), lambda ctx: sharing.links(ctx, w.dossier))
    assert (listed.state, listed.opens) == ("locked", 1)  # wrong passcodes do not count as openings
    assert audit_events(w).count("share.passcode") == limit


def test_a_revoked_link_dies_at_once_its_files_too(w: World) -> None:
    view = make_link(w)
    r = open_link(w.client, view.shlink, embeddedLengthMax=0)
    location = r.json()["files"][0]["location"]
    assert "embedded" not in r.json()["files"][0]
    assert decrypted_files(w.client, view.shlink, r.json())[0]["resourceType"] == "Bundle"
    run(w.services, patient(w), lambda ctx: sharing.revoke(ctx, w.dossier, view.link_id))
    assert open_link(w.client, view.shlink).status_code == 404
    assert w.client.get(location[location.index("/shl/"):]).status_code == 404
    assert "share.revoke" in audit_events(w)


def test_a_file_location_needs_its_ticket(w: World) -> None:
    view = make_link(w)
    location = open_link(w.client, view.shlink, embeddedLengthMax=10).json()["files"][0]["location"]
    path = manifest_path(view.shlink)
    assert w.client.get(f"{path}/file/0?ticket=0.AAAA").status_code == 404
    good = location[location.index("/shl/"):]
    assert w.client.get(good).status_code == 200
    assert w.client.get(good.replace("/file/0", "/file/1")).status_code == 404


def test_an_unknown_link_and_a_request_without_recipient_are_refused(w: World) -> None:
    view = make_link(w)
    assert w.client.post("/shl/" + "A" * 43, json={"recipient": "x"}).status_code == 404
    assert w.client.post(manifest_path(view.shlink), json={}).status_code == 400
    assert w.client.post(manifest_path(view.shlink), content=b"not json").status_code == 400


def test_a_closed_dossier_closes_its_links(w: World) -> None:
    from carnet.dossier import service as dossiers

    view = make_link(w)
    run(w.services, patient(w), lambda ctx: dossiers.close(ctx, w.dossier, reason="patient"))
    assert open_link(w.client, view.shlink).status_code == 404


def test_only_the_patient_side_may_share(w: World) -> None:
    gp = Actor(ActorKind.PROFESSIONAL, id=w.pros["gp"], profession="10")
    spec = sharing.LinkSpec(label="x")
    with pytest.raises(FhirError) as err:
        run(w.services, gp, lambda ctx: sharing.create(ctx, w.dossier, spec))
    assert err.value.status == 403
    assert "share.create" in audit_events(w, outcome="4")


def test_the_manifest_endpoint_is_rate_limited_per_address(services: Any, world: World) -> None:
    settings = dataclasses.replace(services.settings, shl_requests_per_minute=3)
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"  # a count of its own in the table every node shares
    with TestClient(create_app(dataclasses.replace(services, settings=settings)), client=(address, 50000)) as c:
        view = make_link(world)
        codes = [open_link(c, view.shlink).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        last = open_link(c, view.shlink)
        assert last.status_code == 429 and int(last.headers["retry-after"]) >= 1
    [listed] = run(world.services, patient(world), lambda ctx: sharing.links(ctx, world.dossier))
    assert listed.opens == 3  # a refused request counts no opening


def test_parallel_wrong_passcodes_are_counted_one_by_one(w: World, database_url: str) -> None:
    """The specification: a total lifetime count "even in the face of attacks that attempt multiple Passcodes in
    separate, parallel HTTP requests". The link row is locked per request (PostgreSQL's row lock)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers itself: the row lock is PostgreSQL's")
    from concurrent.futures import ThreadPoolExecutor

    view = make_link(w, passcode="right-one")
    limit = w.services.settings.shl_passcode_attempts
    with ThreadPoolExecutor(max_workers=limit + 3) as pool:
        answers = list(pool.map(lambda _: open_link(w.client, view.shlink, passcode="guess"), range(limit + 3)))
    remaining = sorted(a.json()["remainingAttempts"] for a in answers if a.status_code == 401)
    assert remaining == list(range(limit))  # each wrong passcode counted once: 4, 3, 2, 1, 0
    assert sorted(a.status_code for a in answers) == [401] * limit + [404] * 3
    assert open_link(w.client, view.shlink, passcode="right-one").status_code == 404


def test_any_origin_may_ask_and_the_viewer_keeps_a_strict_policy(w: World) -> None:
    view = make_link(w)
    pre = w.client.options(manifest_path(view.shlink), headers={
        "Origin": "https://viewer.elsewhere.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"
    assert "content-type" in pre.headers["access-control-allow-headers"]
    page = w.client.get("/shl/view")
    assert page.status_code == 200 and "<script src=\"/shl/static/viewer.js\"" in page.text
    assert "<style" not in page.text and " style=" not in page.text and "<script>" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert w.client.get("/shl/static/viewer.js").status_code == 200


