"""What every family of routes shares: the :class:`Route` a family declares, the :class:`Call` a handler receives
(the request, the services, the caller's claims; :meth:`Call.run` runs the work in one transaction with the caller's
context), and the small parsing helpers the handlers have in common."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from carnet.accounts.service import acting_link
from carnet.auth.claims import AssertionClaims
from carnet.auth.web import resolve_actor
from carnet.context import Context, Services, run
from carnet.documents.validate import validate
from carnet.errors import invalid, not_found
from carnet.fhir.http import FhirResponse, json_body

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
    throttled: bool = False  # may answer 429 (attempts at a guessable secret are rate limited)


@dataclass
class Call:
    request: Request
    services: Services
    claims: AssertionClaims  # who the token says is calling; resolved to an Actor inside each transaction

    @property
    def base(self) -> str:
        return f"{self.services.settings.base_url}/fhir"

    def run(self, work: Callable[[Context], Any]) -> Awaitable[Any]:
        claims = self.claims
        return run_in_threadpool(run, self.services, lambda conn: resolve_actor(conn, claims, acting_link), work)

    def params(self) -> list[tuple[str, str]]:
        return list(self.request.query_params.multi_items())

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
