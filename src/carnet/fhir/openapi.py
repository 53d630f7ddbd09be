"""The OpenAPI 3.1 description of the FHIR API, generated from the route table (:data:`carnet.fhir.routes.ROUTES`),
the same table the CapabilityStatement is generated from: a route added to the table appears in both, and nothing
else does. Served without authentication at ``GET /fhir/openapi.json`` (it holds no data); docs/API.md.

Each operation carries its FHIR interaction (``x-fhir-interaction``), the IHE transaction it implements
(``x-ihe-transaction``, named in its operationId and summary: ITI-65, ITI-66, ITI-67, ITI-68, ITI-78, ITI-105), the
search parameters its resource supports, its request body (compact schemas, :mod:`carnet.fhir.openapi_schemas`), its
answers (OperationOutcome for every refusal) and the SMART scope it needs.
"""

from __future__ import annotations

import re
from typing import Any

from carnet.clinical.service import TYPES as CLINICAL_TYPES
from carnet.fhir.openapi_schemas import components, ref, served
from carnet.fhir.routes import ROUTES, Route

PATH = "/fhir/openapi.json"
FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"

#: IHE transactions by number, as their specifications name them.
IHE = {"ITI-65": "Provide Document Bundle", "ITI-66": "Find Document Lists", "ITI-67": "Find Document References",
       "ITI-68": "Retrieve Document", "ITI-78": "Mobile Patient Demographics Query",
       "ITI-105": "Simplified Publish"}

#: What each refusal status means here; every one is an OperationOutcome.
REFUSALS = {
    "400": "The request is malformed: unknown or ill-formed search parameter, invalid JSON or XML, nesting too deep",
    "401": "No valid bearer access token (WWW-Authenticate says why)",
    "403": "The token's scopes do not cover this interaction, or the caller has no authorization on the dossier "
           "(the OperationOutcome says what would grant access)",
    "404": "No such resource, or one the caller may not see",
    "409": "Conflict with the current state (a replaced document, a duplicate identifier)",
    "413": "The body is larger than this route accepts",
    "415": "A body in a media type this route does not read",
    "422": "The resource is well-formed but refused; the OperationOutcome's expression names the element",
    "503": "The document store is unavailable; Retry-After says when to try again",
    "429": "Too many attempts (a guessable secret such as an access code); Retry-After says when to try again",
}

_PARAM_SCHEMA = {
    "string": {"type": "string"},
    "token": {"type": "string", "description": "code, or system|code"},
    "reference": {"type": "string", "description": "Type/id, or an id"},
    "date": {"type": "string", "description": "a FHIR date, optionally prefixed (eq, ge, le, gt, lt)"},
}


def _transactions(route: Route) -> list[str]:
    return re.findall(r"ITI-\d+", route.spec)


def _camel(text: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", text)
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:] if w)


def operation_id(route: Route) -> str:
    """Unique and stable: the IHE transaction first when there is one (``ITI-67_searchDocumentReference``)."""
    verb = {"search-type": "search", "operation": "op"}.get(route.interaction, route.interaction)
    name = _camel(f"{verb} {route.resource or 'system'} {route.operation or ''}")
    if route.method == "POST" and route.interaction == "search-type":
        name += "ViaPost"
    txs = _transactions(route)
    return f"{txs[0]}_{name}" if txs else name


def _summary(route: Route) -> str:
    txs = _transactions(route)
    what = (f"${route.operation}" if route.operation else route.interaction) + (
        f" {route.resource}" if route.resource else "")
    if txs:
        return f"{txs[0]} {IHE.get(txs[0], '')} ({what})".replace("  ", " ")
    return what


def _outcome_content() -> dict[str, Any]:
    return {FHIR_JSON: {"schema": ref("OperationOutcome")}, FHIR_XML: {"schema": {"type": "string"}}}


def _success_schema(route: Route) -> dict[str, Any]:
    if route.interaction in ("search-type", "transaction"):
        return ref("Bundle")
    if route.interaction in ("read", "create", "patch") and route.resource:
        return served(route.resource)
    return {"type": "object", "required": ["resourceType"], "properties": {"resourceType": {"type": "string"}}}


def _responses(route: Route) -> dict[str, Any]:
    usual = {"create": 201, "delete": 204}.get(route.interaction, 200)
    out: dict[str, Any] = {}
    for status in route.statuses or (usual,):
        if status == 204:
            out["204"] = {"description": "Done"}
            continue
        if route.produces == "*/*":
            content = {"*/*": {"schema": {"type": "string", "format": "binary"}},  # the exact bytes, their own type
                       FHIR_JSON: {"schema": served("Binary")}}
        elif route.produces:
            content = {route.produces: {"schema": {"type": "string", "format": "binary"}}}
        else:
            content = {FHIR_JSON: {"schema": _success_schema(route)}, FHIR_XML: {"schema": {"type": "string"}}}
        out[str(status)] = {"description": "Created" if status == 201 else "OK", "content": content}
    for refusal in REFUSALS:
        if refusal == "429" and not route.throttled:
            continue
        out[refusal] = {"$ref": f"#/components/responses/{refusal}"}
    return out


def _query_parameters(route: Route) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "query", "required": False, "schema": _PARAM_SCHEMA.get(ptype, {"type": "string"}),
               "description": f"FHIR search parameter ({ptype})"} for name, ptype in route.search_params]
    if route.interaction == "search-type":
        params += [{"name": "_count", "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 0}, "description": "page size (capped by the server)"},
                   {"name": "_offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
                    "description": "where the page starts (the Bundle's next link carries it)"},
                   {"name": "_summary", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["count"]},
                    "description": "count: only the total, no entry"},
                   {"name": "_total", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["none", "estimate", "accurate"]},
                    "description": "none: no total in the Bundle"},
                   {"name": "Prefer", "in": "header", "required": False,
                    "schema": {"type": "string", "enum": ["handling=strict", "handling=lenient"]},
                    "description": "handling=lenient: unknown search parameters are ignored (strict: refused)"}]
    if route.includes:
        params.append({"name": "_include", "in": "query", "required": False,
                       "schema": {"type": "string", "enum": list(route.includes)},
                       "description": "add the referenced resources (search.mode include), each read under the policy"})
    if route.produces is None:
        params.append({"name": "_format", "in": "query", "required": False, "description": "the answer's format",
                       "schema": {"type": "string", "enum": ["json", "xml", FHIR_JSON, FHIR_XML]}})
    return params


def _request_body(route: Route) -> dict[str, Any] | None:
    if route.method not in ("POST", "PATCH", "PUT"):
        return None
    if route.interaction == "transaction":
        schema = ref("TransactionBundle")
    elif route.interaction == "search-type":
        props = {name: _PARAM_SCHEMA.get(ptype, {"type": "string"}) for name, ptype in route.search_params}
        return {"required": False, "content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": props}}}}
    elif route.interaction == "patch":
        return {"required": True, "content": {"application/json-patch+json": {"schema": ref("JsonPatch")},
                                              FHIR_JSON: {"schema": ref("Parameters")}}}
    elif route.interaction == "create" and route.resource:
        schema = ref(route.resource)
    else:  # an operation: its Parameters (some take none; the answer then says what is missing)
        return {"required": False, "content": {FHIR_JSON: {"schema": ref("Parameters")}}}
    return {"required": True, "content": {FHIR_JSON: {"schema": schema}},
            "description": "FHIR R4 JSON (application/fhir+xml is read too)"}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": operation_id(route), "summary": _summary(route),
                          "tags": [route.resource or "system"], "x-fhir-interaction": route.interaction}
    if route.spec:
        op["description"] = route.spec
    txs = _transactions(route)
    if txs:
        op["x-ihe-transaction"] = txs[0]
    if route.operation:
        op["x-fhir-operation"] = f"${route.operation}"
    params = _query_parameters(route)
    if "{id}" in route.path:
        params.insert(0, {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                          "description": "the resource's logical id"})
    if params:
        op["parameters"] = params
    body = _request_body(route)
    if body:
        op["requestBody"] = body
    if route.scope:
        rtype, letter = route.scope
        scopes = [f"system/{rtype}.{letter}", f"user/{rtype}.{letter}", f"patient/{rtype}.{letter}"]
        op["security"] = [{"smart": [s]} for s in scopes] + [{"smart_backend": [scopes[0]]}]
    op["responses"] = _responses(route)
    return op


def _fixed_paths() -> dict[str, Any]:
    """The two documents that describe the API, served without a token."""
    return {
        "/fhir/metadata": {"get": {
            "operationId": "capabilities", "summary": "CapabilityStatement (generated from the same route table)",
            "tags": ["system"], "security": [], "x-fhir-interaction": "capabilities",
            "parameters": [{"name": "_format", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["json", "xml", FHIR_JSON, FHIR_XML]}}],
            "responses": {"200": {"description": "OK", "content": {
                FHIR_JSON: {"schema": served("CapabilityStatement")}, FHIR_XML: {"schema": {"type": "string"}}}}}}},
        PATH: {"get": {
            "operationId": "openapi", "summary": "This OpenAPI description", "tags": ["system"], "security": [],
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
                "type": "object", "required": ["openapi", "paths"]}}}}}}},
    }


def openapi_document(base_url: str, version: str, routes: tuple[Route, ...] = ROUTES) -> dict[str, Any]:
    """The whole description, for a server whose public URL is ``base_url``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths.update(_fixed_paths())
    smart = f"{base_url}/fhir/.well-known/smart-configuration"
    return {
        "openapi": "3.1.0",
        "info": {"title": "Carnet FHIR API", "version": version, "license": {
            "name": "Apache-2.0", "identifier": "Apache-2.0"}, "description": (
            "FHIR R4 (4.0.1): IHE MHD 4.2 Document Recipient and Responder, PDQm Supplier, and Carnet's dossier "
            f"operations. Generated from the same route table as the CapabilityStatement ({base_url}/fhir/metadata)"
            f". Authorization: SMART on FHIR ({smart}); every refusal is an OperationOutcome."),
        },
        "externalDocs": {"description": "SMART configuration", "url": smart},
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "schemas": components(CLINICAL_TYPES),
            "responses": {status: {"description": text, "content": _outcome_content()}
                          for status, text in REFUSALS.items()},
            "securitySchemes": {
                "smart_backend": {"type": "oauth2", "description": (
                    "SMART Backend Services: a client_credentials grant authenticated by a signed JWT assertion "
                    f"(private_key_jwt), with the IHE IUA claims of the acting professional. See {smart}."),
                    "flows": {"clientCredentials": {"tokenUrl": f"{base_url}/oauth/token", "scopes": _scopes(
                        routes, "system")}}},
                "smart": {"type": "oauth2", "description": (
                    f"SMART App Launch (standalone, PKCE S256) for patient apps. See {smart}."),
                    "flows": {"authorizationCode": {"authorizationUrl": f"{base_url}/oauth/authorize",
                                                    "tokenUrl": f"{base_url}/oauth/token",
                                                    "scopes": {**_scopes(routes, "patient"),
                                                               **_scopes(routes, "user"),
                                                               **_scopes(routes, "system")}}}},
            },
        },
    }


def _scopes(routes: tuple[Route, ...], context: str) -> dict[str, str]:
    letters = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
    return {f"{context}/{r.scope[0]}.{r.scope[1]}": f"{letters.get(r.scope[1], r.scope[1])} {r.scope[0]}"
            for r in routes if r.scope}
