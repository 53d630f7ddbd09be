"""The patient hides one structured item from professionals (issue 13 §3), as ``MASQUE_PS`` hides a document.

An allergy, condition, treatment, vaccination or observation the patient hid carries the French confidentiality code
``MASQUE_PS`` (TRE_A07 / JDV_J58) in ``meta.security`` and ``clinical_item.masked``; the policy
(``Visibility.allows_item`` / ``item_where``) then shows it only to its author, the médecin traitant (and those given
the same rights) and the patient side: every other professional, in emergency (break the glass) and SAMU regulation
modes too, finds it absent from searches, the emergency summary and the IPS, and a read by id answers 404.

Only the patient or a legal representative hides or shows an item again (the professionals' side never changes the
patient's choice); each change is a new version of the item, audited ``clinical.hide`` / ``clinical.show`` in the
same transaction, and shown in the patient's history.
"""

from __future__ import annotations

import json
from typing import Any

from carnet.clinical.service import locate, rewrite
from carnet.context import Context
from carnet.documents import codes
from carnet.errors import forbidden

MASKED_CODING = {"system": codes.TRE_A07, "code": codes.MASQUE_PS,
                 "display": "Masqué aux professionnels de santé"}


def is_mask(coding: dict[str, Any]) -> bool:
    """A ``MASQUE_PS`` coding, whichever published spelling of the TRE_A07 system it uses."""
    return coding.get("system") in codes.CONFIDENTIALITY_SYSTEMS and coding.get("code") == codes.MASQUE_PS


def set_hidden(ctx: Context, rtype: str, item_id: str, hidden: bool) -> tuple[bool, str]:
    """Hide the item from professionals (``hidden``) or show it to them again. Returns whether it changed and the
    item as served. An item the caller may not see answers 404; a caller other than the patient side, 403 (both
    audited as refused)."""
    event = "clinical.hide" if hidden else "clinical.show"
    row, decision = locate(ctx, rtype, item_id, event, "U", lock=True)
    if decision.basis not in ("patient", "representative"):
        raise ctx.refuse(row.dossier_key, "U", event,
                         forbidden("Only the patient or a legal representative hides an item from professionals or "
                                   "shows it again"), entity_type=rtype, entity_id=item_id)
    if bool(row.masked) == hidden:
        return False, str(row.resource)
    res = json.loads(row.resource)
    meta = dict(res.get("meta") or {})
    security = [c for c in meta.get("security") or [] if not is_mask(c)]
    if hidden:
        security.append(dict(MASKED_CODING))
    if security:
        meta["security"] = security
    else:
        meta.pop("security", None)
    res["meta"] = meta
    served = rewrite(ctx, row, res, masked=hidden)
    ctx.audit(row.dossier_key, "U", event, entity_type=rtype, entity_id=item_id)
    return True, served
