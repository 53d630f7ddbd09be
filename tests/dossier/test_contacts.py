"""Emergency contacts and advance directives through the service (``carnet.dossier.contacts``), on both databases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fhir.resources.R4B.relatedperson import RelatedPerson
from sqlalchemy import select

from carnet.access.actors import Actor, ActorKind, Mode
from carnet.context import run
from carnet.db.tables import audit, document
from carnet.dossier import contacts
from carnet.dossier import service as dossiers
from carnet.errors import FhirError
from tests.conftest import World

PDF = b"%PDF-1.4\n% directives\n%%EOF\n"


def patient(world: World) -> Actor:
    return Actor(ActorKind.PATIENT, id=world.ins)


def pro(world: World, role: str, mode: Mode = Mode.NORMAL) -> Actor:
    return Actor(ActorKind.PROFESSIONAL, id=world.pros[role], profession="60" if role == "nurse" else "10",
                 mode=mode, reason="Unconscious on arrival" if mode is not Mode.NORMAL else None)


def add(world: World, **values: Any) -> uuid.UUID:
    fields = {"name": "Camille Martin", "relationship": "sœur", "phone": "+33 6 12 34 56 78", **values}
    return run(world.services, patient(world), lambda ctx: contacts.add_contact(ctx, world.dossier, **fields))


def listed(world: World, actor: Actor) -> list[contacts.Contact]:
    return run(world.services, actor, lambda ctx: contacts.list_contacts(ctx, world.dossier))


def events(world: World) -> list[tuple[str, str, str | None]]:
    with world.services.engine.connect() as conn:
        return [(r.event, r.outcome, r.entity_id) for r in conn.execute(
            select(audit.c.event, audit.c.outcome, audit.c.entity_id).where(audit.c.dossier_key == world.dossier)
            .order_by(audit.c.seq))]


def test_the_patient_adds_a_contact_that_the_medecin_traitant_reads_and_both_are_audited(world: World) -> None:
    cid = add(world)
    seen = listed(world, pro(world, "gp"))
    assert [(c.contact_id, c.name, c.phone) for c in seen] == [(cid, "Camille Martin", "+33 6 12 34 56 78")]
    log = events(world)
    assert ("contact.add", "0", str(cid)) in log
    assert [e for e in log if e[0] == "contact.read"][-1][1] == "0"


def test_an_emergency_access_reads_the_contacts_and_a_stranger_or_a_blocked_professional_does_not(
        world: World) -> None:
    add(world)
    assert len(listed(world, pro(world, "stranger", Mode.EMERGENCY))) == 1
    for role, status in (("stranger", 403), ("blocked", 404)):  # a blocked professional learns nothing
        with pytest.raises(FhirError) as err:
            listed(world, pro(world, role))
        assert err.value.status == status
    refused = [e for e in events(world) if e[0] == "contact.read" and e[1] != "0"]
    assert len(refused) == 2


def test_a_professional_may_not_change_the_contacts_even_with_the_medecin_traitants_rights(world: World) -> None:
    cid = add(world)
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, "gp"), lambda ctx: contacts.add_contact(ctx, world.dossier, name="X",
                                                                               phone="0600000000"))
    assert err.value.status == 403
    with pytest.raises(FhirError):
        run(world.services, pro(world, "gp"), lambda ctx: contacts.remove_contact(ctx, world.dossier, cid))
    assert len(listed(world, patient(world))) == 1


def test_update_and_remove_change_the_contact_and_leave_a_trace(world: World) -> None:
    cid = add(world)
    run(world.services, patient(world), lambda ctx: contacts.update_contact(
        ctx, world.dossier, cid, name="Camille Martin-Durand", email="Camille@Example.org"))
    [c] = listed(world, patient(world))
    assert (c.name, c.phone, c.email, c.relationship) == ("Camille Martin-Durand", None, "camille@example.org", None)
    run(world.services, patient(world), lambda ctx: contacts.remove_contact(ctx, world.dossier, cid))
    assert listed(world, patient(world)) == []
    assert {"contact.update", "contact.remove"} <= {e[0] for e in events(world) if e[2] == str(cid)}


def test_a_contact_needs_a_name_and_a_way_to_reach_them(world: World) -> None:
    for values, field in (({"name": " "}, "RelatedPerson.name"), ({"phone": "", "email": ""}, "RelatedPerson.telecom"),
                          ({"phone": "call me"}, "RelatedPerson.phone"), ({"email": "nope"}, "RelatedPerson.email")):
        with pytest.raises(FhirError) as err:
            add(world, **values)
        assert err.value.status == 422 and err.value.issues[0].expression == [field]
    assert listed(world, patient(world)) == []


def test_a_closed_dossier_keeps_its_contacts_readable_by_the_patient_but_not_changeable(world: World) -> None:
    add(world)
    run(world.services, patient(world), lambda ctx: dossiers.close(ctx, world.dossier))
    assert len(listed(world, patient(world))) == 1
    with pytest.raises(FhirError) as err:
        add(world, name="Other")
    assert err.value.status == 403
    with pytest.raises(FhirError):
        listed(world, pro(world, "gp"))


def test_a_contact_is_served_as_a_valid_emergency_contact_related_person(world: World) -> None:
    add(world, email="camille@example.org")
    [c] = listed(world, patient(world))
    res = contacts.as_related_person(world.dossier, c)
    RelatedPerson.model_validate(res, strict=True)
    assert res["relationship"][0]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v2-0131",
                                                   "code": "C", "display": "Emergency Contact"}
    assert res["patient"] == {"reference": f"Patient/{world.dossier}"}
    assert {t["system"] for t in res["telecom"]} == {"phone", "email"}


def test_a_deposited_directive_is_a_class_90_exppat_3_document_and_replacing_supersedes_the_old_one(
        world: World) -> None:
    first = run(world.services, patient(world), lambda ctx: contacts.deposit_directive(
        ctx, world.dossier, PDF, "application/pdf", "Mes directives"))
    second = run(world.services, patient(world), lambda ctx: contacts.deposit_directive(
        ctx, world.dossier, "Je refuse l’acharnement thérapeutique.".encode(), "text/plain", "", replaces=str(first)))
    with world.services.engine.connect() as conn:
        rows = {r.document_id: r for r in conn.execute(select(document).where(document.c.dossier_key == world.dossier))}
    assert (rows[first].class_code, rows[first].type_code, rows[first].status) == ("90", "EXPPAT_3", "superseded")
    assert (rows[second].class_code, rows[second].status, rows[second].content_type) == \
        ("90", "current", "text/plain")
    seen = run(world.services, pro(world, "doctor"), lambda ctx: contacts.list_directives(ctx, world.dossier))
    assert [d.document_id for d in seen] == [str(second)] and seen[0].by_patient_side


def test_a_professional_does_not_deposit_the_patients_directives(world: World) -> None:
    with pytest.raises(FhirError) as err:
        run(world.services, pro(world, "gp"), lambda ctx: contacts.deposit_directive(
            ctx, world.dossier, PDF, "application/pdf", "Directives"))
    assert err.value.status == 403


def test_a_legal_representative_manages_the_contacts_of_the_person_they_represent(world: World) -> None:
    rep_id = run(world.services, patient(world), lambda ctx: dossiers.add_representative(
        ctx, world.dossier, "protected_adult", "Tuteur", "Paul", "tuteur"))
    rep = Actor(ActorKind.REPRESENTATIVE, id=str(rep_id), acting_for=world.ins)
    cid = run(world.services, rep, lambda ctx: contacts.add_contact(ctx, world.dossier, name="Paul Tuteur",
                                                                    phone="0612345678"))
    assert [c.contact_id for c in listed(world, patient(world))] == [cid]
    run(world.services, rep, lambda ctx: contacts.remove_contact(ctx, world.dossier, cid))
    assert listed(world, rep) == []


# --- the FHIR API: GET /fhir/RelatedPerson?patient= (issue 3 §2) ----------------------------------------------------

def _search(world: World, headers: dict[str, str], **params: str) -> Any:
    return world.client.get("/fhir/RelatedPerson", params=params, headers=headers)


def test_a_professional_reads_the_emergency_contacts_as_a_searchset_and_the_read_is_audited(world: World) -> None:
    from fhir.resources.R4B.bundle import Bundle

    first, second = add(world), add(world, name="Louis Martin", relationship="fils", phone=None,
                                    email="louis@example.test")
    r = _search(world, world.headers("gp"), patient=f"Patient/{world.dossier}")
    assert r.status_code == 200, r.text
    bundle = r.json()
    Bundle.model_validate(bundle, strict=True)
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    served = [e["resource"] for e in bundle["entry"]]
    assert [p["id"] for p in served] == [str(first), str(second)]
    assert served[1]["telecom"] == [{"system": "email", "value": "louis@example.test"}]
    assert all(p["relationship"][0]["coding"][0]["code"] == "C" for p in served)
    assert "note" not in served[0]  # the patient's own note stays on their page
    one = _search(world, world.headers("gp"), patient=str(world.dossier), _id=str(second)).json()
    assert [e["resource"]["id"] for e in one["entry"]] == [str(second)]
    assert [e for e in events(world) if e[0] == "contact.read"][-1][1] == "0"


def test_the_contacts_follow_the_dossier_rules_in_the_api(world: World) -> None:
    add(world)
    stranger = _search(world, world.headers("stranger"), patient=str(world.dossier))
    assert stranger.status_code == 403 and stranger.json()["resourceType"] == "OperationOutcome"
    assert [e for e in events(world) if e[0] == "contact.read"][-1][1] != "0"  # the refusal is traced
    urgent = _search(world, world.headers("stranger", mode="emergency", reason="Inconscient"),
                     patient=str(world.dossier))
    assert urgent.status_code == 200 and urgent.json()["total"] == 1


def test_a_contact_search_needs_the_patient_and_knows_its_parameters(world: World) -> None:
    missing = _search(world, world.headers("gp"))
    assert missing.status_code == 400 and missing.json()["issue"][0]["expression"] == ["patient"]
    unknown = _search(world, world.headers("gp"), patient=str(world.dossier), name="Martin")
    assert unknown.status_code == 400 and unknown.json()["issue"][0]["expression"] == ["name"]
    caps = world.client.get("/fhir/metadata").json()
    related = next(r for r in caps["rest"][0]["resource"] if r["type"] == "RelatedPerson")
    assert {"create", "search-type"} <= {i["code"] for i in related["interaction"]}
