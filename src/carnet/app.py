"""The application factory: error handling order, the FHIR route table, OAuth endpoints.

Order of error handling, outermost last: a :class:`~carnet.errors.FhirError` becomes its OperationOutcome; a
Starlette HTTP error (unknown path 404, wrong method 405) becomes an OperationOutcome with the same status; a blob
store that cannot be reached becomes a 503 (``transient``; inside a unit of work :func:`carnet.context.run` already
turns it into that FhirError, for the portals too); anything else becomes a generic 500 OperationOutcome with no
exception text (it could carry health data) and a log line that names only the exception type and the request id.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from carnet import __version__, health, shlink, throttle
from carnet.accounts import service as accounts
from carnet.auth import smart as smart_auth
from carnet.auth import web as auth_web
from carnet.auth.keys import ServerKey
from carnet.auth.scopes import scope_allows
from carnet.blobs import BlobStoreUnavailable
from carnet.compose import build_services
from carnet.config import Settings
from carnet.context import Services
from carnet.errors import FhirError
from carnet.fhir.http import FhirResponse
from carnet.fhir.openapi import PATH as OPENAPI_PATH
from carnet.fhir.openapi import openapi_document
from carnet.fhir.routes import ROUTES, Call, Route, capability_statement
from carnet.fhir.xml import to_xml, wants_xml
from carnet.ids import new_id
from carnet.logs import configure as configure_logs
from carnet.portal import app as portal_app
from carnet.pro import app as pro_app
from carnet.text import holdable

logger = structlog.get_logger("carnet")


def as_xml(response: FhirResponse) -> Response:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
    return Response(to_xml(bytes(response.body)), status_code=response.status_code, headers=headers,
                    media_type="application/fhir+xml; charset=utf-8")


def _outcome(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> FhirResponse:
    return FhirResponse(FhirError(status, code, text).outcome(), status, headers=headers)


def allowed_methods(app: Any, path: str) -> str:
    """The ``Allow`` header of a 405 on ``path``: every method some route serves at that path. Each FHIR interaction
    (and each portal page) is a route of its own, one method each, and Starlette's 405 names only the first route
    whose path matches: ``/fhir/Condition`` would say ``POST`` though its search answers GET there too."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, StarletteRoute) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _token_key(settings: Settings) -> ServerKey:
    from pathlib import Path

    path = Path(settings.token_key_file) if settings.token_key_file else settings.var_dir / "token-key.pem"
    return ServerKey.load_or_create(path)


def create_app(services: Services | None = None, settings: Settings | None = None) -> FastAPI:
    configure_logs()
    settings = settings or (services.settings if services else Settings())
    services = services or build_services(settings)
    throttle.trusted_networks(settings.trusted_proxies)  # a mistyped CARNET_TRUSTED_PROXIES stops the start
    server_key = _token_key(settings)
    app = FastAPI(title="Carnet", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.state.server_key = server_key

    @app.exception_handler(FhirError)
    async def fhir_error(_: Request, exc: FhirError) -> Response:
        return FhirResponse(exc.outcome(), exc.status, headers=exc.headers)

    @app.exception_handler(BlobStoreUnavailable)
    async def store_unavailable(_: Request, exc: BlobStoreUnavailable) -> Response:
        return _outcome(503, "transient", "The document store is unavailable; please try again in a moment.",
                        headers={"Retry-After": "10"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        text = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Request refused")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(app, request.scope["path"])}
        return _outcome(exc.status_code, code, text, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        rid = str(new_id())  # the error's id, ours (a client's header could carry anything): in the log and the answer
        route = getattr(request.scope.get("route"), "path", None)  # the route template, never the URL
        logger.error("request.failed", error_type=type(exc).__name__, request_id=rid, route=route)
        return _outcome(500, "exception", f"Internal error (request {rid})")

    for route in ROUTES:
        app.router.routes.append(StarletteRoute(route.path, _endpoint(route, services, server_key),
                                                methods=[route.method]))

    app.router.routes.extend(portal_app.routes(services))
    app.router.routes.extend(pro_app.routes(services))
    app.router.routes.extend(shlink.routes(services))  # SMART Health Links: manifest, files, viewer (public)
    app.router.routes.extend(health.routes(services))  # /health/live, /health/ready (docs/SCALE.md)

    @app.get("/fhir/metadata")
    async def metadata(request: Request) -> Response:
        response = FhirResponse(capability_statement(settings.base_url, __version__))
        return as_xml(response) if wants_xml(request) else response

    description = openapi_document(settings.base_url, __version__)

    @app.get(OPENAPI_PATH)
    async def openapi() -> Response:
        """The FHIR API's OpenAPI description, generated from the route table (FastAPI's own is switched off above:
        one description, the table's)."""
        return JSONResponse(description)

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        address = throttle.client_address(request.scope, settings.trusted_proxies)
        wait = await run_in_threadpool(throttle.hit, services, "token", address)
        if wait:  # before the form is even read (CARNET_RATE_TOKEN per client address, shared by every node)
            logger.warning("throttle.refused", status=429, route="/oauth/token")
            return JSONResponse(auth_web.slow_down(wait), status_code=429,
                                headers={"Retry-After": str(wait), "Cache-Control": "no-store", "Pragma": "no-cache"})
        form = await request.form()
        return await run_in_threadpool(auth_web.token_endpoint, services, server_key,
                                       {k: str(v) for k, v in form.items()}, accounts.acting_link)

    @app.post("/oauth/revoke")
    async def revoke(request: Request) -> Response:
        """RFC 7009 token revocation for patient apps (:func:`carnet.auth.smart.revocation_endpoint`), limited like
        the token endpoint."""
        address = throttle.client_address(request.scope, settings.trusted_proxies)
        wait = await run_in_threadpool(throttle.hit, services, "token", address)
        if wait:
            logger.warning("throttle.refused", status=429, route="/oauth/revoke")
            return JSONResponse(auth_web.slow_down(wait), status_code=429,
                                headers={"Retry-After": str(wait), "Cache-Control": "no-store", "Pragma": "no-cache"})
        form = await request.form()
        return await run_in_threadpool(smart_auth.revocation_endpoint, services,
                                       {k: str(v) for k, v in form.items()})

    @app.get("/.well-known/smart-configuration")
    async def smart() -> Response:
        return JSONResponse(auth_web.smart_configuration(services))

    @app.get("/fhir/.well-known/smart-configuration")
    async def smart_fhir() -> Response:
        return JSONResponse(auth_web.smart_configuration(services))

    @app.get("/oauth/jwks")
    async def jwks() -> Response:
        return JSONResponse(server_key.public_jwks())

    return app


def refuse_unholdable_request_text(request: Request) -> None:
    """A 400 for a query parameter or a path segment holding a character Carnet cannot store or serve back (NUL, C0
    controls, lone surrogates; :mod:`carnet.text`): refused at the door like a body's (issue 15 §1), before it could
    reach the database or be echoed into an XML answer that cannot carry it (found by schemathesis, issue 15 §8)."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if not holdable(name) or not holdable(str(value)):
            raise FhirError(400, "structure", "A parameter holds a character that cannot be stored (a control "
                            "character or NUL)", name if holdable(name) and name else None)


def _endpoint(route: Route, services: Services, server_key: ServerKey):
    @functools.wraps(route.handler)
    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            refuse_unholdable_request_text(request)
            who, scopes = auth_web.verify_bearer(services, server_key, request)
            if route.scope and not scope_allows(scopes, route.scope[0], route.scope[1]):
                raise FhirError(403, "forbidden", "The access token's scopes do not cover this interaction",
                                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
            params: dict[str, Any] = dict(request.path_params)
            response = await route.handler(Call(request, services, who, route, frozenset(scopes)), **params)
        except FhirError as exc:
            response = FhirResponse(exc.outcome(), exc.status, headers=exc.headers)
        if isinstance(response, FhirResponse) and wants_xml(request):
            response = as_xml(response)
        logger.info("request", interaction=route.interaction, resource=route.resource, status=response.status_code,
                    ms=round((time.perf_counter() - started) * 1000, 1))
        return response
    return endpoint
