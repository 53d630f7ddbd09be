"""The public face of SMART Health Links (issue 13 §2; docs/SHARING.md): what a recipient with no account reaches.

- ``POST /shl/{id}``: the manifest request (HL7 SMART Health Links, "SMART Health Link Manifest Request"): JSON body
  ``{recipient, passcode?, embeddedLengthMax?}`` → ``200 {files: [...]}``, ``401 {remainingAttempts}`` for a wrong
  passcode, ``404`` for a link that is unknown or no longer active, ``429`` (with ``Retry-After``) past
  ``CARNET_SHL_REQUESTS_PER_MINUTE`` requests a minute from one address (each process counts its own);
- ``GET /shl/{id}/file/{n}?ticket=…``: a ``.files.location`` file, ``content-type: application/jose``;
- ``GET /shl/view``: the viewer page, which reads the ``#shlink:/…`` fragment in the browser (the key never reaches
  the server), asks for the manifest and decrypts the files with WebCrypto (AES-256-GCM), all in ``static/``
  (no inline script or style: the portals' strict CSP applies).

Cross-origin requests are allowed on the manifest and files (``Access-Control-Allow-Origin: *``): any SMART Health
Links client, a web page elsewhere included, may open a link. This face decides nothing: :mod:`carnet.sharing` does,
through the policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from carnet import sharing, throttle
from carnet.context import Services
from carnet.errors import FhirError

HERE = Path(__file__).parent
MAX_BODY = 16 * 1024
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "content-type", "Access-Control-Max-Age": "600"}
VIEWER_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                                "object-src 'none'; frame-src blob:; frame-ancestors 'none'; form-action 'none'; "
                                "base-uri 'none'"),
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers={**CORS, "Cache-Control": "no-store", **(headers or {})})


def _error(exc: FhirError) -> Response:
    return _json({"error": str(exc)}, exc.status, exc.headers)


def routes(services: Services) -> list[Route | Mount]:
    async def limited(request: Request) -> Response | None:
        """The per-address limit on the link endpoints, counted in the table every node shares (carnet.throttle)."""
        address = throttle.client_address(request.scope, services.settings.trusted_proxies)
        wait = await run_in_threadpool(throttle.hit, services, "shl", address)
        if wait:
            return _json({"error": "Too many requests: wait before trying again."}, 429, {"Retry-After": str(wait)})
        return None

    async def manifest(request: Request) -> Response:
        refused = await limited(request)
        if refused is not None:
            return refused
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _json({"error": "The request is too large."}, 413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _json({"error": "The body must be JSON."}, 400)
        try:
            result = await run_in_threadpool(sharing.open_manifest, services, request.path_params["id"], body)
        except FhirError as exc:
            return _error(exc)
        if isinstance(result, sharing.WrongPasscode):
            return _json({"remainingAttempts": result.remaining}, 401)
        return _json({"files": result.files})

    async def file(request: Request) -> Response:
        refused = await limited(request)
        if refused is not None:
            return refused
        try:
            index = int(request.path_params["n"])
            jwe = await run_in_threadpool(sharing.open_file, services, request.path_params["id"], index,
                                          request.query_params.get("ticket", ""),
                                          request.query_params.get("recipient"))
        except (FhirError, ValueError) as exc:
            return _error(exc if isinstance(exc, FhirError) else FhirError(404, "not-found", "Not found"))
        return Response(jwe, media_type="application/jose", headers={**CORS, "Cache-Control": "no-store"})

    async def preflight(_: Request) -> Response:
        return Response(status_code=204, headers=CORS)

    async def viewer(_: Request) -> Response:
        return FileResponse(HERE / "static" / "viewer.html", media_type="text/html; charset=utf-8",
                            headers=VIEWER_HEADERS)

    return [
        Route("/shl/view", viewer, methods=["GET"]),
        Mount("/shl/static", app=StaticFiles(directory=str(HERE / "static")), name="shl-static"),
        Route("/shl/{id:str}", manifest, methods=["POST"]),
        Route("/shl/{id:str}", preflight, methods=["OPTIONS"]),
        Route("/shl/{id:str}/file/{n:int}", file, methods=["GET"]),
        Route("/shl/{id:str}/file/{n:int}", preflight, methods=["OPTIONS"]),
    ]
