"""Uploads from personal health devices over FHIR, as the HL7 Personal Health Device IG 2.0.0 describes
(https://hl7.org/fhir/uv/phd/): a gateway or the patient's app POSTs a ``transaction`` Bundle of ``Device`` and
``Observation`` resources (and the gateway's ``Patient``), with a patient token granted ``patient/Observation.c``
(and ``patient/Device.c`` when it carries Devices).

Carnet's choices (docs/MEASUREMENTS.md):
- the dossier is the token's patient; a ``Patient`` entry is the gateway's view of that patient and is not stored:
  accepted when it names no INS (a gateway knows the person by its own id, as the IG's examples do) or the token's
  INS, refused otherwise; an Observation's ``subject`` must be that entry or ``Patient/{the dossier}``;
- a ``Device`` entry is a source of the dossier (:class:`~carnet.measures.service.SourceRef`), identified by its
  first identifier (``system|value``: the IEEE EUI-64 system id for a PHD); the device an Observation names in
  ``device`` is its source, the app itself when it names none; a source the patient stopped is refused (403);
- an Observation is stored when its code is a measure of :mod:`carnet.measures.catalogue` (LOINC or MDC), its
  ``status`` final, amended or corrected, its time ``effectiveDateTime`` (or ``effectivePeriod.start``) with a time
  zone, its value a UCUM ``valueQuantity`` (blood pressure: the systolic and diastolic components) within bounds;
  the PHD coincident time stamp (MDC 67975 ``MDC_ATTR_TIME_ABS``) is understood and not stored (it only dates the
  gateway's clock); anything else is refused (422) naming the entry and the field, and nothing of the Bundle is kept;
- the same device, measure and time already stored answers ``200 OK`` (a duplicate, not stored twice), a new reading
  ``201 Created``. One audit record per source of the upload, with its counts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from carnet.context import Context
from carnet.errors import FhirError, unprocessable
from carnet.identity.ins import INS_SYSTEMS
from carnet.measures import service, store
from carnet.measures.catalogue import LOINC, MDC, SPECS, UCUM, by_code
from carnet.measures.store import Reading

PHD_TIME_CODES = frozenset({(MDC, "67975")})  # MDC_ATTR_TIME_ABS: the coincident time stamp, not a measure
ACCEPTED_STATUS = frozenset({"final", "amended", "corrected"})
MAX_ENTRIES = 50_000


def observation_id(key: uuid.UUID, r: Reading) -> str:
    """A stored reading's FHIR id: dossier, measure, source and time (ms); 54 characters at most."""
    return f"{key.hex}.{r.measure}.{r.source_no}.{int(r.taken_at.timestamp() * 1000)}"


def parse_observation_id(value: str) -> tuple[uuid.UUID, int, int, dt.datetime] | None:
    try:
        k, m, s, ms = value.split(".")
        return uuid.UUID(hex=k), int(m), int(s), dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)
    except (ValueError, OverflowError):
        return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _ref(value: Any) -> str | None:
    """A Reference's ``reference`` (``None`` if the element is not a Reference with a string reference)."""
    ref = _dict(value).get("reference")
    return ref if isinstance(ref, str) else None


def is_measures_bundle(bundle: dict[str, Any]) -> bool:
    """A transaction whose entries are Observations and Devices (a PHD upload), not documents (ITI-65)."""
    types: set[str | None] = set()
    for e in _list(bundle.get("entry")):
        rtype = _dict(_dict(e).get("resource")).get("resourceType")
        types.add(rtype if isinstance(rtype, str) else None)
    return bool(types & {"Observation", "Device"}) and types <= {"Observation", "Device", "Patient"}


def _when(res: dict[str, Any], where: str) -> dt.datetime:
    value = res.get("effectiveDateTime")
    field = "effectiveDateTime"
    if value is None and isinstance(res.get("effectivePeriod"), dict):
        value, field = res["effectivePeriod"].get("start"), "effectivePeriod.start"
    if not isinstance(value, str) or "T" not in value:
        raise unprocessable("A measurement needs its time, to the second, with a time zone",
                            f"{where}.effectiveDateTime", "required")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise unprocessable("Not a FHIR dateTime", f"{where}.{field}", "value") from None
    if when.tzinfo is None:
        raise unprocessable("The time has no time zone", f"{where}.{field}", "value")
    return when


def _quantity(q: Any, where: str) -> tuple[float, str]:
    if not isinstance(q, dict):
        raise unprocessable("A measurement needs a valueQuantity", where, "required")
    value, system, code = q.get("value"), q.get("system"), q.get("code")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise unprocessable("valueQuantity.value must be a number", f"{where}.value", "value")
    if system != UCUM or not isinstance(code, str):
        raise unprocessable(f"The unit must be a UCUM code (system {UCUM})", f"{where}.code", "code-invalid")
    return float(value), code


def _codes(concept: Any) -> list[tuple[str, str]]:
    if not isinstance(concept, dict):
        return []
    return [(str(c.get("system")), str(c.get("code"))) for c in _list(concept.get("coding")) if isinstance(c, dict)]


def to_reading(res: dict[str, Any], where: str) -> Reading | None:
    """The reading an Observation carries (checked), or ``None`` for the PHD time stamp; 422 naming the field."""
    codes = _codes(res.get("code"))
    if any(c in PHD_TIME_CODES for c in codes):
        return None
    specs = {s.measure for s in (by_code(*c) for c in codes) if s is not None}
    if len(specs) != 1:
        raise unprocessable("Carnet does not store this measurement: its code is not one Carnet knows (weight, blood "
                            "pressure, glucose, heart rate, SpO2, body temperature, steps; LOINC or ISO/IEEE 11073)"
                            if not specs else "The codes name different measurements", f"{where}.code", "code-invalid")
    spec = SPECS[specs.pop()]
    status = res.get("status")
    if not isinstance(status, str) or status not in ACCEPTED_STATUS:
        raise unprocessable("Only final, amended or corrected measurements are stored", f"{where}.status", "value")
    when = _when(res, where)
    if spec.components is not None:
        values: list[float] = []
        for i, wanted in enumerate(spec.components):
            comp = next((c for c in _list(res.get("component")) if isinstance(c, dict)
                         and any(code in wanted for code in _codes(c.get("code")))), None)
            expr = f"{where}.component[{'systolic' if i == 0 else 'diastolic'}]"
            if comp is None:
                raise unprocessable("A blood pressure needs its systolic and diastolic components", expr, "required")
            v, unit = _quantity(comp.get("valueQuantity"), f"{expr}.valueQuantity")
            if unit not in spec.units:
                raise unprocessable(f"Unit not accepted for {spec.label_en} (accepted: {', '.join(spec.units)})",
                                    f"{expr}.valueQuantity.code", "code-invalid")
            values.append(v)
        try:
            return service.reading(spec.measure, when, values[0], "mm[Hg]", values[1])
        except service.BadReading as bad:
            raise unprocessable(str(bad), f"{where}.component", "value") from None
    value, unit = _quantity(res.get("valueQuantity"), f"{where}.valueQuantity")
    if unit not in spec.units:
        raise unprocessable(f"Unit not accepted for {spec.label_en} (accepted: {', '.join(spec.units)})",
                            f"{where}.valueQuantity.code", "code-invalid")
    try:
        return service.reading(spec.measure, when, value, unit)
    except service.BadReading as bad:
        raise unprocessable(str(bad), f"{where}.valueQuantity", "value") from None


def _device_source(res: dict[str, Any], where: str) -> service.SourceRef:
    ident = next((i for i in _list(res.get("identifier")) if isinstance(i, dict) and isinstance(i.get("system"), str)
                  and isinstance(i.get("value"), str) and i["system"] and i["value"]), None)
    if ident is None:
        raise unprocessable("A Device needs an identifier (system and value) so that the patient can recognise and "
                            "stop it", f"{where}.identifier", "required")
    names = [n.get("name") for n in _list(res.get("deviceName")) if isinstance(n, dict) and n.get("name")]
    label = " ".join(str(x) for x in (res.get("manufacturer"), res.get("modelNumber")) if x) or \
        (str(names[0]) if names else "") or str(_dict(res.get("type")).get("text") or "Device")
    return service.SourceRef("device", f"{ident['system']}|{ident['value']}"[:300], label[:200])


def upload(ctx: Context, key: uuid.UUID, bundle: dict[str, Any], scopes: frozenset[str], client_id: str | None,
           base: str, may: Any) -> dict[str, Any]:
    """Store a PHD transaction Bundle in dossier ``key`` (all of it or nothing); the transaction-response Bundle,
    entries in request order. ``may(resource_type)`` says whether the token's scopes allow creating that type."""
    entries = _list(bundle.get("entry"))
    if not entries or len(entries) > MAX_ENTRIES:
        raise FhirError(400, "structure", f"A transaction needs 1 to {MAX_ENTRIES} entries", "Bundle.entry")
    by_ref: dict[str, int] = {}  # fullUrl / Type/id -> entry index
    for i, e in enumerate(entries):
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict):
            raise FhirError(400, "structure", "Each entry needs a resource", f"Bundle.entry[{i}].resource")
        rtype = res.get("resourceType")
        if rtype not in ("Observation", "Device", "Patient"):
            raise unprocessable("A measurements upload carries Observation, Device and Patient entries only",
                                f"Bundle.entry[{i}].resource.resourceType", "not-supported")
        if rtype != "Patient" and not may(rtype):
            raise FhirError(403, "forbidden", f"The access token's scopes do not allow creating {rtype}",
                            f"Bundle.entry[{i}]")
        for ref in (e.get("fullUrl"), f"{rtype}/{res.get('id')}" if res.get("id") else None):
            if isinstance(ref, str):
                by_ref[ref] = i
                if ref.startswith(base + "/"):
                    by_ref[ref[len(base) + 1:]] = i
    patients = {i for i, e in enumerate(entries) if e["resource"]["resourceType"] == "Patient"}
    own = {f"Patient/{key}", f"{base}/Patient/{key}"}
    for i in patients:
        ins = [x.get("value") for x in _list(entries[i]["resource"].get("identifier"))
               if isinstance(x, dict) and isinstance(x.get("system"), str) and x["system"] in INS_SYSTEMS]
        if ins and ctx.actor.id not in ins and ctx.actor.acting_for not in ins:
            raise unprocessable("This Patient is not the patient the access token was granted for",
                                f"Bundle.entry[{i}].resource.identifier", "processing")
    sources: dict[int, service.SourceRef] = {}
    for i, e in enumerate(entries):
        if e["resource"]["resourceType"] == "Device":
            sources[i] = _device_source(e["resource"], f"Bundle.entry[{i}].resource")
    app = service.SourceRef("app", f"client:{client_id or 'unknown'}", client_id or "App")
    per_source: dict[service.SourceRef, list[tuple[int, Reading]]] = {}
    for i, e in enumerate(entries):
        res = e["resource"]
        if res["resourceType"] != "Observation":
            continue
        where = f"Bundle.entry[{i}].resource"
        r = to_reading(res, where)
        if r is None:
            continue
        subject = _ref(res.get("subject"))
        if not (subject in own or (subject in by_ref and by_ref[subject] in patients)):
            raise unprocessable("subject must be the patient of the upload (the Bundle's Patient entry or "
                                f"Patient/{key})", f"{where}.subject", "processing")
        device = _ref(res.get("device"))
        if device is None:
            src = app
        elif device in by_ref and by_ref[device] in sources:
            src = sources[by_ref[device]]
        else:
            raise unprocessable("device must reference a Device entry of the Bundle", f"{where}.device", "processing")
        per_source.setdefault(src, []).append((i, r))
    status: dict[int, dict[str, Any]] = {}
    numbers: dict[service.SourceRef, int] = {}
    for src in sorted(set(sources.values()) | set(per_source), key=lambda s: s.identifier):
        items = per_source.get(src, [])
        ref = service.SourceRef(src.kind, src.identifier, src.label, client_id)
        numbers[src] = service.open_source(ctx, key, ref)
        before = store.existing(ctx.conn, key, numbers[src], [r for _, r in items])
        service.record(ctx, key, ref, (r for _, r in items))
        seen: set[tuple[int, dt.datetime]] = set(before)
        for i, r in items:
            new = (r.measure, r.taken_at) not in seen
            seen.add((r.measure, r.taken_at))
            status[i] = {"status": "201 Created" if new else "200 OK", "location": "Observation/" + observation_id(
                key, Reading(r.measure, r.taken_at, r.value, r.value2, numbers[src]))}
    out = []
    for i, e in enumerate(entries):
        res = e["resource"]
        if res["resourceType"] == "Patient":
            out.append({"response": {"status": "200 OK", "location": f"Patient/{key}"}})
        elif res["resourceType"] == "Device":
            out.append({"response": {"status": "200 OK", "location": f"Device/{key.hex}.{numbers[sources[i]]}"}})
        else:
            out.append({"response": status.get(i, {"status": "200 OK", "outcome": _note(
                "A PHD time stamp: understood, not stored")})})
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": out}


def _note(text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational",
                                                          "diagnostics": text}]}


__all__ = ["LOINC", "is_measures_bundle", "observation_id", "parse_observation_id", "to_reading", "upload"]
