"""Compact JSON schemas of the FHIR resources Carnet accepts, for its OpenAPI description (:mod:`carnet.fhir.openapi`).

Carnet's choice (issue 15 §8): not the official FHIR R4 JSON schema (4 MB, every resource of the specification), but
one small schema per resource type that says what Carnet reads: the elements it requires and the shape of those it
looks at, with ``additionalProperties`` left open for the rest of FHIR R4. A request that fits these schemas may
still be refused: the server validates every resource with ``fhir.resources`` (R4B models, strict) and checks the
bindings it relies on itself (``carnet.documents.codes``), answering 400 or 422 with an OperationOutcome that names
the element. The schemas say where to start; the OperationOutcome says what to fix.
"""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = list(required)
    if description:
        out["description"] = description
    return out


def _resource(rtype: str, properties: dict[str, Any], required: tuple[str, ...] = (), description: str = ""
              ) -> dict[str, Any]:
    schema = _obj({"resourceType": {"type": "string", "enum": [rtype]}, "id": {"type": "string"},
                   "meta": {"type": "object"}, **properties}, ("resourceType", *required), description)
    return schema


STRING = {"type": "string", "minLength": 1}
DATE = {"type": "string", "format": "date"}
DATETIME = {"type": "string", "format": "date-time"}
LIST_OF = lambda name: {"type": "array", "minItems": 1, "items": ref(name)}  # noqa: E731

DATATYPES: dict[str, dict[str, Any]] = {
    "Coding": _obj({"system": {"type": "string", "format": "uri"}, "code": STRING, "display": {"type": "string"}}),
    "CodeableConcept": _obj({"coding": {"type": "array", "items": ref("Coding")}, "text": {"type": "string"}}),
    "Identifier": _obj({"system": {"type": "string", "format": "uri"}, "value": STRING}, ("system", "value")),
    "Reference": _obj({"reference": STRING, "identifier": ref("Identifier"), "display": {"type": "string"}}),
    "HumanName": _obj({"use": {"type": "string"}, "family": STRING, "given": {"type": "array", "items": STRING}}),
    "Period": _obj({"start": DATETIME, "end": DATETIME}),
    "Attachment": _obj({"contentType": STRING, "language": {"type": "string"}, "data": {
        "type": "string", "contentEncoding": "base64", "description": "the document, base64 (ITI-105)"},
        "url": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
        "hash": {"type": "string", "contentEncoding": "base64"}, "title": {"type": "string"},
        "creation": DATETIME}, ("contentType",)),
    "Extension": _obj({"url": STRING}, ("url",)),
}

RESOURCES: dict[str, dict[str, Any]] = {
    "OperationOutcome": _resource("OperationOutcome", {"issue": {"type": "array", "minItems": 1, "items": _obj({
        "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]}, "code": STRING,
        "diagnostics": {"type": "string"}, "expression": {"type": "array", "items": {"type": "string"}}},
        ("severity", "code"))}}, ("issue",), "Every refusal: what went wrong, and the element it concerns "
                                             "(expression)."),
    "Bundle": _resource("Bundle", {
        "type": {"type": "string"}, "total": {"type": "integer", "minimum": 0},
        "link": {"type": "array", "items": _obj({"relation": STRING, "url": STRING})},
        "entry": {"type": "array", "items": _obj({"fullUrl": {"type": "string"}, "resource": {"type": "object"},
                                                  "request": {"type": "object"}, "response": {"type": "object"},
                                                  "search": {"type": "object"}})}},
        ("type",), "A searchset (search), a transaction-response (ITI-65) or a document (IPS)."),
    "TransactionBundle": _resource("Bundle", {
        "type": {"type": "string", "enum": ["transaction"]},
        "entry": {"type": "array", "minItems": 2, "items": _obj({
            "fullUrl": STRING, "resource": {"type": "object", "required": ["resourceType"], "properties": {
                "resourceType": {"type": "string", "enum": ["List", "DocumentReference", "Binary", "Patient"]}}},
            "request": _obj({"method": {"type": "string", "enum": ["POST", "PUT"]}, "url": STRING},
                            ("method", "url"))}, ("fullUrl", "resource", "request"))}},
        ("type", "entry"), "IHE ITI-65 Provide Document Bundle: a SubmissionSet (List), DocumentReferences and "
                           "their Binary contents, in one transaction."),
    "Patient": _resource("Patient", {
        "identifier": {"type": "array", "minItems": 1, "items": ref("Identifier"),
                       "description": "the INS (urn:oid:1.2.250.1.213.1.4.8 NIR, …4.9 NIA, …4.10 test)"},
        "name": LIST_OF("HumanName"), "birthDate": DATE,
        "gender": {"type": "string", "enum": ["male", "female", "other", "unknown"]},
        "extension": {"type": "array", "items": ref("Extension"),
                      "description": "birth place (INSEE code), the patient's consent to the creation"}},
        ("identifier", "name", "birthDate", "gender")),
    "DocumentReference": _resource("DocumentReference", {
        "masterIdentifier": ref("Identifier"),
        "status": {"type": "string", "enum": ["current", "superseded", "entered-in-error"]},
        "type": ref("CodeableConcept"), "category": {"type": "array", "items": ref("CodeableConcept")},
        "subject": ref("Reference"), "date": DATETIME, "author": {"type": "array", "items": ref("Reference")},
        "securityLabel": {"type": "array", "items": ref("CodeableConcept"),
                          "description": "JDV_J58 confidentiality codes (1.2.250.1.213.1.1.4.13); unknown refused"},
        "relatesTo": {"type": "array", "items": _obj({"code": STRING, "target": ref("Reference")})},
        "content": {"type": "array", "minItems": 1, "items": _obj({"attachment": ref("Attachment"),
                                                                   "format": ref("Coding")}, ("attachment",))},
        "context": _obj({"period": ref("Period"), "facilityType": ref("CodeableConcept"),
                         "practiceSetting": ref("CodeableConcept")})},
        ("status", "type", "subject", "content")),
    "Consent": _resource("Consent", {
        "status": {"type": "string", "enum": ["active", "inactive", "proposed", "rejected", "draft",
                                              "entered-in-error"]},
        "scope": ref("CodeableConcept"), "category": {"type": "array", "minItems": 1,
                                                      "items": ref("CodeableConcept")},
        "patient": ref("Reference"),
        "provision": _obj({"type": {"type": "string", "enum": ["permit", "deny"]},
                           "actor": {"type": "array", "items": _obj({"role": ref("CodeableConcept"),
                                                                     "reference": ref("Reference")})},
                           "purpose": {"type": "array", "items": ref("Coding")}})},
        ("status", "scope", "category", "patient", "provision"),
        "An authorization (permit + actor), a block (deny + actor), an objection (deny + purpose ETREAT or "
        "REGULATION), the médecin traitant (role treating_gp)."),
    "RelatedPerson": _resource("RelatedPerson", {
        "patient": ref("Reference"), "relationship": LIST_OF("CodeableConcept"), "name": LIST_OF("HumanName")},
        ("patient", "relationship", "name"), "A legal representative: a parent (MTH, FTH, PRN) or a guardian "
                                             "(GUARD, POWATT)."),
    "Task": _resource("Task", {
        "status": STRING, "intent": STRING, "code": ref("CodeableConcept"), "for": ref("Reference"),
        "focus": ref("Reference"), "description": {"type": "string"}, "reasonCode": ref("CodeableConcept")},
        ("status", "intent", "code"), "An access request (code access-request, for: the patient) or a "
                                      "rectification request (code rectification, focus: the document)."),
    "Parameters": _resource("Parameters", {"parameter": {"type": "array", "items": _obj({
        "name": STRING, "valueString": {"type": "string"}, "valueCode": {"type": "string"},
        "valueDate": DATE, "valueBoolean": {"type": "boolean"}, "valueIdentifier": ref("Identifier")},
        ("name",))}}),
    "JsonPatch": {"type": "array", "items": _obj({
        "op": {"type": "string", "enum": ["add", "remove", "replace", "test", "move", "copy"]},
        "path": {"type": "string"}, "value": {}}, ("op", "path")),
        "description": "RFC 6902, on status and securityLabel only (ANS PDSm TD3.2/TD3.3)"},
}

_CLINICAL_REQUIRED = {
    "AllergyIntolerance": ("patient", "code"), "Condition": ("subject", "code"),
    "MedicationStatement": ("status", "subject", "medicationCodeableConcept"),
    "Immunization": ("status", "patient", "vaccineCode", "occurrenceDateTime"),
    "Observation": ("status", "code", "subject"),
}


def clinical(rtype: str) -> dict[str, Any]:
    """The five structured data types (issue 3 §2): their patient, their code and a status."""
    fields: dict[str, Any] = {name: ref("Reference") for name in ("patient", "subject")}
    fields.update({name: ref("CodeableConcept") for name in ("code", "medicationCodeableConcept", "vaccineCode",
                                                            "clinicalStatus", "verificationStatus")})
    fields.update(status={"type": "string"}, occurrenceDateTime=DATETIME, effectiveDateTime=DATETIME,
                  category={"type": "array", "items": ref("CodeableConcept")})
    return _resource(rtype, fields, _CLINICAL_REQUIRED[rtype])


def served(rtype: str) -> dict[str, Any]:
    """What a successful answer holds: a resource of that type, with its id (its other elements as stored)."""
    return {"type": "object", "required": ["resourceType"],
            "properties": {"resourceType": {"type": "string", "enum": [rtype]}, "id": {"type": "string"}}}


def components(clinical_types: tuple[str, ...]) -> dict[str, Any]:
    return {**DATATYPES, **RESOURCES, **{t: clinical(t) for t in clinical_types}}
