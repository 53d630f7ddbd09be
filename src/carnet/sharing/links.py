"""The patient's side of SMART Health Links (issue 13 §2): create a link, list them, revoke one.

A link shares a chosen set: the emergency summary (the IPS Bundle of :mod:`carnet.clinical.summary`) and chosen
documents, each rebuilt and encrypted with the link's key at every opening (the content is live; the specification
requires the same key for every version of a file, so the key is kept, sealed by the master key ring like a
document's data key: :func:`carnet.blobs.seal`). The link's public id (256 random bits) and its key live only in
that sealed column; the lookup table holds the SHA-256 of the id. Every action is decided by the policy
(``Decision.share_links``) and audited in the dossier's chain in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, insert, select, update

from carnet.access.policy import LinkFacts, link_state
from carnet.accounts.secrets import hash_password
from carnet.blobs import Sealed, open_sealed, seal
from carnet.context import Context
from carnet.db.tables import document, shared_link, shared_link_lookup
from carnet.documents import service as documents
from carnet.errors import FhirError, forbidden, not_found
from carnet.ids import new_id
from carnet.sharing import payload

MAX_DOCUMENTS = 20
MAX_OPENS = 1000
MAX_DAYS = 366
MIN_PASSCODE = 4
MAX_PASSCODE = 100


@dataclass(frozen=True)
class LinkSpec:
    """What the patient chose: a label (readable by whoever holds the link: no name needed), the emergency summary
    and/or documents, an expiry, an optional passcode, a maximum number of openings."""

    label: str
    summary: bool = True
    documents: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None
    passcode: str | None = None
    max_opens: int | None = None
    kind: str = "link"  # link | card


@dataclass(frozen=True)
class LinkView:
    link_id: uuid.UUID
    kind: str
    label: str
    summary: bool
    documents: int
    created_at: dt.datetime
    expires_at: dt.datetime | None
    max_opens: int | None
    opens: int
    passcode: bool
    state: str  # live | revoked | expired | used-up | locked (access.policy.link_state)
    shlink: str  # the viewer URL + "#shlink:/..." (what the QR code carries)


def id_hash(public_id: str) -> str:
    return hashlib.sha256(public_id.encode("ascii", "replace")).hexdigest()


def _aad(key: uuid.UUID, link_id: uuid.UUID) -> bytes:
    return f"shared_link:{key}:{link_id}".encode()


def unseal(ctx: Context, row: Any) -> tuple[str, bytes]:
    """(public id, key) of a link row."""
    data = json.loads(open_sealed(ctx.services.keyring, Sealed(bytes(row.sealed), bytes(row.wrapped_key),
                                                               row.key_id), _aad(row.dossier_key, row.link_id)))
    return data["id"], payload.b64url_decode(data["key"])


def manifest_url(ctx: Context, public_id: str) -> str:
    return f"{ctx.settings.base_url}/shl/{public_id}"


def viewer_url(ctx: Context) -> str:
    return f"{ctx.settings.base_url}/shl/view"


def _aware(ts: dt.datetime | None) -> dt.datetime | None:
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=dt.UTC)


def facts(ctx: Context, row: Any, *, opening: bool = False) -> LinkFacts:
    """The policy's facts of a stored link; ``opening=False`` (a listing) asks whether one more opening would be
    allowed, since the policy counts the opening in progress (``opens`` includes it)."""
    return LinkFacts(revoked=row.revoked_at is not None, expires_at=_aware(row.expires_at),
                     opens=row.opens + (0 if opening else 1), max_opens=row.max_opens,
                     passcode_failures=row.passcode_failures,
                     max_passcode_failures=ctx.settings.shl_passcode_attempts)


def shlink_of(ctx: Context, row: Any) -> str:
    public_id, key = unseal(ctx, row)
    exp = _aware(row.expires_at)
    flag = ("L" if row.kind == "card" else "") + ("P" if row.passcode_hash else "")
    return payload.encode(payload.Payload(url=manifest_url(ctx, public_id), key=key, flag=flag, label=row.label,
                                          exp=int(exp.timestamp()) if exp else None), viewer=viewer_url(ctx))


def _view(ctx: Context, row: Any) -> LinkView:
    contents = row.contents if isinstance(row.contents, dict) else json.loads(row.contents)
    return LinkView(link_id=row.link_id, kind=row.kind, label=row.label, summary=bool(contents.get("summary")),
                    documents=len(contents.get("documents") or []), created_at=_aware(row.created_at) or ctx.now,
                    expires_at=_aware(row.expires_at), max_opens=row.max_opens, opens=row.opens,
                    passcode=row.passcode_hash is not None, state=link_state(facts(ctx, row), ctx.now),
                    shlink=shlink_of(ctx, row))


def _may_share(ctx: Context, key: uuid.UUID, action: str, event: str) -> None:
    _, decision = ctx.dossier(key)
    if not decision.share_links:
        raise ctx.refuse(key, action, event, forbidden("Only the patient (or their legal representative) may share "
                                                       "the dossier, while it is open.") if decision.check
                         else not_found("Patient"))


def _check(ctx: Context, key: uuid.UUID, spec: LinkSpec) -> tuple[str, ...]:
    label = " ".join((spec.label or "").split())
    if not label or len(label) > payload.MAX_LABEL:
        raise FhirError(422, "invalid", "Give the link a label of 1 to 80 characters.")
    if spec.kind not in ("link", "card"):
        raise FhirError(422, "invalid", "Unknown kind of link.")
    if spec.passcode is not None and not MIN_PASSCODE <= len(spec.passcode) <= MAX_PASSCODE:
        raise FhirError(422, "invalid", "A passcode has 4 to 100 characters.")
    if spec.max_opens is not None and not 1 <= spec.max_opens <= MAX_OPENS:
        raise FhirError(422, "invalid", "The number of openings must be between 1 and 1000.")
    if spec.expires_at is not None and not ctx.now < spec.expires_at <= ctx.now + dt.timedelta(days=MAX_DAYS):
        raise FhirError(422, "invalid", "The expiry must be in the future, within a year.")
    ids = tuple(dict.fromkeys(spec.documents))
    if len(ids) > MAX_DOCUMENTS:
        raise FhirError(422, "invalid", "Choose at most 20 documents.")
    if not spec.summary and not ids:
        raise FhirError(422, "invalid", "Choose what to share: the emergency summary, documents, or both.")
    shareable = {d for d, _, _ in shareable_documents(ctx, key)} if ids else set()
    if any(d not in shareable for d in ids):
        raise FhirError(422, "invalid", "One of the chosen documents cannot be shared (it is hidden from "
                        "professionals, or no longer in the dossier).")
    return ids


def shareable_documents(ctx: Context, key: uuid.UUID, count: int = 100) -> list[tuple[str, str, str | None]]:
    """(id, title, date) of the current documents the caller sees that are not hidden from professionals: what a
    link may carry (the policy hides ``MASQUE_PS`` documents from link recipients). Audited as one search."""
    found, _ = documents.search(ctx, documents.DocumentQuery(
        key, [document.c.status == "current", document.c.masked == false()], count, 0), "ITI-67", "share:choose")
    out = []
    for text in found:
        res = json.loads(text)
        title = res.get("description") or ((res.get("type") or {}).get("coding") or [{}])[0].get("display") or \
            (res.get("content") or [{}])[0].get("attachment", {}).get("title") or res["id"]
        out.append((res["id"], str(title), res.get("date")))
    return out


def create(ctx: Context, key: uuid.UUID, spec: LinkSpec) -> LinkView:
    """Create a link (see the module docstring). Audited ``share.create`` (what is shared, never the key)."""
    _may_share(ctx, key, "C", "share.create")
    ids = _check(ctx, key, spec)
    link_id, public_id, link_key = new_id(), payload.new_link_id(), payload.new_key()
    sealed = seal(ctx.services.keyring, json.dumps({"id": public_id, "key": payload.b64url(link_key)}).encode(),
                  _aad(key, link_id))
    ctx.conn.execute(insert(shared_link).values(
        dossier_key=key, link_id=link_id, kind=spec.kind, label=" ".join(spec.label.split()),
        contents={"summary": spec.summary, "documents": list(ids)}, sealed=sealed.ciphertext,
        wrapped_key=sealed.wrapped_key, key_id=sealed.key_id,
        passcode_hash=hash_password(spec.passcode) if spec.passcode else None, expires_at=spec.expires_at,
        max_opens=spec.max_opens, opens=0, passcode_failures=0, created_at=ctx.now))
    ctx.conn.execute(insert(shared_link_lookup).values(id_hash=id_hash(public_id), dossier_key=key, link_id=link_id))
    ctx.audit(key, "C", "share.create", entity_type="Link", entity_id=str(link_id),
              detail={"kind": spec.kind, "summary": spec.summary, "documents": len(ids),
                      "passcode": spec.passcode is not None, "max_opens": spec.max_opens,
                      "expires": spec.expires_at.isoformat() if spec.expires_at else None})
    row = ctx.conn.execute(select(shared_link).where(shared_link.c.dossier_key == key,
                                                     shared_link.c.link_id == link_id)).one()
    return _view(ctx, row)


def links(ctx: Context, key: uuid.UUID) -> list[LinkView]:
    """The dossier's links, newest first (the patient side; a closed dossier's too). Audited ``share.read``."""
    _, decision = ctx.dossier(key)
    if not decision.read_history:
        raise ctx.refuse(key, "R", "share.read", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    rows = ctx.conn.execute(select(shared_link).where(shared_link.c.dossier_key == key)
                            .order_by(shared_link.c.created_at.desc(), shared_link.c.link_id.desc())).all()
    ctx.audit(key, "R", "share.read", entity_type="Patient", entity_id=str(key), detail={"returned": len(rows)})
    return [_view(ctx, r) for r in rows]


def revoke(ctx: Context, key: uuid.UUID, link_id: uuid.UUID) -> None:
    """Revoke a link at once: its manifest and files answer 404 from now on. Audited ``share.revoke``."""
    _, decision = ctx.dossier(key)
    if not decision.read_history:  # the patient side may revoke even once the dossier is closed
        raise ctx.refuse(key, "U", "share.revoke", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    done = ctx.conn.execute(update(shared_link).where(
        shared_link.c.dossier_key == key, shared_link.c.link_id == link_id, shared_link.c.revoked_at.is_(None))
        .values(revoked_at=ctx.now)).rowcount
    if not done:
        raise FhirError(404, "not-found", "No such active link.")
    ctx.audit(key, "U", "share.revoke", entity_type="Link", entity_id=str(link_id))


def card_link(ctx: Context, key: uuid.UUID, label: str) -> LinkView:
    """The emergency card's link: the live emergency summary, long-term (flag ``L``), no passcode (whoever treats an
    unconscious patient has none), no expiry, no limit on openings: the patient revokes it from the same page. The
    dossier's live card link if there is one, else a new one."""
    for view in links(ctx, key):
        if view.kind == "card" and view.state == "live":
            return view
    return create(ctx, key, LinkSpec(label=label, summary=True, kind="card"))
