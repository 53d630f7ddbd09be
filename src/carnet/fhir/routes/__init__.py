"""The FHIR R4 API at ``/fhir``: one table of routes, each naming the FHIR interaction it implements.

IHE MHD 4.2 Document Recipient (ITI-65, ITI-105) and Document Responder (ITI-66, ITI-67, ITI-68), PDQm Patient
Demographics Supplier (ITI-78), AuditEvent (BALP) for the access history, Consent for authorizations, and the
directory's Practitioner/PractitionerRole. Each family of resources is a module of this package that declares its
routes (its ``ROUTES``); :data:`ROUTES` is the one table they make together, and the CapabilityStatement is generated
from it, so it lists exactly what exists. Handlers never decide access: they parse, call a service with the caller's
context, and shape the answer.
"""

from __future__ import annotations

from typing import Any

from carnet.dossier import service as dossiers
from carnet.fhir.routes import (
    access_codes,
    audit,
    claims,
    clinical,
    consent,
    directory,
    documents,
    patients,
    related_persons,
    tasks,
    teleconsult,
)
from carnet.fhir.routes.base import Call, Route

#: The families, in the order their routes enter the table (and their resources the CapabilityStatement).
FAMILIES = (patients, access_codes, documents, consent, related_persons, audit, directory, tasks, claims, clinical,
            teleconsult)

ROUTES: tuple[Route, ...] = tuple(route for family in FAMILIES for route in family.ROUTES)


#: SMART App Launch 2 (§ "Declaring support"): the OAuth endpoints that exist, in the CapabilityStatement's security
#: extension as in ``/.well-known/smart-configuration``: authorization (patient apps), token (apps and Backend
#: Services), revocation (RFC 7009, an app's refresh token) and the portal page where a patient manages their apps.
#: No ``register``: apps are registered by the operator (``carnet client add``), not by RFC 7591 dynamic registration.
OAUTH_URIS = (("authorize", "/oauth/authorize"), ("token", "/oauth/token"), ("revoke", "/oauth/revoke"),
              ("manage", "/portal/apps"))


def capability_statement(settings_base: str, software_version: str) -> dict[str, Any]:
    """Generated from :data:`ROUTES`: every interaction listed here is one that exists."""
    resources: dict[str, dict[str, Any]] = {}
    system_interactions = []
    for r in ROUTES:
        if r.resource is None:
            system_interactions.append({"code": r.interaction})
            continue
        res = resources.setdefault(r.resource, {"type": r.resource, "interaction": [], "searchParam": []})
        if r.interaction == "operation":
            res.setdefault("operation", []).append({"name": r.operation, "definition":
                                                    f"{dossiers.CANONICAL}/OperationDefinition/{r.resource}-"
                                                    f"{r.operation}"})
            continue
        if {"code": r.interaction} not in res["interaction"]:
            res["interaction"].append({"code": r.interaction})
        for inc in r.includes:
            if inc not in res.setdefault("searchInclude", []):
                res["searchInclude"].append(inc)
        for name, ptype in r.search_params:
            if not any(p["name"] == name for p in res["searchParam"]):
                res["searchParam"].append({"name": name, "type": ptype})
    for res in resources.values():
        if not res["searchParam"]:
            del res["searchParam"]
        if res["type"] == "DocumentReference":
            res["supportedProfile"] = [
                "https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference",
                "https://interop.esante.gouv.fr/ig/fhir/pdsm/StructureDefinition/pdsm-comprehensive-document-reference"]
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": "2026-11-21", "kind": "instance",
        "fhirVersion": "4.0.1", "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "software": {"name": "Carnet", "version": software_version},
        "implementation": {"description": "Carnet shared medical record server", "url": settings_base},
        "instantiates": [
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
            "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
            "https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier",
        ],
        "rest": [{"mode": "server", "documentation": (
            "OpenAPI description of this API (generated from the same route table): "
            f"{settings_base}/fhir/openapi.json"),
            "security": {
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                     "code": "SMART-on-FHIR"}]}],
            "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                           "extension": [{"url": name, "valueUri": f"{settings_base}{path}"}
                                         for name, path in OAUTH_URIS]}]},
            "resource": list(resources.values()), "interaction": system_interactions}],
    }


__all__ = ["ROUTES", "Call", "Route", "capability_statement"]
