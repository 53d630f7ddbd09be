"""Reading and pruning the care history (claim lines), through the policy and the audit.

Who reads reimbursement data is the habilitation matrix's rule for class 60 ("Données de remboursement", type
``REMB``): the patient side always (patient, legal representatives), a professional when the dossier decision lets them
read and their profession's rights admit class 60 (full rights — médecin traitant — admit everything). Assurance
Maladie feeds the history and never reads it. Lines older than the rolling window (``CARNET_CLAIMS_MONTHS``, default
24) are never shown, even before the purge has removed them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, func, select

from carnet.access.actors import ActorKind
from carnet.access.policy import REIMBURSEMENT_CLASS, Decision
from carnet.claims.ingest import window_start
from carnet.context import Context
from carnet.db.tables import claim_line
from carnet.errors import forbidden

REIMBURSEMENT_TYPE = "REMB"


@dataclass(frozen=True)
class ClaimView:
    """One line of the care history, as the portals and the FHIR API show it."""

    id: str  # the line hash: stable across re-ingests
    care_date: dt.date
    kind: str  # act | consultation | drug | biology | device | transport | other
    code_system: str  # CCAM | NGAP | CIP13
    code: str
    label: str
    prescriber: str | None  # national id ("8" + RPPS)
    amount: Decimal | None  # euros

    @property
    def is_drug(self) -> bool:
        return self.code_system == "CIP13"


def may_read(decision: Decision) -> bool:
    """Whether the caller may read the dossier's reimbursement data (see the module docstring)."""
    v = decision.visibility
    if not decision.read or v.nothing:
        return False
    return v.rights is None or v.rights.allows(REIMBURSEMENT_CLASS, REIMBURSEMENT_TYPE)


def search(ctx: Context, key: uuid.UUID, limit: int, offset: int, event: str = "claims.read") -> tuple[
        list[ClaimView], int]:
    """The dossier's claim lines in the window, newest first, and their total; audited ``event``."""
    _, decision = ctx.dossier(key)
    if not may_read(decision):
        refusal = decision.refusal if not decision.read else \
            "This profession may not read reimbursement data (habilitation matrix, class 60)."
        raise ctx.refuse(key, "E", event, forbidden(refusal))
    where = and_(claim_line.c.dossier_key == key,
                 claim_line.c.care_date >= window_start(ctx.now, ctx.settings.claims_months))
    rows = ctx.conn.execute(select(claim_line).where(where)
                            .order_by(claim_line.c.care_date.desc(), claim_line.c.line_hash)
                            .limit(limit).offset(offset)).all()
    if offset == 0 and len(rows) < limit:
        total = len(rows)
    else:
        total = int(ctx.conn.execute(select(func.count()).select_from(claim_line).where(where)).scalar_one())
    views = [_view(r) for r in rows]
    ctx.audit(key, "E", event, entity_type="Patient", entity_id=str(key), detail={"returned": len(views)})
    return views, total


def lines_for_copy(ctx: Context, key: uuid.UUID, decision: Decision) -> list[ClaimView]:
    """Every line of the care history in the window, newest first, for a caller whose ``decision`` was already taken
    (the complete copy: ``decision.copy``, audited once by the copy itself). Nothing when the decision does not let
    them read reimbursement data."""
    if not may_read(decision):
        return []
    rows = ctx.conn.execute(select(claim_line).where(
        claim_line.c.dossier_key == key, claim_line.c.care_date >= window_start(ctx.now, ctx.settings.claims_months))
        .order_by(claim_line.c.care_date.desc(), claim_line.c.line_hash)).all()
    return [_view(r) for r in rows]


def _view(r: Any) -> ClaimView:
    return ClaimView(id=r.line_hash, care_date=r.care_date, kind=r.kind, code_system=r.code_system, code=r.code,
                     label=r.label, prescriber=r.prescriber,
                     amount=None if r.amount_cents is None else Decimal(r.amount_cents) / 100)


def care_history(ctx: Context, key: uuid.UUID, limit: int = 50, offset: int = 0) -> list[ClaimView]:
    """The portals' "Données de remboursement" section: the care history in the window, newest first."""
    return search(ctx, key, limit, offset)[0]


def purge_old(ctx: Context, now: dt.datetime | None = None) -> int:
    """Operator job: delete the claim lines older than the rolling window. Returns how many went; the system chain
    keeps a count (no personal data). Run by ``carnet purge`` and the worker's periodic jobs."""
    from carnet.ids import SYSTEM_CHAIN

    if ctx.actor.kind is not ActorKind.OPERATOR:
        raise forbidden("Only an operator runs the purge")
    start = window_start(now or ctx.now, ctx.settings.claims_months)
    n = ctx.conn.execute(delete(claim_line).where(claim_line.c.care_date < start)).rowcount
    if n:
        ctx.audit(SYSTEM_CHAIN, "D", "claims.purge", detail={"lines": n})
    return int(n)
