"""Parsing FHIR search parameters (R4 §3.1.1) into SQL conditions on the document tables (ITI-67, for the FHIR
face; the documents' search applies them under the caller's Visibility)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, not_, or_

from carnet.db.tables import document
from carnet.documents.service import token_condition
from carnet.errors import FhirError

PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb")
TOKEN_PARAMS = {"category", "event", "facility", "format", "identifier", "related", "security-label", "setting",
                "type"}
DATE_PARAMS = {"creation": document.c.creation, "date": document.c.date, "_lastUpdated": document.c.last_updated}
DOCUMENT_PARAMS = TOKEN_PARAMS | set(DATE_PARAMS) | {"patient", "patient.identifier", "subject", "status", "_id",
                                                      "author.given", "author.family", "period", "_count", "_sort",
                                                      "_offset", "_format", "_total"}


def date_range(value: str, param: str) -> tuple[str, dt.datetime, dt.datetime]:
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    raw = value[2:] if value[:2] in PREFIXES else value
    try:
        if len(raw) == 4:
            start = dt.datetime(int(raw), 1, 1, tzinfo=dt.UTC)
            end = dt.datetime(int(raw) + 1, 1, 1, tzinfo=dt.UTC)
        elif len(raw) == 7:
            y, m = int(raw[:4]), int(raw[5:7])
            start = dt.datetime(y, m, 1, tzinfo=dt.UTC)
            end = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=dt.UTC)
        elif len(raw) == 10:
            d = dt.date.fromisoformat(raw)
            start = dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
            end = start + dt.timedelta(days=1)
        else:
            start = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
            start = start.astimezone(dt.UTC)  # SQLite keeps no offset: compare UTC with UTC
            end = start + dt.timedelta(seconds=1)
    except ValueError:
        raise FhirError(400, "invalid", "Invalid date search value", param) from None
    return prefix, start, end


def date_condition(col: Any, value: str, param: str) -> Any:
    prefix, start, end = date_range(value, param)
    return {
        "eq": and_(col >= start, col < end), "ne": or_(col < start, col >= end), "lt": col < start,
        "le": col < end, "gt": col >= end, "ge": col >= start, "sa": col >= end, "eb": col < start,
    }[prefix]


def period_condition(value: str) -> Any:
    """``period``: the document's service period overlaps the searched range (R4 date search on a Period)."""
    prefix, start, end = date_range(value, "period")
    s, e = document.c.period_start, document.c.period_end
    if prefix in ("lt", "eb"):
        return s < start
    if prefix == "le":
        return s < end
    if prefix in ("gt", "sa"):
        return or_(e.is_(None), e >= end)
    if prefix == "ge":
        return or_(e.is_(None), e >= start)
    overlap = and_(s < end, or_(e.is_(None), e >= start))
    return not_(overlap) if prefix == "ne" else overlap


def _like_escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")


def _given_matches(value: str, exact: bool) -> Any:
    """Given names are stored space-joined; each one is a value of its own (FHIR string search on HumanName.given):
    a prefix of any of them matches, or with ``:exact`` any one of them exactly."""
    col, v = document.c.author_given, _like_escape(value)
    if exact:
        return or_(col == value, col.like(v + " %", escape="\\"), col.like("% " + v, escape="\\"),
                   col.like("% " + v + " %", escape="\\"))
    return or_(col.ilike(v + "%", escape="\\"), col.ilike("% " + v + "%", escape="\\"))


def token_values(raw: str) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    for part in raw.split(","):
        if "|" in part:
            system, code = part.split("|", 1)
            out.append((system, code))
        else:
            out.append((None, part))
    return out


def document_conditions(params: list[tuple[str, str]]) -> list[Any]:
    """Every parameter but patient/paging/sort. Unknown parameters are refused (400), not silently ignored."""
    conds: list[Any] = []
    for name, value in params:
        base, _, modifier = name.partition(":")
        if base not in DOCUMENT_PARAMS:
            raise FhirError(400, "not-supported", "Unknown search parameter", name)
        if base in ("patient", "patient.identifier", "subject", "_count", "_sort", "_offset", "_format", "_total"):
            continue
        if modifier and not ((base in TOKEN_PARAMS | {"status"} and modifier == "not")
                             or (base in ("author.given", "author.family") and modifier == "exact")):
            raise FhirError(400, "not-supported", "Unsupported modifier", name)
        if base in TOKEN_PARAMS:
            values = token_values(value)
            if base == "related":  # a reference: id, Type/id or an absolute URL all name the same document
                values = [(s, c.rstrip("/").rsplit("/", 1)[-1]) for s, c in values]
            cond = token_condition(base, values)
            conds.append(not_(cond) if modifier == "not" else cond)
        elif base in DATE_PARAMS:
            conds.append(date_condition(DATE_PARAMS[base], value, name))
        elif base == "period":
            conds.append(period_condition(value))
        elif base == "status":
            cond = document.c.status.in_(value.split(","))
            conds.append(not_(cond) if modifier == "not" else cond)
        elif base == "_id":
            import uuid

            ids = []
            for v in value.split(","):
                try:
                    ids.append(uuid.UUID(v))
                except ValueError:
                    continue
            conds.append(document.c.document_id.in_(ids))
        elif base == "author.family":
            col = document.c.author_family
            conds.append(or_(*[col == v if modifier == "exact" else col.ilike(_like_escape(v) + "%", escape="\\")
                               for v in value.split(",")]))
        elif base == "author.given":
            conds.append(or_(*[_given_matches(v, modifier == "exact") for v in value.split(",")]))
    return conds
