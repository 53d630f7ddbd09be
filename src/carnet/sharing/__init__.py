"""Sharing on the patient's terms: SMART Health Links and the emergency card (issue 13 §2; docs/SHARING.md).

The one door of the sharing service. The patient side creates, lists and revokes links (:mod:`.links`) and makes
an emergency card (:mod:`.card`); whoever holds a link opens it with no account (:mod:`.opening`), in the wire
format of the HL7 SMART Health Links specification (:mod:`.payload`). Every action is decided by the policy
(:mod:`carnet.access.policy`: ``Decision.share_links`` for the patient side, the ``link_recipient`` actor and
:func:`~carnet.access.policy.link_state` for openings) and audited in the dossier's chain in the same transaction.
"""

from carnet.sharing.card import Card, card_pdf, card_png, emergency_card
from carnet.sharing.links import LinkSpec, LinkView, create, links, revoke, shareable_documents
from carnet.sharing.opening import FHIR_JSON, Manifest, WrongPasscode, open_file, open_manifest
from carnet.sharing.payload import Payload, PayloadError, decode, decrypt, encode, encrypt

__all__ = ["FHIR_JSON", "Card", "LinkSpec", "LinkView", "Manifest", "Payload", "PayloadError", "WrongPasscode",
           "card_pdf", "card_png", "create", "decode", "decrypt", "emergency_card", "encode", "encrypt", "links",
           "open_file", "open_manifest", "revoke", "shareable_documents"]
