"""Access codes (issue 13 §1; docs/ACCESS.md, "Access codes"): the patient gives a new professional a short,
single-use code to read out on the phone; the professional who enters it becomes authorized on the dossier exactly as
the patient's own authorization would make them (:func:`carnet.dossier.rights.grant`, relation ``authorized``).

The one door of the access-code service. The patient side issues, lists and revokes codes (:mod:`.issuing`); a
professional redeems one (:mod:`.redeeming`). The policy decides (``Decision.issue_codes``, ``Decision.redeem_code``)
and every action is audited in the dossier's chain in the same transaction, wrong codes included.
"""

from carnet.codes.alphabet import ALPHABET, format_code, new_code, normalise
from carnet.codes.issuing import (
    KINDS,
    CodeView,
    IssuedCode,
    codes,
    issue,
    required,
    revoke,
    set_required,
    stop_hidden,
)
from carnet.codes.redeeming import NEEDS_AUTHORIZATION, WRONG, Redeemed, WrongCode, check_rate, frozen_error, redeem

__all__ = ["ALPHABET", "KINDS", "NEEDS_AUTHORIZATION", "WRONG", "CodeView", "IssuedCode", "Redeemed", "WrongCode",
           "check_rate", "codes", "format_code", "frozen_error", "issue", "new_code", "normalise", "redeem", "required",
           "revoke", "set_required", "stop_hidden"]
