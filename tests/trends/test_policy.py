"""The trend evaluator's decision (carnet.access.policy): evaluate the trend rules on an open dossier, nothing else."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from carnet.access.actors import Actor, ActorKind
from carnet.access.matrix import load_matrix
from carnet.access.policy import Decision, DossierFacts, Standing, decide
from carnet.trends.service import EVALUATOR


def decision(status: str, actor: Actor = EVALUATOR) -> Decision:
    facts = DossierFacts(dossier_key=uuid.uuid4(), status=status, birth_date=dt.date(1980, 5, 17))
    return decide(actor, facts, Standing(), dt.date(2026, 12, 4), load_matrix())


def test_the_trend_evaluator_only_evaluates_trends_on_an_open_dossier() -> None:
    d = decision("active")
    assert d.evaluate_trends
    nothing = Decision()
    others = [f.name for f in dataclasses.fields(d) if f.name not in ("evaluate_trends", "basis", "refusal")
              and getattr(d, f.name) != getattr(nothing, f.name)]
    assert others == []  # no read, no write, no check: the same as a refusal but for evaluate_trends
    assert d.visibility.nothing and not d.record_measures
    assert not decision("closed").evaluate_trends


def test_no_other_actor_evaluates_trends() -> None:
    for kind in ActorKind:
        if kind is not ActorKind.TREND_EVALUATOR:
            assert not decision("active", Actor(kind, id="x", profession="10")).evaluate_trends, kind
