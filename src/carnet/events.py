"""What one part of Carnet tells another without importing it: typed events, and who listens.

A service publishes an event through :meth:`carnet.context.Context.publish`; the subscribers are called at once, with
the same context, so whatever they write is part of the publisher's transaction: it commits with the change that
caused it, or rolls back with it (the notification outbox relies on this). Subscribers are wired once per process,
when its services are composed (:func:`carnet.compose.build_services`); this module imports nothing of Carnet, so the
spine (the Context) can publish without knowing the services above it.

The events, and their subscribers (wired in :mod:`carnet.compose`):

- :class:`Audited`, published by :meth:`carnet.context.Context.audit` for every successful audit record:
  :func:`carnet.notify.rules.on_audit` turns it into notifications.
- :class:`DocumentReplaced`, published by the documents service when a new document replaces another
  (``relatesTo.replaces``): :func:`carnet.tasks.service.on_document_replaced` completes the rectification requests
  open on the replaced document.
- :class:`MeasurementsRecorded`, published by the measurements service (:mod:`carnet.measures`) when an upload stored
  new readings: for the trend rules and alerts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar


@dataclass(frozen=True, slots=True)
class Audited:
    """A successful audit record, in its transaction. Refusals are never published: they are rolled back, then
    recorded in a transaction of their own."""

    dossier_key: uuid.UUID
    event: str
    entity_type: str | None
    entity_id: str | None
    detail: Mapping[str, Any] | None
    mark: str | None = None  # the access marker the append recorded with the record (Services.access_marker)
    first_mark: bool = False  # ... and whether it was new (the first such access to this dossier)
    facts: Mapping[str, Any] | None = None  # what the publisher tells subscribers beyond the record (not audited)


@dataclass(frozen=True, slots=True)
class DocumentReplaced:
    """``replaced`` became ``superseded`` because ``replacement`` (being published, same dossier) replaces it."""

    dossier_key: uuid.UUID
    replaced: uuid.UUID
    replacement: uuid.UUID


@dataclass(frozen=True, slots=True)
class MeasurementsRecorded:
    """New readings were stored in a dossier (carnet.measures): per measure code (``carnet.measures.catalogue``) the
    number of new readings (duplicates not counted) and the time span of the upload's readings of that measure. Trend
    rules and alerts are evaluated from it, in the same transaction."""

    dossier_key: uuid.UUID
    stored: Mapping[int, int]  # measure code -> new readings
    spans: Mapping[int, tuple[Any, Any]]  # measure code -> (earliest, latest) taken_at (aware datetimes, UTC)
    source_no: int


C = TypeVar("C")  # what subscribers receive: the publisher's Context (generic here, so this module stays below it)
E = TypeVar("E")


class Subscribers(Generic[C]):
    """Who listens to which event type, in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[C, Any], None]]] = {}

    def subscribe(self, kind: type[E], handler: Callable[[C, E], None]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    def publish(self, ctx: C, event: object) -> None:
        """Call every subscriber of ``type(event)`` with ``ctx``; an exception propagates to the publisher (and so
        rolls its transaction back)."""
        for handler in self._handlers.get(type(event), ()):
            handler(ctx, event)
