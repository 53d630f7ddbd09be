"""History: every access to the dossier and every change, who, when, what, in which mode (issue 4 §2).

The records come from the dossier's audit chain through :func:`carnet.history.audit_events.history`, which the
policy lets only the patient side read and which filters in SQL (period, kind of actor, emergency modes, kind of
event), so that paging holds. The person's own page views are audited too (every read is); they are hidden unless
asked for. Emergency and SAMU regulation accesses stand out: a class and a text label, never colour alone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from carnet.history import audit_events as audit_fhir
from carnet.identity.professions import profession_label
from carnet.portal.i18n import N_
from carnet.portal.web import Page, page

PAGE_SIZE = 25

# What each event is, as a patient reads it (the audit records' event names; see
# carnet.history.audit_events.HISTORY_KINDS).
EVENTS = {
    "ITI-65": N_("added documents"), "ITI-105": N_("added a document"),
    "ITI-67": N_("searched the documents"), "ITI-66": N_("looked at the lists of documents"),
    "ITI-68": N_("opened a document"), "document.read": N_("looked at a document's description"),
    "ITI-78": N_("looked for the dossier"), "patient.read": N_("looked at the dossier's identity"),
    "document.update": N_("changed a document's status or visibility"),
    "document.delete": N_("deleted a document from the dossier"),
    "access.consent": N_("authorized a professional"), "access.block": N_("blocked a professional"),
    "access.withdraw": N_("withdrew an authorization or a block"),
    "access.gp_rights": N_("gave a professional the médecin traitant's rights"),
    "access.treating_gp": N_("changed the médecin traitant"),
    "access.objection": N_("changed the emergency access choices"),
    "access.requests": N_("changed the access request setting"), "access.read": N_("looked at who has access"),
    "access.code.create": N_("created an access code"), "access.code.read": N_("looked at the access codes"),
    "access.code.revoke": N_("revoked an access code"),
    "access.code.require": N_("changed whether new professionals need an access code"),
    "access.code.use": N_("entered an access code and became authorized"),
    "access.code.create_hidden": N_("created a code for the hidden documents"),
    "access.code.use_hidden": N_("entered the code for the hidden documents and can now see them"),
    "access.hidden.stop": N_("stopped showing the hidden documents to a professional"),
    "access.code.wrong": N_("entered a wrong access code"),
    "access.code.frozen": N_("access codes paused after too many wrong codes"),
    "representative.add": N_("recorded a legal representative"),
    "dossier.create": N_("created the dossier"), "dossier.close": N_("closed the dossier"),
    "dossier.reopen": N_("reopened the dossier"), "dossier.copy": N_("downloaded a complete copy"),
    "account.activate": N_("activated the account"), "history.read": N_("read the history"),
    "task.access.request": N_("asked for access"), "task.access.accept": N_("accepted an access request"),
    "task.access.reject": N_("refused an access request"), "task.access.expire": N_("an access request expired"),
    "task.rectification.request": N_("asked for a correction"),
    "task.rectification.answer": N_("answered a correction request"),
    "task.read": N_("looked at a request"), "task.search": N_("looked at the requests"),
    "dossier.objection": N_("objected to the dossier"),
    "clinical.create": N_("added health information (allergy, treatment, problem, result or vaccination)"),
    "clinical.read": N_("looked at an item of health information"),
    "clinical.search": N_("looked at the health information"),
    "clinical.withdraw": N_("withdrew an item of health information"),
    "clinical.dispute": N_("disputed an item of health information"),
    "clinical.hide": N_("hid an item of health information from professionals"),
    "clinical.show": N_("showed an item of health information to professionals again"),
    "summary.read": N_("looked at the emergency summary"),
    "claims.ingest": N_("added reimbursement data"),
    "claims.read": N_("looked at the reimbursement data"),
    "contact.read": N_("looked at the emergency contacts"), "contact.add": N_("added an emergency contact"),
    "contact.update": N_("changed an emergency contact"), "contact.remove": N_("removed an emergency contact"),
    "share.create": N_("shared a link"), "share.revoke": N_("revoked a shared link"),
    "share.read": N_("looked at the shared links"), "share.open": N_("opened a link you shared"),
    "share.file": N_("opened a file of a link you shared"),
    "share.passcode": N_("typed a wrong passcode for a link you shared"),
    "prescription.create": N_("wrote a prescription"), "prescription.read": N_("looked at the prescriptions"),
    "prescription.code": N_("showed a prescription's code"),
    "prescription.send": N_("sent a prescription to a pharmacy"),
    "prescription.find": N_("looked up a prescription at the pharmacy"),
    "prescription.dispense": N_("dispensed medicines on a prescription"),
    "measures.record": N_("added measurements (weight, blood pressure, glucose…)"),
    "measures.import": N_("imported measurements from Apple Health"),
    "measures.import.start": N_("started an import of measurements from Apple Health"),
    "measures.import.failed": N_("an import of measurements from Apple Health failed"),
    "measures.read": N_("looked at measurements"), "measures.list": N_("looked at the list of measurements"),
    "measures.search": N_("searched the measurements"),
    "measures.sources": N_("looked at the devices and apps that add measurements"),
    "measures.source.stop": N_("stopped a device or app from adding measurements"),
    "measures.source.resume": N_("let a device or app add measurements again"),
    "measures.hide": N_("hid a measure from professionals"),
    "measures.show": N_("showed a measure to professionals again"),
    "measures.delete": N_("deleted measurements"),
    "trends.evaluate": N_("checked the measurements against the alert rules"),
    "trends.alert.read": N_("looked at an alert on the measurements"),
    "trends.alerts.read": N_("looked at the alerts on the measurements"),
    "trends.alert.ack": N_("took an alert on the measurements into account"),
    "trends.settings.read": N_("looked at the alert choices"),
    "trends.settings": N_("changed the alert choices"),
    "teleconsult.schedule": N_("booked a teleconsultation"),
    "teleconsult.start": N_("started a teleconsultation"),
    "teleconsult.join": N_("joined the teleconsultation"),
    "teleconsult.leave": N_("left the teleconsultation"),
    "teleconsult.show": N_("showed a document during the teleconsultation"),
    "teleconsult.end": N_("ended the teleconsultation"),
    "teleconsult.cancel": N_("cancelled a teleconsultation"),
    "teleconsult.read": N_("looked at a teleconsultation"),
    "teleconsult.search": N_("looked at the teleconsultations"),
    "teleconsult.expire": N_("closed a teleconsultation nobody ended"),
}
PREFIXES = (("access.", N_("changed access rights")), ("dossier.", N_("acted on the dossier")),
            ("document.", N_("acted on a document")), ("task.", N_("acted on a request")),
            ("contact.", N_("changed the emergency contacts")), ("settings.", N_("changed the settings")),
            ("clinical.", N_("acted on the health information")), ("claims.", N_("acted on the reimbursement data")),
            ("share.", N_("acted on a shared link")), ("prescription.", N_("acted on a prescription")),
            ("measures.", N_("acted on the measurements")),
            ("teleconsult.", N_("acted on a teleconsultation")))
OTHER_EVENT = N_("acted on the dossier")
KINDS = {"read": N_("Reads and searches"), "added": N_("Documents added"), "changed": N_("Documents changed"),
         "access": N_("Access rights"), "dossier": N_("The dossier itself"), "requests": N_("Requests")}
ACTORS = {"professionals": N_("Professionals"), "patient_side": N_("Me and my representatives"),
          "assurance_maladie": N_("Assurance Maladie"), "link_recipients": N_("People you shared a link with")}
ACTOR_KINDS = {"patient": N_("the patient"), "representative": N_("legal representative"),
               "assurance_maladie": N_("Assurance Maladie"), "operator": N_("Carnet's services"),
               "system": N_("Carnet's services"), "link_recipient": N_("someone you shared a link with")}
MODES = {"normal": N_("normal"), "emergency": N_("Emergency access (break the glass)"),
         "regulation": N_("SAMU regulation (centre 15)")}


def event_label(event: str) -> str:
    """The message id saying what an event is. An event without a label of its own falls back on its family, then on
    a plain "acted on the dossier": never on the event's code, which means nothing to a patient (issue 16 §1)."""
    if event in EVENTS:
        return EVENTS[event]
    for prefix, label in PREFIXES:
        if event.startswith(prefix):
            return label
    return OTHER_EVENT


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _int(value: str | None) -> int:
    try:
        return max(1, min(int(value or "1"), 10_000))
    except ValueError:
        return 1


@page("GET", "/portal/history")
async def history(p: Page) -> Response:
    q = p.request.query_params
    since, until = _date(q.get("from")), _date(q.get("to"))
    actors = q.get("who") if q.get("who") in ACTORS else None
    kind = q.get("kind") if q.get("kind") in KINDS else None
    emergency = q.get("emergency") == "1"
    own = q.get("own") == "1"
    number = _int(q.get("page"))
    f = audit_fhir.HistoryFilter(since=since, until=until, actors=actors, emergency_only=emergency, kind=kind,
                                 include_own_reads=own, zone=p.zone)
    key = p.dossier_key
    def read(ctx: Any) -> tuple[Any, int, dt.datetime | None]:
        entries, total = audit_fhir.history(ctx, key, f, PAGE_SIZE, (number - 1) * PAGE_SIZE)
        return entries, total, audit_fhir.archived_before(ctx, key)

    entries, total, archived = await p.run(read)
    kept: dict[str, Any] = {k: v for k, v in (("from", since.isoformat() if since else ""),
                                              ("to", until.isoformat() if until else ""), ("who", actors or ""),
                                              ("kind", kind or ""), ("emergency", "1" if emergency else ""),
                                              ("own", "1" if own else "")) if v}
    pages = max(1, -(-total // PAGE_SIZE))

    def link(n: int) -> str:
        return "/portal/history?" + urlencode({**kept, "page": n})

    lang: Any = "en" if p.lang.code == "en" else "fr"
    return p.render(
        "portal/history/index.html", title=p._("History"),
        lead=p._("Every access to your dossier and every change: who, when, what, and in which mode."),
        entries=entries, total=total, number=number, pages=pages, prev=link(number - 1) if number > 1 else "",
        next=link(number + 1) if number < pages else "", since=since, until=until, actors=actors, kind=kind,
        emergency=emergency, own=own, kinds=KINDS, actor_choices=ACTORS, actor_kinds=ACTOR_KINDS, modes=MODES,
        event_label=event_label, filtered=bool(kept), archived=archived,
        profession=lambda c: profession_label(c, lang) if c else "")
