"""``carnet worker``: delivers the outbox, runs the periodic jobs (:func:`run_jobs`), and the blob garbage collector
every ``CARNET_BLOB_GC_INTERVAL_HOURS`` (:func:`collect_blobs`; 0 turns it off).

Each periodic job runs on its own: one that raises is logged (``worker.job.error``: its name and the exception's type,
never its message, which could carry data), named in the pass's :class:`Report` (``jobs_failed``), and the other
jobs and the delivery still run; the next pass runs it again.

Delivery is at most once: a message is claimed (``pending`` → ``sending``, with a lease) and that claim is committed
*before* the message is handed to its channel; the outcome is recorded afterwards (``sent``; back to ``pending`` with
back-off on a transient failure; ``failed`` on a permanent one or after the last retry). A message found still
``sending`` once its lease has passed was perhaps delivered, perhaps not (the worker stopped in between): it becomes
``uncertain`` and is never resent automatically; the operator sees it in ``carnet outbox list`` and may resend it
with ``carnet outbox retry``. Several workers may run: each reads the due messages without locking them, then claims
each one by its key ``(dossier_key, message_id)``: on PostgreSQL a ``FOR UPDATE SKIP LOCKED`` of that one row (a
message another worker is claiming is skipped, never waited for), and always a compare-and-set on the row's status.
Every locking statement names its dossier key, so on Citus each goes to one shard (a ``FOR UPDATE`` across shards is
refused there).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy import Connection, and_, bindparam, select, update

from carnet.access.actors import Actor, ActorKind
from carnet.audit.log import utc
from carnet.context import Services, run
from carnet.db.tables import outbox
from carnet.notify.channels import Channels, PermanentFailure, TransientFailure, channels_for
from carnet.notify.outbox import render
from carnet.notify.rules import announce_due

logger = structlog.get_logger("carnet")

LEASE = dt.timedelta(minutes=5)  # a message "sending" for longer than this becomes "uncertain"
BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=2),
           dt.timedelta(hours=12))  # after a transient failure; after the last, the message fails
BATCH = 50
JOBS_EVERY = dt.timedelta(minutes=1)  # how often the loop runs the periodic jobs
WORKER_ACTOR = Actor(ActorKind.OPERATOR, id="carnet-worker")
UNCERTAIN_ERROR = "interrupted while sending: delivery unknown, not resent"


@dataclass
class Claimed:
    dossier_key: uuid.UUID
    message_id: uuid.UUID
    channel: str
    address: str
    template: str
    params: dict[str, Any]
    lang: str
    attempts: int


@dataclass
class Report:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    announced: int = 0
    jobs_failed: list[str] = field(default_factory=list)  # the periodic jobs that raised in this pass, by name


def _now(services: Services) -> dt.datetime:
    return utc(services.clock())


def mark_uncertain(services: Services) -> int:
    """Messages whose lease ran out while ``sending`` become ``uncertain`` (never resent automatically)."""
    now = _now(services)
    with services.engine.begin() as conn:
        return conn.execute(update(outbox).where(outbox.c.status == "sending", outbox.c.next_attempt_at <= now)
                            .values(status="uncertain", last_error=UNCERTAIN_ERROR)).rowcount


_CLAIM = (update(outbox).where(outbox.c.dossier_key == bindparam("k"), outbox.c.message_id == bindparam("m"),
                               outbox.c.status == "pending")
          .values(status="sending", attempts=outbox.c.attempts + 1, next_attempt_at=bindparam("lease_end")))


_LOCK_ONE = (select(outbox.c.message_id)
             .where(outbox.c.dossier_key == bindparam("k"), outbox.c.message_id == bindparam("m"),
                    outbox.c.status == "pending")
             .with_for_update(skip_locked=True))


def claim(services: Services, limit: int = BATCH) -> list[Claimed]:
    """Take up to ``limit`` due messages and commit them as ``sending`` (lease: :data:`LEASE`)."""
    now = _now(services)
    q = (select(outbox.c.dossier_key, outbox.c.message_id, outbox.c.channel, outbox.c.address, outbox.c.template,
                outbox.c.params, outbox.c.lang, outbox.c.attempts)
         .where(outbox.c.status == "pending", outbox.c.next_attempt_at <= now)
         .order_by(outbox.c.next_attempt_at).limit(limit))
    out: list[Claimed] = []
    with services.engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        for r in conn.execute(q).all():
            key = {"k": r.dossier_key, "m": r.message_id}
            if pg and conn.execute(_LOCK_ONE, key).first() is None:
                continue  # another worker holds it (or has just claimed it)
            if conn.execute(_CLAIM, {**key, "lease_end": now + LEASE}).rowcount:
                out.append(Claimed(r.dossier_key, r.message_id, r.channel, r.address, r.template,
                                   dict(r.params or {}), r.lang or "fr", int(r.attempts) + 1))
    return out


def _finish(services: Services, msg: Claimed, **values: Any) -> None:
    with services.engine.begin() as conn:
        # "uncertain" too: a send that outlived its lease and then succeeded is recorded as what it was.
        conn.execute(update(outbox).where(and_(
            outbox.c.dossier_key == msg.dossier_key, outbox.c.message_id == msg.message_id,
            outbox.c.status.in_(("sending", "uncertain")))).values(**values))


def deliver(services: Services, channels: Channels, msg: Claimed) -> str:
    """Send one claimed message and record the outcome: ``sent``, ``retry`` or ``failed``."""
    try:
        try:
            r = render(msg.template, msg.lang, msg.params, services.settings, msg.channel)
        except KeyError:
            raise PermanentFailure("unknown template or missing parameter") from None
        subject, text = (r.subject, r.sms) if msg.channel == "sms" else (r.subject, r.text)
        channels.send(msg.channel, msg.address, subject, text, str(msg.message_id))
    except TransientFailure as exc:
        now = _now(services)
        if msg.attempts > len(BACKOFF):
            _finish(services, msg, status="failed", last_error=f"gave up after {msg.attempts} attempts: {exc}"[:300])
            return "failed"
        _finish(services, msg, status="pending", next_attempt_at=now + BACKOFF[msg.attempts - 1],
                last_error=str(exc)[:300])
        return "retry"
    except PermanentFailure as exc:
        _finish(services, msg, status="failed", last_error=str(exc)[:300])
        return "failed"
    # Sent: the parameters (an activation code, say) are no longer needed and are not kept.
    _finish(services, msg, status="sent", sent_at=_now(services), last_error=None, params={})
    return "sent"


def announce(services: Services) -> int:
    """Documents awaiting their announcement are announced (:func:`carnet.notify.rules.announce_due`); how many."""
    return run(services, WORKER_ACTOR, announce_due)


def job_name(job: Callable[..., object]) -> str:
    """A periodic job's name for the log and the report: its function's name (code, never data)."""
    return str(getattr(job, "__name__", None) or type(job).__name__)


def run_jobs(services: Services, report: Report | None = None) -> Report:
    """The periodic jobs: first the other services' (``services.periodic_jobs``, wired by :mod:`carnet.compose`:
    access requests past their expiry are recorded as expired, claim lines leave the rolling window...), then
    documents awaiting their announcement are announced. Each runs on its own: one that raises is logged by its name
    and the exception's type only, and listed in ``report.jobs_failed``; the others still run. Returns ``report``
    (a new one if none is given) with ``announced`` set."""
    report = report if report is not None else Report()
    for job in [*services.periodic_jobs, announce]:
        try:
            result = job(services)
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others, nor delivery
            name = job_name(job)
            report.jobs_failed.append(name)
            logger.error("worker.job.error", status=f"job={name}", error_type=type(exc).__name__)
            continue
        if job is announce and isinstance(result, int):
            report.announced = result
    return report


def run_once(services: Services, channels: Channels | None = None, *, jobs: bool = True,
             limit: int = BATCH) -> Report:
    """One pass: expire leases, run the periodic jobs (if ``jobs``), then deliver everything due, batch by batch."""
    channels = channels or channels_for(services.settings)
    report = Report()
    report.uncertain = mark_uncertain(services)
    if jobs:
        run_jobs(services, report)
    while True:
        batch = claim(services, limit)
        for msg in batch:
            outcome = deliver(services, channels, msg)
            if outcome == "sent":
                report.sent += 1
            elif outcome == "retry":
                report.retried += 1
            else:
                report.failed += 1
        if len(batch) < limit:
            return report


def collect_blobs(services: Services) -> None:
    """The blob garbage collector's periodic pass (:mod:`carnet.documents.blob_gc`), with the configured grace. Each
    node's worker may run it: two passes at once only delete the same orphans twice (deletes are idempotent)."""
    from carnet.documents.blob_gc import collect

    collect(services)


def loop(services: Services, interval: float = 1.0, stop: threading.Event | None = None,
         channels: Channels | None = None) -> None:
    """Deliver until ``stop`` is set; the periodic jobs run every :data:`JOBS_EVERY`. An error in one pass is
    logged (its type only) and the loop goes on."""
    stop = stop or threading.Event()
    channels = channels or channels_for(services.settings)
    last_jobs: dt.datetime | None = None
    last_gc = _now(services)  # the first gc pass one interval after the start
    while not stop.is_set():
        now = _now(services)
        due = last_jobs is None or now - last_jobs >= JOBS_EVERY
        gc_every = services.settings.blob_gc_interval_hours
        if gc_every > 0 and now - last_gc >= dt.timedelta(hours=gc_every):
            last_gc = now
            try:
                collect_blobs(services)
            except Exception as exc:  # noqa: BLE001 - the store or the database may be away: next interval
                logger.error("blob_gc.error", error_type=type(exc).__name__)
        try:
            report = run_once(services, channels, jobs=due)
            if due:
                last_jobs = now
            if report.sent or report.failed or report.uncertain or report.jobs_failed:
                logger.info("outbox.pass", status=f"sent={report.sent} retried={report.retried} "
                            f"failed={report.failed} uncertain={report.uncertain} "
                            f"jobs_failed={len(report.jobs_failed)}")
        except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop delivery for good
            logger.error("outbox.error", error_type=type(exc).__name__)
        stop.wait(interval)


def start_in_thread(services: Services, interval: float = 1.0) -> tuple[threading.Thread, threading.Event]:
    """Run :func:`loop` in a daemon thread (``carnet serve --with-worker``); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(services, interval, stop), name="carnet-worker", daemon=True)
    thread.start()
    return thread, stop


def retry(conn: Connection, message_id: uuid.UUID, now: dt.datetime) -> bool:
    """Operator: put a ``failed`` or ``uncertain`` message back to ``pending`` (due now, attempts reset), in the
    caller's transaction (the CLI traces it there in the system audit chain). False if no message with this id is
    in one of those states."""
    return bool(conn.execute(update(outbox).where(outbox.c.message_id == message_id,
                                                  outbox.c.status.in_(("failed", "uncertain")))
                             .values(status="pending", next_attempt_at=utc(now), attempts=0,
                                     last_error=None)).rowcount)
