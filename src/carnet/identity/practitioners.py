"""Reading the professionals' directory (the ``practitioner`` table, kept by :mod:`carnet.admin` and the directory
feeds): who is enabled, a few rows by national id, the names of organisations. Directory data only, no dossier data;
in the caller's connection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, or_, select

from carnet.db.tables import practitioner


def find(conn: Connection, text: str = "", limit: int = 100) -> list[Any]:
    """Enabled professionals, by family then given name; with ``text``, only the one with that national id or those
    whose family name starts with it (case-insensitive)."""
    q = select(practitioner).where(practitioner.c.enabled.is_(True))
    if text:
        q = q.where(or_(practitioner.c.national_id == text,
                        func.lower(practitioner.c.family).startswith(text.lower(), autoescape=True)))
    return list(conn.execute(q.order_by(practitioner.c.family, practitioner.c.given).limit(limit)))


def enabled(conn: Connection, national_id: str) -> bool:
    """Whether this professional is in the directory and enabled."""
    return bool(conn.execute(select(practitioner.c.enabled).where(practitioner.c.national_id == national_id))
                .scalar())


def by_ids(conn: Connection, national_ids: set[str] | list[str]) -> dict[str, Any]:
    """Directory rows for these national ids (a name, a profession and an organisation to show), by id."""
    wanted = sorted({i for i in national_ids if i})
    if not wanted:
        return {}
    rows = conn.execute(select(practitioner).where(practitioner.c.national_id.in_(wanted))).all()
    return {r.national_id: r for r in rows}


def organisation_names(conn: Connection, organisation_ids: set[str] | list[str]) -> dict[str, str]:
    """The name the directory gives each organisation (from its professionals' records), by organisation id."""
    wanted = sorted({i for i in organisation_ids if i})
    if not wanted:
        return {}
    rows = conn.execute(select(practitioner.c.organisation_id, practitioner.c.organisation_name).where(
        practitioner.c.organisation_id.in_(wanted), practitioner.c.organisation_name.is_not(None))).all()
    return {r.organisation_id: r.organisation_name for r in rows}
