"""What a signed-in person sets for their own account: the language of their pages and messages, and, per dossier
they act on, which events they are told of on which channel (``account_dossier.notify``). Account tables only, in
the caller's connection: no dossier data, nothing the policy judges."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, select, update

from carnet.db.tables import account, account_dossier


def set_language(conn: Connection, account_id: uuid.UUID, lang: str) -> None:
    conn.execute(update(account).where(account.c.account_id == account_id).values(lang=lang))


@dataclass(frozen=True)
class AccountDetails:
    login: str
    email: str | None
    phone: str | None
    otp_channel: str
    lang: str
    password_changed_at: Any
    notify: dict[str, Any]  # the link's chosen channels per event group, as stored ({} when none)


def details(conn: Connection, account_id: uuid.UUID, dossier_key: uuid.UUID) -> AccountDetails:
    """The account's own details, and its notification choices for ``dossier_key``."""
    row = conn.execute(select(account).where(account.c.account_id == account_id)).one()
    link = conn.execute(select(account_dossier.c.notify).where(and_(
        account_dossier.c.account_id == account_id, account_dossier.c.dossier_key == dossier_key))).first()
    prefs = link.notify if link is not None and isinstance(link.notify, dict) else {}
    return AccountDetails(row.login, row.email, row.phone, row.otp_channel, row.lang, row.password_changed_at, prefs)


def set_notify(conn: Connection, account_id: uuid.UUID, dossier_key: uuid.UUID, chosen: dict[str, list[str]]) -> None:
    """Replace the notification choices of the account's live link to ``dossier_key``."""
    conn.execute(update(account_dossier).where(and_(
        account_dossier.c.account_id == account_id, account_dossier.c.dossier_key == dossier_key,
        account_dossier.c.ended_at.is_(None))).values(notify=chosen))
