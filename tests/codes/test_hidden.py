"""The second code (issue 13 §1; My Health Record's Limited Document Access Code): the patient gives a professional
already authorized a code that shows them the documents the patient hid from professionals (``MASQUE_PS``). Through
the FHIR API, on SQLite and PostgreSQL: who sees what before and after, who may take it up, single use, wrong codes
counted, the patient stopping it or withdrawing the authorization, the history's plain words."""

from __future__ import annotations

from typing import Any

from carnet import codes
from carnet.context import run
from carnet.dossier import service as dossiers
from carnet.portal import i18n
from carnet.portal.pages import history as history_page
from tests.codes.test_api import _out, _params, issue, redeem
from tests.conftest import World
from tests.notify.conftest import add_account, messages
from tests.tasks.helpers import audit_events, grants_of, patient, publish


def _sees(world: World, role: str, doc_id: str) -> tuple[bool, int]:
    """(the document is in the role's search, status of reading it by id)."""
    found = world.client.get(f"/fhir/DocumentReference?patient={world.dossier}", headers=world.headers(role))
    assert found.status_code == 200, found.text
    ids = {e["resource"]["id"] for e in found.json().get("entry", [])}
    read = world.client.get(f"/fhir/DocumentReference/{doc_id}", headers=world.headers(role))
    return doc_id in ids, read.status_code


def _hidden_code(world: World) -> str:
    out = issue(world, kind="hidden")
    assert out["kind"] == "hidden"
    return str(out["code"])


def test_the_hidden_code_shows_the_hidden_documents_to_that_professional_only(world: World) -> None:
    acc = add_account(world, email=f"hidden-{world.n}@example.org")
    hidden = publish(world, labels=["MASQUE_PS"])  # a consultation note the gp wrote and the patient hid
    assert _sees(world, "doctor", hidden) == (False, 404)
    assert _sees(world, "nurse", hidden) == (False, 404)
    code = _hidden_code(world)
    r = redeem(world, code, role="doctor")
    assert r.status_code == 200, r.text
    out = _out(r)
    assert out["kind"] == "hidden"
    [mine] = [g for g in grants_of(world) if g[3] == world.pros["doctor"] and g[7] is None]
    assert out["consent"]["reference"] == f"Consent/{mine[1]}"  # added to their own authorization, not a new one
    assert _sees(world, "doctor", hidden) == (True, 200)
    assert _sees(world, "nurse", hidden) == (False, 404)  # other professionals still not
    assert "access.code.use_hidden" in audit_events(world, outcome="0")
    assert len(messages(world.services, world.dossier, event="access.code_hidden_used", account_id=acc)) == 1
    # single use: the code is dead for anyone else
    r = redeem(world, code, role="nurse")
    assert r.status_code == 403 and r.json()["issue"][0]["diagnostics"] == codes.WRONG
    assert _sees(world, "nurse", hidden) == (False, 404)


def test_the_habilitation_matrix_still_applies(world: World) -> None:
    """A physiotherapist (summaries only) with the code sees the hidden summary, never the hidden consultation note."""
    note = publish(world, labels=["MASQUE_PS"])
    summary = publish(world, loinc="60591-5", labels=["MASQUE_PS"])
    assert _sees(world, "physio", summary) == (False, 404)
    assert redeem(world, _hidden_code(world), role="physio").status_code == 200
    assert _sees(world, "physio", summary) == (True, 200)
    assert _sees(world, "physio", note) == (False, 404)


def test_a_professional_not_authorized_is_refused_and_the_code_stays_alive(world: World) -> None:
    hidden = publish(world, labels=["MASQUE_PS"])
    code = _hidden_code(world)
    r = redeem(world, code)  # the stranger: no authorization of their own
    assert r.status_code == 409 and r.json()["issue"][0]["diagnostics"] == codes.NEEDS_AUTHORIZATION
    assert "does not replace" in codes.NEEDS_AUTHORIZATION
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("stranger")).status_code == 403
    assert "access.code.use_hidden" in audit_events(world, outcome="4")
    assert "access.code.wrong" not in audit_events(world)
    # the médecin traitant sees them already: 409 too; the blocked professional learns nothing (404)
    assert redeem(world, code, role="gp").status_code == 409
    assert redeem(world, code, role="blocked").status_code == 404
    # the code was not used up: the professional it was meant for takes it
    assert redeem(world, code, role="doctor").status_code == 200
    assert _sees(world, "doctor", hidden) == (True, 200)


def test_a_wrong_code_is_counted_and_shows_nothing(world: World) -> None:
    hidden = publish(world, labels=["MASQUE_PS"])
    _hidden_code(world)
    r = redeem(world, "ABCD-EFGH", role="doctor")
    assert r.status_code == 403 and r.json()["issue"][0]["diagnostics"] == codes.WRONG
    assert "access.code.wrong" in audit_events(world, outcome="4")
    assert _sees(world, "doctor", hidden) == (False, 404)


def test_an_access_code_is_not_a_hidden_code(world: World) -> None:
    """The code's kind decides: the first code gives an authorization, never the hidden documents."""
    hidden = publish(world, labels=["MASQUE_PS"])
    code = issue(world)["code"]
    assert redeem(world, code, role="doctor").status_code == 409  # already authorized: it is meant for someone else
    assert redeem(world, code).status_code == 200  # the stranger is now authorized...
    assert _sees(world, "stranger", hidden) == (False, 404)  # ...and sees no hidden document


def test_the_patient_stops_it_or_withdraws_the_authorization(world: World) -> None:
    hidden = publish(world, labels=["MASQUE_PS"])
    assert redeem(world, _hidden_code(world), role="doctor").status_code == 200
    assert redeem(world, _hidden_code(world), role="nurse").status_code == 200
    run(world.services, patient(world), lambda ctx: codes.stop_hidden(ctx, world.dossier, world.pros["doctor"]))
    assert _sees(world, "doctor", hidden) == (False, 404)
    assert world.client.get(f"/fhir/Patient/{world.dossier}", headers=world.headers("doctor")).status_code == 200
    assert "access.hidden.stop" in audit_events(world, outcome="0")
    # withdrawing the authorization withdraws it; authorizing again does not bring it back
    for relation in (None, "authorized"):
        run(world.services, patient(world), lambda ctx, r=relation: dossiers.change_access(  # type: ignore[misc]
            ctx, world.dossier, "practitioner", world.pros["nurse"], r))
    assert _sees(world, "nurse", hidden) == (False, 404)


def test_an_unknown_kind_is_refused_and_changes_nothing(world: World) -> None:
    r = world.client.post(f"/fhir/Patient/{world.dossier}/$access-code", json=_params(kind="everything"),
                          headers=world.headers(kind="patient_portal"))
    assert r.status_code == 422 and "kind" in r.text
    assert "access.code.create" not in audit_events(world)
    assert "access.code.create_hidden" not in audit_events(world)


def test_the_history_says_it_in_plain_words() -> None:
    french = i18n.language("fr")
    for event in ("access.code.create_hidden", "access.code.use_hidden", "access.hidden.stop"):
        label: Any = history_page.EVENTS[event]
        assert "." not in label and french.gettext(label) != label, event
