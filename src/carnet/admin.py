"""Operator actions on reference data (the professionals' directory, API clients) and on keys. No dossier content."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, Engine, delete, exc, func, insert, inspect, select, update

from carnet.blobs import KeyRing, rewrap
from carnet.db.tables import client, document, master_key, practitioner, shared_link
from carnet.identity.ins import InvalidIdentifier
from carnet.identity.professionals import national_id, normalize_adeli, normalize_rpps
from carnet.identity.professions import DOCTOR, PROFESSIONS

DEFAULT_SCOPES = {
    "professional": "system/Patient.crs system/DocumentReference.cruds system/List.rs system/Binary.r "
                    "system/Consent.c system/Practitioner.rs system/PractitionerRole.rs system/Task.crus "
                    "system/ExplanationOfBenefit.rs system/AllergyIntolerance.crus system/Condition.crus "
                    "system/MedicationStatement.crus system/Immunization.crus system/Observation.crus "
                    "system/RelatedPerson.rs system/Appointment.rs system/Encounter.rs",
    "patient_portal": "system/Patient.crus system/RelatedPerson.crs system/DocumentReference.cruds system/List.rs "
                      "system/Binary.r system/Consent.c system/AuditEvent.rs system/Practitioner.rs "
                      "system/PractitionerRole.rs system/Task.crus system/ExplanationOfBenefit.rs "
                      "system/AllergyIntolerance.rsu system/Condition.rsu system/MedicationStatement.rsu "
                      "system/Immunization.rsu system/Observation.rsu system/Appointment.rs system/Encounter.rs",
    "assurance_maladie": "system/Patient.crus system/RelatedPerson.c system/DocumentReference.c "
                         "system/Practitioner.rs",
    # a patient's own app (SMART standalone launch): a public client, read-only, see carnet.auth.smart
    "patient_app": "patient/*.rs launch/patient offline_access online_access",
}


def add_practitioner(conn: Connection, *, rpps: str | None, adeli: str | None, family: str, given: str,
                     profession: str, specialty: str | None = None, organisation_id: str | None = None,
                     organisation_name: str | None = None, regulator: bool = False) -> str:
    if bool(rpps) == bool(adeli):
        raise InvalidIdentifier("rpps", "give exactly one of RPPS or ADELI")
    nid = national_id("rpps", normalize_rpps(rpps, "rpps")) if rpps else \
        national_id("adeli", normalize_adeli(adeli or "", "adeli"))
    if profession not in PROFESSIONS and profession != "SOCIAL":
        raise InvalidIdentifier("profession", "unknown profession code (TRE_G15)")
    if regulator and profession != DOCTOR:
        raise InvalidIdentifier("regulator", f"a SAMU centre-15 regulator must be a doctor (profession {DOCTOR}, "
                                             f"not {profession})")
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = dict(id_kind="rpps" if rpps else "adeli", family=family, given=given,
                                  profession=profession, specialty=specialty, organisation_id=organisation_id,
                                  organisation_name=organisation_name, is_regulator=regulator, enabled=True,
                                  updated_at=now)
    if conn.execute(select(practitioner.c.national_id).where(practitioner.c.national_id == nid)).first():
        conn.execute(update(practitioner).where(practitioner.c.national_id == nid).values(**values))
    else:
        conn.execute(insert(practitioner).values(national_id=nid, created_at=now, **values))
    return nid


def set_practitioner_enabled(conn: Connection, nid: str, enabled: bool) -> bool:
    res = conn.execute(update(practitioner).where(practitioner.c.national_id == nid).values(
        enabled=enabled, updated_at=dt.datetime.now(dt.UTC)))
    return res.rowcount == 1


def list_practitioners(conn: Connection) -> list[Any]:
    """The whole directory, by family name (the operator's listing)."""
    return list(conn.execute(select(practitioner).order_by(practitioner.c.family)))


def add_client(conn: Connection, *, client_id: str, name: str, kind: str, jwks: dict[str, Any] | None,
               scopes: str | None = None, redirect_uris: list[str] | None = None) -> None:
    if kind not in DEFAULT_SCOPES:
        raise ValueError("kind must be professional, patient_portal, assurance_maladie or patient_app")
    jwks = jwks or {"keys": []}
    if kind == "patient_app":
        _check_patient_app(jwks, scopes, redirect_uris or [])
    elif not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValueError("the JWKS must hold at least one public key")
    for key in jwks["keys"]:
        if any(k in key for k in ("d", "p", "q", "k")):
            raise ValueError("the JWKS must hold public keys only")
    values = dict(name=name, kind=kind, jwks=json.dumps(jwks), scopes=scopes or DEFAULT_SCOPES[kind], enabled=True,
                  redirect_uris=" ".join(redirect_uris) if redirect_uris else None)
    if conn.execute(select(client.c.client_id).where(client.c.client_id == client_id)).first():
        conn.execute(update(client).where(client.c.client_id == client_id).values(**values))
    else:
        conn.execute(insert(client).values(client_id=client_id, created_at=dt.datetime.now(dt.UTC), **values))


#: The only write scopes a patient app may have: adding measurements and the devices that took them (carnet.measures;
#: a PHD gateway's upload). The patient sees them on the consent screen and stops a device in the portal.
MEASURE_WRITE_SCOPES = frozenset({"patient/Observation.c", "patient/Device.c"})


def _check_patient_app(jwks: dict[str, Any], scopes: str | None, redirect_uris: list[str]) -> None:
    """A patient app is a public client: no key, at least one redirect URI (https, or http on this machine, or an
    app's own scheme), and only read scopes in the patient context (Carnet grants apps no write scope)."""
    from urllib.parse import urlsplit

    if jwks.get("keys"):
        raise ValueError("a patient app is a public client: register it without a JWKS")
    if not redirect_uris:
        raise ValueError("a patient app needs at least one redirect URI")
    for uri in redirect_uris:
        parts = urlsplit(uri)
        local = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
        if (not parts.scheme or " " in uri or parts.fragment or (parts.scheme in ("http", "https") and not parts.netloc)
                or (parts.scheme == "http" and not local) or parts.scheme in ("javascript", "data", "file")):
            raise ValueError(f"not a usable redirect URI: {uri!r} (https, http://127.0.0.1 or an app scheme)")
    for scope in (scopes or "").split():
        if scope == "launch/patient":
            continue
        if scope in MEASURE_WRITE_SCOPES:  # a device gateway or a measuring app adds measurements (issue 17 §1)
            continue
        if "/" in scope and not (scope.startswith("patient/") and scope.rsplit(".", 1)[-1] in ("r", "s", "rs", "read")):
            raise ValueError(f"a patient app may only have read scopes in the patient context, not {scope!r}")


def set_client_enabled(conn: Connection, client_id: str, enabled: bool) -> bool:
    return conn.execute(update(client).where(client.c.client_id == client_id).values(enabled=enabled)).rowcount == 1


def list_clients(conn: Connection) -> list[Any]:
    return list(conn.execute(select(client).order_by(client.c.name)))


def rewrap_all(conn: Connection, keyring: KeyRing, batch: int = 500, *, batches: int | None = None) -> int:
    """Re-wrap every document's data key, and every SMART Health Link's (docs/SHARING.md), with the current master
    key (contents are not re-encrypted). Touches only ``wrapped_key``/``key_id``: no content is decrypted or read.
    With ``batches``, stop after that many batches of documents (the caller commits and calls again: short
    transactions while nodes keep publishing)."""
    done = 0
    while True:  # the links' sealed keys: few rows
        links = conn.execute(select(shared_link.c.dossier_key, shared_link.c.link_id, shared_link.c.wrapped_key,
                                    shared_link.c.key_id).where(shared_link.c.key_id != keyring.current_id)
                             .limit(batch)).all()
        if not links:
            break
        for r in links:
            wrapped, kid = rewrap(keyring, bytes(r.wrapped_key), r.key_id)
            conn.execute(update(shared_link).where(shared_link.c.dossier_key == r.dossier_key,
                                                   shared_link.c.link_id == r.link_id)
                         .values(wrapped_key=wrapped, key_id=kid))
            done += 1
    while batches is None or batches > 0:
        if batches is not None:
            batches -= 1
        rows = conn.execute(select(document.c.dossier_key, document.c.document_id, document.c.wrapped_key,
                                   document.c.key_id).where(document.c.key_id != keyring.current_id)
                            .limit(batch)).all()
        if not rows:
            return done
        for r in rows:
            wrapped, kid = rewrap(keyring, bytes(r.wrapped_key), r.key_id)
            conn.execute(update(document).where(document.c.dossier_key == r.dossier_key,
                                                document.c.document_id == r.document_id,
                                                document.c.key_id == r.key_id)
                         .values(wrapped_key=wrapped, key_id=kid))
            done += 1
    return done


class KeyMismatch(Exception):
    """This process's master keys are not the ones the database's documents are wrapped under; the message says
    which key and what to do (it holds key ids and check values, never keys)."""


def check_master_keys(engine: Engine, keyring: KeyRing) -> list[str]:
    """Compare this process's key ring with the keys registered in the database (``master_key``: key id and check
    value, :meth:`KeyRing.fingerprint`), and register the ring's new keys; returns the ids registered now.

    Refused (:class:`KeyMismatch`): a key whose id is registered with another check value (a node that generated its
    own key because its key file was missing, or was given another one), and a registered key that the ring lacks
    (a node started with an old key file after a rotation). Nodes that start together and race to register their
    first key: one wins, the others compare with it."""
    for attempt in (1, 2):
        try:
            with engine.begin() as conn:
                if not inspect(conn).has_table("master_key"):
                    raise KeyMismatch("the database schema is not up to date (no master_key table): run "
                                      "carnet db upgrade")
                registered = {r.key_id: r.fingerprint for r in conn.execute(select(master_key))}
                for kid in keyring.key_ids:
                    if kid in registered and registered[kid] != keyring.fingerprint(kid):
                        raise KeyMismatch(
                            f"master key {kid!r} of this process is not the key {kid!r} the database's documents are "
                            f"wrapped under (check value {keyring.fingerprint(kid)[:12]}…, registered "
                            f"{registered[kid][:12]}…): give every node the same keys (CARNET_MASTER_KEY, or one "
                            "CARNET_MASTER_KEY_FILE copied to every node); do not let a node generate its own")
                if lacking := sorted(set(registered) - set(keyring.key_ids)):
                    raise KeyMismatch(f"this process lacks the master keys {', '.join(lacking)} that the database "
                                      "registered (a key file older than the last rotation?): give it the current key "
                                      "file or CARNET_MASTER_KEY")
                new = [kid for kid in keyring.key_ids if kid not in registered]
                now = dt.datetime.now(dt.UTC)
                for kid in new:
                    conn.execute(insert(master_key).values(key_id=kid, fingerprint=keyring.fingerprint(kid),
                                                           added_at=now))
                return new
        except exc.IntegrityError:
            if attempt == 2:
                raise
    return []


def retire_master_key(conn: Connection, keyring: KeyRing, key_id: str) -> int:
    """Forget the registration of ``key_id`` once no document is wrapped under it; returns how many documents still
    are (0: retired). The caller removes the key from the ring's file."""
    still = conn.execute(select(func.count()).select_from(document).where(document.c.key_id == key_id)).scalar_one()
    if still:
        return int(still)
    conn.execute(delete(master_key).where(master_key.c.key_id == key_id))
    return 0
