"""Access: who may read the dossier and why, and the patient's means to change it (issue 4 §2).

The médecin traitant, the professionals and care teams authorized (since when, by whom), the blocked professionals,
the legal representatives; authorize, block, unblock, withdraw, designate or change the médecin traitant, the two
objections (break the glass, SAMU regulation) and the access-request setting. Every change goes through
:mod:`carnet.dossier.service` (or :mod:`carnet.tasks.service` for the request setting), which asks the policy and
writes the audit record; a change that removes access asks for a confirmation first.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from carnet import directory
from carnet.context import Context
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from carnet.identity.professions import DOCTOR, profession_label
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

DONE = {
    "authorized": N_("The professional is authorized: they can now read your dossier."),
    "blocked": N_("The professional is blocked: they can no longer read your dossier, even in an emergency."),
    "unblocked": N_("The professional is no longer blocked. If they were authorized before, they are again."),
    "withdrawn": N_("The authorization is withdrawn."),
    "gp": N_("Your médecin traitant is recorded."),
    "gp-removed": N_("You no longer have a médecin traitant in Carnet."),
    "emergency": N_("Your choice about emergency access is saved."),
    "regulation": N_("Your choice about SAMU regulation access is saved."),
    "requests": N_("Your choice about access requests is saved."),
}
CONFIRM = {
    "block": N_("Block this professional? They will no longer be able to read your dossier, not even in an "
                "emergency."),
    "withdraw": N_("Withdraw this authorization? They will no longer be able to read your dossier."),
    "gp-remove": N_("Stop having this doctor as your médecin traitant? They will lose access to your dossier "
                    "unless you authorize them."),
}
CONFIRM_BUTTON = {"block": N_("Yes, block"), "withdraw": N_("Yes, withdraw"), "gp-remove": N_("Yes, stop")}
SUBJECT_KINDS = ("practitioner", "organisation")


def _lang(p: Page) -> Any:
    return "en" if p.lang.code == "en" else "fr"


def _profession(p: Page) -> Any:
    lang = _lang(p)
    return lambda code: profession_label(code, lang) if code else ""


async def _show(p: Page, *, error: str = "", status: int = 200) -> Response:
    key = p.dossier_key
    query = str(p.request.query_params.get("q") or "").strip()[:100]

    def work(ctx: Context) -> tuple[dossiers.AccessOverview, dict[str, Any], dict[str, str], list[Any]]:
        view = dossiers.access_overview(ctx, key)
        found = directory.find(ctx, query) if query else []
        ids = {g.subject_id for g in view.grants + view.blocked if g.subject_kind == "practitioner"}
        ids |= {view.treating_gp or ""}
        orgs = {g.subject_id for g in view.grants if g.subject_kind == "organisation"}
        return view, directory.by_ids(ctx, ids), directory.organisation_names(ctx, orgs), found

    view, pros, orgs, found = await p.run(work)
    standing = {g.subject_id: g.relation for g in view.grants + view.blocked}
    done = DONE.get(str(p.request.query_params.get("done") or ""), "")
    return p.render("portal/access/index.html", status=status, title=p._("Access"),
                    lead=p._("Who can read your dossier and why. You decide: authorize, block, or change your "
                             "médecin traitant."),
                    view=view, pros=pros, orgs=orgs, found=found, query=query, standing=standing,
                    profession=_profession(p), doctor=DOCTOR, flash=p._(done) if done else "", error=error)


@page("GET", "/portal/access")
async def access(p: Page) -> Response:
    return await _show(p)


async def _change(p: Page, work: Any, done: str) -> Response:
    """Run one change; a refusal the patient can act on (409, 422) is shown on the page, nothing changed."""
    try:
        await p.run(work)
    except FhirError as exc:
        if exc.status not in (409, 422):
            raise
        return await _show(p, error=p._(str(exc)), status=exc.status)
    return p.redirect(f"/portal/access?done={done}")


async def _confirm(p: Page, action: str, path: str, subject: str, subject_kind: str) -> Response:
    """The confirmation step for a change that removes access: a page naming whom it is about."""
    key = p.dossier_key

    def work(ctx: Context) -> tuple[dict[str, Any], dict[str, str]]:
        dossiers.access_overview(ctx, key)  # the same check as the Access page: the patient side only
        return directory.by_ids(ctx, {subject}), directory.organisation_names(ctx, {subject})

    pros, orgs = await p.run(work)
    return p.render("portal/access/confirm.html", title=p._("Please confirm"), question=p._(CONFIRM[action]),
                    button=p._(CONFIRM_BUTTON[action]), action=path, subject=subject, subject_kind=subject_kind,
                    pro=pros.get(subject), org=orgs.get(subject), profession=_profession(p))


async def _subject(p: Page) -> tuple[str, str]:
    form = await p.form()
    subject = str(form.get("subject") or "").strip()[:32]
    kind = str(form.get("subject_kind") or "practitioner")
    if not subject or kind not in SUBJECT_KINDS:
        raise FhirError(400, "invalid", "Choose a professional first.")
    return subject, kind


@page("POST", "/portal/access/authorize")
async def authorize(p: Page) -> Response:
    subject, kind = await _subject(p)
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.change_access(ctx, key, kind, subject, "authorized"), "authorized")


@page("POST", "/portal/access/block")
async def block(p: Page) -> Response:
    subject, kind = await _subject(p)
    if (await p.form()).get("confirm") != "yes":
        return await _confirm(p, "block", "/portal/access/block", subject, kind)
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.change_access(ctx, key, kind, subject, "blocked"), "blocked")


@page("POST", "/portal/access/unblock")
async def unblock(p: Page) -> Response:
    subject, kind = await _subject(p)
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.unblock(ctx, key, kind, subject), "unblocked")


@page("POST", "/portal/access/withdraw")
async def withdraw(p: Page) -> Response:
    subject, kind = await _subject(p)
    if (await p.form()).get("confirm") != "yes":
        return await _confirm(p, "withdraw", "/portal/access/withdraw", subject, kind)
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.change_access(ctx, key, kind, subject, None), "withdrawn")


@page("POST", "/portal/access/treating-gp")
async def treating_gp(p: Page) -> Response:
    subject, _ = await _subject(p)
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.set_treating_gp(ctx, key, subject), "gp")


@page("POST", "/portal/access/treating-gp/remove")
async def treating_gp_remove(p: Page) -> Response:
    form = await p.form()
    if form.get("confirm") != "yes":
        subject = str(form.get("subject") or "")[:32]
        return await _confirm(p, "gp-remove", "/portal/access/treating-gp/remove", subject, "practitioner")
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.set_treating_gp(ctx, key, None), "gp-removed")


def _choice(value: object) -> bool:
    if value not in ("object", "allow"):
        raise FhirError(400, "invalid", "Choose one of the answers.")
    return value == "object"


@page("POST", "/portal/access/emergency")
async def emergency(p: Page) -> Response:
    objects = _choice((await p.form()).get("choice"))
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.set_objections(ctx, key, objects, None), "emergency")


@page("POST", "/portal/access/regulation")
async def regulation(p: Page) -> Response:
    objects = _choice((await p.form()).get("choice"))
    key = p.dossier_key
    return await _change(p, lambda ctx: dossiers.set_objections(ctx, key, None, objects), "regulation")


@page("POST", "/portal/access/requests")
async def request_setting(p: Page) -> Response:
    from carnet.tasks import service as tasks

    policy = str((await p.form()).get("policy") or "")
    if policy not in dossiers.ACCESS_REQUEST_POLICIES:
        raise FhirError(400, "invalid", "Choose one of the answers.")
    key = p.dossier_key
    return await _change(p, lambda ctx: tasks.set_access_request_policy(ctx, key, policy), "requests")
