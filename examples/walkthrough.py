"""A vendor's first session with Carnet, step by step, with nothing but httpx and joserfc.

Run ``carnet db upgrade && carnet demo`` once, then ``carnet serve``, then::

    python examples/walkthrough.py --base http://127.0.0.1:8000

The steps: an access token for the demo practice's software (SMART Backend Services, ``private_key_jwt``), the
dossier check (PDQm ITI-78), publishing a PDF in a Provide Document Bundle (MHD ITI-65), finding it (ITI-67),
retrieving its bytes (ITI-68), then the patient reading the dossier's access history (AuditEvent) through the
patient portal. Each run publishes a new document (a fresh masterIdentifier), so the script can be run again.
Exit status 0 when every step succeeded.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

INS_SYSTEM = "urn:oid:1.2.250.1.213.1.4.11"  # the demo INS OID
PATIENT_INS = "100103690200014"  # Jeanne Lefèvre, the demo adult patient
GP_ID = "810900000018"  # Dr Claire Martin, her médecin traitant: "8" + RPPS
FHIR_JSON = "application/fhir+json"
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")


class StepFailed(Exception):
    pass


def step(n: int, name: str, r: httpx.Response, expect: int, detail: str = "") -> Any:
    ok = r.status_code == expect
    print(f"{n}. {name}: {r.status_code} {'OK' if ok else 'FAILED'}{' - ' + detail if detail and ok else ''}")
    if not ok:
        print(r.text[:2000], file=sys.stderr)
        raise StepFailed(name)
    return r.json() if "json" in r.headers.get("content-type", "") else r.content


def client_assertion(key: ECKey, client_id: str, token_url: str, extensions: dict[str, Any]) -> str:
    """RFC 7523 client authentication: a short-lived JWT signed with the client's private key.
    Carnet reads who acts from the IHE IUA extension claims (``extensions.ihe_iua``)."""
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": now, "exp": now + 240,
              "jti": str(uuid.uuid4()), "extensions": extensions}
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "JWT"}, claims, key)


def get_token(http: httpx.Client, base: str, key_file: Path, client_id: str,
              extensions: dict[str, Any]) -> httpx.Response:
    key = ECKey.import_key(json.loads(key_file.read_text()))
    form = {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": client_assertion(key, client_id, f"{base}/oauth/token", extensions)}
    return http.post(f"{base}/oauth/token", data=form)


def provide_bundle(patient_id: str, master: str) -> dict[str, Any]:
    """ITI-65: one SubmissionSet List, one DocumentReference and its content as a Binary, all in one transaction."""
    list_url, doc_url, bin_url = (f"urn:uuid:{uuid.uuid4()}" for _ in range(3))
    subject = {"reference": f"Patient/{patient_id}"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    submission_set = {
        "resourceType": "List", "status": "current", "mode": "working", "date": now, "subject": subject,
        "code": {"coding": [{"system": "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes",
                             "code": "submissionset"}]},
        "identifier": [{"use": "usual", "system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "entry": [{"item": {"reference": doc_url}}]}
    document = {
        "resourceType": "DocumentReference", "status": "current",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": master},
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]},
        "subject": subject, "date": now,
        "content": [{"attachment": {"contentType": "application/pdf", "url": bin_url, "language": "fr-FR",
                                    "title": "Compte rendu de consultation (walkthrough)"}}]}
    binary = {"resourceType": "Binary", "contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": list_url, "resource": submission_set, "request": {"method": "POST", "url": "List"}},
        {"fullUrl": doc_url, "resource": document, "request": {"method": "POST", "url": "DocumentReference"}},
        {"fullUrl": bin_url, "resource": binary, "request": {"method": "POST", "url": "Binary"}}]}


def walk(base: str, var: Path) -> None:
    with httpx.Client(timeout=30) as http:
        # 1. A token for the practice's software, acting for the GP.
        r = get_token(http, base, var / "demo-client-key.json", "demo-practice",
                      {"ihe_iua": {"national_provider_identifier": GP_ID}, "carnet": {"mode": "normal"}})
        tok = step(1, "token (professional)", r, 200, f"scope {r.json().get('scope', '')}" if r.is_success else "")
        pro = {"Authorization": f"Bearer {tok['access_token']}", "Accept": FHIR_JSON}

        # 2. Does the patient have a dossier? (ITI-78, search by INS)
        r = http.get(f"{base}/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{PATIENT_INS}"}, headers=pro)
        found = step(2, "dossier check (ITI-78)", r, 200)
        if found.get("total") != 1:
            raise StepFailed("the demo patient has no dossier: run `carnet demo` first")
        patient_id = found["entry"][0]["resource"]["id"]
        print(f"   dossier Patient/{patient_id}")

        # 3. Publish a PDF (ITI-65).
        master = f"urn:uuid:{uuid.uuid4()}"
        r = http.post(f"{base}/fhir", json=provide_bundle(patient_id, master),
                      headers={**pro, "Content-Type": FHIR_JSON})
        out = step(3, "provide document bundle (ITI-65)", r, 200)
        statuses = [e["response"]["status"] for e in out["entry"]]
        print(f"   entries: {', '.join(statuses)}")
        doc_id = out["entry"][1]["response"]["location"].split("/")[1]

        # 4. Find it (ITI-67).
        r = http.get(f"{base}/fhir/DocumentReference",
                     params={"patient": patient_id, "identifier": f"urn:ietf:rfc:3986|{master}"}, headers=pro)
        bundle = step(4, "find documents (ITI-67)", r, 200)
        ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
        if ids != [doc_id]:
            raise StepFailed(f"the search returned {ids}, expected [{doc_id}]")
        url = bundle["entry"][0]["resource"]["content"][0]["attachment"]["url"]
        print(f"   found DocumentReference/{doc_id}")

        # 5. Retrieve the bytes (ITI-68) and compare.
        r = http.get(url, headers={**pro, "Accept": "*/*"})
        data = step(5, "retrieve document (ITI-68)", r, 200)
        if data != PDF:
            raise StepFailed("the retrieved bytes differ from the published ones")
        print(f"   {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}…, identical")

        # 6. The patient, through the patient portal, reads who accessed the dossier.
        r = get_token(http, base, var / "demo-portal-key.json", "demo-portal",
                      {"ihe_iua": {"person_id": PATIENT_INS}})
        tok = step(6, "token (patient portal)", r, 200)
        patient = {"Authorization": f"Bearer {tok['access_token']}", "Accept": FHIR_JSON}
        r = http.get(f"{base}/fhir/AuditEvent", params={"patient": patient_id, "_count": "50"}, headers=patient)
        events = step(7, "access history (AuditEvent)", r, 200)
        seen = [e["resource"] for e in events.get("entry", [])]
        if not seen:
            raise StepFailed("the access history is empty")
        for ev in seen[:5]:
            sub = ", ".join(c.get("code", "") for c in ev.get("subtype") or [])
            who = next((a.get("who", {}).get("display") or a.get("who", {}).get("identifier", {}).get("value")
                        for a in ev.get("agent") or []), "")
            print(f"   {ev.get('recorded', '')}  {ev.get('action', '')}  {sub or ev.get('type', {}).get('code', '')}"
                  f"  {who or ''}")
        print(f"   {events.get('total', len(seen))} events")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="http://127.0.0.1:8000", help="Carnet's base URL (its CARNET_BASE_URL)")
    parser.add_argument("--var", default="var", type=Path, help="the var directory holding the demo keys")
    args = parser.parse_args()
    missing = [str(args.var / f) for f in ("demo-client-key.json", "demo-portal-key.json")
               if not (args.var / f).is_file()]
    if missing:
        print(f"FAILED: no demo key ({', '.join(missing)}): run `carnet demo` first, or pass --var", file=sys.stderr)
        return 1
    try:
        walk(args.base.rstrip("/"), args.var)
    except StepFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"FAILED: cannot reach {args.base}: {exc}", file=sys.stderr)
        return 1
    print("walkthrough complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
