"""The dossier's life (DOMAIN.md, "The dossier's life"): create, check (TD0.2), read, close, reopen, purge; legal
representatives; the médecin traitant; authorizations, blocks and objections. Every transition is audited.

This is the one entry the rest of Carnet calls (``from carnet.dossier import service as dossiers``); the work is done
by one module per concept: :mod:`~carnet.dossier.patient` (the Patient resource, INS and traits),
:mod:`~carnet.dossier.reading` (check, search, read), :mod:`~carnet.dossier.lifecycle` (create, objections, close,
reopen, purge) and :mod:`~carnet.dossier.rights` (representatives, médecin traitant, authorizations, blocks).
"""

from __future__ import annotations

from carnet.dossier.lifecycle import (
    DossierState,
    close,
    create,
    object_to_dossier,
    purge_due,
    record_objection,
    reopen,
    state,
)
from carnet.dossier.patient import (
    BIRTHPLACE_EXT,
    CANONICAL,
    EXT_CREATION_CONSENT,
    EXT_DOSSIER_ACCESS,
    GENDERS,
    INSEE_EXT,
    ins_of,
    ins_value,
    norm,
    traits,
)
from carnet.dossier.reading import check_by_ins, lookup, read, search_demographics, with_access
from carnet.dossier.rights import (
    ACCESS_REQUEST_POLICIES,
    AccessEntry,
    AccessOverview,
    RepresentativeEntry,
    access_overview,
    add_representative,
    change_access,
    set_access_requests,
    set_objections,
    set_treating_gp,
    unblock,
)

__all__ = [
    "ACCESS_REQUEST_POLICIES", "BIRTHPLACE_EXT", "CANONICAL", "EXT_CREATION_CONSENT", "EXT_DOSSIER_ACCESS", "GENDERS",
    "INSEE_EXT", "AccessEntry", "AccessOverview", "DossierState", "RepresentativeEntry", "access_overview",
    "add_representative", "change_access", "check_by_ins", "close", "create", "ins_of", "ins_value", "lookup", "norm",
    "object_to_dossier", "purge_due", "read", "record_objection", "reopen", "search_demographics",
    "set_access_requests", "set_objections", "set_treating_gp", "state", "traits", "unblock", "with_access",
]
