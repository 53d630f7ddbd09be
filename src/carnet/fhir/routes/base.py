"""What every family of routes shares: the :class:`Route` a family declares, the :class:`Call` a handler receives
(the request, the services, the caller's claims; :meth:`Call.run` runs the work in one transaction with the caller's
context), and the small parsing helpers the handlers have in common."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from carnet.accounts.service import acting_link
from carnet.auth.claims import AssertionClaims
from carnet.auth.web import TokenCaller, resolve_actor
from carnet.context import Context, Services, run
from carnet.documents.validate import validate
from carnet.errors import FhirError, invalid, not_found
from carnet.fhir.http import FhirResponse, json_body, searchset

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    resource: str | None  # None: a whole-system interaction
    interaction: str  # FHIR: read, search-type, create, patch, transaction; or "operation"
    method: str
    path: str
    handler: Handler
    scope: tuple[str, str] | None  # (resource type, SMART permission letter) checked before the handler
    search_params: tuple[tuple[str, str], ...] = ()
    spec: str = ""  # the transaction or section implemented
    operation: str | None = None  # for interaction "operation": its name, e.g. "close"
    statuses: tuple[int, ...] = ()  # success statuses, when not the interaction's usual one (OpenAPI description)
    produces: str | None = None  # the media type of a success that is not a FHIR resource (``*/*``: the document's)
    accepts: tuple[str, ...] = ()  # result parameters a search takes beyond the common ones (``_sort``)
    includes: tuple[str, ...] = ()  # the ``_include`` values a search supports (CapabilityStatement searchInclude)
    throttled: bool = False  # may answer 429 (attempts at a guessable secret are rate limited)


#: Parameters every search takes (FHIR R4 §3.1.1.5, §3.1.1.6): paging, the answer's format, a count only
#: (``_summary=count``) and whether to count at all (``_total``).
COMMON = frozenset({"_count", "_offset", "_format", "_summary", "_total"})
TOTALS = ("none", "estimate", "accurate")
#: Search parameters Carnet knows of but does not support, with what to do instead.
UNSUPPORTED = {
    "_include": "_include is not supported: read each referenced resource by its id (Patient/{id}, "
                "Practitioner/{id}, DocumentReference/{id})",
    "_revinclude": "_revinclude is not supported: search the referring resources with their own parameters",
    "_elements": "_elements is not supported: the whole resource is returned",
    "_contained": "_contained is not supported",
    "_has": "_has is not supported",
    "_totalMethod": "_totalMethod is not a FHIR parameter: use _summary=count, or send Prefer: handling=lenient to "
                    "have it ignored",
}


@dataclass
class Call:
    request: Request
    services: Services
    claims: AssertionClaims  # who the token says is calling; resolved to an Actor inside each transaction
    route: Route | None = None
    scopes: frozenset[str] = frozenset()  # the access token's scopes (an included resource type must be in them)
    modes: dict[str, str] = field(default_factory=dict)  # the search's ``_summary`` and ``_total``
    include: list[str] = field(default_factory=list)  # the search's supported ``_include`` values

    @property
    def base(self) -> str:
        return f"{self.services.settings.base_url}/fhir"

    def run(self, work: Callable[[Context], Any], *, caller_with_dossier: bool = False) -> Awaitable[Any]:
        """Run ``work`` in one transaction with the caller's context. The caller is resolved first thing; with
        ``caller_with_dossier`` (the hot reads and the publishes, issue 11) at the first :meth:`Context.dossier`
        instead, in the same statement as that dossier for a professional on PostgreSQL
        (:class:`carnet.auth.web.TokenCaller`), and before the commit or the error at the latest (a caller who may
        not call gets its 401 whatever else the request did wrong)."""
        claims = self.claims
        if caller_with_dossier:
            return run_in_threadpool(run, self.services, TokenCaller(claims, acting_link), work)
        return run_in_threadpool(run, self.services, lambda conn: resolve_actor(conn, claims, acting_link), work)

    @property
    def lenient(self) -> bool:
        """``Prefer: handling=lenient`` (FHIR R4 §3.1.1.5 and §3.2.0.1.2): unknown or unsupported search parameters
        are ignored, and left out of the ``self`` link; strict (refused with a 400 naming them) is the default."""
        prefs = [p.strip().replace(" ", "").lower() for h in self.request.headers.getlist("prefer")
                 for p in h.split(",")]
        return "handling=lenient" in prefs

    def params(self, raw: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
        """The search's parameters (the query's, or ``raw`` for a POST ``_search``), for a search route: those the
        route does not declare refused (strict) or dropped (lenient), ``_summary`` and ``_total`` checked here.
        A known parameter with a bad value is refused in both modes (by the handler or the service). ``_summary`` and
        ``_total`` are not returned: they are kept in :attr:`modes`."""
        items = list(self.request.query_params.multi_items()) if raw is None else raw
        if self.route is None or self.route.interaction != "search-type":
            return items
        known = {name for name, _ in self.route.search_params} | set(self.route.accepts) | COMMON
        if self.route.includes:
            known.add("_include")
        out = []
        for name, value in items:
            base = name.split(":")[0]
            if base not in known:
                if self.lenient:
                    continue
                raise FhirError(400, "not-supported", UNSUPPORTED.get(base, "Unknown search parameter"), name)
            if base == "_summary" and value != "count":
                if self.lenient and value == "false":
                    continue
                raise FhirError(400, "not-supported", "Only _summary=count is supported", name)
            if base == "_total" and value not in TOTALS:
                raise FhirError(400, "invalid", "_total is none, estimate or accurate", name)
            if base == "_include" and value not in self.route.includes:
                if self.lenient:
                    continue
                raise FhirError(400, "not-supported", "Supported: _include=" + ", ".join(self.route.includes), name)
            if base in ("_summary", "_total", "_include") and ":" in name:
                raise FhirError(400, "not-supported", "Unsupported modifier", name)
            if base in ("_summary", "_total"):
                self.modes[base] = value  # applied by :meth:`searchset`, not by the handler
                continue
            if base == "_include":
                if value not in self.include:
                    self.include.append(value)  # the handler adds them; :meth:`searchset` shows them in the links
                continue
            out.append((name, value))
        return out

    def searchset(self, resource_type: str, rows: list[str], total: int, params: list[tuple[str, str]], count: int,
                  offset: int, included: list[tuple[str, str]] | None = None) -> FhirResponse:
        """The searchset Bundle of a search: with ``_summary=count`` only its total (the search ran, through the
        policy, and was audited, with a page of 0), with ``_total=none`` no total. The links carry the parameters
        that were applied, ``_summary`` and ``_total`` included, never an ignored one."""
        shown = [*params, *(("_include", v) for v in self.include), *self.modes.items()]
        if self.modes.get("_summary") == "count":
            return FhirResponse(searchset(self.base, resource_type, [], total, shown, 0, offset))
        return FhirResponse(searchset(self.base, resource_type, rows, total, shown, count, offset,
                                      include_total=self.modes.get("_total") != "none", included=included))

    def page(self, params: list[tuple[str, str]] | None = None) -> tuple[int, int]:
        s = self.services.settings
        q = dict(params) if params is not None else self.request.query_params
        try:
            count = int(q.get("_count", s.page_size))
            offset = int(q.get("_offset", 0))
        except ValueError:
            raise invalid("_count and _offset must be integers", "_count") from None
        if count < 0 or offset < 0:
            raise invalid("_count and _offset must not be negative", "_count")
        if "count" in (self.modes.get("_summary"), q.get("_summary")):
            return 0, offset  # only the total: the search runs (and is audited) with a page of none
        return min(count, s.max_page_size), offset


def created(body: str, location: str, version: int = 1) -> FhirResponse:
    return FhirResponse(body, 201, headers={"Location": location, "ETag": f'W/"{version}"'})


def uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found() from None


def parameters(body: Any) -> dict[str, Any]:
    validate(body, "Parameters")
    out: dict[str, Any] = {}
    for p in body.get("parameter") or []:
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        out[p.get("name")] = value
    return out


async def optional_parameters(call: Call) -> dict[str, Any]:
    """An operation's Parameters; an empty body means none."""
    if not await call.request.body():
        return {}
    return parameters(await json_body(call.request, 64 * 1024))
