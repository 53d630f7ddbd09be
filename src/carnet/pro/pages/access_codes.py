""""I have an access code" (issue 13 §1): on the find-by-INS page, a professional who may not read the dossier yet
types the code the patient read out to them and becomes authorized; one already authorized types the patient's
code for the hidden documents on the same page and then sees them (the code's kind decides; through
:mod:`carnet.codes`: the policy's ``redeem_code`` and ``redeem_hidden_code``, the per-address rate limit, the
per-dossier count of wrong codes, all audited there)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from carnet import codes, throttle
from carnet.errors import FhirError
from carnet.ids import parse_id
from carnet.pro.web import ProPage, pro_page


@pro_page("POST", "/pro/access-code")
async def redeem(p: ProPage) -> Response:
    form = await p.form()
    key = parse_id(str(form.get("dossier") or ""))
    if key is None:
        raise FhirError(404, "not-found", "Patient not found")
    back = {"ins": str(form.get("ins") or ""), "system": str(form.get("system") or "nir")}
    typed = str(form.get("code") or "")
    if not typed.strip():
        return p.redirect(f"/pro/?{urlencode({**back, 'code': 'missing'})}#access-code")
    address = throttle.client_address(p.request.scope, p.settings.trusted_proxies)
    await run_in_threadpool(codes.check_rate, p.services, address)
    try:
        done = await p.run(lambda ctx: codes.redeem(ctx, key, typed))
    except FhirError as exc:
        if exc.status != 409 or str(exc) != codes.NEEDS_AUTHORIZATION:
            raise
        return p.redirect(f"/pro/?{urlencode({**back, 'code': 'needs-authorization'})}#access-code")
    if isinstance(done, codes.WrongCode):
        return p.redirect(f"/pro/?{urlencode({**back, 'code': 'frozen' if done.frozen else 'wrong'})}#access-code")
    return p.redirect(f"/pro/dossier/{key}?granted={'hidden' if done.kind == 'hidden' else 'code'}")
