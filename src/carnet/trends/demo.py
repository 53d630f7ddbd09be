"""The demo's measurements (``make run``): the adult patient's 90 days of glucose from a flash monitor (one reading
every 15 minutes), home blood pressure morning and evening for 30 days (above 135/85 lately), a daily weight, then one
evaluation of the trend rules, so that the demo's médecin traitant (Dr Claire Martin) has alerts to open and both
portals have charts to draw. Synthetic values only."""

from __future__ import annotations

import datetime as dt
import math
import uuid

from carnet.access.actors import Actor
from carnet.context import Services, run
from carnet.measures import service as measures
from carnet.measures.catalogue import Measure
from carnet.trends import service as trends


def seed(services: Services, patient: Actor, key: uuid.UUID) -> None:
    now = services.clock().replace(second=0, microsecond=0)
    n = 90 * 96
    glucose = [measures.reading(Measure.GLUCOSE, now - dt.timedelta(minutes=15 * (n - i)),
                                round(150 + 60 * math.sin(i / 96 * 2 * math.pi) + 30 * math.sin(i / 7.3), 0),
                                "mg/dL") for i in range(n)]
    pressure = [measures.reading(Measure.BLOOD_PRESSURE, now - dt.timedelta(hours=12 * (60 - i), minutes=30),
                                 round(126 + i / 4 + 4 * math.sin(i)), "mm[Hg]", round(78 + i / 10 + 3 * math.cos(i)))
                for i in range(60)]
    weight = [measures.reading(Measure.WEIGHT, now - dt.timedelta(days=29 - i, hours=2),  # +2.4 kg in 3 days
                               round(78.0 + (1.2 * (i - 26) if i > 26 else 0.1 * math.sin(i)), 1), "kg")
              for i in range(30)]
    for source, rs in ((measures.SourceRef("app", "demo:flash-glucose", "Capteur de glucose (démo)"), glucose),
                       (measures.SourceRef("device", "urn:oid:1.2.250.1.999|cuff-demo", "Tensiomètre (démo)"),
                        pressure),
                       (measures.SourceRef("device", "urn:oid:1.2.250.1.999|scale-demo", "Balance (démo)"), weight)):
        run(services, patient, lambda ctx, s=source, r=rs: measures.record(ctx, key, s, r))  # type: ignore[misc]
    run(services, trends.EVALUATOR, lambda ctx: trends.evaluate(ctx, key))
