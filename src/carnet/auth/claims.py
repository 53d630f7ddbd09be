"""Actor claims: who acts and in which mode, carried in a client assertion or an access token (IHE IUA extensions).

:class:`AssertionClaims` is what a verified assertion or access token says; the functions below read the actor
from a JWT's ``extensions`` (:func:`read_actor`), check which kind of client may name whom
(:func:`check_actor_for_kind`), and write the extensions of a new JWT (:func:`actor_extensions`).

Actor claims (Carnet's choice of names)
---------------------------------------
The DMP's VIHF token tells who acts and in which mode; Carnet carries the same facts in the JWT extension object of
IHE IUA (ITI TF-2 3.71.4.2.2.1, "JWT IUA extension": the claims live in ``extensions.ihe_iua``), plus a national
extension object ``extensions.carnet`` next to it, as the Swiss EPR does with ``extensions.ch_epr``::

    "extensions": {
      "ihe_iua": {
        "national_provider_identifier": "810001045367",      # professional: "8" + RPPS or "0" + ADELI
        "subject_organization_id": "750712184",              # optional, free form (a FINESS, a SIRET)
        "person_id": "255081416802538",                        # patient_portal: the patient's INS matricule
        "purpose_of_use": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]
      },
      "carnet": {
        "mode": "normal" | "emergency" | "regulation",         # default "normal"
        "mode_reason": "free text",                            # required for emergency, at most 500 characters
        "representative_id": "..."                             # patient_portal: the legal representative acting
      }
    }

========================================  ============================  =======================================
claim                                     :class:`AssertionClaims`      who may send it
========================================  ============================  =======================================
``extensions.ihe_iua``                    ``professional_id``           professional (required there)
``.national_provider_identifier``
``extensions.ihe_iua``                    ``organisation_id``           professional, assurance_maladie
``.subject_organization_id``
``extensions.ihe_iua.person_id``          ``patient_ins``               patient_portal, patient_app (required)
``extensions.carnet.mode``                ``mode``                      professional (any mode); others "normal"
``extensions.carnet.mode_reason``         ``reason``                    professional, emergency (required) or
                                                                        regulation (optional)
``extensions.carnet.representative_id``   ``representative_id``         patient_portal, patient_app
``extensions.carnet.grant_id``            ``grant_id``                  patient_app (required there; set by
                                                                        Carnet, see :mod:`carnet.auth.smart`)
========================================  ============================  =======================================

A ``patient_app`` (SMART standalone launch, :mod:`carnet.auth.smart`) never sends an assertion: it is a public
client, and its access tokens carry the same patient claims as the portal's, plus the grant they were issued under,
so that revoking the grant stops them at once.

``carnet.mode`` is the only source of the mode. ``purpose_of_use`` is optional and only cross-checked: a code
``ETREAT`` or ``BTG`` (emergency treatment, break the glass) with mode ``normal`` is refused, so that an IUA client
believing it broke the glass is told so instead of silently reading in normal mode. The other IUA claims
(``subject_name``, ``subject_role``, ``subject_organization``, ``home_community_id``) are accepted and ignored: the
professional's identity, profession and organisation come from Carnet's directory, which the web layer checks (as
it checks that a SAMU regulator works for a centre 15). Only shapes are checked here: ``professional_id`` is ``8`` +
11 digits or ``0`` + 9 characters; ``patient_ins`` is 15 characters (digits, ``2A``/``2B`` for the département),
its key being checked where the patient is looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from carnet.auth.errors import TokenError

__all__ = [
    "ACT_REASON_SYSTEM",
    "CLIENT_KINDS",
    "MAX_REASON_CHARS",
    "MODES",
    "AssertionClaims",
    "actor_extensions",
    "check_actor_for_kind",
    "check_actor_shapes",
    "check_purpose_of_use",
    "extension_objects",
    "read_actor",
]

CLIENT_KINDS = frozenset({"professional", "patient_portal", "assurance_maladie", "patient_app"})
MODES = frozenset({"normal", "emergency", "regulation"})
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
MAX_REASON_CHARS = 500

_EMERGENCY_PURPOSES = frozenset({"ETREAT", "BTG"})
_PROFESSIONAL_ID = re.compile(r"8[0-9]{11}|0[0-9A-Z]{9}")
_INS = re.compile(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}")
_GRANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class AssertionClaims:
    """What a verified client assertion (or access token, see :func:`carnet.auth.access_tokens.access_token_actor`)
    says.

    ``jti`` and ``exp`` are those of the JWT it was read from. ``client_kind`` is the registered kind of the client,
    filled in by :func:`carnet.auth.assertions.verify_client_assertion`.
    """

    client_id: str
    jti: str
    exp: int
    professional_id: str | None = None
    organisation_id: str | None = None
    mode: str = "normal"
    reason: str | None = None
    patient_ins: str | None = None
    representative_id: str | None = None
    client_kind: str | None = None
    grant_id: str | None = None  # patient_app: the grant (refresh token family) the token was issued under


def _object(container: dict[str, Any], name: str, path: str) -> dict[str, Any]:
    value = container.get(name, {})
    if not isinstance(value, dict):
        raise TokenError("invalid_request", f"'{path}' must be a JSON object")
    return value


def _optional_string(container: dict[str, Any], name: str, path: str, max_chars: int) -> str | None:
    value = container.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TokenError("invalid_request", f"'{path}' must be a string")
    value = value.strip()
    if not value:
        return None
    if len(value) > max_chars:
        raise TokenError("invalid_request", f"'{path}' must be at most {max_chars} characters")
    if _FORBIDDEN_TEXT.search(value):
        raise TokenError("invalid_request", f"'{path}' contains control characters")
    return value


def extension_objects(claims: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    extensions = _object(claims, "extensions", "extensions")
    return (_object(extensions, "ihe_iua", "extensions.ihe_iua"),
            _object(extensions, "carnet", "extensions.carnet"))


def read_actor(claims: dict[str, Any]) -> dict[str, Any]:
    """The actor fields of :class:`AssertionClaims`, read from the ``extensions`` of a JWT, shapes checked."""
    iua, carnet = extension_objects(claims)
    actor = {
        "professional_id": _optional_string(iua, "national_provider_identifier",
                                            "extensions.ihe_iua.national_provider_identifier", 64),
        "organisation_id": _optional_string(iua, "subject_organization_id",
                                            "extensions.ihe_iua.subject_organization_id", 256),
        "patient_ins": _optional_string(iua, "person_id", "extensions.ihe_iua.person_id", 64),
        "mode": _optional_string(carnet, "mode", "extensions.carnet.mode", 32) or "normal",
        "reason": _optional_string(carnet, "mode_reason", "extensions.carnet.mode_reason", MAX_REASON_CHARS),
        "representative_id": _optional_string(carnet, "representative_id", "extensions.carnet.representative_id",
                                              128),
        "grant_id": _optional_string(carnet, "grant_id", "extensions.carnet.grant_id", 64),
    }
    check_actor_shapes(**actor)
    return actor


def check_actor_shapes(*, professional_id: str | None, organisation_id: str | None, patient_ins: str | None,
                        mode: str | None, reason: str | None, representative_id: str | None,
                        grant_id: str | None = None) -> None:
    """Rules that hold for every kind of client."""
    if grant_id is not None and not _GRANT_ID.fullmatch(grant_id):
        raise TokenError("invalid_request", "'extensions.carnet.grant_id' must be a UUID")
    if mode not in MODES:
        raise TokenError("invalid_request", "'extensions.carnet.mode' must be normal, emergency or regulation")
    if mode == "emergency" and not reason:
        raise TokenError("invalid_request", "emergency access requires 'extensions.carnet.mode_reason'")
    if mode == "normal" and reason:
        raise TokenError("invalid_request", "'extensions.carnet.mode_reason' is only for emergency or regulation")
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise TokenError("invalid_request", f"'extensions.carnet.mode_reason' must be at most {MAX_REASON_CHARS} "
                                            "characters")
    if professional_id is not None and not _PROFESSIONAL_ID.fullmatch(professional_id):
        raise TokenError("invalid_request", "'extensions.ihe_iua.national_provider_identifier' must be '8' + RPPS "
                                            "or '0' + ADELI")
    if patient_ins is not None and not _INS.fullmatch(patient_ins):
        raise TokenError("invalid_request", "'extensions.ihe_iua.person_id' must be an INS matricule "
                                            "(15 characters)")


def check_actor_for_kind(kind: str, actor: dict[str, Any]) -> None:
    """Which actor claims each kind of client must, may and may not make."""
    def refuse(description: str) -> TokenError:
        return TokenError("unauthorized_client", description)

    if kind != "patient_app" and actor.get("grant_id") is not None:
        raise refuse("only a patient app's token carries 'extensions.carnet.grant_id'")
    if kind == "professional":
        if actor["professional_id"] is None:
            raise TokenError("invalid_request", "a professional client must name the professional acting in "
                                                "'extensions.ihe_iua.national_provider_identifier'")
        if actor["patient_ins"] is not None:
            raise refuse("a professional client may not set 'extensions.ihe_iua.person_id'")
        if actor["representative_id"] is not None:
            raise refuse("a professional client may not set 'extensions.carnet.representative_id'")
    elif kind in ("patient_portal", "patient_app"):
        if kind == "patient_app" and actor.get("grant_id") is None:
            raise TokenError("invalid_request", "a patient app's token must name its grant")
        if actor["professional_id"] is not None:
            raise refuse("the patient portal may not name a professional")
        if actor["organisation_id"] is not None:
            raise refuse("the patient portal may not name an organisation")
        if actor["mode"] != "normal":
            raise refuse("the patient portal may only use the normal mode")
        if actor["patient_ins"] is None:
            raise TokenError("invalid_request", "the patient portal must name the patient in "
                                                "'extensions.ihe_iua.person_id'")
    elif kind == "assurance_maladie":
        if actor["professional_id"] is not None:
            raise refuse("an Assurance Maladie client may not name a professional")
        if actor["patient_ins"] is not None or actor["representative_id"] is not None:
            raise refuse("an Assurance Maladie client may not act as a patient or a representative")
        if actor["mode"] != "normal":
            raise refuse("an Assurance Maladie client may only use the normal mode")
    else:
        raise refuse("this client's kind is not one Carnet knows")


def check_purpose_of_use(claims: dict[str, Any], mode: str) -> None:
    iua, _ = extension_objects(claims)
    value = iua.get("purpose_of_use")
    if value is None:
        return
    codings = [value] if isinstance(value, dict) else value
    if not isinstance(codings, list) or not all(isinstance(coding, dict) for coding in codings):
        raise TokenError("invalid_request", "'extensions.ihe_iua.purpose_of_use' must be a list of Codings")
    codes = {coding.get("code") for coding in codings
             if coding.get("system") == ACT_REASON_SYSTEM and isinstance(coding.get("code"), str)}
    if codes & _EMERGENCY_PURPOSES and mode == "normal":
        raise TokenError("invalid_request", "'extensions.ihe_iua.purpose_of_use' asks for emergency treatment: "
                                            "set 'extensions.carnet.mode' to emergency or regulation")


def _purpose_code(kind: str | None, mode: str | None) -> str | None:
    if mode in ("emergency", "regulation"):
        return "ETREAT"
    return {"professional": "TREAT", "patient_portal": "PATRQT", "patient_app": "PATRQT",
            "assurance_maladie": "HPAYMT"}.get(kind or "")


def actor_extensions(*, kind: str | None, professional_id: str | None, organisation_id: str | None,
                      patient_ins: str | None, mode: str | None, reason: str | None,
                      representative_id: str | None, grant_id: str | None = None) -> dict[str, Any]:
    iua: dict[str, Any] = {}
    if professional_id is not None:
        iua["national_provider_identifier"] = professional_id
    if organisation_id is not None:
        iua["subject_organization_id"] = organisation_id
    if patient_ins is not None:
        iua["person_id"] = patient_ins
    purpose = _purpose_code(kind, mode)
    if purpose is not None:
        iua["purpose_of_use"] = [{"system": ACT_REASON_SYSTEM, "code": purpose}]
    carnet: dict[str, Any] = {"mode": mode}
    if kind is not None:
        carnet["client_kind"] = kind
    if reason is not None:
        carnet["mode_reason"] = reason
    if representative_id is not None:
        carnet["representative_id"] = representative_id
    if grant_id is not None:
        carnet["grant_id"] = grant_id
    return {"ihe_iua": iua, "carnet": carnet}

