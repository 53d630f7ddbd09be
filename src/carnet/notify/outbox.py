"""The transactional outbox: messages are rows written in the same transaction as the event that causes them, so a
request that is refused or rolled back sends nothing, and a committed event is never forgotten. ``carnet worker``
(:mod:`carnet.notify.worker`) delivers them.

Recipients of a dossier's notifications are the accounts linked to it (``account_dossier``, not ended) whose account
is ``invited`` or ``active``. Each link carries the person's choice of channels per event group
(``account_dossier.notify``, a JSON object ``{group: [channels]}``); a group that is absent means the default: email,
or SMS for an account that has only a phone number. Always-sent events go to every channel the account has an
address for, whatever the choice. A message holds no health content: its template says what kind of event happened
and points to the portal; ``params`` holds only what a template needs that is not health data (an activation code).
"""

from __future__ import annotations

import datetime as dt
import string
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from carnet.access.actors import Actor, ActorKind
from carnet.access.policy import DossierFacts, Standing, decide
from carnet.config import Settings
from carnet.context import Context
from carnet.db import prepared
from carnet.db.tables import account, account_dossier, dossier, outbox, representative
from carnet.ids import new_id

# The groups a person chooses channels for (the portal shows one row of checkboxes per group). The labels are the
# English source strings; the portal translates them.
EVENT_GROUPS: list[tuple[str, str]] = [
    ("dossier", "My dossier is created, activated, closed or reopened"),
    ("documents", "A new document, or a document awaiting its announcement by my doctor"),
    ("access", "A professional opens my dossier for the first time"),
    ("rights", "Who may access my dossier changes"),
    ("requests", "An answer to my request for a correction"),
    ("shares", "A link I shared is opened"),
]

# Notification events and their group. Always-sent events have no group: the person cannot turn them off.
GROUP_OF: dict[str, str] = {
    "dossier.created": "dossier",
    "dossier.activated": "dossier",
    "dossier.closed": "dossier",
    "dossier.reopened": "dossier",
    "document.new": "documents",
    "document.announcement": "documents",
    "access.first": "access",
    "access.rights": "rights",
    "rectification.answer": "requests",
    "share.opened": "shares",
}
ALWAYS_SENT: frozenset[str] = frozenset({"access.request", "access.emergency", "access.regulation",
                                         "access.code_used", "access.code_frozen", "access.code_hidden_used",
                                         "teleconsult.scheduled", "teleconsult.started", "teleconsult.cancelled"})
PERSONAL_CHANNELS = ("email", "sms")  # what a person may choose; letters are for activation only
LIVE_ACCOUNT_STATUSES = ("invited", "active")


def default_prefs() -> dict[str, list[str]]:
    """What a new ``account_dossier.notify`` holds: nothing chosen yet, so every group takes its default (email, or
    SMS for an account with only a phone). Store this rather than explicit lists, so that adding an address later
    needs no migration of choices."""
    return {}


def default_channels(email: str | None, phone: str | None) -> list[str]:
    if email:
        return ["email"]
    return ["sms"] if phone else []


def effective_prefs(prefs: Mapping[str, Any] | None, email: str | None, phone: str | None) -> dict[str, list[str]]:
    """The channels each group will actually use, for the portal's checkboxes: the stored choice where there is
    one, the default otherwise; channels the account has no address for are dropped."""
    have = {"email": bool(email), "sms": bool(phone)}
    out: dict[str, list[str]] = {}
    for group, _ in EVENT_GROUPS:
        chosen = (prefs or {}).get(group)
        channels = default_channels(email, phone) if not isinstance(chosen, list) else chosen
        out[group] = [c for c in PERSONAL_CHANNELS if c in channels and have[c]]
    return out


def template_for(event: str) -> str:
    return event.replace(".", "_")


# --- templates ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str  # email body and letter text
    sms: str  # the short form sent by SMS


@cache
def _template_text(name: str, lang: str) -> str | None:
    res = resources.files("carnet.notify").joinpath("templates", f"{name}.{lang}.txt")
    return res.read_text(encoding="utf-8") if res.is_file() else None


def render(template: str, lang: str, params: Mapping[str, Any], settings: Settings,
           channel: str | None = None) -> Rendered:
    """Fill ``templates/<template>.<lang>.txt`` (French when that language has none), or
    ``<template>.<channel>.<lang>.txt`` where one exists (the activation letter names the sign-in identifier, which
    an email or SMS does not). A template starts with
    ``Subject:`` and ``SMS:`` header lines, then a blank line, then the body; ``$name`` placeholders take
    ``portal_url``, ``base_url``, ``activation_days``, ``code_minutes`` and the message's ``params``. Raises
    ``KeyError`` for an unknown template or a missing placeholder."""
    if not template.replace("_", "").isalnum():
        raise KeyError(template)
    raw = None
    if channel:
        raw = _template_text(f"{template}.{channel}", lang) or _template_text(f"{template}.{channel}", "fr")
    raw = raw or _template_text(template, lang) or _template_text(template, "fr")
    if raw is None:
        raise KeyError(template)
    values = {"portal_url": f"{settings.base_url}/portal/", "base_url": settings.base_url,
              "activation_days": str(settings.activation_days), "code_minutes": str(settings.code_minutes)}
    values.update({k: str(v) for k, v in params.items()})
    head, _, body = raw.partition("\n\n")
    headers = {}
    for line in head.splitlines():
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()

    def fill(text: str) -> str:
        return string.Template(text).substitute(values)

    return Rendered(subject=fill(headers["subject"]), text=fill(body.strip() + "\n"), sms=fill(headers["sms"]))


# --- enqueueing -----------------------------------------------------------------------------------------------------

# What this transaction has already enqueued, so that one event seen several times in one transaction (a bundle of
# documents, a grant made while creating a dossier) gives each person one message. Keyed by the Context, which dies
# with its transaction.
_ENQUEUED: weakref.WeakKeyDictionary[Context, set[tuple[uuid.UUID, str, uuid.UUID, str]]] = \
    weakref.WeakKeyDictionary()

_LINKS = select(account_dossier.c.account_id, account_dossier.c.role, account_dossier.c.representative_id,
                account_dossier.c.notify).where(account_dossier.c.dossier_key == bindparam("k"),
                                                account_dossier.c.ended_at.is_(None))
# The same on PostgreSQL as plain SQL run prepared (carnet.db.prepared; tests/db/test_prepared.py compares them): every
# publish asks it.
_LINKS_SQL = ("SELECT account_dossier.account_id, account_dossier.role, account_dossier.representative_id, "
              "account_dossier.notify FROM account_dossier "
              "WHERE account_dossier.dossier_key = %(k)s AND account_dossier.ended_at IS NULL")
_ACCOUNTS = select(account.c.account_id, account.c.email, account.c.phone, account.c.lang).where(
    account.c.account_id.in_(bindparam("ids", expanding=True)), account.c.status.in_(LIVE_ACCOUNT_STATUSES))
# _ACCOUNTS for one account (a dossier's links are most often its patient's alone), prepared on PostgreSQL: the
# account's key in the WHERE, so Citus routes it to one shard (tests/db/test_prepared.py compares them).
_ACCOUNT_SQL = ("SELECT account.account_id, account.email, account.phone, account.lang FROM account "  # noqa: S608
                "WHERE account.account_id = %(id)s AND account.status IN ("  # the constant statuses above
                + ", ".join(f"'{s}'" for s in LIVE_ACCOUNT_STATUSES) + ")")
_INSERT = insert(outbox)


@dataclass(frozen=True)
class Recipient:
    account_id: uuid.UUID
    role: str
    email: str | None
    phone: str | None
    lang: str
    prefs: Mapping[str, Any]

    def channels(self, group: str | None) -> list[tuple[str, str]]:
        """(channel, address) pairs for an event of ``group`` (None: always sent, every address)."""
        addresses = {"email": self.email, "sms": self.phone}
        if group is None:
            wanted: Iterable[str] = PERSONAL_CHANNELS
        else:
            chosen = self.prefs.get(group) if isinstance(self.prefs, Mapping) else None
            wanted = chosen if isinstance(chosen, list) else default_channels(self.email, self.phone)
        return [(c, addresses[c] or "") for c in PERSONAL_CHANNELS if c in wanted and addresses[c]]


def _representatives_still_acting(ctx: Context, dossier_key: uuid.UUID, rep_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which representative records still act for the dossier, by the policy's own rule (a minor's representatives
    stop at majority), so that nobody is told of a dossier they may no longer read."""
    if not rep_ids:
        return set()
    d = ctx.conn.execute(select(dossier.c.status, dossier.c.birth_date, dossier.c.objects_break_glass,
                                dossier.c.objects_regulation).where(dossier.c.dossier_key == dossier_key)).first()
    if d is None:
        return set()
    facts = DossierFacts(dossier_key=dossier_key, status=d.status, birth_date=d.birth_date)
    rows = ctx.conn.execute(select(representative.c.representative_id, representative.c.kind).where(
        representative.c.dossier_key == dossier_key, representative.c.representative_id.in_(rep_ids),
        representative.c.ended_at.is_(None))).all()
    out = set()
    for r in rows:
        decision = decide(Actor(ActorKind.REPRESENTATIVE, id=str(r.representative_id)), facts,
                          Standing(representative_kind=r.kind), ctx.now.date(), ctx.services.matrix,
                          ctx.settings.majority_age)
        if decision.read:
            out.add(r.representative_id)
    return out


def recipients(ctx: Context, dossier_key: uuid.UUID, *, exclude_representatives: bool = False) -> list[Recipient]:
    """The people told of this dossier's events. Two queries, each routed by its own key (the links by dossier, the
    accounts by account id): ``account`` is not co-located with dossier tables (SCALE.md)."""
    links: list[Any] = prepared.fetch_all(ctx.conn, _LINKS_SQL, {"k": dossier_key}) \
        if prepared.on_postgres(ctx.conn) else list(ctx.conn.execute(_LINKS, {"k": dossier_key}).all())
    if exclude_representatives:
        links = [lk for lk in links if lk.role != "representative"]
    if not links:
        return []
    reps = [lk.representative_id for lk in links if lk.role == "representative" and lk.representative_id]
    acting = _representatives_still_acting(ctx, dossier_key, reps)
    links = [lk for lk in links if lk.role != "representative" or lk.representative_id in acting]
    if not links:
        return []
    ids = list(dict.fromkeys(lk.account_id for lk in links))
    found = prepared.fetch_all(ctx.conn, _ACCOUNT_SQL, {"id": ids[0]}) \
        if len(ids) == 1 and prepared.on_postgres(ctx.conn) else ctx.conn.execute(_ACCOUNTS, {"ids": ids})
    accounts = {a.account_id: a for a in found}
    out = []
    for lk in links:
        a = accounts.get(lk.account_id)
        if a is not None:
            out.append(Recipient(a.account_id, lk.role, a.email, a.phone, a.lang or "fr",
                                 lk.notify if isinstance(lk.notify, Mapping) else {}))
    return out


def enqueue(ctx: Context, dossier_key: uuid.UUID, event: str, params: Mapping[str, Any] | None = None, *,
            always: bool = False, exclude_representatives: bool = False) -> int:
    """Queue ``event`` for every person linked to the dossier, one row per (account, channel), in the caller's
    transaction. ``always`` (implied for :data:`ALWAYS_SENT` events) ignores the person's choice of channels.
    ``exclude_representatives`` leaves out legal representatives (a document hidden from them). Returns the number
    of rows queued; an event already queued for a person in this transaction is not queued again."""
    always = always or event in ALWAYS_SENT
    group = None if always else GROUP_OF.get(event)
    if group is None and not always:
        raise ValueError(f"unknown notification event {event!r}")
    done = _ENQUEUED.setdefault(ctx, set())
    rows = []
    for r in recipients(ctx, dossier_key, exclude_representatives=exclude_representatives):
        for channel, address in r.channels(group):
            mark = (dossier_key, event, r.account_id, channel)
            if mark in done:
                continue
            done.add(mark)
            rows.append(_row(ctx, dossier_key, event, r.account_id, channel, address, template_for(event),
                             params or {}, r.lang))
    if rows:
        ctx.conn.execute(_INSERT, rows)
    return len(rows)


def enqueue_direct(ctx: Context, dossier_key: uuid.UUID, channel: str, address: str, template: str,
                   params: Mapping[str, Any], lang: str) -> uuid.UUID:
    """Queue one message to one address (the activation letter, or a first email before any account exists), in the
    caller's transaction. Returns its message id."""
    if channel not in ("email", "sms", "post"):
        raise ValueError(f"unknown channel {channel!r}")
    render(template, lang, params, ctx.settings, channel)  # fail now, in the caller's transaction, on a bad template
    row = _row(ctx, dossier_key, template, None, channel, address, template, params, lang)
    ctx.conn.execute(_INSERT, [row])
    return uuid.UUID(str(row["message_id"]))


def _row(ctx: Context, dossier_key: uuid.UUID, event: str, account_id: uuid.UUID | None, channel: str,
         address: str, template: str, params: Mapping[str, Any], lang: str) -> dict[str, Any]:
    now = ctx.now.astimezone(dt.UTC)  # SQLite keeps no offset: store UTC
    return {"dossier_key": dossier_key, "message_id": new_id(), "event": event, "account_id": account_id,
            "channel": channel, "address": address, "template": template, "params": dict(params), "lang": lang,
            "status": "pending", "attempts": 0, "next_attempt_at": now, "last_error": None,
            "created_at": now, "sent_at": None}


def mask_address(channel: str, address: str) -> str:
    """An address as the operator sees it: enough to tell two apart, not enough to read it."""
    if channel == "email":
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if channel == "sms":
        return f"{address[:3]}******{address[-2:]}" if len(address) > 5 else "***"
    return address[:2] + "***" if address else ""


def latest(conn: Connection, statuses: list[str] | None = None, limit: int = 100) -> list[Any]:
    """The latest messages, newest first, of these statuses (all when none): the operator's view of the outbox."""
    q = select(outbox).order_by(outbox.c.created_at.desc(), outbox.c.message_id.desc()).limit(limit)
    if statuses:
        q = q.where(outbox.c.status.in_(statuses))
    return list(conn.execute(q))
