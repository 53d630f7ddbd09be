"""The permission matrix through HTTP: every persona x access mode x dossier state against every dossier/document
endpoint, compared with the independent oracle (``tests/access/oracle.py``), on SQLite and PostgreSQL.

One world per database (module scope) holds three dossiers with the same documents -- classes 10/11/31/42/43/52 in the
confidentiality variants N / MASQUE_PS / INVISIBLE_PATIENT, written by "doctor" and by the médecin traitant, plus
Assurance Maladie's class 60 and the patient's class 90 -- : a clean dossier, one where the patient objected to
break-the-glass and to SAMU regulation access, and a closed one. Each test is one (persona, mode, dossier state) and
reports every disagreement of that case in one assertion message.

HTTP outcome ↔ oracle action:
- ``GET /fhir/DocumentReference?patient=``: 200 ↔ the caller reads the dossier (else 403); a document is in the
  result ↔ ``read_document``;
- ``GET /fhir/DocumentReference/{id}``, ``GET /fhir/Binary/{id}`` (a sample of documents): 200 ↔ ``read_document``,
  else 404 (forbidden looks like not found; 403 only when the client's scopes exclude the interaction);
- ``POST /fhir/DocumentReference`` of each class: 201 ↔ ``add_document``, else 403;
- ``GET /fhir/Patient?identifier=`` (TD0.2): an entry ↔ ``check_dossier``, else an empty bundle or 403;
- ``GET /fhir/AuditEvent?patient=``: 200 ↔ ``read_history``, else 403;
- ``POST /fhir/Consent`` (a professional declaring consent for themselves; the patient re-authorizing "doctor"):
  201 ↔ ``manage_access``, else 403. A consent that changed a relation is withdrawn again by the patient.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from carnet.access.actors import Actor, ActorKind
from carnet.auth.assertions import make_client_assertion
from carnet.context import Services, run
from carnet.documents.codes import TRE_A03, TRE_A07
from carnet.dossier import service as dossiers
from carnet.identity.ins import fake_nir_for
from tests.access.oracle import Scenario, expected
from tests.conftest import BASE, INS_SYSTEM, World, _counter

BIRTH = dt.date(1980, 5, 17)  # World.patient_resource's birthDate
PROFESSION = {"gp": "10", "doctor": "10", "nurse": "60", "pharmacist": "21", "physio": "70", "blocked": "10",
              "stranger": "10", "regulator": "10"}
RELATION = {"gp": "treating_gp", "doctor": "authorized", "nurse": "authorized", "pharmacist": "authorized",
            "physio": "authorized", "blocked": "blocked", "stranger": "none", "regulator": "none"}
MODES = ("normal", "emergency", "regulation")
STATES = ("clean", "objections", "closed")
LABELS = ("N", "MASQUE_PS", "INVISIBLE_PATIENT")
# (class, type) of the documents professionals write. A category that contradicts the type is refused (issue 15 §6),
# so a class-52 document of a type outside the pharmacist's list no longer exists; an imaging report (class 31, read
# by doctors and dentists only) takes its place.
PRO_DOCS = (("10", "11488-4"), ("10", "11502-2"), ("11", "60591-5"), ("11", "68599-0"), ("42", "57833-6"),
            ("43", "60593-1"), ("52", "11369-6"), ("31", "18748-4"))
ADD_PROBES = (("10", "11488-4"), ("11", "60591-5"), ("42", "57833-6"), ("43", "60593-1"), ("52", "11369-6"),
              ("60", "REMB"), ("90", "DOCPAT01"))
SAMPLE = 3  # single reads per case: this many expected-visible and this many expected-hidden documents
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"


@dataclass(frozen=True)
class Persona:
    role: str  # a World professional role, "patient" or "assurance_maladie"
    mode: str = "normal"

    @property
    def id(self) -> str:
        return self.role if self.role in ("patient", "assurance_maladie") else f"{self.role}-{self.mode}"

    @property
    def professional(self) -> bool:
        return self.role in PROFESSION


PERSONAS = tuple(Persona(r, m) for r in PROFESSION for m in MODES) + (Persona("patient"),
                                                                       Persona("assurance_maladie"))


@dataclass(frozen=True)
class Doc:
    id: str
    author: str  # "doctor", "gp", "patient" or "assurance_maladie"
    doc_class: str
    doc_type: str
    label: str

    def __str__(self) -> str:
        return f"{self.doc_class}/{self.doc_type}/{self.label} by {self.author} ({self.id})"


@dataclass
class Dossier:
    state: str
    key: uuid.UUID
    ins: str
    docs: list[Doc] = field(default_factory=list)


class Bench:
    """The module's world: personas, three dossiers with their documents, and cached tokens."""

    def __init__(self, services: Services, client: TestClient) -> None:
        self.world = World(services, client)
        self.client = client
        self.services = services
        self._tokens: dict[tuple[str, str], str | None] = {}
        self.refusals: dict[tuple[str, str], str] = {}
        self.dossiers: dict[str, Dossier] = {"clean": Dossier("clean", self.world.dossier, self.world.ins)}
        for state in ("objections", "closed"):
            ins = fake_nir_for(next(_counter))
            self.dossiers[state] = Dossier(state, self.world.create_dossier(ins), ins)
        for d in self.dossiers.values():
            self._populate(d)
        d = self.dossiers["objections"]
        for code, system in (("ETREAT", ACT_REASON), ("REGULATION", f"{dossiers.CANONICAL}/CodeSystem/purpose")):
            r = client.post("/fhir/Consent", json=objection(d.key, code, system), headers=self.patient_headers(d))
            assert r.status_code == 201, r.text
        d = self.dossiers["closed"]
        run(services, Actor(ActorKind.PATIENT, id=d.ins), lambda ctx: dossiers.close(ctx, d.key))

    def _populate(self, d: Dossier) -> None:
        for author in ("doctor", "gp"):
            for cls, typ in PRO_DOCS:
                for label in LABELS:
                    d.docs.append(self._publish(d, Persona(author), cls, typ, label))
        d.docs.append(self._publish(d, Persona("assurance_maladie"), "60", "REMB", "N"))
        for label in ("N", "MASQUE_PS"):
            d.docs.append(self._publish(d, Persona("patient"), "90", "DOCPAT01", label))

    def _publish(self, d: Dossier, who: Persona, cls: str, typ: str, label: str) -> Doc:
        headers = self.headers(who, d)
        assert headers is not None
        r = self.client.post("/fhir/DocumentReference", json=docref(d.key, cls, typ, label), headers=headers)
        assert r.status_code == 201, r.text
        return Doc(str(r.json()["id"]), who.role, cls, typ, label)

    def headers(self, p: Persona, d: Dossier) -> dict[str, str] | None:
        """Bearer headers for ``p`` (the patient: the owner of ``d``); None if the token endpoint refuses."""
        cache = (p.id, d.ins if p.role == "patient" else "")
        if cache not in self._tokens:
            claims: dict[str, Any] = {}
            kind = "assurance_maladie" if p.role == "assurance_maladie" else "professional"
            if p.role == "patient":
                kind, claims = "patient_portal", {"patient_ins": d.ins}
            elif p.professional:
                claims = {"professional_id": self.world.pros[p.role], "mode": p.mode,
                          "reason": None if p.mode == "normal" else "unconscious patient, test matrix"}
            assertion = make_client_assertion(self.world.key, self.world.client_ids[kind], f"{BASE}/oauth/token",
                                              int(time.time()), **claims)
            r = self.client.post("/oauth/token", data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion})
            self._tokens[cache] = str(r.json()["access_token"]) if r.status_code == 200 else None
            if r.status_code != 200:
                self.refusals[cache] = f"token refused: {r.status_code} {r.json().get('error')}"
        token = self._tokens[cache]
        return None if token is None else {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}

    def patient_headers(self, d: Dossier) -> dict[str, str]:
        h = self.headers(Persona("patient"), d)
        assert h is not None
        return h


def docref(key: uuid.UUID, cls: str, typ: str, label: str) -> dict[str, Any]:
    system = "http://loinc.org" if typ[0].isdigit() else "urn:oid:1.2.250.1.213.1.1.4.12"
    return {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": {"coding": [{"system": system, "code": typ}]},
        "category": [{"coding": [{"system": TRE_A03, "code": cls}]}],
        "securityLabel": [{"coding": [{"system": TRE_A07, "code": label}]}],
        "subject": {"reference": f"Patient/{key}"},
        "content": [{"attachment": {"contentType": "text/plain", "title": f"{cls} {typ} {label}",
                                    "data": base64.b64encode(f"{cls} {typ} {label}".encode()).decode()}}]}


def _consent(key: uuid.UUID, provision: dict[str, Any], status: str = "active") -> dict[str, Any]:
    return {"resourceType": "Consent", "status": status, "scope": {"coding": [{"code": "patient-privacy"}]},
            "category": [{"coding": [{"code": "59284-0", "system": "http://loinc.org"}]}],
            "patient": {"reference": f"Patient/{key}"}, "provision": provision}


def objection(key: uuid.UUID, code: str, system: str) -> dict[str, Any]:
    return _consent(key, {"type": "deny", "purpose": [{"system": system, "code": code}]})


def authorization(key: uuid.UUID, national_id: str, status: str = "active") -> dict[str, Any]:
    return _consent(key, {"type": "permit", "actor": [{"role": {"coding": [{"code": "authorized"}]},
                                                       "reference": {"reference": f"Practitioner/{national_id}"}}]},
                    status)


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def scenario(p: Persona, state: str, doc: Doc | None = None, cls: str = "11", typ: str = "60591-5") -> Scenario:
    """The oracle's view of ``p`` on the dossier in ``state``; ``doc`` (or a class/type) for document actions."""
    actor = "professional" if p.professional else p.role
    return Scenario(
        actor=actor, profession=PROFESSION.get(p.role), is_regulator=p.role == "regulator", mode=p.mode,
        relation=RELATION.get(p.role, "none"), representative_kind=None, patient_age=_age(BIRTH, dt.date.today()),
        dossier_status="closed" if state == "closed" else "active",
        objects_break_glass=state == "objections", objects_regulation=state == "objections",
        doc_class=doc.doc_class if doc else cls, doc_type=doc.doc_type if doc else typ,
        confidentiality=frozenset() if doc is None or doc.label == "N" else frozenset({doc.label}),
        invisible_patient_expired=False, actor_is_author=doc is not None and doc.author == p.role,
        deleted_by_patient=False)


def reads_dossier(p: Persona, state: str) -> bool:
    """Whether the caller reads the dossier at all: a normal, not-self-authored summary (class 11, readable by every
    profession the matrix admits) is readable."""
    return expected(replace(scenario(p, state), actor_is_author=False), "read_document")


@pytest.fixture(scope="module")
def bench(services: Services, client: TestClient) -> Bench:
    return Bench(services, client)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def check(self, endpoint: str, what: str, want: bool, got: bool | None, detail: str) -> None:
        """``got`` None: an answer that is neither the allowed nor the refused one (always a mismatch)."""
        if got is None or got != want:
            self.lines.append(f"{endpoint} | {what} | expected {'allowed' if want else 'denied'} | got {detail}")

    def done(self, p: Persona, state: str) -> None:
        if self.lines:
            pytest.fail("\n".join([f"{p.id} on the {state} dossier, {len(self.lines)} disagreement(s) with the oracle:",
                                   *self.lines]), pytrace=False)


def _outcome(status: int, ok: int, denied: tuple[int, ...]) -> bool | None:
    return True if status == ok else False if status in denied else None


CASES = [pytest.param(p, s, id=f"{p.id}-{s}") for s in STATES for p in PERSONAS]


@pytest.mark.parametrize(("persona", "state"), CASES)
def test_the_api_follows_the_access_rules(bench: Bench, persona: Persona, state: str) -> None:
    d = bench.dossiers[state]
    c = bench.client
    h = bench.headers(persona, d)
    rep = Report()
    docs = d.docs
    want_doc = {doc.id: expected(scenario(persona, state, doc), "read_document") for doc in docs}
    if h is None:  # the token endpoint refused this persona (regulation mode for a non-regulator)
        why = bench.refusals[(persona.id, "")]
        for action in ("read_document", "add_document", "check_dossier", "read_history", "manage_access"):
            rep.check("POST /oauth/token", action, expected(scenario(persona, state), action), False, why)
        for doc in docs:
            rep.check("POST /oauth/token", f"read_document {doc}", want_doc[doc.id], False, why)
        for cls, typ in ADD_PROBES:
            rep.check("POST /oauth/token", f"add_document class {cls}",
                      expected(scenario(persona, state, cls=cls, typ=typ), "add_document"), False, why)
        rep.done(persona, state)
        return

    # ITI-67: the dossier-level answer, then every document's presence.
    seen: set[str] = set()
    url: str | None = f"/fhir/DocumentReference?patient={d.key}&_count=200"
    status = 0
    while url:
        r = c.get(url, headers=h)
        status = r.status_code
        if status != 200:
            break
        body = r.json()
        seen |= {e["resource"]["id"] for e in body.get("entry", [])}
        url = next((lk["url"].removeprefix(BASE) for lk in body.get("link", []) if lk["relation"] == "next"), None)
    rep.check("GET DocumentReference?patient", "dossier", reads_dossier(persona, state),
              _outcome(status, 200, (403,)), str(status))
    if status == 200:
        for doc in docs:
            rep.check("GET DocumentReference?patient", str(doc), want_doc[doc.id], doc.id in seen,
                      "present" if doc.id in seen else "absent")

    # ITI-67 read and ITI-68 retrieve on a sample of expected-visible and expected-hidden documents.
    rng = random.Random(f"{persona.id}/{state}")
    visible = [doc for doc in docs if want_doc[doc.id]]
    hidden = [doc for doc in docs if not want_doc[doc.id]]
    sample = rng.sample(visible, min(SAMPLE, len(visible))) + rng.sample(hidden, min(SAMPLE, len(hidden)))
    denied = (403, 404) if persona.role == "assurance_maladie" else (404,)  # AM: no read scope
    for doc in sample:
        for path in (f"/fhir/DocumentReference/{doc.id}", f"/fhir/Binary/{doc.id}"):
            r = c.get(path, headers=h)
            rep.check(f"GET {path.split('/')[2]}/{{id}}", str(doc), want_doc[doc.id],
                      _outcome(r.status_code, 200, denied), str(r.status_code))

    # TD0.2: does a dossier exist for this INS?
    r = c.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{d.ins}"}, headers=h)
    n = len(r.json().get("entry", [])) if r.status_code == 200 else 0
    got = True if r.status_code == 200 and n == 1 else False if r.status_code in (200, 403) and n == 0 else None
    rep.check("GET Patient?identifier", "check_dossier", expected(scenario(persona, state), "check_dossier"), got,
              f"{r.status_code} with {n} entries")
    if got:  # the TD0.2 answer says what the caller may do: it must agree with the rest of the matrix
        access = {e["url"]: e for e in next(x for x in r.json()["entry"][0]["resource"]["extension"]
                                             if x["url"] == dossiers.EXT_DOSSIER_ACCESS)["extension"]}
        rep.check("GET Patient?identifier", "canRead", reads_dossier(persona, state),
                  access["canRead"]["valueBoolean"], str(access["canRead"]["valueBoolean"]))
        may_add = any(expected(scenario(persona, state, cls=cls, typ=typ), "add_document") for cls, typ in ADD_PROBES)
        rep.check("GET Patient?identifier", "canWrite", may_add, access["canWrite"]["valueBoolean"],
                  str(access["canWrite"]["valueBoolean"]))

    # The access history.
    r = c.get("/fhir/AuditEvent", params={"patient": str(d.key)}, headers=h)
    rep.check("GET AuditEvent?patient", "read_history", expected(scenario(persona, state), "read_history"),
              _outcome(r.status_code, 200, (403,)), str(r.status_code))

    # ITI-105: one document of each class.
    for cls, typ in ADD_PROBES:
        r = c.post("/fhir/DocumentReference", json=docref(d.key, cls, typ, "N"), headers=h)
        rep.check("POST DocumentReference", f"class {cls} ({typ})",
                  expected(scenario(persona, state, cls=cls, typ=typ), "add_document"),
                  _outcome(r.status_code, 201, (403,)), f"{r.status_code} {r.text[:160]}")

    # Consent: a professional declares the patient's consent for themselves; the patient re-authorizes "doctor".
    subject = bench.world.pros[persona.role if persona.professional else "doctor"]
    r = c.post("/fhir/Consent", json=authorization(d.key, subject), headers=h)
    rep.check("POST Consent", f"authorize Practitioner/{subject}", expected(scenario(persona, state), "manage_access"),
              _outcome(r.status_code, 201, (403,)), f"{r.status_code} {r.text[:160]}")
    if r.status_code == 201 and persona.professional and RELATION[persona.role] == "none":
        undo = c.post("/fhir/Consent", json=authorization(d.key, subject, "inactive"),
                      headers=bench.patient_headers(d))
        assert undo.status_code == 201, undo.text

    rep.done(persona, state)
