"""Measurements read as FHIR ``Observation`` (issue 17: the read API others draw from): a search on ``Observation``
whose ``code`` names measures of :mod:`carnet.measures.catalogue` (LOINC, e.g. ``code=http://loinc.org|2339-0``,
or an ISO/IEEE 11073 code with its system), by ``patient`` and ``date`` (``ge``/``gt``/``le``/``lt``/``eq``), newest
first; and a read by the id a search or an upload gave. The clinical family's Observation handlers hand these over
(:mod:`carnet.fhir.routes.clinical`), so that one route table entry serves both. Handlers never decide: the
measurements service asks the policy and audits.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from starlette.responses import Response

from carnet.context import Context
from carnet.documents.search_params import date_range
from carnet.errors import FhirError
from carnet.fhir.http import FhirResponse
from carnet.fhir.routes.base import Call
from carnet.fhir.transaction import resolve_patient
from carnet.measures import phd
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from carnet.measures.fhir import as_observation, measures_named

#: what the clinical Observation search accepts only for measurements
DATE = ("date", "date")


def wanted(params: list[tuple[str, str]]) -> list[Measure] | None:
    """The measures a search asks for, or ``None`` when it is a search of other Observations."""
    tokens = [v for name, value in params if name == "code" for v in value.split(",") if v]
    return measures_named(tokens) if tokens else None


def _span(params: list[tuple[str, str]]) -> tuple[dt.datetime | None, dt.datetime | None]:
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    for name, value in params:
        if name != "date":
            continue
        prefix, lo, hi = date_range(value, "date")
        bounds = {"eq": (lo, hi), "ge": (lo, None), "gt": (hi, None), "sa": (hi, None), "le": (None, hi),
                  "lt": (None, lo), "eb": (None, lo)}.get(prefix)
        if bounds is None:
            raise FhirError(400, "not-supported", "date supports the prefixes eq, ge, gt, le, lt", "date")
        if bounds[0] is not None:
            start = bounds[0] if start is None else max(start, bounds[0])
        if bounds[1] is not None:
            end = bounds[1] if end is None else min(end, bounds[1])
    return start, end


async def search(call: Call, params: list[tuple[str, str]], asked: list[Measure], count: int,
                 offset: int) -> Response:
    for name, _ in params:
        if name.split(":")[0] not in ("patient", "subject", "code", "date", "_count", "_offset", "_format"):
            raise FhirError(400, "not-supported", "A measurement search takes patient, code and date", name)
    q = dict(params)
    ref = q.get("patient") or q.get("subject") or ""
    ref = ref if "/" in ref else f"Patient/{ref}"
    start, end = _span(params)

    def work(ctx: Context) -> tuple[list[str], int]:
        key = resolve_patient(ctx, ref, {}, call.base, "patient")
        rows, total = measures.search(ctx, key, asked, start, end, count, offset)
        return [json.dumps(as_observation(key, r), separators=(",", ":")) for r in rows], total

    found, total = await call.run(work)
    return call.searchset("Observation", found, total, params, count, offset)


def parsed_id(value: str) -> tuple[uuid.UUID, int, int, dt.datetime] | None:
    return phd.parse_observation_id(value)


async def read(call: Call, parsed: tuple[uuid.UUID, int, int, dt.datetime]) -> Response:
    key, measure, source_no, when = parsed
    try:
        m = Measure(measure)
    except ValueError:
        raise FhirError(404, "not-found", "Observation not found") from None

    def work(ctx: Context) -> dict[str, Any]:
        return as_observation(key, measures.read_one(ctx, key, m, source_no, when))

    return FhirResponse(json.dumps(await call.run(work), separators=(",", ":")))
