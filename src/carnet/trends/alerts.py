"""The alerts' readers (issue 17 §3): the médecin traitant's alert list and acknowledgement, the patient's list and
choices. Every function decides through the policy and audits in the same transaction.

- The médecin traitant's list spans dossiers: it reads the lookup ``trend_alert_by_recipient`` by the reader's
  national id, then each dossier's episodes by key. The policy is asked for each dossier listed: only while the
  reader is its médecin traitant (``Decision.gp_notices``, as the notices of emergency accesses) does an alert name
  the patient and link to the chart; each such dossier gets one ``trends.alerts.read`` audit record per page.
- Acknowledging is the recipient's, audited ``trends.alert.ack`` in the dossier's chain.
- The patient's choices (alerts to the médecin traitant: on by default, the issue's "turned alerts off" is an
  opt-out; a copy to themselves: off by default, the issue's "if they chose so") are the patient side's
  (``Decision.record_measures``), audited ``trends.settings``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from carnet.context import Context
from carnet.db.tables import trend_alert_by_recipient, trend_dossier, trend_episode
from carnet.errors import FhirError, forbidden, not_found
from carnet.measures.catalogue import SPECS, Measure, Spec


@dataclass(frozen=True)
class Alert:
    dossier_key: uuid.UUID
    episode_id: uuid.UUID
    rule_id: str
    spec: Spec
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    window_start: dt.datetime
    window_end: dt.datetime
    figure: float | None
    figure2: float | None
    acknowledged_at: dt.datetime | None
    readable: bool  # the reader is still this patient's médecin traitant (the patient's name and the chart shown)
    patient: dict[str, Any] | None = None  # name and birth date, when readable


def _utc(ts: dt.datetime | None) -> dt.datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)


def _alert(r: Any, readable: bool, patient: dict[str, Any] | None = None) -> Alert:
    return Alert(r.dossier_key, r.episode_id, r.rule_id, SPECS[Measure(r.measure)], _utc(r.opened_at) or r.opened_at,
                 _utc(r.closed_at), _utc(r.window_start) or r.window_start, _utc(r.window_end) or r.window_end,
                 r.figure, r.figure2, _utc(r.acknowledged_at), readable, patient)


def unacknowledged(conn: Connection, national_id: str) -> int:
    """The count in the clinician portal's header (one indexed count, read with the session)."""
    t = trend_alert_by_recipient.c
    return int(conn.execute(select(func.count()).select_from(trend_alert_by_recipient).where(
        t.recipient_id == national_id, t.acknowledged_at.is_(None))).scalar() or 0)


def _recipient(ctx: Context) -> str:
    if not ctx.actor.id:
        raise forbidden("Alerts are read by the professional they were sent to.")
    return ctx.actor.id


def inbox(ctx: Context, count: int = 25, offset: int = 0) -> tuple[list[Alert], int]:
    """A page of the reader's alerts, newest first, and the total."""
    me = _recipient(ctx)
    t = trend_alert_by_recipient.c
    total = int(ctx.conn.execute(select(func.count()).select_from(trend_alert_by_recipient)
                                 .where(t.recipient_id == me)).scalar() or 0)
    refs = ctx.conn.execute(select(t.dossier_key, t.episode_id).where(t.recipient_id == me)
                            .order_by(t.at.desc()).limit(count).offset(offset)).all()
    out: list[Alert] = []
    decided: dict[uuid.UUID, tuple[bool, dict[str, Any] | None]] = {}
    e = trend_episode.c
    for key, episode_id in refs:
        if key not in decided:
            readable, patient = False, None
            try:
                row, decision = ctx.dossier(key)
                readable = decision.gp_notices
                if readable:
                    patient = {"given": row.given, "family": row.family, "birth_date": row.birth_date}
            except FhirError:  # purged meanwhile: the alert shows its date only
                pass
            decided[key] = (readable, patient)
            if readable:
                ctx.audit(key, "R", "trends.alerts.read", detail={"query": "pro-alerts"})
        r = ctx.conn.execute(select(trend_episode).where(e.dossier_key == key, e.episode_id == episode_id)).first()
        if r is not None:
            out.append(_alert(r, *decided[key]))
    return out, total


def acknowledge(ctx: Context, key: uuid.UUID, episode_id: uuid.UUID) -> bool:
    """The recipient acknowledges an alert (audited in the dossier's chain). Returns whether it changed; 404 for an
    alert that is not the reader's."""
    me = _recipient(ctx)
    e = trend_episode.c
    r = ctx.conn.execute(select(trend_episode).where(e.dossier_key == key, e.episode_id == episode_id)
                         .with_for_update()).first()
    if r is None or r.recipient_id != me:
        raise ctx.refuse(key, "U", "trends.alert.ack", not_found("Flag"), entity_type="Flag",
                         entity_id=str(episode_id))
    if r.acknowledged_at is not None:
        return False
    now = ctx.now.astimezone(dt.UTC)
    ctx.conn.execute(update(trend_episode).where(e.dossier_key == key, e.episode_id == episode_id)
                     .values(acknowledged_at=now, acknowledged_by=me))
    t = trend_alert_by_recipient.c
    ctx.conn.execute(update(trend_alert_by_recipient).where(t.recipient_id == me, t.episode_id == episode_id)
                     .values(acknowledged_at=now))
    ctx.audit(key, "U", "trends.alert.ack", entity_type="Flag", entity_id=str(episode_id),
              detail={"rule": r.rule_id})
    return True


def alert(ctx: Context, key: uuid.UUID, episode_id: uuid.UUID) -> Alert:
    """One alert, for the chart behind it: the recipient, or the patient side (audited)."""
    _, decision = ctx.dossier(key)
    e = trend_episode.c
    r = ctx.conn.execute(select(trend_episode).where(e.dossier_key == key, e.episode_id == episode_id)).first()
    mine = r is not None and (decision.record_measures or (decision.gp_notices and r.recipient_id == ctx.actor.id))
    if r is None or not mine:
        raise ctx.refuse(key, "R", "trends.alert.read", not_found("Flag"), entity_type="Flag",
                         entity_id=str(episode_id))
    ctx.audit(key, "R", "trends.alert.read", entity_type="Flag", entity_id=str(episode_id))
    return _alert(r, True)


# --- the patient side ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choices:
    gp_alerts: bool = True
    patient_alerts: bool = False


def _patient_side(ctx: Context, key: uuid.UUID, event: str) -> None:
    _, decision = ctx.dossier(key)
    if not decision.record_measures:
        raise ctx.refuse(key, "R", event, forbidden(decision.refusal) if decision.check else not_found("Patient"))


def choices(ctx: Context, key: uuid.UUID) -> Choices:
    _patient_side(ctx, key, "trends.settings.read")
    r = ctx.conn.execute(select(trend_dossier).where(trend_dossier.c.dossier_key == key)).first()
    ctx.audit(key, "R", "trends.settings.read")
    return Choices() if r is None else Choices(bool(r.gp_alerts), bool(r.patient_alerts))


def set_choices(ctx: Context, key: uuid.UUID, gp_alerts: bool, patient_alerts: bool) -> None:
    _patient_side(ctx, key, "trends.settings")
    t = trend_dossier.c
    r = ctx.conn.execute(select(trend_dossier).where(t.dossier_key == key).with_for_update()).first()
    if r is None:
        ctx.conn.execute(insert(trend_dossier).values(dossier_key=key, gp_alerts=gp_alerts,
                                                      patient_alerts=patient_alerts))
    else:
        ctx.conn.execute(update(trend_dossier).where(t.dossier_key == key).values(gp_alerts=gp_alerts,
                                                                                  patient_alerts=patient_alerts))
    ctx.audit(key, "U", "trends.settings", detail={"gp_alerts": gp_alerts, "patient_alerts": patient_alerts})


def patient_alerts(ctx: Context, key: uuid.UUID, limit: int = 20) -> list[Alert]:
    """The dossier's latest alerts, for the patient side (audited)."""
    _patient_side(ctx, key, "trends.alerts.read")
    e = trend_episode.c
    rows = ctx.conn.execute(select(trend_episode).where(e.dossier_key == key, e.recipient_id.is_not(None))
                            .order_by(e.opened_at.desc()).limit(limit)).all()
    ctx.audit(key, "R", "trends.alerts.read", detail={"alerts": len(rows)})
    return [_alert(r, True) for r in rows]
