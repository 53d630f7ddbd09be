"""Telling an account holder that sign-ins to their account are being slowed (issue 15 §3).

The worker (:func:`carnet.compose`'s periodic job) asks :func:`carnet.throttle.claim_notices` whose account reached a
threshold, and queues one message per account through the notification outbox, in the same transaction. The message
holds no health data and nothing about the attempts beyond their existence: it says that the account is not locked,
what to do if it was them, and what to do if not. The outbox is keyed by dossier (SCALE.md): the message is filed
under the dossier the account owns, else the first one it acts on; an account linked to no dossier any more is not
told (nobody reads its portal).
"""

from __future__ import annotations

import datetime as dt
import uuid

import structlog
from sqlalchemy import Connection, and_, select

from carnet.access.actors import Actor, ActorKind
from carnet.context import Context, Services
from carnet.db.tables import account, account_dossier

logger = structlog.get_logger("carnet")
TEMPLATE = "sign_in_throttled"
NOTICE_ACTOR = Actor(ActorKind.OPERATOR, id="carnet-throttle")


def queue_throttle_notice(services: Services, conn: Connection, now: dt.datetime, account_id: uuid.UUID) -> bool:
    """Queue the notice to the account's sign-in code address (email, else SMS). False when there is nobody to tell."""
    from carnet.notify.outbox import enqueue_direct

    row = conn.execute(select(account.c.email, account.c.phone, account.c.lang, account.c.status)
                       .where(account.c.account_id == account_id)).first()
    if row is None or row.status != "active" or not (row.email or row.phone):
        return False
    link = conn.execute(select(account_dossier.c.dossier_key).where(and_(
        account_dossier.c.account_id == account_id, account_dossier.c.ended_at.is_(None)))
        .order_by((account_dossier.c.role == "owner").desc(), account_dossier.c.since)).first()
    if link is None:
        logger.info("throttle.notice_skipped", reason="no dossier")
        return False
    channel, address = ("email", row.email) if row.email else ("sms", row.phone)
    ctx = Context(services, conn, NOTICE_ACTOR, now)
    enqueue_direct(ctx, link.dossier_key, channel, address, TEMPLATE, {}, row.lang or "fr")
    logger.info("throttle.notice_queued")
    return True
