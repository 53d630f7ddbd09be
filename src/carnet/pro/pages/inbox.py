"""The médecin traitant's inbox (``/pro/inbox``): notices of emergency (break the glass) and regulation accesses to
their patients' dossiers, newest first, each with who accessed, the reason they gave, the patient, a link to the
dossier and "mark as read". What a notice may show is the policy's decision (:func:`carnet.notify.notices.inbox`): a
former médecin traitant sees the date and the mode only."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from carnet.errors import FhirError
from carnet.identity.professions import profession_label
from carnet.ids import parse_id
from carnet.notify import notices as inbox_notices
from carnet.portal.web import offset_param
from carnet.pro.web import ProPage, pro_page

PAGE = 25


@pro_page("GET", "/pro/inbox")
async def inbox(p: ProPage) -> Response:
    offset = offset_param(p.request.query_params.get("offset"))
    notices, total, unread = await p.run(lambda ctx: inbox_notices.inbox(ctx, PAGE, offset))
    lang: Any = "en" if p.lang.code == "en" else "fr"

    def profession(code: str | None) -> str:
        try:
            return profession_label(code, lang) if code else ""
        except KeyError:
            return code or ""

    return p.render("pro/inbox.html", title=p._("Notices"), notices=notices, total=total, unread=unread,
                    offset=offset, page=PAGE, profession=profession,
                    flash=p._("The notice is marked as read.") if p.request.query_params.get("done") else "",
                    lead=p._("Emergency (break the glass) and SAMU regulation accesses to the dossiers of the "
                             "patients whose médecin traitant you are."))


@pro_page("POST", "/pro/inbox/read")
async def mark_read(p: ProPage) -> Response:
    form = await p.form()
    key, notice_id = parse_id(str(form.get("dossier") or "")), parse_id(str(form.get("notice") or ""))
    if key is None or notice_id is None:
        raise FhirError(404, "not-found", "This notice does not exist, or is not yours.")
    await p.run(lambda ctx: inbox_notices.mark_notice_read(ctx, key, notice_id))
    offset = offset_param(form.get("offset"))
    return p.redirect(f"/pro/inbox?done=1{f'&offset={offset}' if offset else ''}")
