"""The recipient's side of SMART Health Links (HL7 SMART Health Cards and Links IG, "SMART Health Link Manifest
Request" and "`.files.location` links"): whoever holds a link opens it, with no account.

Each opening runs in one transaction as a ``link_recipient`` Actor (the link's id; the recipient's self-declared
name): the link row is locked (concurrent passcode guesses are serialised), the opening is counted, the policy
decides from the link's state (:func:`carnet.access.policy.link_state`), and what the link shares is built for that
actor and encrypted with the link's key, every read audited in the dossier's chain. A dead link, an unknown one, and
a closed dossier all answer 404, as the specification requires ("no longer active"). A wrong passcode is counted and
committed (a total lifetime count: the link dies at ``CARNET_SHL_PASSCODE_ATTEMPTS``) and answers 401 with
``remainingAttempts`` (a request with no passcode gets the same answer, and is not counted as a guess).

Files are embedded in the manifest, unless the client's ``embeddedLengthMax`` is smaller: the file is then a
``location`` valid one hour (a ticket: HMAC-SHA-256 of the file's index and expiry under the link's key), served
rebuilt and re-encrypted, without counting another opening, while the link is not revoked, expired or locked.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from carnet.access.actors import Actor, ActorKind
from carnet.accounts.secrets import verify_password
from carnet.audit.log import OUTCOME_REFUSED
from carnet.clinical import summary as summaries
from carnet.context import Context, Services, run
from carnet.db.tables import document, shared_link, shared_link_lookup
from carnet.documents import service as documents
from carnet.errors import FhirError
from carnet.sharing import payload
from carnet.sharing.links import id_hash, manifest_url, unseal

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"
LOCATION_SECONDS = 3600  # the specification's upper bound for a `.files.location` link
MAX_RECIPIENT = 200
GONE = "This link is no longer active."


@dataclass(frozen=True)
class Manifest:
    files: list[dict[str, Any]]


@dataclass(frozen=True)
class WrongPasscode:
    remaining: int


def _recipient(value: object) -> str:
    text = " ".join(str(value or "").split())[:MAX_RECIPIENT]
    if not text or not text.isprintable():
        raise FhirError(400, "required", "recipient: required (who is opening the link).")
    return text


def _resolver(public_id: str, recipient: str, found: dict[str, Any]):  # noqa: ANN202
    def resolve(conn: Any) -> Actor:
        row = conn.execute(select(shared_link_lookup).where(shared_link_lookup.c.id_hash == id_hash(public_id))
                           ).first()
        if row is None:
            raise FhirError(404, "not-found", GONE)
        found["key"], found["link"] = row.dossier_key, row.link_id
        return Actor(ActorKind.LINK_RECIPIENT, id=str(row.link_id), display=recipient)
    return resolve


def _locked_row(ctx: Context, key: uuid.UUID, link_id: uuid.UUID) -> Any:
    return ctx.conn.execute(select(shared_link).where(shared_link.c.dossier_key == key,
                                                      shared_link.c.link_id == link_id).with_for_update()).one()


def _live(ctx: Context, key: uuid.UUID, event: str) -> None:
    _, decision = ctx.dossier(key)  # the policy, from the link's state (the context joins it)
    if not decision.read:
        raise ctx.refuse(key, "R", event, FhirError(404, "not-found", GONE))


def _contents(row: Any) -> dict[str, Any]:
    return row.contents if isinstance(row.contents, dict) else json.loads(row.contents)


def _file_plans(row: Any) -> list[str]:
    """The link's files, in a stable order: "summary", then each chosen document id."""
    c = _contents(row)
    return (["summary"] if c.get("summary") else []) + [str(d) for d in c.get("documents") or []]


def _documents(ctx: Context, key: uuid.UUID, ids: list[str]) -> dict[str, bytes]:
    """The chosen documents the recipient may see (the policy's visibility, in SQL), each as a DocumentReference
    whose attachment carries the content inline (``data``), since the recipient cannot call the API."""
    uuids = [uuid.UUID(d) for d in ids]
    found, _ = documents.search(ctx, documents.DocumentQuery(
        key, [document.c.document_id.in_(uuids), document.c.status == "current"], len(uuids), 0), "ITI-67",
        "share:documents")
    out = {}
    for text in found:
        res = json.loads(text)
        data, content_type, _ = documents.retrieve(ctx, res["id"])
        for c in res.get("content") or []:
            att = c.get("attachment") or {}
            att.pop("url", None)
            att["contentType"] = content_type
            att["data"] = base64.b64encode(data).decode("ascii")
            c["attachment"] = att
            break
        out[res["id"]] = json.dumps(res, separators=(",", ":")).encode()
    return out


def _build(ctx: Context, key: uuid.UUID, plans: list[str]) -> list[tuple[int, bytes]]:
    docs = _documents(ctx, key, [p for p in plans if p != "summary"]) if any(p != "summary" for p in plans) else {}
    out = []
    for i, plan in enumerate(plans):
        if plan == "summary":
            out.append((i, json.dumps(summaries.build_bundle(ctx, key), separators=(",", ":")).encode()))
        elif plan in docs:
            out.append((i, docs[plan]))
    return out


def _ticket(key: bytes, index: int, exp: int) -> str:
    mac = hmac.new(key, f"location:{index}:{exp}".encode(), hashlib.sha256).digest()
    return f"{exp}.{payload.b64url(mac)}"


def _ticket_ok(key: bytes, index: int, ticket: str, now: dt.datetime) -> bool:
    exp_text, _, _ = ticket.partition(".")
    if not exp_text.isdigit():
        return False
    exp = int(exp_text)
    if not now.timestamp() < exp <= now.timestamp() + LOCATION_SECONDS:
        return False
    return hmac.compare_digest(_ticket(key, index, exp), ticket)


def open_manifest(services: Services, public_id: str, body: Any) -> Manifest | WrongPasscode:
    """A manifest request (``POST`` to the link's ``url``). ``body``: the parsed JSON (``recipient`` required,
    ``passcode`` when the link has one, ``embeddedLengthMax`` optional)."""
    if not isinstance(body, dict):
        raise FhirError(400, "structure", "The body must be a JSON object.")
    recipient = _recipient(body.get("recipient"))
    passcode = body.get("passcode")
    limit = body.get("embeddedLengthMax")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise FhirError(400, "value", "embeddedLengthMax: a whole number.")
    found: dict[str, Any] = {}

    def work(ctx: Context) -> Manifest | WrongPasscode:
        key, link_id = found["key"], found["link"]
        row = _locked_row(ctx, key, link_id)
        ctx.conn.execute(update(shared_link).where(shared_link.c.dossier_key == key, shared_link.c.link_id == link_id)
                         .values(opens=shared_link.c.opens + 1))
        _live(ctx, key, "share.open")
        if row.passcode_hash is not None:
            if not isinstance(passcode, str) or not passcode:  # none given: asked for, not counted as a guess
                ctx.conn.execute(update(shared_link).where(
                    shared_link.c.dossier_key == key, shared_link.c.link_id == link_id).values(
                    opens=shared_link.c.opens - 1))
                return WrongPasscode(max(0, ctx.settings.shl_passcode_attempts - row.passcode_failures))
            if not verify_password(row.passcode_hash, passcode)[0]:
                failures = row.passcode_failures + 1
                ctx.conn.execute(update(shared_link).where(  # a wrong passcode uses no opening
                    shared_link.c.dossier_key == key, shared_link.c.link_id == link_id).values(
                    opens=shared_link.c.opens - 1, passcode_failures=shared_link.c.passcode_failures + 1))
                remaining = max(0, ctx.settings.shl_passcode_attempts - failures)
                ctx.audit(key, "R", "share.passcode", entity_type="Link", entity_id=str(link_id),
                          detail={"remaining": remaining}, outcome=OUTCOME_REFUSED)
                return WrongPasscode(remaining)
        public, link_key = unseal(ctx, row)
        files = []
        for index, plaintext in _build(ctx, key, _file_plans(row)):
            entry: dict[str, Any] = {"contentType": FHIR_JSON, "lastUpdated": ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                     "status": "can-change", "fhirVersion": FHIR_VERSION}
            jwe = payload.encrypt(link_key, plaintext, FHIR_JSON)
            if limit is None or len(jwe) <= limit:
                entry["embedded"] = jwe
            else:
                exp = int(ctx.now.timestamp()) + LOCATION_SECONDS
                entry["location"] = f"{manifest_url(ctx, public)}/file/{index}?ticket={_ticket(link_key, index, exp)}"
            files.append(entry)
        ctx.audit(key, "R", "share.open", entity_type="Link", entity_id=str(link_id), detail={"files": len(files)})
        return Manifest(files)

    return run(services, _resolver(public_id, recipient, found), work)


def open_file(services: Services, public_id: str, index: int, ticket: str, recipient: object) -> str:
    """A ``.files.location`` request: the file rebuilt now and encrypted (compact JWE), or 404."""
    found: dict[str, Any] = {}

    def work(ctx: Context) -> str:
        key, link_id = found["key"], found["link"]
        row = _locked_row(ctx, key, link_id)
        _live(ctx, key, "share.file")
        public, link_key = unseal(ctx, row)
        plans = _file_plans(row)
        if public != public_id or not 0 <= index < len(plans) or not _ticket_ok(link_key, index, ticket, ctx.now):
            raise ctx.refuse(key, "R", "share.file", FhirError(404, "not-found", GONE))
        built = dict(_build(ctx, key, [plans[index]]))
        if 0 not in built:
            raise FhirError(404, "not-found", GONE)
        ctx.audit(key, "R", "share.file", entity_type="Link", entity_id=str(link_id), detail={"file": index})
        return payload.encrypt(link_key, built[0], FHIR_JSON)

    return run(services, _resolver(public_id, " ".join(str(recipient or "").split())[:MAX_RECIPIENT] or "-",
                                   found), work)
