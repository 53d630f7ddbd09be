"""Delivery by the worker over a real SMTP exchange (an in-process aiosmtpd server): sent once, retried with
back-off, failed, never sent twice after an interruption; the operator's commands."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from carnet.cli import app as cli
from carnet.context import Services
from carnet.db.tables import audit, outbox
from carnet.ids import SYSTEM_CHAINS
from carnet.notify import worker
from carnet.notify.channels import channels_for
from tests.conftest import SmtpInbox, World
from tests.notify.conftest import TITLE, TYPE_DISPLAY, add_account, at, messages, pro, publish, smtp_channels


def one(services: Services, world: World, account_id: uuid.UUID, event: str = "document.new") -> Any:
    rows = messages(services, world.dossier, event=event, account_id=account_id)
    assert len(rows) == 1
    return rows[0]


def utc(ts: dt.datetime) -> dt.datetime:
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts


def test_a_new_document_notice_is_delivered_over_smtp_once(world: World, smtp_server: SmtpInbox) -> None:
    address = f"deliver-{world.n}@example.org"
    acc = add_account(world, email=address)
    publish(world.services, world)
    msg = one(world.services, world, acc)
    channels = smtp_channels(world.services, smtp_server)
    worker.run_once(world.services, channels)
    worker.run_once(world.services, channels)
    received = smtp_server.to(address)
    assert len(received) == 1
    assert received[0]["Subject"] == "Carnet : nouveau document"
    assert received[0]["Message-ID"] == f"<{msg.message_id}@carnet.invalid>"
    assert f"{world.services.settings.base_url}/portal/" in received[0].get_content()
    row = one(world.services, world, acc)
    assert (row.status, row.attempts, row.last_error, row.params) == ("sent", 1, None, {})
    assert row.sent_at is not None


def test_no_message_carries_health_content_or_names(world: World, smtp_server: SmtpInbox) -> None:
    from carnet.access.actors import Mode
    from carnet.context import run
    from carnet.db.tables import dossier, practitioner
    from carnet.dossier import service as dossiers

    address = f"content-{world.n}@example.org"
    acc = add_account(world, email=address, lang="en")
    publish(world.services, world, pro(world, "doctor"))
    run(world.services, pro(world, "stranger", Mode.EMERGENCY), lambda ctx: dossiers.read(ctx, world.dossier))
    run(world.services, pro(world, "regulator", Mode.REGULATION), lambda ctx: dossiers.read(ctx, world.dossier))
    events = {r.event for r in messages(world.services, world.dossier, account_id=acc)}
    assert events == {"document.new", "access.first", "access.emergency", "access.regulation"}
    worker.run_once(world.services, smtp_channels(world.services, smtp_server))
    with world.services.engine.connect() as conn:
        person = conn.execute(select(dossier.c.family, dossier.c.given).where(
            dossier.c.dossier_key == world.dossier)).one()
        doctors = conn.execute(select(practitioner.c.family, practitioner.c.specialty).where(
            practitioner.c.national_id.in_([world.pros["doctor"], world.pros["stranger"],
                                            world.pros["regulator"]]))).all()
    forbidden = [TITLE, TYPE_DISPLAY, "Synthèse", person.family, person.given, world.ins,
                 *[d.family for d in doctors], *[d.specialty for d in doctors if d.specialty]]
    received = smtp_server.to(address)
    assert len(received) == 4
    for m in received:
        text = f"{m['Subject']}\n{m.get_content()}"
        assert "Hello," in text  # a greeting without a name
        for word in forbidden:
            assert word not in text, word


@pytest.mark.parametrize("smtp_server", [{"fail_first": 1}], indirect=True)
def test_a_temporary_failure_is_retried_later_and_delivered_once(world: World, smtp_server: SmtpInbox) -> None:
    address = f"retry-{world.n}@example.org"
    acc = add_account(world, email=address)
    t0 = dt.datetime.now(dt.UTC)
    publish(at(world.services, t0), world)
    channels = smtp_channels(world.services, smtp_server)
    worker.run_once(at(world.services, t0), channels)
    row = one(world.services, world, acc)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("smtp 451") and address not in row.last_error
    assert utc(row.next_attempt_at) == t0 + worker.BACKOFF[0]
    worker.run_once(at(world.services, t0 + dt.timedelta(seconds=30)), channels)  # not due yet
    assert smtp_server.to(address) == [] and one(world.services, world, acc).attempts == 1
    worker.run_once(at(world.services, t0 + worker.BACKOFF[0]), channels)
    worker.run_once(at(world.services, t0 + dt.timedelta(hours=1)), channels)
    assert len(smtp_server.to(address)) == 1
    row = one(world.services, world, acc)
    assert (row.status, row.attempts) == ("sent", 2)


@pytest.mark.parametrize("smtp_server", [{"fail_first": 99}], indirect=True)
def test_the_worker_gives_up_after_the_last_back_off(world: World, smtp_server: SmtpInbox) -> None:
    acc = add_account(world, email=f"giveup-{world.n}@example.org")
    t = dt.datetime.now(dt.UTC)
    publish(at(world.services, t), world)
    channels = smtp_channels(world.services, smtp_server)
    for delay in (dt.timedelta(0), *worker.BACKOFF):
        t += delay
        worker.run_once(at(world.services, t), channels)
    row = one(world.services, world, acc)
    assert (row.status, row.attempts) == ("failed", len(worker.BACKOFF) + 1)
    assert row.last_error.startswith("gave up")


@pytest.mark.parametrize("smtp_server", [{"refuse": True}], indirect=True)
def test_a_permanent_refusal_fails_the_message_without_retry(world: World, smtp_server: SmtpInbox) -> None:
    address = f"refused-{world.n}@example.org"
    acc = add_account(world, email=address)
    publish(world.services, world)
    worker.run_once(world.services, smtp_channels(world.services, smtp_server))
    row = one(world.services, world, acc)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error.startswith("smtp 550") and address not in row.last_error


def test_an_unreachable_smtp_server_is_a_temporary_failure(world: World) -> None:
    import socket

    acc = add_account(world, email=f"down-{world.n}@example.org")
    publish(world.services, world)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    settings = dataclasses.replace(world.services.settings, smtp_host="127.0.0.1", smtp_port=port)
    worker.run_once(world.services, channels_for(settings))
    row = one(world.services, world, acc)
    assert row.status == "pending" and row.last_error.startswith("connection error")


def test_a_message_interrupted_while_sending_becomes_uncertain_and_is_never_resent(
        world: World, smtp_server: SmtpInbox) -> None:
    address = f"stuck-{world.n}@example.org"
    acc = add_account(world, email=address)
    t0 = dt.datetime.now(dt.UTC)
    publish(at(world.services, t0), world)
    claimed = worker.claim(at(world.services, t0), limit=10_000)  # the worker claims, then "dies" before sending
    assert one(world.services, world, acc).message_id in {c.message_id for c in claimed}
    channels = smtp_channels(world.services, smtp_server)
    worker.run_once(at(world.services, t0 + worker.LEASE - dt.timedelta(seconds=1)), channels)
    assert one(world.services, world, acc).status == "sending"
    worker.run_once(at(world.services, t0 + worker.LEASE), channels)
    worker.run_once(at(world.services, t0 + dt.timedelta(days=2)), channels)
    row = one(world.services, world, acc)
    assert (row.status, row.last_error) == ("uncertain", worker.UNCERTAIN_ERROR)
    assert smtp_server.to(address) == []


def test_a_periodic_job_that_raises_stops_neither_the_next_job_nor_delivery(world: World, smtp_server: SmtpInbox,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from carnet.logs import configure

    configure(json_lines=True)  # as a server logs (the app does the same): JSON lines through the allow-list
    address = f"jobs-{world.n}@example.org"
    acc = add_account(world, email=address)
    publish(world.services, world)
    ran: list[str] = []

    def broken_job(_: Services) -> None:
        raise RuntimeError(f"could not read {TITLE}")  # a message that carries data: never logged

    def next_job(_: Services) -> None:
        ran.append("next_job")

    services = dataclasses.replace(world.services, periodic_jobs=[broken_job, next_job])
    capsys.readouterr()
    report = worker.run_once(services, smtp_channels(world.services, smtp_server))
    assert ran == ["next_job"]
    assert report.jobs_failed == ["broken_job"]
    assert one(world.services, world, acc).status == "sent" and len(smtp_server.to(address)) == 1
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if "worker.job.error" in line]
    assert [(x["status"], x["error_type"], x["level"]) for x in lines] == [("job=broken_job", "RuntimeError", "error")]
    assert TITLE not in err


def test_a_failing_announcement_job_is_reported_and_delivery_still_runs(world: World, smtp_server: SmtpInbox,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"announce-{world.n}@example.org"
    acc = add_account(world, email=address)
    publish(world.services, world)

    def broken(*_: Any) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(worker, "announce_due", broken)
    report = worker.run_once(dataclasses.replace(world.services, periodic_jobs=[]),
                             smtp_channels(world.services, smtp_server))
    assert report.jobs_failed == ["announce"] and report.announced == 0
    assert one(world.services, world, acc).status == "sent"


def test_two_workers_never_claim_the_same_message(world: World) -> None:
    accounts = [add_account(world, email=f"race{i}-{world.n}@example.org") for i in range(5)]
    publish(world.services, world)
    mine = {r.message_id for a in accounts for r in messages(world.services, world.dossier, account_id=a)}
    claims: list[list[worker.Claimed]] = [[], [], []]
    start = threading.Barrier(len(claims))

    def take(i: int) -> None:
        start.wait()
        claims[i] = worker.claim(world.services, limit=10_000)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    taken = [c.message_id for batch in claims for c in batch if c.message_id in mine]
    assert sorted(taken) == sorted(mine)  # every one claimed, none twice
    with world.services.engine.begin() as conn:  # leave them deliverable for other tests' workers
        conn.execute(update(outbox).where(outbox.c.message_id.in_(mine)).values(status="sent"))


def test_without_an_smtp_host_mail_and_sms_are_written_to_var(world: World) -> None:
    acc = add_account(world, email=f"files-{world.n}@example.org", phone="+33614141414",
                      notify={"documents": ["email", "sms"]})
    publish(world.services, world)
    worker.run_once(world.services)
    var = world.services.settings.var_dir
    by_channel = {r.channel: r for r in messages(world.services, world.dossier, account_id=acc)}
    eml = (var / "mail" / f"{by_channel['email'].message_id}.eml").read_text()
    assert f"files-{world.n}@example.org" in eml and "Message-ID:" in eml
    sms = (var / "sms" / f"{by_channel['sms'].message_id}.txt").read_text()
    assert sms.startswith("To: +33614141414") and "/portal/" in sms
    assert not [p for p in (var / "mail").iterdir() if p.name.startswith(".tmp")]
    assert {r.status for r in by_channel.values()} == {"sent"}


def test_an_activation_letter_is_written_for_the_post(world: World) -> None:
    from carnet.access.actors import Actor, ActorKind
    from carnet.context import run
    from carnet.notify.outbox import enqueue_direct

    params = {"code": "ABCD-1234", "login": "R123456789"}
    mid = run(world.services, Actor(ActorKind.OPERATOR, id="test"), lambda ctx: enqueue_direct(
        ctx, world.dossier, "post", "12 rue des Tests\n75001 Paris", "activation", params, "fr"))
    worker.run_once(world.services)
    letter = (world.services.settings.var_dir / "post" / f"{mid}.txt").read_text()
    assert "ABCD-1234" in letter and "R123456789" in letter and "75001 Paris" in letter
    with world.services.engine.connect() as conn:
        row = conn.execute(select(outbox).where(outbox.c.message_id == mid)).one()
    assert row.status == "sent" and row.params == {}  # the code is not kept once the letter has left


def test_the_worker_thread_delivers_and_stops(world: World) -> None:
    acc = add_account(world, email=f"thread-{world.n}@example.org")
    thread, stop = worker.start_in_thread(world.services, interval=0.05)
    try:
        publish(world.services, world)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and one(world.services, world, acc).status != "sent":
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert one(world.services, world, acc).status == "sent"


# --- the operator's commands ------------------------------------------------------------------------------------

@pytest.fixture
def cli_env(world: World, database_url: str, monkeypatch: pytest.MonkeyPatch, session_key_file: Path) -> Path:
    monkeypatch.setenv("CARNET_VAR_DIR", str(world.services.settings.var_dir))
    monkeypatch.setenv("CARNET_DATABASE_URL", database_url)
    monkeypatch.setenv("CARNET_BASE_URL", world.services.settings.base_url)
    monkeypatch.delenv("CARNET_SMTP_HOST", raising=False)
    return world.services.settings.var_dir


@pytest.mark.parametrize("smtp_server", [{"refuse": True}], indirect=True)
def test_the_operator_lists_failures_and_retries_one_which_is_traced(world: World, smtp_server: SmtpInbox,
                                                                     cli_env: Path) -> None:
    address = f"operator-{world.n}@example.org"
    acc = add_account(world, email=address)
    publish(world.services, world)
    worker.run_once(world.services, smtp_channels(world.services, smtp_server))
    row = one(world.services, world, acc)
    assert row.status == "failed"
    runner = CliRunner()
    listed = runner.invoke(cli, ["outbox", "list", "--status", "failed", "--limit", "100000"])
    assert listed.exit_code == 0, listed.output
    assert str(row.message_id) in listed.output and address not in listed.output
    retried = runner.invoke(cli, ["outbox", "retry", str(row.message_id)])
    assert retried.exit_code == 0, retried.output
    assert (one(world.services, world, acc).status, one(world.services, world, acc).attempts) == ("pending", 0)
    with world.services.engine.connect() as conn:
        traced = conn.execute(select(audit.c.event).where(audit.c.dossier_key.in_(SYSTEM_CHAINS),
                                                          audit.c.entity_id == str(row.message_id))).scalars().all()
    assert traced == ["outbox.retry"]
    assert runner.invoke(cli, ["outbox", "retry", str(row.message_id)]).exit_code == 1  # pending: nothing to do
    assert runner.invoke(cli, ["worker", "--once"]).exit_code == 0  # no SMTP host: written to var/mail
    assert one(world.services, world, acc).status == "sent"
    assert (cli_env / "mail" / f"{row.message_id}.eml").exists()


def test_an_uncertain_message_is_sent_again_only_when_the_operator_says_so(world: World, smtp_server: SmtpInbox,
                                                                         cli_env: Path) -> None:
    address = f"resend-{world.n}@example.org"
    acc = add_account(world, email=address)
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    publish(at(world.services, t0), world)
    worker.claim(at(world.services, t0), limit=10_000)
    channels = smtp_channels(world.services, smtp_server)
    worker.run_once(world.services, channels)
    assert one(world.services, world, acc).status == "uncertain" and smtp_server.to(address) == []
    result = CliRunner().invoke(cli, ["outbox", "retry", str(one(world.services, world, acc).message_id)])
    assert result.exit_code == 0, result.output
    worker.run_once(world.services, channels)
    assert len(smtp_server.to(address)) == 1
    assert one(world.services, world, acc).status == "sent"
