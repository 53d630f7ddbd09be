"""Contacts and settings (issue 4 §2): emergency contacts, advance directives, notification preferences, my account.

Emergency contacts and advance directives are dossier data: they go through :mod:`carnet.dossier.contacts` inside
:meth:`Page.run` (the policy decides, the service audits). Notification preferences belong to this account's link to
the dossier (``account_dossier.notify``), and "My account" to the account itself: both are account tables, written
through :meth:`Page.db` by :mod:`carnet.accounts`. A legal representative sees the contacts and directives of the
person they represent, and their own account.

Choices: changing the email address, mobile number or where sign-in codes go asks for the current password (they
are the second factor); a password change signs out every other session and app of the account.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from carnet.accounts import preferences
from carnet.accounts import service as accounts
from carnet.context import Context
from carnet.documents.content_types import sniff_content_type
from carnet.dossier import contacts
from carnet.errors import FhirError
from carnet.notify import outbox
from carnet.portal import i18n
from carnet.portal.i18n import N_
from carnet.portal.web import LANG_COOKIE, Page, page

DONE = {
    "contact-added": N_("The contact is added."),
    "contact-updated": N_("The contact is updated."),
    "contact-removed": N_("The contact is removed."),
    "directive-added": N_("Your advance directives are saved in your dossier."),
    "notifications": N_("Your notification choices are saved."),
    "account": N_("Your contact details are saved."),
    "password": N_("Your password is changed. Your other sessions are signed out."),
    "language": N_("Your language is saved."),
}
# The notification groups (carnet.notify.outbox.EVENT_GROUPS), marked here for translation.
GROUP_LABELS = {
    "dossier": N_("My dossier is created, activated, closed or reopened"),
    "documents": N_("A new document, or a document awaiting its announcement by my doctor"),
    "access": N_("A professional opens my dossier for the first time"),
    "rights": N_("Who may access my dossier changes"),
    "requests": N_("An answer to my request for a correction"),
    "shares": N_("A link I shared is opened"),
}
ALWAYS_LABELS = {
    "access.request": N_("A professional asks for access to my dossier"),
    "access.emergency": N_("A professional opens my dossier in an emergency (break the glass)"),
    "access.regulation": N_("The SAMU regulation centre (15) opens my dossier"),
}
CHANNEL_LABELS = {"email": N_("Email"), "sms": N_("Text message (SMS)")}
# Refusals of the contacts and directives services, by the field they name: shown translated, never echoed.
FIELD_ERRORS = {
    "RelatedPerson.name": N_("Give the contact's name (300 characters at most)."),
    "RelatedPerson.relationship": N_("The relationship is too long (100 characters at most)."),
    "RelatedPerson.phone": N_("This phone number is not valid."),
    "RelatedPerson.email": N_("This email address is not valid."),
    "RelatedPerson.note": N_("The note is too long (500 characters at most)."),
    "RelatedPerson.telecom": N_("Give a phone number or an email address, so that the contact can be reached."),
    "RelatedPerson": N_("A dossier holds at most 20 emergency contacts."),
    "DocumentReference.relatesTo.target": N_("The directives to replace are no longer in your dossier."),
}
CONTACT_FIELDS = ("name", "relationship", "phone", "email", "note")


def _done(p: Page) -> str:
    key = str(p.request.query_params.get("done") or "")
    return p._(DONE[key]) if key in DONE else ""


def _service_error(p: Page, exc: FhirError) -> str:
    """A refusal of the services as a translated message; anything unexpected is raised to the error page."""
    if exc.status == 415:
        return p._("Choose a PDF, JPEG or PNG file, or type your directives.")
    if exc.status == 413:
        return p._("This file is too large.")
    for issue in exc.issues:
        for where in issue.expression or []:
            if where in FIELD_ERRORS:
                return p._(FIELD_ERRORS[where])
    raise exc


def _account_view(conn: Connection, account_id: uuid.UUID, key: uuid.UUID) -> dict[str, Any]:
    mine = preferences.details(conn, account_id, key)
    return {"login": mine.login, "email": mine.email or "", "phone": mine.phone or "", "otp_channel": mine.otp_channel,
            "lang": mine.lang, "password_changed_at": mine.password_changed_at,
            "prefs": outbox.effective_prefs(mine.notify, mine.email, mine.phone)}


async def _render(p: Page, status: int = 200, *, error: str = "", section: str = "",
                  values: dict[str, Any] | None = None) -> Response:
    assert p.session is not None
    key, account_id = p.dossier_key, p.session.account_id
    info = await p.run(lambda ctx: contacts.emergency_info(ctx, key))
    mine = await p.db(lambda conn: _account_view(conn, account_id, key))
    groups = [(g, GROUP_LABELS.get(g, label)) for g, label in outbox.EVENT_GROUPS]
    return p.render("portal/settings/index.html", status=status, title=p._("Contacts and settings"),
                    lead=p._("The people to call in an emergency, your advance directives, how we tell you of "
                             "events, and your account."),
                    flash=_done(p), error=error, section=section, values=values or {}, info=info, account=mine,
                    groups=groups, always=list(ALWAYS_LABELS.items()), channels=list(CHANNEL_LABELS.items()),
                    languages_list=list(i18n.LABELS.items()))


@page("GET", "/portal/settings")
async def settings(p: Page) -> Response:
    return await _render(p)


# --- emergency contacts -------------------------------------------------------------------------------------------

def _contact_values(form: FormData) -> dict[str, str]:
    return {k: str(form.get(k) or "") for k in CONTACT_FIELDS}


def _contact_id(p: Page) -> uuid.UUID:
    try:
        return uuid.UUID(str(p.request.path_params.get("contact_id") or ""))
    except ValueError:
        raise FhirError(404, "not-found", N_("This page does not exist.")) from None


@page("POST", "/portal/settings/contacts")
async def contact_add(p: Page) -> Response:
    values = _contact_values(await p.form())
    key = p.dossier_key
    try:
        await p.run(lambda ctx: contacts.add_contact(ctx, key, **values))
    except FhirError as exc:
        return await _render(p, 400, error=_service_error(p, exc), section="contact-new", values=values)
    return p.redirect("/portal/settings?done=contact-added#contacts")


def _find(ctx: Context, key: uuid.UUID, contact_id: uuid.UUID) -> contacts.Contact:
    for c in contacts.list_contacts(ctx, key):
        if c.contact_id == contact_id:
            return c
    raise FhirError(404, "not-found", N_("This contact is not in the dossier."))


@page("GET", "/portal/settings/contacts/{contact_id}")
async def contact_form(p: Page) -> Response:
    key, contact_id = p.dossier_key, _contact_id(p)
    found = await p.run(lambda ctx: _find(ctx, key, contact_id))
    values = {k: getattr(found, k) or "" for k in CONTACT_FIELDS}
    return p.render("portal/settings/contact.html", title=p._("Change a contact"), contact_id=contact_id,
                    values=values, lead=p._("Correct the contact's details, then save."))


@page("POST", "/portal/settings/contacts/{contact_id}")
async def contact_update(p: Page) -> Response:
    key, contact_id = p.dossier_key, _contact_id(p)
    values = _contact_values(await p.form())
    try:
        await p.run(lambda ctx: contacts.update_contact(ctx, key, contact_id, **values))
    except FhirError as exc:
        message = _service_error(p, exc)
        return p.render("portal/settings/contact.html", status=400, title=p._("Change a contact"),
                        contact_id=contact_id, values=values, error=message)
    return p.redirect("/portal/settings?done=contact-updated#contacts")


@page("POST", "/portal/settings/contacts/{contact_id}/remove")
async def contact_remove(p: Page) -> Response:
    key, contact_id = p.dossier_key, _contact_id(p)
    await p.run(lambda ctx: contacts.remove_contact(ctx, key, contact_id))
    return p.redirect("/portal/settings?done=contact-removed#contacts")


# --- advance directives -------------------------------------------------------------------------------------------

async def _upload(p: Page, item: UploadFile) -> tuple[bytes, str]:
    """The file's bytes (refused beyond the documents' size limit) and its type, from its first bytes: the name
    and the browser's declared type are not trusted."""
    limit = p.settings.max_document_bytes
    data = await item.read(limit + 1)
    if len(data) > limit:
        raise FhirError(413, "too-costly", "This file is too large.")
    ctype = sniff_content_type(data, "", "")  # a PDF, a JPEG or a PNG (typed directives come as text apart)
    if ctype is None:
        raise FhirError(415, "not-supported", "This document format is not accepted")
    return data, ctype


@page("POST", "/portal/settings/directives")
async def directive_add(p: Page) -> Response:
    form = await p.form()
    key = p.dossier_key
    title = str(form.get("title") or "").strip()[:200] or p._("My advance directives")
    replaces = str(form.get("replaces") or "") or None
    text = str(form.get("text") or "").strip()
    item = form.get("file")
    try:
        if isinstance(item, UploadFile) and item.filename:
            data, ctype = await _upload(p, item)
        elif text:
            data, ctype = text.replace("\r\n", "\n").encode(), "text/plain"
        else:
            return await _render(p, 400, error=p._("Choose a file or type your directives."), section="directives")
        await p.run(lambda ctx: contacts.deposit_directive(ctx, key, data, ctype, title, replaces))
    except FhirError as exc:
        return await _render(p, 400, error=_service_error(p, exc), section="directives")
    return p.redirect("/portal/settings?done=directive-added#directives")


# --- notifications ------------------------------------------------------------------------------------------------

@page("POST", "/portal/settings/notifications")
async def notifications(p: Page) -> Response:
    assert p.session is not None
    form = await p.form()
    key, account_id = p.dossier_key, p.session.account_id
    # One entry per group the person may choose for; always-sent events are not groups and cannot be posted here.
    chosen = {g: [c for c in outbox.PERSONAL_CHANNELS if c in form.getlist(f"notify.{g}")]
              for g, _ in outbox.EVENT_GROUPS}

    await p.db(lambda conn: preferences.set_notify(conn, account_id, key, chosen))
    return p.redirect("/portal/settings?done=notifications#notifications")


# --- my account ---------------------------------------------------------------------------------------------------

async def _account_error(p: Page, err: accounts.AccountError, section: str) -> Response:
    if isinstance(err, accounts.SlowDown):  # too many wrong current passwords from here (carnet.throttle)
        return p.slow_down(err.retry_after)
    return await _render(p, 400, error=p._(err.message), section=section)


@page("POST", "/portal/settings/account")
async def account_details(p: Page) -> Response:
    assert p.session is not None
    form = await p.form()
    account_id, now, address = p.session.account_id, p.services.clock(), p.address

    def work(conn: Connection) -> None:
        accounts.change_contact(p.services, conn, now, account_id, str(form.get("current") or ""),
                                str(form.get("email") or ""), str(form.get("phone") or ""),
                                str(form.get("otp_channel") or "email"), address)
    try:
        await p.db(work)
    except accounts.AccountError as err:
        return await _account_error(p, err, "account")
    return p.redirect("/portal/settings?done=account#account")


@page("POST", "/portal/settings/password")
async def password(p: Page) -> Response:
    assert p.session is not None
    form = await p.form()
    current, now, address = p.session, p.services.clock(), p.address
    new = str(form.get("new") or "")
    if new != str(form.get("new2") or ""):
        return await _render(p, 400, error=p._("The two passwords are not the same."), section="password")

    def work(conn: Connection) -> None:
        accounts.change_password(p.services, conn, now, current.account_id, str(form.get("current") or ""), new,
                                 current.session_hash, address)
    try:
        await p.db(work)
    except accounts.AccountError as err:
        return await _account_error(p, err, "password")
    return p.redirect("/portal/settings?done=password#password")


@page("POST", "/portal/settings/language")
async def language(p: Page) -> Response:
    assert p.session is not None
    form = await p.form()
    code, account_id = str(form.get("lang") or ""), p.session.account_id
    if code not in i18n.LANGUAGES:
        return p.redirect("/portal/settings#account")
    await p.db(lambda conn: preferences.set_language(conn, account_id, code))
    p.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600)
    return p.redirect("/portal/settings?done=language#account")
