"""The copy's readable booklet, ``dossier.pdf`` (reportlab), in French with English headings.

Cover (identity, date of the copy, médecin traitant, legal representatives); what Home shows first (the structured
data, the advance directives, the emergency contacts); who has access (authorizations, blocks, the two objections)
and the access and rectification requests with their answers; the documents by class (DOMAIN.md labels, TRE_A03)
with each file's name in the zip and its SHA-256, text documents' content; the care history (reimbursements); the
access history. The standard PDF fonts with WinAnsi encoding render French
(é, è, à, ç, œ, ’, €); a character they lack is written without its accent, or as ``?``, never as a blank box.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from carnet.documents import codes
from carnet.export.facts import CopyFacts, DocEntry, Grant, HealthItem, HistoryEntry, Person, local
from carnet.identity.ins import InvalidIdentifier, format_nir

GENDERS = {"male": "masculin", "female": "féminin", "other": "autre", "unknown": "inconnu"}
INS_KINDS = {"nir": "INS-NIR", "nia": "INS-NIA (numéro d'attente)", "test": "INS de test",
             "demo": "INS de démonstration"}
RELATIONSHIPS = {
    "MTH": "mère", "FTH": "père", "PRN": "parent", "NMTH": "mère", "NFTH": "père", "STPPRN": "beau-parent",
    "GUARD": "tuteur ou tutrice", "POWATT": "mandataire", "HPOWATT": "mandataire de santé",
}
RELATIONS = {"authorized": "autorisé", "gp_rights": "mêmes droits que le médecin traitant", "blocked": "bloqué"}
MODES = {"normal": "normal", "emergency": "urgence (bris de glace)", "regulation": "régulation SAMU (centre 15)"}
STATUSES = {"current": "", "superseded": "remplacé par une version plus récente",
            "entered-in-error": "retiré par son auteur (erreur)"}
EVENTS = {
    "dossier.create": "Création du dossier", "dossier.close": "Fermeture du dossier",
    "dossier.reopen": "Réouverture du dossier", "dossier.copy": "Copie complète du dossier",
    "patient.read": "Consultation de l'identité et du dossier", "ITI-78": "Recherche du dossier",
    "ITI-65": "Dépôt de documents", "ITI-105": "Dépôt d'un document", "ITI-67": "Recherche de documents",
    "ITI-66": "Consultation des lots de documents", "ITI-68": "Lecture d'un document",
    "document.read": "Consultation de la fiche d'un document", "document.update": "Modification d'un document",
    "document.delete": "Suppression d'un document", "history.read": "Consultation de l'historique",
    "access.consent": "Autorisation d'accès", "access.gp_rights": "Droits du médecin traitant accordés",
    "access.block": "Blocage d'un professionnel", "access.withdraw": "Retrait d'une autorisation",
    "access.treating_gp": "Désignation du médecin traitant",
    "access.objection": "Choix sur les accès d'urgence et de régulation",
    "representative.add": "Ajout d'un représentant légal",
}


def plain(value: object) -> str:
    """``value`` with only the characters the WinAnsi standard fonts have: others lose their accent, or become
    ``?``."""
    out = []
    for ch in str(value):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            try:
                base.encode("cp1252")
                out.append(base or "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


def pdf_text(value: object) -> str:
    """``value`` made safe for a reportlab paragraph: :func:`plain`, then XML-escaped."""
    return escape(plain(value))


def _day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = local(value).date()
    return value.strftime("%d/%m/%Y")


def _moment(value: dt.datetime) -> str:
    return local(value).strftime("%d/%m/%Y %H:%M")


class _Styles:
    def __init__(self) -> None:
        base = getSampleStyleSheet()
        self.title = ParagraphStyle("title", parent=base["Title"], fontSize=20, leading=24, alignment=TA_CENTER)
        self.subtitle = ParagraphStyle("subtitle", parent=base["Normal"], fontSize=11, leading=14,
                                       alignment=TA_CENTER, textColor=colors.HexColor("#444444"))
        self.h1 = ParagraphStyle("h1", parent=base["Heading1"], fontSize=15, leading=19, spaceBefore=6)
        self.h2 = ParagraphStyle("h2", parent=base["Heading2"], fontSize=12, leading=15, spaceBefore=8)
        self.body = ParagraphStyle("body", parent=base["Normal"], fontSize=10, leading=13)
        self.small = ParagraphStyle("small", parent=base["Normal"], fontSize=8, leading=10)
        self.cell = ParagraphStyle("cell", parent=base["Normal"], fontSize=7.5, leading=9)
        self.mono = ParagraphStyle("mono", parent=base["Normal"], fontName="Courier", fontSize=7, leading=9)
        self.text = ParagraphStyle("text", parent=base["Normal"], fontName="Courier", fontSize=8, leading=10,
                                   leftIndent=4 * mm, textColor=colors.HexColor("#222222"))


GRID = TableStyle([
    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
])
FIELDS = TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                     ("BOTTOMPADDING", (0, 0), (-1, -1), 3)])


def render(facts: CopyFacts, out: Any) -> None:
    """Write the booklet for ``facts`` as a PDF to the binary stream ``out``."""
    s = _Styles()
    name = facts.names[0] if facts.names else ""
    footer = f"Carnet - copie du dossier de {name} - {_day(facts.created)}"

    def on_page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(18 * mm, 10 * mm, plain(footer))
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=18 * mm, title="Copie du dossier médical partagé", author="Carnet",
                            subject="Copie complète du dossier", creator="Carnet")
    story: list[Any] = []
    story += _cover(facts, s)
    story += [PageBreak()] + _health(facts, s)
    story += [PageBreak()] + _access(facts, s) + _requests(facts, s)
    story += [PageBreak()] + _documents(facts, s)
    story += [PageBreak()] + _claims(facts, s)
    story += [PageBreak()] + _history(facts, s)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)


def _p(text: object, style: ParagraphStyle) -> Paragraph:
    return Paragraph(pdf_text(text), style)


def _heading(fr: str, en: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(f"{pdf_text(fr)} <font size='9' color='#666666'>/ {pdf_text(en)}</font>", style)


def _person(p: Person | None) -> str:
    if p is None:
        return "aucun désigné"
    return ", ".join(x for x in (p.name, p.profession, p.organisation) if x)


def _ins(facts: CopyFacts) -> str:
    try:
        shown = format_nir(facts.ins)
    except InvalidIdentifier:
        shown = facts.ins
    return f"{shown} ({INS_KINDS.get(facts.ins_kind, facts.ins_kind)})"


def _cover(facts: CopyFacts, s: _Styles) -> list[Any]:
    status = "ouvert"
    if facts.status == "closed":
        why = "décès" if facts.close_reason == "death" else "à la demande du patient"
        status = f"fermé le {_day(facts.closed_at)} ({why})"
    rows = [
        ("Nom(s) / Names", "<br/>".join(pdf_text(n) for n in facts.names)),
        ("Date de naissance / Birth date", pdf_text(_day(facts.birth_date))),
        ("Sexe / Sex", pdf_text(GENDERS.get(facts.gender, facts.gender))),
        ("INS (identité nationale de santé)", pdf_text(_ins(facts))),
        ("Lieu de naissance (code INSEE)", pdf_text(facts.birthplace)),
        ("État du dossier / Status", pdf_text(status)),
        ("Date de la copie / Copy made on", pdf_text(_moment(facts.created) + " (heure de Paris)")),
        ("Médecin traitant / Regular doctor", pdf_text(_person(facts.treating_gp))),
    ]
    if facts.death_date:
        rows.append(("Date de décès / Date of death", pdf_text(_day(facts.death_date))))
    rep_text = "<br/>".join(
        pdf_text(f"{r.name} ({RELATIONSHIPS.get(r.relationship, r.relationship)}), depuis le {_day(r.since)}"
                 + (f", jusqu'au {_day(r.ended)}" if r.ended else "")) for r in facts.representatives) or "aucun"
    rows.append(("Représentants légaux / Legal representatives", rep_text))
    table = Table([[Paragraph(f"<b>{pdf_text(k)}</b>", s.body), Paragraph(v, s.body)] for k, v in rows],
                  colWidths=[62 * mm, 110 * mm], style=FIELDS)
    counts = f"{len(facts.documents)} document(s), {len(facts.history)} trace(s) d'accès"
    return [
        Spacer(1, 20 * mm),
        _p("Copie de votre dossier médical partagé", s.title),
        _p("Copy of your shared medical record", s.subtitle),
        Spacer(1, 4 * mm),
        _p(counts, s.subtitle),
        Spacer(1, 12 * mm),
        table,
        Spacer(1, 10 * mm),
        _p("Ce livret accompagne les fichiers de la copie : chaque document se trouve dans le dossier « documents » "
           "sous le nom indiqué, avec son empreinte SHA-256 (voir LISEZMOI.txt pour la vérifier). Le fichier "
           "fhir/bundle.json contient tout le dossier dans un format lisible par les logiciels de santé.", s.small),
        Spacer(1, 2 * mm),
        _p("This booklet goes with the files of the copy: each document is in the \"documents\" folder under the "
           "name shown, with its SHA-256 fingerprint (README.txt says how to check it). fhir/bundle.json holds the "
           "whole record in a format health software reads.", s.small),
    ]


def _grant_row(g: Grant, s: _Styles) -> list[Any]:
    who = g.subject.name if g.subject_kind == "practitioner" else f"{g.subject.name} (établissement)"
    detail = ", ".join(x for x in (g.subject.profession, g.subject.organisation) if x)
    relation = RELATIONS.get(g.relation, g.relation)
    if g.subject_kind == "organisation" and g.relation == "authorized":
        relation = "équipe de soins autorisée"
    return [_p(who, s.cell), _p(detail, s.cell), _p(relation, s.cell), _p(_day(g.since), s.cell)]


def _access(facts: CopyFacts, s: _Styles) -> list[Any]:
    out: list[Any] = [_heading("Qui a accès à votre dossier", "Who has access", s.h1)]
    out.append(_p(f"Médecin traitant : {_person(facts.treating_gp)}. Il voit tout le dossier, y compris les "
                  "documents masqués aux autres professionnels.", s.body))
    out.append(Spacer(1, 3 * mm))
    allowed = [g for g in facts.grants if g.relation != "blocked"]
    blocked = [g for g in facts.grants if g.relation == "blocked"]
    header = [_p(h, s.cell) for h in ("Qui", "Profession, organisation", "Accès", "Depuis le")]
    for french, english, grants, none in (("Autorisations", "Authorizations", allowed, "Aucune autorisation en cours."),
                                          ("Professionnels bloqués", "Blocked professionals", blocked,
                                           "Aucun professionnel bloqué.")):
        out.append(_heading(french, english, s.h2))
        if grants:
            out.append(Table([header] + [_grant_row(g, s) for g in grants],
                             colWidths=[45 * mm, 60 * mm, 45 * mm, 24 * mm], style=GRID, repeatRows=1))
        else:
            out.append(_p(none, s.body))
    out.append(_heading("Accès sans autorisation préalable", "Access without prior authorization", s.h2))
    glass = "vous vous y êtes opposé" if facts.objects_break_glass else "possible (vous ne vous y êtes pas opposé)"
    samu = "vous vous y êtes opposé" if facts.objects_regulation else "possible (vous ne vous y êtes pas opposé)"
    asks = "refusées d'office" if facts.access_requests == "refuse" else "vous êtes sollicité à chaque demande"
    out.append(_p(f"Accès en urgence (bris de glace) : {glass}.", s.body))
    out.append(_p(f"Accès par le médecin régulateur du SAMU (centre 15) : {samu}.", s.body))
    out.append(_p(f"Demandes d'accès des professionnels : {asks}.", s.body))
    return out


def _type(d: DocEntry) -> str:
    if not d.type_code:
        return codes.UNTYPED_LABEL  # published without a type (IHE MHD Minimal), filed in class 95
    if d.type_display != d.type_code:
        return d.type_display
    label = codes.TYPE_LABELS.get(d.type_code)
    return f"{label} ({d.type_code})" if label else d.type_code


def _document(d: DocEntry, s: _Styles) -> list[Any]:
    kind = _type(d)
    title = d.title or kind
    lines = [
        f"<b>{pdf_text(title)}</b>",
        pdf_text(" - ".join(x for x in (kind, _day(d.date), d.author and f"auteur : {d.author}") if x)),
    ]
    notes = [STATUSES.get(d.status, d.status)]
    if d.masked:
        notes.append("masqué aux professionnels (sauf son auteur et le médecin traitant)")
    if any(notes):
        lines.append(f"<i>{pdf_text('; '.join(n for n in notes if n))}</i>")
    block: list[Any] = [Paragraph("<br/>".join(lines), s.body),
                        Paragraph(f"Fichier : {pdf_text(d.path)}", s.mono),
                        Paragraph(f"SHA-256 : {pdf_text(d.sha256)}", s.mono)]
    out: list[Any] = [KeepTogether(block)]
    if d.text is not None:
        for para in d.text.split("\n\n")[:400]:
            if para.strip():
                out.append(Paragraph(pdf_text(para).replace("\n", "<br/>"), s.text))
        if d.text_truncated:
            out.append(_p("[...] la suite est dans le fichier ci-dessus.", s.small))
    out.append(Spacer(1, 3 * mm))
    return out


def _documents(facts: CopyFacts, s: _Styles) -> list[Any]:
    out: list[Any] = [_heading("Documents", "Documents", s.h1)]
    if not facts.documents:
        return out + [_p("Aucun document.", s.body)]
    by_class: dict[str, list[DocEntry]] = {}
    for d in facts.documents:
        by_class.setdefault(d.class_code, []).append(d)
    for code in sorted(by_class):
        docs = by_class[code]
        out.append(CondPageBreak(30 * mm))
        out.append(_p(f"{code} - {docs[0].class_label} ({len(docs)})", s.h2))
        for d in docs:
            out += _document(d, s)
    return out


def _history_row(h: HistoryEntry, s: _Styles) -> list[Any]:
    what = EVENTS.get(h.what, h.what)
    if h.refused:
        what += " (refusé)"
    mode = MODES.get(h.mode, h.mode)
    if h.reason:
        mode += f" - motif : {h.reason}"
    cells = [_moment(h.when), h.who, h.profession, h.organisation, what, mode]
    if h.mode != "normal":
        return [Paragraph(f"<b>{pdf_text(c)}</b>", s.cell) for c in cells]
    return [_p(c, s.cell) for c in cells]


def _history(facts: CopyFacts, s: _Styles) -> list[Any]:
    out: list[Any] = [_heading("Historique des accès", "Access history", s.h1),
                      _p("Chaque consultation, dépôt ou changement, du plus ancien au plus récent. Les accès en "
                         "urgence et par la régulation du SAMU sont en gras.", s.small), Spacer(1, 2 * mm)]
    if not facts.history:
        return out + [_p("Aucune trace.", s.body)]
    header = [_p(h, s.cell) for h in ("Date", "Qui", "Profession", "Organisation", "Action", "Mode")]
    style = TableStyle(GRID.getCommands() + [
        ("BACKGROUND", (0, i + 1), (-1, i + 1), colors.HexColor("#fdecea"))
        for i, h in enumerate(facts.history) if h.mode != "normal"])
    out.append(Table([header] + [_history_row(h, s) for h in facts.history],
                     colWidths=[24 * mm, 32 * mm, 24 * mm, 28 * mm, 38 * mm, 28 * mm], style=style, repeatRows=1))
    return out


# --- what Home, the care history and the requests show (issue 16 §3) ------------------------------------------------

HEALTH_SECTIONS = (("allergies", "Allergies", "Allergies"), ("medications", "Traitements", "Treatments"),
                   ("problems", "Problèmes de santé", "Health problems"),
                   ("blood_group", "Groupe sanguin", "Blood group"),
                   ("results", "Résultats et mesures", "Results and measurements"),
                   ("immunizations", "Vaccinations", "Vaccinations"))
CLAIM_KINDS = {"act": "acte", "consultation": "consultation", "drug": "médicament", "biology": "biologie",
               "device": "dispositif médical", "transport": "transport", "other": "autre"}
DIRECTIVE_TYPE = "EXPPAT_3"


def _health_line(h: HealthItem) -> str:
    line = " - ".join(x for x in (h.text, _day(h.date), h.author and f"saisi par {h.author}") if x)
    if h.status == "entered-in-error":
        line += " (retiré par son auteur)"
    if h.dispute:
        line += f" - contesté par le patient : {h.dispute}"
    return line


def _health(facts: CopyFacts, s: _Styles) -> list[Any]:
    """Home's emergency essentials: the structured data, the advance directives, the emergency contacts."""
    out: list[Any] = [_heading("L'essentiel en cas d'urgence", "Emergency essentials", s.h1),
                      _p("Ce que votre page d'accueil montre en premier. La synthèse d'urgence (format IPS) est aussi "
                         "dans fhir/ips.json.", s.small)]
    for key, french, english in HEALTH_SECTIONS:
        found = [h for h in facts.health if h.section == key]
        out.append(_heading(french, english, s.h2))
        out += [_p(f"- {_health_line(h)}", s.body) for h in found] or [_p("Rien n'est enregistré.", s.body)]
    out.append(_heading("Directives anticipées", "Advance directives", s.h2))
    directives = [d for d in facts.documents if d.type_code == DIRECTIVE_TYPE and d.status == "current"]
    out += [_p(f"- {d.title or 'Directives anticipées'} - {_day(d.date)} - fichier : {d.path}", s.body)
            for d in directives] or [_p("Aucune directive anticipée déposée.", s.body)]
    out.append(_heading("Contacts d'urgence", "Emergency contacts", s.h2))
    out += [_p("- " + " - ".join(x for x in (f"{c.name} ({c.relationship})" if c.relationship else c.name,
                                              c.phone, c.email, c.note) if x), s.body)
            for c in facts.contacts] or [_p("Aucun contact d'urgence.", s.body)]
    return out


REQUEST_STATUSES = {
    ("access", "requested"): "en attente de votre réponse", ("access", "completed"): "acceptée",
    ("access", "rejected"): "refusée", ("access", "expired"): "expirée sans réponse",
    ("rectification", "requested"): "en attente de la réponse de l'auteur",
    ("rectification", "completed"): "document corrigé (remplacé)",
    ("rectification", "rejected"): "refusée par l'auteur",
    ("rectification", "expired"): "expirée"}


def _requests(facts: CopyFacts, s: _Styles) -> list[Any]:
    out: list[Any] = [_heading("Demandes d'accès et de rectification", "Access and rectification requests", s.h2)]
    if not facts.requests:
        return out + [_p("Aucune demande.", s.body)]
    header = [_p(h, s.cell) for h in ("Date", "Demande", "Qui", "Motif ou texte", "Réponse")]
    rows = [header]
    for r in facts.requests:
        kind = "accès demandé par" if r.kind == "access" else "rectification demandée à"
        status = REQUEST_STATUSES.get((r.kind, r.status), r.status)
        if r.by_policy:
            status = "refusée d'office (vous refusez toutes les demandes)"
        answer = " - ".join(x for x in (status, r.answered and f"le {_day(r.answered)}", r.answer) if x)
        rows.append([_p(c, s.cell) for c in (_moment(r.created), kind, r.who, r.reason or "", answer)])
    out.append(Table(rows, colWidths=[24 * mm, 28 * mm, 34 * mm, 44 * mm, 44 * mm], style=GRID, repeatRows=1))
    return out


def _claims(facts: CopyFacts, s: _Styles) -> list[Any]:
    out: list[Any] = [_heading("Données de remboursement", "Care history (reimbursements)", s.h1),
                      _p("Les soins que l'Assurance Maladie vous a remboursés ces derniers mois, du plus récent "
                         "au plus ancien.", s.small), Spacer(1, 2 * mm)]
    if not facts.claims:
        return out + [_p("Aucun soin remboursé sur la période.", s.body)]
    header = [_p(h, s.cell) for h in ("Date des soins", "Quoi", "Nature", "Code", "Montant")]
    rows = [header] + [[_p(c, s.cell) for c in (_day(x.care_date), x.label, CLAIM_KINDS.get(x.kind, x.kind), x.code,
                                                 x.amount or "")] for x in facts.claims]
    out.append(Table(rows, colWidths=[24 * mm, 70 * mm, 26 * mm, 30 * mm, 24 * mm], style=GRID, repeatRows=1))
    return out
