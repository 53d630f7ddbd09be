"""Failed sign-in steps, counted so that an attacker slows down without ever locking the account holder out.

Every failed step that proves knowledge of an account (a wrong password, sign-in code, activation code or reset code,
and a wrong current password in the settings) counts on three rows of ``sign_in_failure``, in one statement:

- ``pair``: this identifier from this address. From ``CARNET_MAX_FAILED_ATTEMPTS`` failures on, each further try from
  that address on that identifier waits ``CARNET_THROTTLE_DELAY_SECONDS``, doubling with each failure, up to
  ``CARNET_THROTTLE_MAX_DELAY_SECONDS``. A completed sign-in (or reset) clears the pair.
- ``address``: every identifier from this address. From ``CARNET_MAX_FAILED_PER_ADDRESS`` on, the same delays for
  anything that address tries (one address spraying many identifiers).
- ``login``: this identifier from every address. From ``CARNET_MAX_FAILED_PER_IDENTIFIER`` on (many addresses, a few
  tries each), every address that has failed on it gets one try per delay (doubling each further threshold's worth of
  failures). An address that has never failed on it is not slowed: the account holder at home with the right password
  passes, whatever an attacker does elsewhere. The second factor (the one-time code) stands behind the password.

The identifier is the one typed (normalised), whether or not an account has it: unknown identifiers are counted,
slowed and answered exactly like known ones. Failures are forgotten ``CARNET_THROTTLE_FORGET_HOURS`` after the last
one. When a pair or an identifier reaches its threshold, a notice to the account holder becomes due
(:func:`claim_notices`, run by the worker; at most one per ``CARNET_THROTTLE_NOTICE_HOURS``).

A try that must wait is refused without being looked at (and without counting), so the answer to a throttled try
says nothing of whether its password was right.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, and_, case, delete, or_, select, update

from carnet.context import Services
from carnet.db.tables import sign_in_failure
from carnet.throttle.keys import keyed
from carnet.throttle.upsert import insert_for

t = sign_in_failure.c


@dataclass(frozen=True)
class Subject:
    """The three counter keys of one try."""

    pair: str
    address: str
    login: str


def subject(services: Services, login: str, address: str) -> Subject:
    """``login``: the identifier as normalised for lookup; ``address``: from :func:`client_address`."""
    k = services.keyring
    return Subject(pair=keyed(k, "pair", login, address), address=keyed(k, "address", address),
                   login=keyed(k, "login", login))


def _epoch(services: Services) -> int:
    return int(services.clock().timestamp())


def _delay(failures: int, threshold: int, base: int, cap: int, step: int = 1) -> int:
    if threshold <= 0 or failures < threshold:
        return 0
    return min(cap, base * 2 ** min((failures - threshold) // max(step, 1), 30))


def wait_for(conn: Connection, services: Services, who: Subject) -> int:
    """Seconds this try must wait before it may be looked at (0: go on)."""
    now = _epoch(services)
    rows = {r.kind: r for r in conn.execute(select(t.kind, t.failures, t.last_at).where(
        t.key.in_([who.pair, who.address, who.login]), t.expires_at > now))}
    s = services.settings
    base, cap = s.throttle_delay_seconds, s.throttle_max_delay_seconds
    until = [0]

    def slow(last_at: int, delay: int) -> None:
        if delay:
            until.append(last_at + delay)

    pair, address, login = rows.get("pair"), rows.get("address"), rows.get("login")
    if pair is not None:
        slow(pair.last_at, _delay(pair.failures, s.max_failed_attempts, base, cap))
        if login is not None:  # only an address that has failed on this identifier
            slow(pair.last_at, _delay(login.failures, s.max_failed_per_identifier, base, cap,
                                      step=s.max_failed_per_identifier))
    if address is not None:
        slow(address.last_at, _delay(address.failures, s.max_failed_per_address, base, cap))
    return max(0, max(until) - now)


def record_failure(conn: Connection, services: Services, who: Subject, account_id: uuid.UUID | None) -> None:
    """Count one failure on the three rows (one statement); ``account_id`` when the identifier is an account's, so
    that its holder can be told. Marks a notice due when the pair or the identifier reaches its threshold."""
    now = _epoch(services)
    s = services.settings
    expires = now + s.throttle_forget_hours * 3600
    stmt = insert_for(conn, sign_in_failure).values([
        {"key": who.pair, "kind": "pair", "failures": 1, "last_at": now, "expires_at": expires, "account_id": None},
        {"key": who.address, "kind": "address", "failures": 1, "last_at": now, "expires_at": expires,
         "account_id": None},
        {"key": who.login, "kind": "login", "failures": 1, "last_at": now, "expires_at": expires,
         "account_id": account_id}])
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(index_elements=[t.key], set_={
        "failures": case((t.expires_at <= new.last_at, 1), else_=t.failures + 1),  # a stale row starts again
        "last_at": new.last_at, "expires_at": new.expires_at, "account_id": new.account_id,
    }).returning(t.kind, t.failures)
    counts = {r.kind: r.failures for r in conn.execute(stmt)}
    if counts.get("pair", 0) >= s.max_failed_attempts or counts.get("login", 0) >= s.max_failed_per_identifier:
        conn.execute(update(sign_in_failure).where(t.key == who.login, t.notice_due.is_(None))
                     .values(notice_due=now))


def forget_pair(conn: Connection, who: Subject) -> None:
    """The account holder got through from this address: its pair counter starts again."""
    conn.execute(delete(sign_in_failure).where(t.key == who.pair))


def claim_notices(conn: Connection, services: Services) -> list[uuid.UUID]:
    """The accounts whose holder must be told now that sign-ins to their account are being slowed; each is marked
    told in the same transaction (the caller queues the notice in it). At most one per notice period: a notice
    that falls due sooner waits for the period's end."""
    now = _epoch(services)
    period = services.settings.throttle_notice_hours * 3600
    due = and_(t.kind == "login", t.account_id.is_not(None), t.notice_due.is_not(None),
               or_(t.noticed_at.is_(None), t.noticed_at <= now - period))
    out: list[uuid.UUID] = []
    for row in conn.execute(select(t.key, t.account_id).where(due).limit(500)).all():
        if conn.execute(update(sign_in_failure).where(t.key == row.key, due)
                        .values(noticed_at=now, notice_due=None)).rowcount == 1:
            out.append(row.account_id)
    return out
