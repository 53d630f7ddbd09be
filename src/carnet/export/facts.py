"""What a copy holds, as plain values: gathered once from the database by :mod:`carnet.export.copy`, then rendered
by :mod:`carnet.export.booklet` (the PDF) and :mod:`carnet.export.readme` (the text files). No database access here."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from carnet.documents.codes import CLASSES

PARIS = ZoneInfo("Europe/Paris")


def local(ts: dt.datetime) -> dt.datetime:
    """A timestamp in French time (the database keeps UTC; SQLite keeps no offset)."""
    return (ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts).astimezone(PARIS)


def class_folder(class_code: str) -> str:
    """``10-compte-rendu``: the class code, then its French label without accents, so the folder reads itself."""
    label = CLASSES.get(class_code, "autre")
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode()
    return f"{class_code}-{re.sub(r'[^a-z0-9]+', '-', ascii_label.lower()).strip('-')}"


@dataclass(frozen=True)
class Person:
    """A professional (or an organisation) as the patient should read it: a name, a profession, an organisation."""

    id: str
    name: str
    profession: str | None = None
    organisation: str | None = None


@dataclass(frozen=True)
class Representative:
    name: str
    relationship: str  # v3-RoleCode (MTH, FTH, GUARD, ...)
    kind: str  # minor | protected_adult
    since: dt.datetime
    ended: dt.datetime | None


@dataclass(frozen=True)
class Grant:
    """One authorization or block in force: a professional or an organisation (the care team)."""

    subject: Person
    subject_kind: str  # practitioner | organisation
    relation: str  # authorized | gp_rights | blocked
    since: dt.datetime


@dataclass
class DocEntry:
    document_id: str
    class_code: str
    class_label: str
    type_code: str
    type_display: str
    date: dt.datetime  # the date of care (creation) when given, else the date the document was filed
    status: str
    title: str
    author: str
    author_id: str | None
    path: str  # the file's name in the zip
    sha256: str
    size: int
    content_type: str
    masked: bool  # MASQUE_PS: hidden from professionals other than its author and the médecin traitant
    text: str | None = None  # a text document's content, for the booklet
    text_truncated: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    when: dt.datetime
    who: str
    profession: str
    organisation: str
    what: str
    mode: str  # normal | emergency | regulation
    refused: bool
    reason: str | None


@dataclass(frozen=True)
class HealthItem:
    """One item of structured data, as Home shows it (carnet.clinical)."""

    section: str  # allergies | medications | problems | blood_group | results | immunizations
    text: str
    date: dt.datetime | None
    author: str
    status: str  # the FHIR status; entered-in-error: withdrawn by its author
    dispute: str | None  # the patient side's dispute note


@dataclass(frozen=True)
class ContactEntry:
    name: str
    relationship: str | None
    phone: str | None
    email: str | None
    note: str | None


@dataclass(frozen=True)
class ClaimEntry:
    """One line of the care history (carnet.claims): what Assurance Maladie reimbursed."""

    care_date: dt.date
    kind: str
    code: str  # "CCAM YYYY001"
    label: str
    amount: str | None  # "25,00 €"


@dataclass(frozen=True)
class RequestEntry:
    """An access request (a professional asks the patient) or a rectification request (the patient asks an author),
    and its answer (carnet.tasks)."""

    kind: str  # access | rectification
    created: dt.datetime
    who: str  # the professional who asked (access) or the author asked (rectification)
    status: str  # requested | completed | rejected | expired
    reason: str | None
    answer: str | None
    answered: dt.datetime | None
    by_policy: bool  # refused at once: the patient refuses every access request


@dataclass
class CopyFacts:
    created: dt.datetime
    requested_by: str  # "patient" | "representative"
    names: list[str]
    birth_date: dt.date
    gender: str
    ins: str
    ins_kind: str  # nir | nia | test | demo
    birthplace: str
    status: str  # active | closed
    closed_at: dt.datetime | None
    close_reason: str | None
    death_date: dt.date | None
    treating_gp: Person | None
    representatives: list[Representative] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    objects_break_glass: bool = False
    objects_regulation: bool = False
    access_requests: str = "ask"  # ask | refuse
    documents: list[DocEntry] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    health: list[HealthItem] = field(default_factory=list)
    contacts: list[ContactEntry] = field(default_factory=list)
    claims: list[ClaimEntry] = field(default_factory=list)
    requests: list[RequestEntry] = field(default_factory=list)
    receipt: bool = False  # the copy carries audit/receipt.json (carnet.export.trail)
