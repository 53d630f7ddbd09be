"""Access codes (issue 13 §1; docs/ACCESS.md, "Access codes"), as two operations on the Patient:

- ``POST /fhir/Patient/{id}/$access-code`` (a patient app, scope ``Consent.c``): issue a code. In: ``Parameters``
  with optional ``hours`` (valueInteger, 1–720, default 24), ``label`` (valueString, the patient's own note) and
  ``kind`` (valueCode ``access``, the default, or ``hidden``: the code for the documents the patient hid). Out:
  ``Parameters`` with ``code`` (``XXXX-XXXX``, shown this once), ``expires`` (valueInstant), ``id`` and ``kind``.
- ``POST /fhir/Patient/{id}/$redeem-access-code`` (a professional's software, scope ``Consent.c``): take up a code.
  In: ``Parameters`` with ``code`` (valueString). The professional finds ``{id}`` by INS first (ITI-78 / TD0.2
  ``GET /fhir/Patient?identifier=``, answered to any professional not blocked). Out: ``Parameters`` with ``consent``
  (a Reference to the authorization it made, or, for a ``hidden`` code, the authorization it added the hidden
  documents to), ``patient`` and ``kind``. A hidden-documents code from a professional not authorized in their own
  name: 409 (the code stays alive). A wrong code answers 403 (counted and audited); too
  many, 429 with ``Retry-After``; already authorized, 409.

Operations on the Patient rather than a ``Consent`` create: the code is no consent resource of its own, and an
integrator who already calls ``$close``/``$copy`` on the Patient finds these beside them.
"""

from __future__ import annotations

import datetime as dt

from starlette.responses import Response

from carnet import codes, throttle
from carnet.errors import FhirError, unprocessable
from carnet.fhir.http import FhirResponse
from carnet.fhir.routes.base import Call, Route, optional_parameters, uuid_or_404

NO_STORE = {"Cache-Control": "no-store"}


def _instant(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def issue_code(call: Call, id: str) -> Response:
    key = uuid_or_404(id)
    params = await optional_parameters(call)
    hours = params.get("hours")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int)):
        raise unprocessable("hours must be a whole number of hours", "Parameters.parameter[hours]")
    label = params.get("label")
    if label is not None and not isinstance(label, str):
        raise unprocessable("label must be a string", "Parameters.parameter[label]")
    kind = params.get("kind", "access")
    if kind not in codes.KINDS:
        raise unprocessable("kind must be 'access' (a new professional) or 'hidden' (the documents the patient hid)",
                            "Parameters.parameter[kind]")
    issued = await call.run(lambda ctx: codes.issue(ctx, key, hours, label, kind))
    return FhirResponse({"resourceType": "Parameters", "parameter": [
        {"name": "code", "valueString": issued.code},
        {"name": "expires", "valueInstant": _instant(issued.expires_at)},
        {"name": "id", "valueId": str(issued.code_id)}, {"name": "kind", "valueCode": kind}]}, headers=NO_STORE)


async def redeem_code(call: Call, id: str) -> Response:
    key = uuid_or_404(id)
    params = await optional_parameters(call)
    typed = params.get("code")
    if not isinstance(typed, str) or not typed.strip():
        raise FhirError(400, "required", "code: required (the access code the patient gave)",
                        "Parameters.parameter[code]")
    address = throttle.client_address(call.request.scope, call.services.settings.trusted_proxies)
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(codes.check_rate, call.services, address)
    done = await call.run(lambda ctx: codes.redeem(ctx, key, typed))
    if isinstance(done, codes.WrongCode):
        if done.frozen:
            raise codes.frozen_error(call.services.settings.access_code_freeze_minutes * 60)
        raise FhirError(403, "forbidden", codes.WRONG, "Parameters.parameter[code]")
    return FhirResponse({"resourceType": "Parameters", "parameter": [
        {"name": "consent", "valueReference": {"reference": f"Consent/{done.grant_id}"}},
        {"name": "patient", "valueReference": {"reference": f"Patient/{key}"}},
        {"name": "kind", "valueCode": done.kind}]}, headers=NO_STORE)


ROUTES: tuple[Route, ...] = (
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$access-code", issue_code, ("Consent", "c"),
          spec="issue a single-use access code for a new professional (issue 13 §1)", operation="access-code"),
    Route("Patient", "operation", "POST", "/fhir/Patient/{id}/$redeem-access-code", redeem_code, ("Consent", "c"),
          spec="take up an access code: become authorized on the dossier (issue 13 §1)",
          operation="redeem-access-code", throttled=True),
)
