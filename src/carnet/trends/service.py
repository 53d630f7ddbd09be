"""Trend alerts as data arrives (issue 17 §3): the upload marks the dossier, the worker evaluates the rules.

1. :func:`on_measurements` (subscribed to :class:`~carnet.events.MeasurementsRecorded` in :mod:`carnet.compose`)
   marks the dossier ``pending`` in the upload's transaction: one upsert keyed by the dossier, whatever the upload's
   size (an Apple Health import of years is one mark, not one evaluation per batch).
2. The worker's job :func:`evaluate_pending` finds the pending dossiers (an asynchronous scan over an index, the
   kind of fan-out SCALE.md allows off the hot path) and evaluates each in its own transaction as the
   :data:`EVALUATOR` actor, whose decision (``Decision.evaluate_trends``) lets it read the readings of the measures
   its rules watch, nothing else; every query carries the dossier key; the dossier's row is locked while it is
   evaluated (an upload meanwhile marks it pending again, after this evaluation commits).
3. :func:`evaluate` runs the pure rules (:mod:`carnet.trends.rules`) and opens or closes episodes: one alert per
   episode, written to the médecin traitant's alert list (``trend_alert_by_recipient``) and, if the patient chose
   so, a message to the patient (no health data in it). No médecin traitant, or alerts turned off: nothing is
   evaluated, nothing is sent.

Every evaluation leaves one audit record in the dossier's chain (``trends.evaluate``: the rules that opened or closed,
never a value); acknowledging an alert, reading the alert list and changing the settings are audited too
(:mod:`carnet.trends.alerts`).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass, field

import structlog
from sqlalchemy import Connection, insert, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from carnet.access.actors import Actor, ActorKind
from carnet.context import Context, Services, run
from carnet.db.tables import trend_alert_by_recipient, trend_dossier, trend_episode
from carnet.errors import FhirError, forbidden, not_found
from carnet.events import MeasurementsRecorded
from carnet.ids import new_id
from carnet.measures import store
from carnet.measures.catalogue import by_name
from carnet.notify.outbox import enqueue
from carnet.trends import rules as trend_rules
from carnet.trends.rules import Rule
from carnet.trends.series import Reading

logger = structlog.get_logger("carnet")
EVALUATOR = Actor(ActorKind.TREND_EVALUATOR, id="carnet-trends")
BATCH = 100  # pending dossiers taken per pass of the worker's job
ALERT_EVENT = "trends.alert"  # the patient's message (notify template trends_alert.<lang>.txt)


def rules_for(services: Services) -> tuple[Rule, ...]:
    """The deployment's rules (``CARNET_TREND_RULES_FILE`` or the default), each checked against the catalogue of
    measures: a rule on a measure Carnet does not know makes the file refused (fail closed)."""
    loaded = trend_rules.load(services.settings.trend_rules_file or None)
    for rule in loaded:
        if by_name(rule.measure) is None:
            raise ValueError(f"trend rules: {rule.rule_id}: unknown measure {rule.measure!r}")
    return loaded


# --- 1. the upload marks the dossier -------------------------------------------------------------------------------

def _mark(conn: Connection, key: uuid.UUID, now: dt.datetime) -> None:
    values = {"dossier_key": key, "pending": True, "received_at": now.astimezone(dt.UTC)}
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(trend_dossier).values(values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["dossier_key"],
                                            set_={"pending": True, "received_at": values["received_at"]}))


def on_measurements(ctx: Context, event: MeasurementsRecorded) -> None:
    """New readings were stored: the dossier waits for the worker's evaluation (same transaction as the upload)."""
    _mark(ctx.conn, event.dossier_key, ctx.now)


# --- 2. the worker --------------------------------------------------------------------------------------------------

def pending(services: Services, limit: int = BATCH) -> list[uuid.UUID]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(trend_dossier.c.dossier_key).where(trend_dossier.c.pending == true())
                                 .limit(limit)).scalars())  # "= true": the (pending, dossier_key) index serves it


def evaluate_pending(services: Services) -> int:
    """The worker's job: evaluate every dossier with new readings, each in its own transaction. Returns how many
    were tried. A rules file that does not load stops the job (logged) without stopping the worker's other jobs; a
    dossier whose evaluation fails is logged (the error's type only) and tried again at the next pass."""
    try:
        rules_for(services)
    except (OSError, ValueError) as exc:
        logger.error("trends.rules.invalid", error_type=type(exc).__name__)
        return 0
    done = 0
    tried: set[uuid.UUID] = set()
    while True:
        keys = [k for k in pending(services) if k not in tried]
        if not keys:
            return done
        for key in keys:
            tried.add(key)
            done += 1
            try:
                run(services, EVALUATOR, functools.partial(_evaluate_one, key=key))
            except FhirError as exc:  # closed or purged meanwhile: refused (audited); not tried again until new data
                logger.info("trends.evaluate.refused", status=exc.status)
                with services.engine.begin() as conn:
                    conn.execute(update(trend_dossier).where(trend_dossier.c.dossier_key == key).values(pending=False))
            except Exception as exc:  # noqa: BLE001 - one dossier's failure must not stop the others (no data logged)
                logger.error("trends.evaluate.failed", error_type=type(exc).__name__)


def _evaluate_one(ctx: Context, key: uuid.UUID) -> Outcome:
    return evaluate(ctx, key)


# --- 3. one dossier -------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    evaluated: bool = False  # False: alerts off or no médecin traitant (nothing read)
    opened: list[str] = field(default_factory=list)  # rule ids
    closed: list[str] = field(default_factory=list)


def _readings(conn: Connection, key: uuid.UUID, rule: Rule, now: dt.datetime) -> list[Reading]:
    spec = by_name(rule.measure)
    assert spec is not None
    start = now - dt.timedelta(days=rule.days)
    rows = store.read_range(conn, key, int(spec.measure), start, now + dt.timedelta(microseconds=1))
    return [Reading(r.taken_at, r.value, r.value2) for r in rows]


def evaluate(ctx: Context, key: uuid.UUID) -> Outcome:
    """Evaluate the rules on one dossier at ``ctx.now`` and open/close its episodes (see the module docstring)."""
    row, decision = ctx.dossier(key)
    if not decision.evaluate_trends:
        raise ctx.refuse(key, "R", "trends.evaluate", forbidden(decision.refusal) if decision.check
                         else not_found("Patient"))
    t = trend_dossier.c
    state = ctx.conn.execute(select(trend_dossier).where(t.dossier_key == key).with_for_update()).first()
    ctx.conn.execute(update(trend_dossier).where(t.dossier_key == key)
                     .values(pending=False, evaluated_at=ctx.now.astimezone(dt.UTC)))
    out = Outcome()
    gp = row.treating_gp
    if state is None or not state.gp_alerts or not gp:
        return out
    rules = rules_for(ctx.services)
    e = trend_episode.c
    open_rows = {r.rule_id: r for r in ctx.conn.execute(select(trend_episode).where(
        e.dossier_key == key, e.closed_at.is_(None)))}
    findings = [trend_rules.evaluate(rule, _readings(ctx.conn, key, rule, ctx.now), ctx.now) for rule in rules]
    verdict = trend_rules.decide(findings, open_rows)
    now = ctx.now.astimezone(dt.UTC)
    for rule_id in verdict.close:
        ctx.conn.execute(update(trend_episode).where(e.dossier_key == key, e.episode_id == open_rows[rule_id]
                                                     .episode_id).values(closed_at=now))
    by_id = {r.rule_id: r for r in rules}
    for f in verdict.open:
        spec = by_name(by_id[f.rule_id].measure)
        assert spec is not None
        episode_id = new_id()
        ctx.conn.execute(insert(trend_episode).values(
            dossier_key=key, episode_id=episode_id, rule_id=f.rule_id, measure=int(spec.measure), opened_at=now,
            window_start=f.start.astimezone(dt.UTC), window_end=f.end.astimezone(dt.UTC), figure=f.figure,
            figure2=f.figure2, recipient_id=gp, patient_told=bool(state.patient_alerts)))
        ctx.conn.execute(insert(trend_alert_by_recipient).values(recipient_id=gp, episode_id=episode_id,
                                                                 dossier_key=key, at=now))
    if verdict.open and state.patient_alerts:
        enqueue(ctx, key, ALERT_EVENT, always=True)  # the patient chose it: no health data in the message
    out.evaluated = True
    out.opened = [f.rule_id for f in verdict.open]
    out.closed = list(verdict.close)
    ctx.audit(key, "R", "trends.evaluate", detail={"rules": len(rules), "readings": sum(f.count for f in findings),
                                                   "opened": out.opened, "closed": out.closed})
    return out

