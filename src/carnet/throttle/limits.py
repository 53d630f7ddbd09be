"""Per-address rate limits on what can be guessed or abused: portal sign-in, one-time codes, activation, password
reset, the OAuth token endpoint, and codes sent to one person.

Each limit is ``count`` hits in any ``seconds`` (``CARNET_RATE_<NAME>``, e.g. ``20/300``), counted with a sliding
window: the hits of the current fixed window plus the previous window's, weighted by how much of it still overlaps
the last ``seconds``. One row per (limit, address) in ``rate_limit``, moved by a single
``INSERT … ON CONFLICT DO UPDATE … RETURNING``: hits on every node count, at once or not. A refused hit counts too (a
client that keeps knocking keeps waiting). A node whose clock lags counts in the window already stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sqlalchemy import Connection, case, delete, or_

from carnet.context import Services
from carnet.db.tables import rate_limit, sign_in_failure
from carnet.throttle.keys import keyed
from carnet.throttle.upsert import insert_for

#: The limits, by name: how each reads its setting.
LIMITS: dict[str, Callable[[Services], tuple[int, int]]] = {
    "sign_in": lambda s: s.settings.rate_sign_in,
    "code": lambda s: s.settings.rate_code,
    "activate": lambda s: s.settings.rate_activate,
    "reset": lambda s: s.settings.rate_reset,
    "token": lambda s: s.settings.rate_token,
    "code_sending": lambda s: s.settings.rate_code_sending,
    "access_code": lambda s: s.settings.rate_access_code,
    "prescription": lambda s: s.settings.rate_prescription,  # a pharmacist's look-ups by number (carnet.prescribing)
    "shl": lambda s: (s.settings.shl_requests_per_minute, 60),  # SMART Health Link manifests and files
}


def _epoch(services: Services) -> int:
    return int(services.clock().timestamp())


def hit_in(conn: Connection, services: Services, name: str, subject: str) -> int:
    """Count one hit on limit ``name`` for ``subject`` (an address, or a hashed identifier) in the caller's
    transaction. Returns 0 when within the limit, else the seconds to wait (for ``Retry-After``)."""
    count, seconds = LIMITS[name](services)
    if count <= 0:
        return 0
    now = _epoch(services)
    period = now // seconds
    t = rate_limit.c
    stmt = insert_for(conn, rate_limit).values(key=keyed(services.keyring, "rate", name, subject), period=period,
                                               hits=1, previous=0, expires_at=(period + 2) * seconds)
    new = stmt.excluded
    same = t.period >= new.period  # the stored window, or a later one (written by a node whose clock runs ahead)
    stmt = stmt.on_conflict_do_update(index_elements=[t.key], set_={
        "previous": case((same, t.previous), (t.period == new.period - 1, t.hits), else_=0),
        "hits": case((same, t.hits + 1), else_=1),
        "period": case((same, t.period), else_=new.period),
        "expires_at": case((same, t.expires_at), else_=new.expires_at),
    }).returning(t.hits, t.previous, t.period)
    row = conn.execute(stmt).one()
    return _wait(count, seconds, now, row.period, row.hits, row.previous)


def _wait(count: int, seconds: int, now: int, period: int, hits: int, previous: int) -> int:
    """0 if this hit is within the limit, else the seconds until a next hit would be."""
    elapsed = max(0, now - period * seconds)
    if hits + previous * (seconds - elapsed) / seconds <= count:
        return 0
    if hits + 1 <= count:  # later in this window, once the previous window weighs little enough
        return max(1, math.ceil(seconds * (1 - (count - hits - 1) / previous)) - elapsed)
    # in the next window, once this one's hits weigh little enough
    return max(1, (period + 1) * seconds - now + math.ceil(seconds * (1 - (count - 1) / hits)))


def hit(services: Services, name: str, subject: str) -> int:
    """:func:`hit_in` in a transaction of its own (committed whatever the request does next)."""
    if LIMITS[name](services)[0] <= 0:
        return 0
    with services.engine.begin() as conn:
        return hit_in(conn, services, name, subject)


def prune(services: Services, batch: int = 5000) -> int:
    """Delete expired rows of both tables (the worker's periodic job), a batch at a time; returns how many went.
    A sign-in counter whose notice is still due, or that remembers a notice sent within the notice period, stays."""
    now = _epoch(services)
    notice_period = services.settings.throttle_notice_hours * 3600
    gone = 0
    for table, extra in ((rate_limit, None),
                         (sign_in_failure, (sign_in_failure.c.notice_due.is_(None),
                                            or_(sign_in_failure.c.noticed_at.is_(None),
                                                sign_in_failure.c.noticed_at < now - notice_period)))):
        while True:
            cond = [table.c.expires_at < now, *(extra or ())]
            with services.engine.begin() as conn:
                keys = conn.execute(table.select().with_only_columns(table.c.key).where(*cond).limit(batch)
                                    ).scalars().all()
                if keys:
                    conn.execute(delete(table).where(table.c.key.in_(keys), *cond))
            gone += len(keys)
            if len(keys) < batch:
                break
    return gone
