"""CDA R2 documents (HL7 CDA R2, ANS CI-SIS): read the header safely, check it against the metadata, render it.

Issue 3 §4. A CDA deposited with a DocumentReference must not contradict it: :func:`check_header` compares the
header's patient INS, document type, author, effectiveTime, service period and confidentialityCode with the dossier
and the DocumentReference, and refuses with 422 naming the metadata field at fault (a FHIRPath) and the CDA header
element that contradicts it, never the values. What the header leaves out contradicts nothing (the PDSm examples carry
an empty ``<ClinicalDocument/>``). :func:`render_html` turns a CDA (structured body, or a PDF or text body) into
escaped HTML for the portals. See ``docs/CDA.md`` for the rules chosen where the specifications are silent.

Parsing is defensive: lxml with entities unresolved, no network, no DTD loaded, ``huge_tree`` off, a size cap; a
document with a DOCTYPE is refused on deposit (a CDA has no DTD; a DOCTYPE is how XXE and "billion laughs" come in).
No XSLT from a document is ever run, and no attribute of the document is copied into the HTML.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from markupsafe import Markup, escape

from carnet.documents import cda_media, codes
from carnet.documents.cda_names import PersonName, person_name
from carnet.errors import FhirError, unprocessable
from carnet.identity.ins import OID_DEMO, OID_NIA, OID_NIR, OID_TEST

V3 = "{urn:hl7-org:v3}"
CONTENT_TYPES = frozenset({"text/xml", "application/xml", "application/hl7-v3+xml", "application/hl7-cda+xml"})
MAX_BYTES = 50 * 1024 * 1024  # parse cap; deposits are capped lower by the max_document_bytes setting
INS_OIDS = frozenset({OID_NIR, OID_NIA, OID_TEST, OID_DEMO})
IDNPS_OID = "1.2.250.1.71.4.2.1"  # national id of a health professional ("8" + RPPS, "0" + ADELI)
IDNPS_SYSTEM = f"urn:oid:{IDNPS_OID}"
LOINC_OID = "2.16.840.1.113883.6.1"
TRE_A05_OID = "1.2.250.1.213.1.1.4.12"
TRE_A05 = "https://mos.esante.gouv.fr/NOS/TRE_A05-TypeDocComplementaire/FHIR/TRE-A05-TypeDocComplementaire"
V3_CONFIDENTIALITY_OID = "2.16.840.1.113883.5.25"
FRENCH_CONFIDENTIALITY_OID = "1.2.250.1.213.1.1.4.13"
# A CDA code system OID -> the FHIR systems that name the same code system.
TYPE_SYSTEMS = {LOINC_OID: {codes.LOINC, f"urn:oid:{LOINC_OID}"},
                TRE_A05_OID: {TRE_A05, f"urn:oid:{TRE_A05_OID}"}}
V3_SYSTEMS = frozenset({codes.V3_CONFIDENTIALITY, f"urn:oid:{V3_CONFIDENTIALITY_OID}"})
SENSITIVITY = frozenset({"U", "L", "M", "N", "R", "V"})  # HL7 v3 Confidentiality: how sensitive
VISIBILITY = frozenset({codes.MASQUE_PS, codes.INVISIBLE_PATIENT, codes.INVISIBLE_REPRESENTANTS})  # JDV_J58
LOCAL_TIME = ZoneInfo("Europe/Paris")  # a CDA time without offset is French local time (Carnet's choice)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_comments=True, remove_pis=True)
CONTENT = "DocumentReference.content[0].attachment"


class CdaError(ValueError):
    """The bytes are not a CDA document Carnet reads (not well-formed, has a DOCTYPE, not a ClinicalDocument, too
    large). The message names what is wrong, never the content."""


# --- parsing --------------------------------------------------------------------------------------------------------

def parse(data: bytes | bytearray, *, allow_doctype: bool = False) -> Any:
    """The ``ClinicalDocument`` root element of ``data``, parsed safely. Raises :class:`CdaError`."""
    if len(data) > MAX_BYTES:
        raise CdaError("The CDA document is larger than Carnet reads")
    try:
        root = etree.fromstring(data, parser=_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        raise CdaError("The CDA document is not well-formed XML") from None
    if root is None:
        raise CdaError("The CDA document is not well-formed XML")
    if not allow_doctype and root.getroottree().docinfo.doctype:
        raise CdaError("A CDA document may not carry a DOCTYPE (DTD and entity declarations are refused)")
    if root.tag != f"{V3}ClinicalDocument":
        raise CdaError("The document is not an HL7 CDA R2 ClinicalDocument")
    return root


def _text(el: Any) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


def _present(el: Any) -> bool:
    return el is not None and not el.get("nullFlavor")


@dataclass
class TS:
    """An HL7 v3 TS value: the local fields it states (year … minute) and its timezone."""

    fields: tuple[int, ...]  # (year, month, day, hour, minute)[:precision]
    tz: dt.tzinfo

    def moment(self) -> dt.datetime:
        """The first instant the value covers (raises ValueError for an impossible date)."""
        f = list(self.fields) + [1, 1, 0, 0][len(self.fields) - 1:]
        return dt.datetime(f[0], f[1], f[2], f[3], f[4], tzinfo=self.tz)


_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2}(?:\.\d+)?)?([+-]\d{4})?")


def parse_ts(value: str) -> TS | None:
    """``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+-ZZZZ]`` → :class:`TS` (seconds are ignored), or None if malformed."""
    m = _TS.fullmatch(value.strip())
    if m is None:
        return None
    parts = [int(g) for g in m.groups()[:5] if g is not None]
    if m.group(6) is not None and len(parts) < 5:
        return None
    tz: dt.tzinfo = LOCAL_TIME
    if m.group(7):
        sign = -1 if m.group(7)[0] == "-" else 1
        hours, minutes = int(m.group(7)[1:3]), int(m.group(7)[3:5])
        tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    ts = TS(tuple(parts), tz)
    try:
        ts.moment()
    except ValueError:
        return None
    return ts


def _fhir_fields(value: str, tz: dt.tzinfo) -> tuple[int, ...] | None:
    """A FHIR date/dateTime as local fields in ``tz`` (dates without time are calendar values, kept as written)."""
    try:
        if len(value) in (4, 7, 10):
            return tuple(int(x) for x in value.split("-"))
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    local = parsed.astimezone(tz)
    return (local.year, local.month, local.day, local.hour, local.minute)


def same_time(cda: TS, fhir_value: str) -> bool:
    """Carnet's tolerance: equal at the precision both state, to the minute at most, read in the CDA's timezone."""
    fields = _fhir_fields(fhir_value, cda.tz)
    if fields is None:
        return True  # a malformed metadata time is the metadata's own error, reported by read_metadata
    n = min(len(cda.fields), len(fields), 5)
    return cda.fields[:n] == fields[:n]


# --- the header -----------------------------------------------------------------------------------------------------

@dataclass
class Header:
    """What Carnet reads of a CDA header. Identifiers are kept only for comparison and never shown in errors."""

    title: str = ""
    patient_ins: set[str] = field(default_factory=set)  # INS matricules of recordTarget/patientRole/id
    patient_name: str = ""
    patient: PersonName = field(default_factory=PersonName)  # the name's parts (cda_names), for any language
    author_ids: set[str] = field(default_factory=set)  # assignedAuthor/id of root 1.2.250.1.71.4.2.1
    author_names: list[str] = field(default_factory=list)
    type_code: tuple[str, str] | None = None  # (code system OID, code)
    type_display: str = ""
    effective_time: str | None = None
    service_start: str | None = None
    service_end: str | None = None
    confidentiality: tuple[str, str] | None = None  # (code system OID, code)


def _name(el: Any) -> str:
    return person_name(el).shown()


def read_header(root: Any) -> Header:
    h = Header(title=_text(root.find(f"{V3}title")))
    for role in root.findall(f"{V3}recordTarget/{V3}patientRole"):
        for ident in role.findall(f"{V3}id"):
            if ident.get("root") in INS_OIDS and ident.get("extension"):
                h.patient_ins.add("".join(str(ident.get("extension")).split()).upper())
        if not h.patient:
            h.patient = person_name(role.find(f"{V3}patient/{V3}name"))
            h.patient_name = h.patient.shown()
    for author in root.findall(f"{V3}author/{V3}assignedAuthor"):
        for ident in author.findall(f"{V3}id"):
            if ident.get("root") == IDNPS_OID and ident.get("extension"):
                h.author_ids.add(str(ident.get("extension")).strip())
        name = _name(author.find(f"{V3}assignedPerson/{V3}name"))
        if name:
            h.author_names.append(name)
    code = root.find(f"{V3}code")
    if _present(code) and code.get("code"):
        h.type_code = (code.get("codeSystem") or "", str(code.get("code")))
        h.type_display = code.get("displayName") or ""
    eff = root.find(f"{V3}effectiveTime")
    if _present(eff) and eff.get("value"):
        h.effective_time = eff.get("value")
    lows, highs = [], []
    for ev in root.findall(f"{V3}documentationOf/{V3}serviceEvent/{V3}effectiveTime"):
        low, high = ev.find(f"{V3}low"), ev.find(f"{V3}high")
        if _present(low) and low.get("value"):
            lows.append(str(low.get("value")))
        elif ev.get("value"):
            lows.append(str(ev.get("value")))
        if _present(high) and high.get("value"):
            highs.append(str(high.get("value")))
        elif ev.get("value"):
            highs.append(str(ev.get("value")))
    # the span of every service event, as XDS serviceStartTime / serviceStopTime
    h.service_start = min(lows, key=_sort_key) if lows else None
    h.service_end = max(highs, key=_sort_key) if highs else None
    conf = root.find(f"{V3}confidentialityCode")
    if _present(conf) and conf.get("code"):
        h.confidentiality = (conf.get("codeSystem") or V3_CONFIDENTIALITY_OID, str(conf.get("code")))
    return h


def _sort_key(value: str) -> float:
    ts = parse_ts(value)
    return ts.moment().timestamp() if ts is not None else 0.0


# --- the checks -----------------------------------------------------------------------------------------------------

def _contradiction(metadata: str, element: str) -> FhirError:
    return unprocessable(f"The CDA header's {element} contradicts {metadata}", metadata, "business-rule")


def _contained(res: dict[str, Any], ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    for c in res.get("contained") or []:
        if isinstance(c, dict) and c.get("id") == ref[1:]:
            return c
    return None


def docref_author_ids(res: dict[str, Any]) -> set[str]:
    """The professionals' national ids (system ``urn:oid:1.2.250.1.71.4.2.1``) the DocumentReference's authors
    carry: on the reference itself, or on a contained Practitioner or PractitionerRole (and its practitioner)."""
    found: set[str] = set()

    def take(idents: Any) -> None:
        for ident in idents if isinstance(idents, list) else [idents]:
            if isinstance(ident, dict) and ident.get("system") == IDNPS_SYSTEM and ident.get("value"):
                found.add(str(ident["value"]).strip())

    for a in res.get("author") or []:
        if not isinstance(a, dict):
            continue
        take(a.get("identifier"))
        target = _contained(res, a.get("reference"))
        if target is None:
            continue
        take(target.get("identifier"))
        if target.get("resourceType") == "PractitionerRole":
            pract = target.get("practitioner") or {}
            take(pract.get("identifier"))
            inner = _contained(res, pract.get("reference"))
            if inner is not None:
                take(inner.get("identifier"))
    return found


def _type_matches(header: tuple[str, str], res: dict[str, Any]) -> bool | None:
    """None when the DocumentReference states no type code to compare with."""
    oid, code = header
    codings = [c for c in (res.get("type") or {}).get("coding") or [] if isinstance(c, dict) and c.get("code")]
    if not codings:
        return None
    for c in codings:
        system = c.get("system") or ""
        same_system = oid not in TYPE_SYSTEMS or not system or system in TYPE_SYSTEMS[oid] or \
            system not in set().union(*TYPE_SYSTEMS.values())
        if c.get("code") == code and same_system:
            return True
    return False


def _labels(res: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(sensitivity codes, French visibility codes) of ``securityLabel``. ``N`` in the French system is the same
    "normal" as HL7's."""
    sensitivity: set[str] = set()
    visibility: set[str] = set()
    for concept in res.get("securityLabel") or []:
        for c in (concept or {}).get("coding") or []:
            system, code = c.get("system"), c.get("code")
            if system in V3_SYSTEMS and code in SENSITIVITY:
                sensitivity.add(code)
            elif system in codes.CONFIDENTIALITY_SYSTEMS:
                (sensitivity if code == "N" else visibility).add(code)
    return sensitivity, visibility


def check_header(data: bytes | bytearray, res: dict[str, Any], dossier_ins: str) -> Header:
    """Refuse (422) a CDA whose header contradicts the dossier or its DocumentReference ``res``; return the header.

    - not well-formed, a DOCTYPE, not a ClinicalDocument → 422 on ``DocumentReference.content[0].attachment``;
    - ``recordTarget/patientRole/id`` with an INS OID naming another matricule than the dossier's →
      ``DocumentReference.subject``;
    - ``code`` not among ``DocumentReference.type``'s codings → ``DocumentReference.type``;
    - no ``author/assignedAuthor/id`` (national id) in common with the DocumentReference's authors, when both
      state one → ``DocumentReference.author``;
    - ``effectiveTime`` ≠ ``attachment.creation`` (tolerance: :func:`same_time`) →
      ``DocumentReference.content[0].attachment.creation``;
    - ``documentationOf/serviceEvent/effectiveTime`` low / high ≠ ``context.period`` start / end →
      ``DocumentReference.context.period.start`` / ``.end``;
    - ``confidentialityCode``: an HL7 code (N/R/V…) other than the one the labels state, or a French visibility
      code (MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX) the labels do not carry →
      ``DocumentReference.securityLabel``.
    """
    try:
        root = parse(data)
    except CdaError as exc:
        raise unprocessable(str(exc), CONTENT, "invalid") from None
    h = read_header(root)
    if h.patient_ins and dossier_ins.upper() not in h.patient_ins:
        raise _contradiction("DocumentReference.subject", "recordTarget/patientRole/id (INS)")
    if h.type_code is not None and _type_matches(h.type_code, res) is False:
        raise _contradiction("DocumentReference.type", "code")
    theirs = docref_author_ids(res)
    if h.author_ids and theirs and not h.author_ids & theirs:
        raise _contradiction("DocumentReference.author", "author/assignedAuthor/id")
    contents = res.get("content") or [{}]
    creation = ((contents[0] or {}).get("attachment") or {}).get("creation")
    _check_time(h.effective_time, creation, "effectiveTime", f"{CONTENT}.creation")
    period = (res.get("context") or {}).get("period") or {}
    _check_time(h.service_start, period.get("start"), "documentationOf/serviceEvent/effectiveTime/low",
                "DocumentReference.context.period.start")
    _check_time(h.service_end, period.get("end"), "documentationOf/serviceEvent/effectiveTime/high",
                "DocumentReference.context.period.end")
    if h.confidentiality is not None:
        system, code = h.confidentiality
        sensitivity, visibility = _labels(res)
        if system == FRENCH_CONFIDENTIALITY_OID and code in VISIBILITY:
            if code not in visibility:
                raise _contradiction("DocumentReference.securityLabel", "confidentialityCode")
        elif code in SENSITIVITY and sensitivity and code not in sensitivity:
            raise _contradiction("DocumentReference.securityLabel", "confidentialityCode")
    return h


def _check_time(cda_value: str | None, fhir_value: Any, element: str, metadata: str) -> None:
    if not cda_value or not isinstance(fhir_value, str) or not fhir_value:
        return
    ts = parse_ts(cda_value)
    if ts is None:
        raise unprocessable(f"The CDA header's {element} is not a valid HL7 time", metadata, "business-rule")
    if not same_time(ts, fhir_value):
        raise _contradiction(metadata, element)


# --- rendering ------------------------------------------------------------------------------------------------------

# CDA narrative block elements → the HTML element written (attributes are never copied).
_TAGS = {"paragraph": "p", "content": "span", "list": "ul", "item": "li", "table": "table", "thead": "thead",
         "tbody": "tbody", "tfoot": "tfoot", "tr": "tr", "th": "th", "td": "td", "caption": "caption", "sub": "sub",
         "sup": "sup", "footnote": "small", "linkHtml": "span", "br": "br"}
_DROPPED = {"footnoteRef", "col", "colgroup", "script", "style"}
_LABELS = {
    "fr": {"patient": "Patient", "author": "Auteur", "date": "Date", "pdf": "Ce document contient un PDF.",
           "open": "Ouvrir le PDF", "unreadable": "Le corps de ce document n'est pas lisible ici ; téléchargez-le.",
           "empty": "Ce document n'a pas de corps.", "attached": "PDF joint :",
           "bad_pdf": "Une pièce jointe annoncée comme PDF n'en est pas un ; téléchargez le document."},
    "en": {"patient": "Patient", "author": "Author", "date": "Date", "pdf": "This document holds a PDF.",
           "open": "Open the PDF", "unreadable": "This document's body cannot be shown here; download it.",
           "empty": "This document has no body.", "attached": "Attached PDF:",
           "bad_pdf": "An attachment said to be a PDF is not one; download the document."},
}


def _local(el: Any) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


class _Links:
    """The embedded PDFs (:mod:`carnet.documents.cda_media`) and where the portal serves them: ``renderMultiMedia``
    in a narrative becomes a link to its PDF; a section's PDFs no narrative links to are listed after it."""

    def __init__(self, root: Any, pdf_url: str | None, words: dict[str, str]) -> None:
        self.found = cda_media.pdfs(root)
        self.by_id = {e.media_id: e for e in self.found if e.media_id}
        self.url, self.words = pdf_url, words
        self.linked: set[int] = set()  # id() of the elements already linked

    def link(self, e: cda_media.Embedded) -> str:
        self.linked.add(id(e.element))
        if e.index is None:
            return f"<span>{escape(self.words['bad_pdf'])}</span>"
        if not self.url:
            return f"<span>{escape(self.words['pdf'])}</span>"
        href = self.url + (f"?part={e.index}" if e.index else "")
        return f'<a href="{escape(href)}">{escape(self.words["open"])}</a>'

    def media(self, el: Any) -> str:
        refs = [self.by_id[r] for r in str(el.get("referencedObject") or "").split() if r in self.by_id]
        return " ".join(self.link(e) for e in refs)

    def rest(self, section: Any) -> str:
        """The PDFs of ``section``'s own entries (not its subsections') that no narrative linked to."""
        mine = {id(x) for entry in section.findall(f"{V3}entry") for x in entry.iter()}
        left = [e for e in self.found if id(e.element) in mine and id(e.element) not in self.linked]
        return "".join(f'<p class="cda-attachment">{escape(self.words["attached"])} {self.link(e)}</p>'
                       for e in left)


def _narrative(el: Any, links: _Links | None = None) -> str:
    """The children of a narrative element as HTML: every text escaped, only the tags of :data:`_TAGS`; a
    ``renderMultiMedia`` that shows an embedded PDF becomes a link to it."""
    out = [str(escape(el.text or ""))]
    for child in el:
        name = _local(child)
        if name == "renderMultiMedia":
            out.append(links.media(child) if links is not None else "")
        elif name and name not in _DROPPED:
            tag = _TAGS.get(name)
            if name == "list" and child.get("listType") == "ordered":
                tag = "ol"
            if tag == "br":
                out.append("<br>")
            elif tag == "table":
                out.append(f'<div class="table-wrap"><table>{_narrative(child, links)}</table></div>')
            elif tag is not None:
                out.append(f"<{tag}>{_narrative(child, links)}</{tag}>")
            else:
                out.append(_narrative(child, links))
        out.append(str(escape(child.tail or "")))
    return "".join(out)


def _sections(parent: Any, level: int, links: _Links) -> list[str]:
    out = []
    for comp in parent.findall(f"{V3}component"):
        section = comp.find(f"{V3}section")
        if section is None:
            continue
        heading = min(level, 6)
        title = _text(section.find(f"{V3}title"))
        text = section.find(f"{V3}text")
        parts = ["<section>"]
        if title:
            parts.append(f"<h{heading}>{escape(title)}</h{heading}>")
        if text is not None:
            parts.append(f'<div class="narrative">{_narrative(text, links)}</div>')
        parts.append(links.rest(section))
        parts.extend(_sections(section, level + 1, links))
        parts.append("</section>")
        out.append("".join(parts))
    return out


@dataclass
class Body:
    """A nonXMLBody's content, decoded: what the portal serves when the reader opens it."""

    data: bytes
    media_type: str


def non_xml_body(root: Any) -> Body | None:
    """The decoded ``component/nonXMLBody/text`` (base64 or plain text), or None (no such body, or a reference)."""
    text = root.find(f"{V3}component/{V3}nonXMLBody/{V3}text")
    if text is None or text.find(f"{V3}reference") is not None:
        return None
    media = (text.get("mediaType") or "text/plain").split(";")[0].strip().lower()
    raw = "".join(text.itertext())
    if text.get("representation") == "B64":
        try:
            return Body(base64.b64decode("".join(raw.split()), validate=True), media)
        except (binascii.Error, ValueError):
            return None
    return Body(raw.encode("utf-8"), media)


def body_of(data: bytes) -> Body | None:
    """The nonXMLBody of a CDA document, for the portals to serve (a PDF), or None. Never raises."""
    try:
        return non_xml_body(parse(data, allow_doctype=True))
    except CdaError:
        return None


def pdf_part(data: bytes, n: int = 0) -> bytes | None:
    """The bytes of the CDA document's readable PDF part ``n`` (:func:`carnet.documents.cda_media.pdfs`: part 0 is a
    level-1 document's PDF body), sniffed as a PDF; None when there is none or ``data`` is not a CDA document."""
    try:
        return cda_media.part(parse(data, allow_doctype=True), n)
    except CdaError:
        return None


def render_html(data: bytes, *, pdf_url: str | None = None, lang: str = "fr") -> Markup:
    """A CDA R2 document as safe HTML: the header (title, patient, author, date), then the body: each structured
    section's title and narrative (nested sections as lower headings), each PDF embedded in it as a link to
    ``pdf_url?part=n`` (where the caller serves :func:`pdf_part`); a PDF nonXMLBody as a note and a link to
    ``pdf_url`` (part 0); a text body in ``<pre>``. Every text is escaped and only
    fixed tags are written. Raises :class:`CdaError` if ``data`` is not a CDA document."""
    root = parse(data, allow_doctype=True)  # stored before issue 3 §4, or never deposited: shown, never resolved
    words = _LABELS.get(lang, _LABELS["fr"])
    h = read_header(root)
    parts = []
    if h.title:
        parts.append(f"<h3>{escape(h.title)}</h3>")
    facts = []
    if h.patient:
        facts.append((words["patient"], h.patient.shown(lang)))
    if h.author_names:
        facts.append((words["author"], ", ".join(h.author_names)))
    ts = parse_ts(h.effective_time) if h.effective_time else None
    if ts is not None:
        facts.append((words["date"], "/".join(f"{v:02d}" for v in reversed(ts.fields[:3]))
                      + (f" {ts.fields[3]:02d}:{ts.fields[4]:02d}" if len(ts.fields) >= 5 else "")))
    if facts:
        parts.append('<dl class="cda-header">' + "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>"
                                                         for k, v in facts) + "</dl>")
    structured = root.find(f"{V3}component/{V3}structuredBody")
    if structured is not None:
        parts.extend(_sections(structured, 4, _Links(root, pdf_url, words)))
    elif root.find(f"{V3}component/{V3}nonXMLBody") is not None:
        body = non_xml_body(root)
        if body is not None and body.media_type == "application/pdf" and cda_media.is_pdf(body.data):
            parts.append(f"<p>{escape(words['pdf'])}</p>")
            if pdf_url:
                parts.append(f'<p><a href="{escape(pdf_url)}">{escape(words["open"])}</a></p>')
        elif body is not None and body.media_type.startswith("text/"):
            parts.append(f"<pre>{escape(body.data.decode('utf-8', errors='replace'))}</pre>")
        else:
            parts.append(f"<p>{escape(words['unreadable'])}</p>")
    else:
        parts.append(f"<p>{escape(words['empty'])}</p>")
    return Markup("".join(parts))  # noqa: S704 - built only from escaped text and the fixed tags above
