"""The composition root: how a process's services are wired together, in one place.

Every process that serves or changes dossiers (the ASGI app, ``carnet serve --with-worker``, ``carnet worker`` and
the other CLI commands, the tests, the benchmarks) builds its :class:`~carnet.context.Services` with
:func:`build_services`. The services sit side by side and never import back up: what one must tell another goes
through an event (:mod:`carnet.events`) published in the request's transaction, subscribed here; the jobs the
notification worker runs for the other services are listed here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import structlog
from sqlalchemy import Engine

from carnet import teleconsult, throttle
from carnet.accounts.notices import queue_throttle_notice
from carnet.audit import anchor as anchors
from carnet.audit import partitions
from carnet.audit.anchor import Anchor
from carnet.claims import service as claims
from carnet.config import Settings
from carnet.context import Services, run
from carnet.events import Audited, DocumentReplaced, MeasurementsRecorded
from carnet.measures import imports as measure_imports
from carnet.notify import rules as notify_rules
from carnet.notify.worker import WORKER_ACTOR
from carnet.tasks import service as tasks
from carnet.trends import service as trends

logger = structlog.get_logger("carnet")


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """The process's services (:meth:`Services.build`), wired by :func:`wire`."""
    services = Services.build(settings, engine)
    wire(services)
    return services


def wire(services: Services) -> None:
    """Subscribe the services to each other's events and give the worker its periodic jobs (run in this order)."""
    services.access_marker = notify_rules.access_marker  # recorded by the audit append, read back by on_audit
    services.events.subscribe(Audited, notify_rules.on_audit)  # notifications, in the audited change's transaction
    services.events.subscribe(DocumentReplaced, tasks.on_document_replaced)  # a replacement answers rectifications
    services.events.subscribe(MeasurementsRecorded, trends.on_measurements)  # new readings: evaluate them (worker)
    services.periodic_jobs.extend([trends.evaluate_pending, _expire_access_requests, _purge_claim_lines,
                                   _throttle_notices, _prune_throttle, _close_stale_teleconsultations,
                                   _prune_measure_imports,
                                   _audit_checkpointer(), _audit_partition_maker()])


def _expire_access_requests(services: Services) -> None:
    """Access requests past their expiry are recorded as expired (the professional's software sees it, the patient's
    history too): a batch at a time, each in its own transaction."""
    while run(services, WORKER_ACTOR, tasks.expire_due) >= 1000:  # a full batch (its default): there may be more
        pass


def _purge_claim_lines(services: Services) -> None:
    """Claim lines leave the rolling window (issue 3 §5)."""
    run(services, WORKER_ACTOR, claims.purge_old)


def _prune_measure_imports(services: Services) -> None:
    """Apple Health imports' progress rows unchanged for a week go (:func:`carnet.measures.imports.prune`)."""
    run(services, WORKER_ACTOR, measure_imports.prune)


def _close_stale_teleconsultations(services: Services) -> None:
    """Teleconsultations nobody ended are closed 12 hours after their planned end, and their relay emptied (issue 12
    §1, docs/TELECONSULTATION.md)."""
    while run(services, WORKER_ACTOR, teleconsult.close_stale) >= 500:  # a full batch: there may be more
        pass


def _audit_checkpointer() -> Callable[[Services], None]:
    """The job that signs a checkpoint of the audit chains that moved, once the latest (made by any node) is older
    than ``CARNET_CHECKPOINT_SECONDS`` (issue 15 §2, docs/AUDIT.md; 0 turns it off). The store and the key are
    loaded on its first run, once per process."""
    loaded: list[Anchor] = []

    def checkpoint_audit(services: Services) -> None:
        every = services.settings.checkpoint_seconds
        if every <= 0:
            return
        # A failure (the store away, say) is the worker's to log and report; the other jobs run, the next pass retries
        if not loaded:
            loaded.append(anchors.from_settings(services.settings))
        if anchors.due(loaded[0], services.clock(), dt.timedelta(seconds=every)):
            made = anchors.checkpoint(services.engine, loaded[0], services.clock)
            if made:
                logger.info("audit.checkpoint", status=f"checkpoints={made[0]}..{made[-1]}")
    return checkpoint_audit


def _audit_partition_maker() -> Callable[[Services], None]:
    """The job that makes the audit's monthly partitions ahead (PostgreSQL: this month and the next
    ``CARNET_AUDIT_PARTITIONS_AHEAD``; docs/AUDIT.md "Partitions"), at most once an hour per process. Idempotent and
    safe on several nodes at once (an advisory lock; the second finds them made)."""
    last: list[dt.datetime] = []

    def make_audit_partitions(services: Services) -> None:
        now = services.clock()
        if last and abs(now - last[0]) < dt.timedelta(hours=1):
            return
        # A failure (a lock not had in time) is the worker's to log and report; the next pass retries (``last`` kept)
        made = partitions.make_ahead(services.engine, now, services.settings.audit_partitions_ahead)
        last[:] = [now]
        if made:
            logger.info("audit.partitions", status="made " + " ".join(map(partitions.month_text, made)))
    return make_audit_partitions


def _throttle_notices(services: Services) -> None:
    """Account holders whose sign-ins are being slowed are told (at most once per ``CARNET_THROTTLE_NOTICE_HOURS``),
    each notice queued in the transaction that marks it told (issue 15 §3)."""
    with services.engine.begin() as conn:
        now = services.clock()
        for account_id in throttle.claim_notices(conn, services):
            queue_throttle_notice(services, conn, now, account_id)


def _prune_throttle(services: Services) -> None:
    """Expired rate-limit and sign-in failure counters go (every node's worker may run it: deletes are idempotent)."""
    throttle.prune(services)
