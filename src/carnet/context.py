"""The unit of work every request, job and CLI command runs in.

:func:`run` opens one transaction, hands the work a :class:`Context` bound to the caller, and commits. Handlers reach
dossier data only through services that take this context: the context loads a dossier together with the policy's
:class:`~carnet.access.policy.Decision` for the caller, and writes the audit record in the same transaction. A refusal
rolls the transaction back (nothing changes) and is then audited in a transaction of its own, so refused attempts are
traced too. Blobs written before a failure are removed: a refused document leaves nothing behind.

Services tell each other what happened through the context (:meth:`Context.publish`, :mod:`carnet.events`): every
successful audit record is published, and the subscribers (notifications, say) write in the same transaction.

A blob store that cannot be reached (:class:`~carnet.blobs.BlobStoreUnavailable`) becomes a ``503`` with the issue
code ``transient``: the transaction rolled back, nothing is saved, the caller may try again. A transaction that wrote
a blob must commit within ``CARNET_TRANSACTION_SECONDS`` of its start, or it rolls back (``503``): that hard bound is
what lets the blob garbage collector (:mod:`carnet.documents.blob_gc`) take a blob older than its grace period that
no row references for an orphan, never for a blob whose transaction is still in flight.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy import Connection, Engine, Table, and_, bindparam, select

from carnet.access.actors import Actor, ActorKind
from carnet.access.matrix import Matrix, load_matrix
from carnet.access.policy import Decision, DossierFacts, LinkFacts, Standing, decide, link_state
from carnet.audit import log as audit_log
from carnet.blobs import BlobStore, BlobStoreError, BlobStoreUnavailable, KeyRing, blobstore_from_url
from carnet.config import Settings
from carnet.db import prepared
from carnet.db.tables import access_grant, dossier, representative, shared_link
from carnet.errors import FhirError
from carnet.events import Audited, Subscribers

T = TypeVar("T")
AccessMarker = Callable[[uuid.UUID, Actor, str, "dict[str, Any] | None", dt.datetime], "str | None"]
logger = structlog.get_logger("carnet")


@dataclass
class Services:
    """What a process holds for its whole life: settings, the engine, keys, the blob store, the matrix; and what
    :mod:`carnet.compose` wires into it: the subscribers to the services' events (:mod:`carnet.events`) and the
    periodic jobs the notification worker runs."""

    settings: Settings
    engine: Engine
    keyring: KeyRing
    blobs: BlobStore
    matrix: Matrix
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    events: Subscribers[Context] = field(default_factory=Subscribers)
    # Who accessed a dossier, recorded by the audit append itself (one statement): for a record, the marker to keep
    # in ``professional_seen`` if absent, or None (wired by carnet.compose: carnet.notify.rules.access_marker).
    access_marker: AccessMarker | None = None
    periodic_jobs: list[Callable[[Services], object]] = field(default_factory=list)

    @classmethod
    def build(cls, settings: Settings, engine: Engine | None = None) -> Services:
        """The process's resources, with nothing wired: no subscriber, no periodic job. Processes build theirs with
        :func:`carnet.compose.build_services`, which calls this and then wires the services together."""
        from carnet.db.engine import make_engine

        settings.ensure_var()
        if settings.master_key:
            keyring = KeyRing.from_spec(settings.master_key)
        else:
            keyring = KeyRing.load_or_create(_key_path(settings))
        return cls(settings=settings, engine=engine or make_engine(settings.effective_database_url),
                   keyring=keyring, blobs=blobstore_from_url(settings.effective_blob_url),
                   matrix=load_matrix(settings.habilitation_file))


def _key_path(settings: Settings):
    from pathlib import Path

    return Path(settings.master_key_file) if settings.master_key_file else settings.var_dir / "master-key.json"


# The dossier with the caller's standing, in one query joined on the dossier key; built once (hot path).
_DOSSIER = select(dossier).where(dossier.c.dossier_key == bindparam("k"))
_DOSSIER_FOR_PROFESSIONAL = (
    select(dossier, access_grant.c.subject_kind, access_grant.c.relation, access_grant.c.sees_hidden)
    .select_from(dossier.outerjoin(access_grant, and_(
        access_grant.c.dossier_key == dossier.c.dossier_key,
        access_grant.c.subject_id.in_(bindparam("subjects", expanding=True)),
        access_grant.c.revoked_at.is_(None))))
    .where(dossier.c.dossier_key == bindparam("k")))
_DOSSIER_FOR_REPRESENTATIVE = (
    select(dossier, representative.c.kind.label("rep_kind"))
    .select_from(dossier.outerjoin(representative, and_(
        representative.c.dossier_key == dossier.c.dossier_key,
        representative.c.representative_id == bindparam("rep"), representative.c.ended_at.is_(None))))
    .where(dossier.c.dossier_key == bindparam("k")))
_DOSSIER_FOR_LINK = (
    select(dossier, shared_link.c.revoked_at.label("link_revoked_at"),
           shared_link.c.expires_at.label("link_expires_at"), shared_link.c.opens.label("link_opens"),
           shared_link.c.max_opens.label("link_max_opens"),
           shared_link.c.passcode_failures.label("link_passcode_failures"))
    .select_from(dossier.outerjoin(shared_link, and_(
        shared_link.c.dossier_key == dossier.c.dossier_key, shared_link.c.link_id == bindparam("link"))))
    .where(dossier.c.dossier_key == bindparam("k")))

# The same four as plain SQL, run prepared on PostgreSQL (carnet.db.prepared; tests/db/test_prepared.py checks that
# each gives its Core statement's rows); ``lock`` adds :data:`_LOCK_SQL`.
_D = ", ".join(f"dossier.{c.name}" for c in dossier.c)
_DOSSIER_SQL = f"SELECT {_D} FROM dossier WHERE dossier.dossier_key = %(k)s"  # noqa: S608 - the table's names
_DOSSIER_FOR_PROFESSIONAL_SQL = (
    f"SELECT {_D}, access_grant.subject_kind, access_grant.relation, access_grant.sees_hidden "  # noqa: S608
    "FROM dossier LEFT OUTER JOIN access_grant ON access_grant.dossier_key = dossier.dossier_key "
    "AND access_grant.subject_id = ANY(%(subjects)s) AND access_grant.revoked_at IS NULL "
    "WHERE dossier.dossier_key = %(k)s")
_DOSSIER_FOR_REPRESENTATIVE_SQL = (
    f"SELECT {_D}, representative.kind AS rep_kind "  # noqa: S608
    "FROM dossier LEFT OUTER JOIN representative ON representative.dossier_key = dossier.dossier_key "
    "AND representative.representative_id = %(rep)s AND representative.ended_at IS NULL "
    "WHERE dossier.dossier_key = %(k)s")
_DOSSIER_FOR_LINK_SQL = (
    f"SELECT {_D}, shared_link.revoked_at AS link_revoked_at, "  # noqa: S608
    "shared_link.expires_at AS link_expires_at, shared_link.opens AS link_opens, "
    "shared_link.max_opens AS link_max_opens, shared_link.passcode_failures AS link_passcode_failures "
    "FROM dossier LEFT OUTER JOIN shared_link ON shared_link.dossier_key = dossier.dossier_key "
    "AND shared_link.link_id = %(link)s "
    "WHERE dossier.dossier_key = %(k)s")
_LOCK_SQL = " FOR UPDATE OF dossier"


class Caller(Protocol):
    """A caller known by its credentials, resolved to an :class:`Actor` inside the transaction when first needed
    (:class:`carnet.auth.web.TokenCaller` for the API's bearer tokens). For a professional, the first
    :meth:`Context.dossier` reads the caller's row (client and professional, :data:`_CALLER_COLUMNS`) in the same
    statement as the dossier and its grants: one round trip fewer (issue 11)."""

    def actor(self, conn: Connection) -> Actor:
        """The caller, read on ``conn``, or a 401 :class:`FhirError`."""

    def professional(self) -> tuple[str, str, str] | None:
        """The client id, the professional's national id and the organisation the credentials name (or ""), when
        they name a professional; None otherwise."""

    def actor_from(self, conn: Connection, row: Any) -> Actor:
        """The caller from its row (None: no such client), or a 401 :class:`FhirError`."""


# The caller's row (client and professional; carnet.auth.web._CALLER_SQL's columns) beside the rows of
# _DOSSIER_FOR_PROFESSIONAL_SQL, for a professional's first dossier of a request. The dossier drives: its key is the
# WHERE, so Citus routes the statement to the dossier's shard, where the reference tables client and practitioner are
# too. No dossier, no row: the caller is then read alone (a disabled caller gets its 401 before the 404).
_CALLER_COLUMNS = ("kind", "enabled", "national_id", "given", "family", "profession", "organisation_id",
                   "is_regulator", "pro_enabled")
_CALLER_AND_DOSSIER_COLUMNS = (
    f"SELECT {_D}, access_grant.subject_kind, access_grant.relation, access_grant.sees_hidden, "
    "client.kind AS caller_kind, client.enabled AS caller_enabled, practitioner.national_id AS caller_national_id, "
    "practitioner.given AS caller_given, practitioner.family AS caller_family, "
    "practitioner.profession AS caller_profession, practitioner.organisation_id AS caller_organisation_id, "
    "practitioner.is_regulator AS caller_is_regulator, practitioner.enabled AS caller_pro_enabled")
_CALLER_AND_DOSSIER_FROM = (
    " FROM dossier LEFT OUTER JOIN client ON client.client_id = %(cid)s "
    "LEFT OUTER JOIN practitioner ON practitioner.national_id = %(nid)s "
    "LEFT OUTER JOIN access_grant ON access_grant.dossier_key = dossier.dossier_key "
    "AND access_grant.subject_id IN (practitioner.national_id, "
    "COALESCE(NULLIF(%(org)s, ''), NULLIF(practitioner.organisation_id, ''))) AND access_grant.revoked_at IS NULL")
_CALLER_AND_DOSSIER_WHERE = " WHERE dossier.dossier_key = %(k)s"
_CALLER_AND_DOSSIER_SQL = _CALLER_AND_DOSSIER_COLUMNS + _CALLER_AND_DOSSIER_FROM + _CALLER_AND_DOSSIER_WHERE


@dataclass(frozen=True)
class Joined:
    """A row of a table co-located with the dossier (its key ``dossier_key`` and ``id_column``), to read in the
    same statement as the dossier when the caller is read with it (:meth:`Context.dossier_and_row`): the document a
    retrieve opens, say."""

    table: Table
    id_column: str

    @cached_property
    def sql(self) -> str:
        """:data:`_CALLER_AND_DOSSIER_SQL` with the row's columns last, joined on its key."""
        name = self.table.name
        columns = ", ".join(f"{name}.{c.name} AS joined_{c.name}" for c in self.table.c)
        return (f"{_CALLER_AND_DOSSIER_COLUMNS}, {columns}{_CALLER_AND_DOSSIER_FROM} "  # noqa: S608 - table names
                f"LEFT OUTER JOIN {name} ON {name}.dossier_key = dossier.dossier_key "
                f"AND {name}.{self.id_column} = %(joined)s{_CALLER_AND_DOSSIER_WHERE}")

    @cached_property
    def row_type(self) -> Any:
        """The joined row as the table's own select would give it: a named tuple of its columns, in order."""
        return namedtuple(f"{self.table.name}_row", [c.name for c in self.table.c])  # noqa: PYI024

    def row(self, joined_row: Any) -> Any | None:
        n = len(self.table.c)
        values = tuple(joined_row)[-n:]
        return None if getattr(joined_row, f"joined_{self.id_column}") is None else self.row_type(*values)


#: What :meth:`Context.dossier_and_row` returns for the row when it was not read with the dossier.
NOT_JOINED: Any = object()


class _CallerRow:
    """The caller's columns of a :data:`_CALLER_AND_DOSSIER_SQL` row, named as the caller query names them."""

    def __init__(self, row: Any) -> None:
        for name in _CALLER_COLUMNS:
            setattr(self, name, getattr(row, f"caller_{name}"))


@dataclass
class Refusal:
    dossier_key: uuid.UUID
    action: str
    event: str
    entity_type: str | None
    entity_id: str | None
    detail: dict[str, Any]


class Context:
    def __init__(self, services: Services, conn: Connection, actor: Actor | Caller, now: dt.datetime) -> None:
        self.services = services
        self.settings = services.settings
        self.conn = conn
        self._actor = actor if isinstance(actor, Actor) else None
        self._caller = None if isinstance(actor, Actor) else actor
        self.now = now
        self.refusals: list[Refusal] = []
        self.new_blobs: list[str] = []
        self.after_commit_deletes: list[str] = []  # blobs to erase once the transaction has committed

    @property
    def caller_unresolved(self) -> bool:
        return self._actor is None

    @property
    def actor(self) -> Actor:
        """Who acts: resolved at the first use (a :class:`Caller`), and in any case before the commit
        (:func:`run`)."""
        if self._actor is None:
            assert self._caller is not None
            self._actor = self._caller.actor(self.conn)
        return self._actor

    def refused_actor(self, conn: Connection) -> Actor:
        """Who the refusals are recorded against, after the rollback (``conn``: the refusals' own transaction): the
        actor, resolved there if the failure came before it was (a :class:`Caller` is resolved at the first dossier).
        A caller who may not call gets its 401 instead of the request's own error, as when the caller is resolved
        first thing, and leaves no record."""
        if self._actor is None:
            assert self._caller is not None
            self._actor = self._caller.actor(conn)
        return self._actor

    # --- audit ------------------------------------------------------------------------------------------------
    def audit(self, dossier_key: uuid.UUID, action: str, event: str, *, entity_type: str | None = None,
              entity_id: str | None = None, detail: dict[str, Any] | None = None,
              outcome: str = audit_log.OUTCOME_SUCCESS, facts: dict[str, Any] | None = None) -> None:
        """Append the audit record (``outcome`` refused for an attempt that failed but must commit, such as a wrong
        passcode that counts) and publish it (``facts``: what the subscribers may use without reading it back, such
        as a new document's visibility; not part of the record)."""
        marker = self.services.access_marker
        mark = marker(dossier_key, self.actor, event, detail, self.now) if marker is not None else None
        if mark is None:
            audit_log.record(self.conn, dossier_key=dossier_key, actor=self.actor, action=action, event=event,
                             now=self.now, entity_type=entity_type, entity_id=entity_id, detail=detail,
                             outcome=outcome)
            self.publish(Audited(dossier_key, event, entity_type, entity_id, detail, facts=facts))
            return
        first = audit_log.record_marked(self.conn, dossier_key=dossier_key, actor=self.actor, action=action,
                                        event=event, now=self.now, mark=mark, entity_type=entity_type,
                                        entity_id=entity_id, detail=detail, outcome=outcome)
        self.publish(Audited(dossier_key, event, entity_type, entity_id, detail, mark, first, facts))

    def publish(self, event: object) -> None:
        """Tell the event's subscribers (:mod:`carnet.events`), now and in this transaction: what they write
        commits or rolls back with the change that caused it."""
        self.services.events.publish(self, event)

    def refuse(self, dossier_key: uuid.UUID, action: str, event: str, error: FhirError, *,
               entity_type: str | None = None, entity_id: str | None = None,
               detail: dict[str, Any] | None = None) -> FhirError:
        """Note a refused attempt (audited after the rollback) and return the error to raise."""
        d = dict(detail or {})
        d["status"] = error.status
        self.refusals.append(Refusal(dossier_key, action, event, entity_type, entity_id, d))
        return error

    # --- the one way to a dossier -----------------------------------------------------------------------------
    def dossier(self, dossier_key: uuid.UUID, *, lock: bool = False,
                presented_prescription: bool = False) -> tuple[Any, Decision]:
        """Load a dossier and the policy's decision for the caller, in one query (the dossier joined with the
        caller's grants or representative record, on the dossier key). Raises 404 if there is no such dossier.
        ``presented_prescription``: the caller presented one of its prescriptions (:mod:`carnet.prescribing` checked
        the number with the INS or the 2D code); the policy decides what that gives (``Decision.dispense``)."""
        if self._actor is None and self._caller is not None and not lock and prepared.on_postgres(self.conn):
            joined = self._caller_and_dossier(self._caller, dossier_key)
            if joined:
                return joined[0], self._decide(joined[0], joined, presented_prescription)
        a = self.actor
        params: dict[str, Any]
        rep_id = _uuid_or_none(a.id) if a.kind is ActorKind.REPRESENTATIVE else None
        if a.kind is ActorKind.PROFESSIONAL and a.id:
            q, sql = _DOSSIER_FOR_PROFESSIONAL, _DOSSIER_FOR_PROFESSIONAL_SQL
            params = {"subjects": [a.id] + ([a.organisation_id] if a.organisation_id else [])}
        elif rep_id is not None:
            q, sql, params = _DOSSIER_FOR_REPRESENTATIVE, _DOSSIER_FOR_REPRESENTATIVE_SQL, {"rep": rep_id}
        elif a.kind is ActorKind.LINK_RECIPIENT:
            # No link has the nil id: a recipient whose id is not a UUID joins no link (and Citus cannot route a join
            # on `link_id = NULL`, which it folds to a constant).
            q, sql, params = _DOSSIER_FOR_LINK, _DOSSIER_FOR_LINK_SQL, {"link": _uuid_or_none(a.id) or uuid.UUID(int=0)}
        else:
            q, sql, params = _DOSSIER, _DOSSIER_SQL, {}
        params["k"] = dossier_key
        rows: list[Any]
        if prepared.on_postgres(self.conn):  # the same query, prepared (carnet.db.prepared)
            rows = prepared.fetch_all(self.conn, sql + _LOCK_SQL if lock else sql, params)
        else:
            rows = list(self.conn.execute(q.with_for_update(of=dossier) if lock else q, params).all())
        if not rows:
            raise FhirError(404, "not-found", "Patient not found")
        return rows[0], self._decide(rows[0], rows, presented_prescription)

    def dossier_and_row(self, dossier_key: uuid.UUID, joined: Joined, row_id: Any) -> tuple[Any, Decision, Any]:
        """:meth:`dossier` (not locked), and the row of ``joined`` whose id is ``row_id`` (None if the dossier has no
        such row) when it could be read in the same statement: a professional's first dossier on PostgreSQL, the
        caller read with it. Otherwise the row is :data:`NOT_JOINED`, and the caller reads it."""
        if self._actor is None and self._caller is not None and prepared.on_postgres(self.conn):
            rows = self._caller_and_dossier(self._caller, dossier_key, (joined, row_id))
            if rows:
                return rows[0], self._decide(rows[0], rows), joined.row(rows[0])
        row, decision = self.dossier(dossier_key)
        return row, decision, NOT_JOINED

    def _caller_and_dossier(self, caller: Caller, dossier_key: uuid.UUID,
                            joined: tuple[Joined, Any] | None = None) -> list[Any] | None:
        """Resolve the caller, and for a professional read it with the dossier and its grants in one statement: the
        rows :meth:`dossier` decides on, or None when the caller is no professional or there is no such dossier (then
        :meth:`dossier` reads as for any caller, and answers 404)."""
        named = caller.professional()
        if named is None:
            self._actor = caller.actor(self.conn)
            return None
        cid, nid, org = named
        params = {"cid": cid, "nid": nid, "org": org, "k": dossier_key}
        if joined is not None:
            params["joined"] = joined[1]
        rows = prepared.fetch_all(self.conn, _CALLER_AND_DOSSIER_SQL if joined is None else joined[0].sql, params)
        if not rows:
            self._actor = caller.actor(self.conn)  # a 401 for a disabled caller before the 404
            return None
        self._actor = caller.actor_from(self.conn, _CallerRow(rows[0]) if rows[0].caller_kind is not None else None)
        if self._actor.kind is not ActorKind.PROFESSIONAL or not self._actor.id:
            return None  # the grants joined were a professional's: this caller's own are read as usual
        return rows

    def _decide(self, row: Any, rows: list[Any], presented_prescription: bool = False) -> Decision:
        facts = DossierFacts(dossier_key=row.dossier_key, status=row.status, birth_date=row.birth_date,
                             objects_break_glass=row.objects_break_glass, objects_regulation=row.objects_regulation,
                             requires_code=bool(row.requires_code))
        standing = self.standing(row, rows)
        if presented_prescription:
            standing = replace(standing, presented_prescription=True)
        return decide(self.actor, facts, standing, self.now.date(), self.services.matrix, self.settings.majority_age)

    def standing(self, row: Any, rows: list[Any]) -> Standing:
        """The caller's standing, from the rows :meth:`dossier` joined (grants, or the representative record)."""
        a = self.actor
        if a.kind is ActorKind.PATIENT:
            return Standing(is_owner=a.id is not None and a.id == row.ins)
        if a.kind is ActorKind.REPRESENTATIVE:
            return Standing(representative_kind=getattr(row, "rep_kind", None))
        if a.kind is ActorKind.LINK_RECIPIENT:
            if getattr(row, "link_opens", None) is None:
                return Standing()
            expires = row.link_expires_at
            return Standing(link=link_state(LinkFacts(
                revoked=row.link_revoked_at is not None,
                expires_at=expires if expires is None or expires.tzinfo else expires.replace(tzinfo=dt.UTC),
                opens=row.link_opens, max_opens=row.link_max_opens, passcode_failures=row.link_passcode_failures,
                max_passcode_failures=self.settings.shl_passcode_attempts), self.now))
        if a.kind is not ActorKind.PROFESSIONAL or not a.id:
            return Standing()
        grants = [r for r in rows if getattr(r, "relation", None) is not None]
        mine = {g.relation for g in grants if g.subject_kind == "practitioner"}
        org = {g.relation for g in grants if g.subject_kind == "organisation"}
        if "blocked" in mine:
            return Standing(relation="blocked")
        if row.treating_gp == a.id:
            return Standing(relation="treating_gp")
        if "gp_rights" in mine:
            return Standing(relation="gp_rights")
        if "authorized" in mine:
            return Standing(relation="authorized", sees_hidden=any(
                g.sees_hidden for g in grants if g.subject_kind == "practitioner" and g.relation == "authorized"))
        if "authorized" in org:
            return Standing(relation="care_team")
        return Standing()


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def run(services: Services, actor: Actor | Caller | Callable[[Connection], Actor], work: Callable[[Context], T]) -> T:
    """Run ``work`` in one transaction bound to ``actor``; see the module docstring for failures. ``actor`` may be a
    function that resolves the caller inside that same transaction, first thing, or a :class:`Caller` resolved when
    first needed (the API does so from its token's claims) and before the commit at the latest: a disabled client
    never commits anything."""
    now = services.clock()
    started = time.monotonic()
    ctx: Context | None = None
    try:
        with services.engine.begin() as conn:
            if not isinstance(actor, Actor) and callable(actor):
                actor = actor(conn)
            ctx = Context(services, conn, actor, now)
            result = work(ctx)
            ctx.actor  # noqa: B018 - a caller not resolved yet is resolved (and checked) before the commit
            if ctx.new_blobs and time.monotonic() - started > services.settings.transaction_seconds:
                raise FhirError(503, "transient", "Storing the document took too long; nothing was saved. "
                                "Please try again.")
    except BaseException as exc:
        if ctx is not None:
            for key in ctx.new_blobs:
                try:
                    services.blobs.delete(key)
                except (OSError, BlobStoreError):  # the garbage collector removes it later
                    logger.warning("blob.cleanup_failed")
            if isinstance(exc, FhirError) and (ctx.refusals or ctx.caller_unresolved):
                with services.engine.begin() as conn:
                    refused = ctx.refused_actor(conn)  # a caller who may not call: its 401 instead
                    for r in ctx.refusals:
                        audit_log.record(conn, dossier_key=r.dossier_key, actor=refused, action=r.action,
                                         event=r.event, now=now, outcome=audit_log.OUTCOME_REFUSED,
                                         entity_type=r.entity_type, entity_id=r.entity_id, detail=r.detail)
        if isinstance(exc, BlobStoreUnavailable):
            raise FhirError(503, "transient", "The document store is unavailable; nothing was saved. Please try "
                            "again in a moment.", headers={"Retry-After": "10"}) from exc
        raise
    for key in ctx.after_commit_deletes:
        try:
            services.blobs.delete(key)
        except (OSError, BlobStoreError):  # committed: the garbage collector removes the blob (no row has it)
            logger.warning("blob.delete_failed")
    return result
