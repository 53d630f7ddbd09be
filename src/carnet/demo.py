"""Synthetic demo data (``carnet demo``): idempotent, built through the same services and rules as the API.

Identities are fake: NIRs with valid keys under the *demo* INS OID, RPPS numbers in a range no real professional
holds. The demo client's private key is written to ``var/demo-client-key.json`` (mode 0600) so the examples can ask
for tokens.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey
from sqlalchemy import select

from carnet import admin
from carnet.access.actors import Actor, ActorKind
from carnet.context import Services, run
from carnet.db.tables import ins_lookup
from carnet.documents import service as documents
from carnet.dossier import service as dossiers
from carnet.identity.ins import OID_DEMO, fake_nir_for
from carnet.identity.professionals import fake_rpps

DEMO_SYSTEM = f"urn:oid:{OID_DEMO}"
ORG = "1750000001"  # a fake structure id

PROS = [  # (index, family, given, profession, specialty, regulator)
    (1, "Martin", "Claire", "10", "SM54", False),  # GP
    (2, "Bernard", "Hugo", "10", "SM04", False),  # cardiologist
    (3, "Petit", "Inès", "21", None, False),  # pharmacist
    (4, "Robert", "Luc", "60", None, False),  # nurse
    (5, "Richard", "Emma", "10", "SM59", True),  # SAMU regulator (emergency medicine)
    (6, "Durand", "Paul", "40", None, False),  # dentist
    (7, "Leroy", "Zoé", "70", None, False),  # physiotherapist
]
# Pharmacies of the directory (issue 12 §2: the patient sends a prescription to one): (index, family, given,
# organisation id, name); their pharmacists have no authorization on any dossier.
PHARMACIES = [
    (8, "Garnier", "Louis", "1750000002", "Pharmacie du Marché"),
    (9, "Faure", "Nina", "1750000003", "Pharmacie de la Gare"),
]
PATIENTS = [  # (index, family, given, birthDate, gender)
    (1, "Lefèvre", "Jeanne", "1958-03-14", "female"),
    (2, "Moreau", "Lucas", "2015-06-02", "male"),
    (3, "Fournier", "Henri", "1941-11-23", "male"),
]


def pro_id(index: int) -> str:
    return "8" + fake_rpps(index)


def patient_ins(index: int) -> str:
    return fake_nir_for(900_000 + index)


def patient_resource(index: int, family: str, given: str, birth: str, gender: str) -> dict[str, Any]:
    return {"resourceType": "Patient",
            "identifier": [{"system": DEMO_SYSTEM, "value": patient_ins(index)}],
            "name": [{"use": "official", "family": family, "given": [given]}], "birthDate": birth, "gender": gender,
            "extension": [
                {"url": dossiers.BIRTHPLACE_EXT, "valueAddress": {"extension": [
                    {"url": dossiers.INSEE_EXT, "valueCoding": {"code": "75056"}}]}},
                {"url": dossiers.EXT_CREATION_CONSENT, "valueBoolean": True}]}


def docref(master: str, loinc: str, title: str, ctype: str, labels: list[str] | None = None) -> dict[str, Any]:
    from carnet.documents.codes import TRE_A07, type_system

    res: dict[str, Any] = {"resourceType": "DocumentReference", "status": "current",
                           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
                           "type": {"coding": [{"system": type_system(loinc), "code": loinc}]},
                           "content": [{"attachment": {"contentType": ctype, "title": title, "language": "fr-FR"}}]}
    if labels:
        res["securityLabel"] = [{"coding": [{"system": TRE_A07, "code": c}]} for c in labels]
    return res


def write_key(path: Path, key: ECKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key.as_dict(private=True), f)


def load_or_make_key(path: Path) -> ECKey:
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text()))
    key = ECKey.generate_key("P-256", auto_kid=True)
    write_key(path, key)
    return key


DEMO_PASSWORD = "demo-carnet-2026"  # noqa: S105 - synthetic demo accounts only; printed by `carnet demo`
DEMO_PATIENT_EMAIL = "jeanne.lefevre@example.test"
DEMO_PARENT_EMAIL = "sophie.moreau@example.test"
DEMO_PATIENT_APP = "demo-patient-app"  # a patient's own app (SMART standalone launch): examples/patient_app.py
DEMO_PATIENT_APP_REDIRECT = "http://127.0.0.1:8765/callback"


def _activate_demo_accounts(services: Services) -> None:
    """Jeanne Lefèvre (her own dossier) and Sophie Moreau (Lucas's mother) can sign in at once with
    DEMO_PASSWORD; their one-time codes go to var/mail/. Claude Fournier (a guardian) is left invited: his activation
    letter is in var/post/, to try the activation page."""
    import datetime as dt

    from carnet.accounts import service as accounts

    now = services.clock()
    with services.engine.begin() as conn:
        for login, email in ((patient_ins(1), DEMO_PATIENT_EMAIL), (DEMO_PARENT_EMAIL, DEMO_PARENT_EMAIL)):
            row = accounts.by_login(conn, login)
            if row is None or row.status != "invited":
                continue
            code = accounts.new_code(conn, row.account_id, "activation", "post", now, dt.timedelta(minutes=5))
            accounts.activate(services, conn, now, login=login, code=code,
                              birth_date=dt.date(1958, 3, 14) if row.kind == "patient" else None,
                              password=DEMO_PASSWORD, email=email, phone=None, otp_channel="email")


def seed(services: Services) -> dict[str, Any]:
    var = services.settings.var_dir
    keys = {name: load_or_make_key(var / f"demo-{name}-key.json") for name in ("client", "portal", "cpam")}
    with services.engine.begin() as conn:
        for i, family, given, prof, spec, reg in PROS:
            admin.add_practitioner(conn, rpps=fake_rpps(i), adeli=None, family=family, given=given, profession=prof,
                                   specialty=spec, organisation_id=ORG, organisation_name="Maison de santé Démo",
                                   regulator=reg)
        for i, family, given, org, org_name in PHARMACIES:
            admin.add_practitioner(conn, rpps=fake_rpps(i), adeli=None, family=family, given=given, profession="21",
                                   specialty=None, organisation_id=org, organisation_name=org_name, regulator=False)
        for name, cid, kind in (("client", "demo-practice", "professional"), ("portal", "demo-portal",
                                                                              "patient_portal"),
                                ("cpam", "demo-cpam", "assurance_maladie")):
            admin.add_client(conn, client_id=cid, name=f"Demo {kind}", kind=kind,
                             jwks={"keys": [keys[name].as_dict(private=False)]})
        admin.add_client(conn, client_id=DEMO_PATIENT_APP, name="Mon appli santé (démo)", kind="patient_app",
                         jwks=None, redirect_uris=[DEMO_PATIENT_APP_REDIRECT])
        existing = conn.execute(select(ins_lookup.c.dossier_key).where(
            ins_lookup.c.ins == patient_ins(1))).scalar()
    if existing is None:
        _seed_dossiers(services)
        _activate_demo_accounts(services)
    return {"professionals": {p[1]: pro_id(p[0]) for p in PROS + PHARMACIES},
            "patients": {p[1]: patient_ins(p[0]) for p in PATIENTS}}


def _seed_dossiers(services: Services) -> None:
    gp = Actor(ActorKind.PROFESSIONAL, id=pro_id(1), display="Claire Martin", profession="10", organisation_id=ORG)
    pharmacist = Actor(ActorKind.PROFESSIONAL, id=pro_id(3), display="Inès Petit", profession="21")
    keys = []
    for i, family, given, birth, gender in PATIENTS:
        key, _ = run(services, gp, lambda ctx, i=i, f=family, g=given, b=birth, s=gender:  # type: ignore[misc]
                     dossiers.create(ctx, patient_resource(i, f, g, b, s)))
        keys.append(key)
    adult, minor, protected = keys
    patient = Actor(ActorKind.PATIENT, id=patient_ins(1))
    run(services, patient, lambda ctx: dossiers.set_treating_gp(ctx, adult, pro_id(1)))
    run(services, patient, lambda ctx: dossiers.change_access(ctx, adult, "practitioner", pro_id(3), "authorized"))
    run(services, patient, lambda ctx: dossiers.change_access(ctx, adult, "practitioner", pro_id(4), "authorized"))
    op = Actor(ActorKind.OPERATOR, id="demo-seed")
    run(services, op, lambda ctx: dossiers.add_representative(ctx, minor, "minor", "Moreau", "Sophie", "MTH",
                                                              {"telecom": [{"system": "email",
                                                                            "value": DEMO_PARENT_EMAIL}]}))
    run(services, op, lambda ctx: dossiers.add_representative(ctx, minor, "minor", "Moreau", "Thomas", "FTH"))
    run(services, op, lambda ctx: dossiers.add_representative(ctx, protected, "protected_adult", "Fournier",
                                                              "Claude", "GUARD"))
    pdf = b"%PDF-1.4\n% Carnet demo document\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    docs = [
        (gp, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000001", "11488-4", "Consultation du 3 mars",
         "application/pdf", pdf, None),
        (gp, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000002", "11502-2", "Bilan sanguin",
         "text/plain", "Hémoglobine 13,2 g/dL (synthétique)".encode(), None),
        (gp, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000003", "57833-6", "Ordonnance",
         "application/pdf", pdf, None),
        (gp, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000004", "SYNTH", "Volet de synthèse médicale",
         "text/plain", "Synthèse : hypertension artérielle traitée (synthétique)".encode(), None),
        (gp, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000005", "68599-0", "Bilan psychiatrique",
         "text/plain", "Document masqué aux professionnels (synthétique)".encode(), ["MASQUE_PS"]),
        (pharmacist, adult, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000006", "60593-1", "Dispensation",
         "text/plain", "Délivrance (synthétique)".encode(), None),
        (gp, minor, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000007", "87273-9", "Vaccination",
         "text/plain", "Vaccin ROR, 2e dose (synthétique)".encode(), None),
        (gp, protected, "urn:uuid:0f1d7c9e-0000-4000-8000-000000000008", "34133-9", "Synthèse d'hospitalisation",
         "application/pdf", pdf, None),
    ]
    for actor, key, master, loinc, title, ctype, data, labels in docs:
        res = docref(master, loinc, title, ctype, labels)
        run(services, actor, lambda ctx, k=key, r=res, d=data, c=ctype:  # type: ignore[misc]
            documents.publish(ctx, k, r, documents.Content(d, c), "ITI-105"))
    from carnet.clinical.demo import seed as seed_clinical  # structured items for the adult (issue 3 §2)

    seed_clinical(services, gp, adult)
    from carnet.trends.demo import seed as seed_measurements  # measurements, charts and alerts (issue 17)

    seed_measurements(services, patient, adult)
    _seed_claims(services)


def _cip13(body8: str) -> str:
    base = "3400" + body8
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(base))
    return base + str((10 - total % 10) % 10)


def _seed_claims(services: Services) -> None:
    """A few months of Assurance Maladie's care history for the demo adult, through the real ingest."""
    import datetime as dt

    from carnet.claims.ingest import HEADER, ingest

    today = services.clock().date()
    nir, gp = patient_ins(1), pro_id(1)
    rows = [
        (30, "consultation", "NGAP", "G", "Consultation de médecine générale", gp, "30,00"),
        (30, "drug", "CIP13", _cip13("12345678"), "Amlodipine 5 mg, 30 comprimés", gp, "4,12"),
        (95, "biology", "NGAP", "B 70", "Bilan sanguin", gp, "18,90"),
        (120, "consultation", "NGAP", "G", "Consultation de médecine générale", gp, "30,00"),
        (121, "drug", "CIP13", _cip13("87654321"), "Amlodipine 5 mg, 30 comprimés", gp, "4,12"),
        (200, "act", "CCAM", "DEQP003", "Électrocardiogramme", pro_id(2), "14,26"),
    ]
    lines = [";".join(HEADER) + "\n"] + [
        ";".join([nir, (today - dt.timedelta(days=d)).isoformat(), kind, system, code, label, who, amount]) + "\n"
        for d, kind, system, code, label, who, amount in rows]
    ingest(services, [line.encode() for line in lines])
