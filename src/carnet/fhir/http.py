"""FHIR HTTP helpers: JSON responses, search bundles assembled from stored JSON text, request bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from carnet.errors import FhirError
from carnet.fhir.xml import MAX_DEPTH, from_xml
from carnet.ids import new_id
from carnet.text import holdable

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def __init__(self, content: str | dict[str, Any] | bytes, status_code: int = 200,
                 headers: dict[str, str] | None = None) -> None:
        if isinstance(content, dict):
            content = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        super().__init__(content=content, status_code=status_code, headers=headers,
                         media_type="application/fhir+json; charset=utf-8")


def searchset(base: str, resource_type: str, resources: list[str], total: int, params: list[tuple[str, str]],
              count: int, offset: int, include_total: bool = True,
              included: list[tuple[str, str]] | None = None) -> str:
    """A searchset Bundle built by splicing the stored JSON of each resource (no re-serialisation); ``included``:
    (resource type, stored JSON) of the resources ``_include`` added, with ``search.mode`` ``include``."""
    def link(rel: str, off: int) -> str:
        q = [(k, v) for k, v in params if k not in ("_offset", "_count")] + [("_count", str(count))]
        if off:
            q.append(("_offset", str(off)))
        return json.dumps({"relation": rel, "url": f"{base}/{resource_type}?{urlencode(q)}"})

    links = [link("self", offset)]
    if count > 0 and offset + len(resources) < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    entries = []
    for text in resources:
        rid = _id_of(text)
        entries.append(f'{{"fullUrl":"{base}/{resource_type}/{rid}","resource":{text},"search":{{"mode":"match"}}}}')
    for rtype, text in included or []:
        rid = _id_of(text)
        entries.append(f'{{"fullUrl":"{base}/{rtype}/{rid}","resource":{text},"search":{{"mode":"include"}}}}')
    total_part = f'"total":{total},' if include_total else ""
    return (f'{{"resourceType":"Bundle","id":"{new_id()}","type":"searchset",{total_part}'
            f'"link":[{",".join(links)}],"entry":[{",".join(entries)}]}}')


def _id_of(text: str) -> str:
    """The id of a stored resource. Carnet stores ``resourceType`` and ``id`` first, so the id is read from the head
    of the text when no nested object comes before it; anything else is parsed."""
    head = text[:300]
    i = head.find('"id":"')
    if i != -1 and head.find("{", 1, i) == -1:
        j = head.find('"', i + 6)
        if j != -1:
            return head[i + 6:j]
    return str(json.loads(text)["id"])


async def json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    xml = ctype in ("application/fhir+xml", "application/xml", "text/xml")
    if ctype and not xml and ctype not in ("application/fhir+json", "application/json",
                                           "application/json-patch+json"):
        raise FhirError(415, "not-supported", "Send FHIR resources as application/fhir+json")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes:
        raise FhirError(413, "too-costly", "The request is larger than this server accepts")
    body = bytearray()  # grown in place: appending to bytes would copy the whole body at every chunk
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise FhirError(413, "too-costly", "The request is larger than this server accepts")
    if xml:
        return refuse_unholdable_characters(from_xml(bytes(body)))
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")  # as json.loads does with bytes
        del body  # a large body is held once as bytes, then once as text, never both while it is parsed
        data = loads_bounded(text)
    except (ValueError, UnicodeDecodeError):
        raise FhirError(400, "structure", "The body is not valid JSON") from None
    if not isinstance(data, dict | list):
        raise FhirError(400, "structure", "The body must be a JSON object")
    return refuse_unholdable_characters(data)  # type: ignore[arg-type]


def refuse_unholdable_characters(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` unchanged, or a 422 naming the first field (``Patient.name[0].family``) whose name or text holds a
    character Carnet could not store or serve back (issue 15 §1): refused at the door, never a 500 further on. One
    linear scan per string, no copy (a large base64 document included)."""
    root = str(data.get("resourceType") or "Resource") if isinstance(data, dict) else "Resource"
    stack: list[tuple[Any, str]] = [(data, root)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not holdable(value):
                raise FhirError(422, "invalid", "A text holds a character that cannot be stored (a control "
                                "character or NUL)", where)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(k, str) and not holdable(k):
                    raise FhirError(422, "invalid", "A field name holds a character that cannot be stored", where)
                stack.append((v, f"{where}.{k}"))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
    return data




class TooDeep(ValueError):
    """JSON (or XML) nested deeper than :data:`MAX_DEPTH`."""


def check_depth(data: Any, limit: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` if ``data`` (parsed JSON) nests objects and arrays deeper than ``limit``. Iterative:
    it cannot itself run out of stack, and once it has passed, no recursive walk of ``data`` (validation, models,
    serialisation) can either."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            raise TooDeep(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` for what a client sent: nesting too deep for the parser (``RecursionError``) or deeper than
    :data:`MAX_DEPTH` is refused with a 400 that names the body, never a 500; other errors are ``ValueError``."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise FhirError(400, "structure", f"The body is nested deeper than {MAX_DEPTH} levels") from None
    try:
        check_depth(data)
    except TooDeep:
        raise FhirError(400, "structure", f"The body is nested deeper than {MAX_DEPTH} levels") from None
    return data
