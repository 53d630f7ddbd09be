"""Who is calling: the actor every decision is about. Built by :mod:`carnet.auth` from a verified token, or by the
CLI for an operator; nothing else constructs one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ActorKind(StrEnum):
    PATIENT = "patient"
    REPRESENTATIVE = "representative"
    PROFESSIONAL = "professional"
    ASSURANCE_MALADIE = "assurance_maladie"
    INSURER = "insurer"
    MUTUELLE = "mutuelle"
    EMPLOYER = "employer"
    BANK = "bank"
    OCCUPATIONAL_MEDICINE = "occupational_medicine"
    OPERATOR = "operator"  # the people who run Carnet: lifecycle jobs, audit verification; never content
    # whoever holds a SMART Health Link the patient shared (carnet.sharing): reads what the link shares, nothing more;
    # ``id`` is the link's internal id, ``display`` the recipient the client declared
    LINK_RECIPIENT = "link_recipient"
    # the worker evaluating the trend rules over a dossier's measurements (carnet.trends): reads the readings of the
    # measures its rules watch, never documents nor identity, and writes only alerts
    TREND_EVALUATOR = "trend_evaluator"


NEVER_ADMITTED = frozenset({ActorKind.INSURER, ActorKind.MUTUELLE, ActorKind.EMPLOYER, ActorKind.BANK,
                            ActorKind.OCCUPATIONAL_MEDICINE})


class Mode(StrEnum):
    NORMAL = "normal"
    EMERGENCY = "emergency"  # break the glass
    REGULATION = "regulation"  # SAMU centre 15


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str | None = None  # professional: national id; patient: INS; representative: representative id
    display: str | None = None
    profession: str | None = None  # TRE_G15
    organisation_id: str | None = None
    is_regulator: bool = False
    mode: Mode = Mode.NORMAL
    reason: str | None = None  # mandatory for break the glass
    client_id: str | None = None
    acting_for: str | None = None  # representative: the INS of the person they act for

    @property
    def audit_id(self) -> str:
        return self.id or self.client_id or self.kind.value
