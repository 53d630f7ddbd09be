"""The published example data in ../shared/fixtures, against Carnet, on SQLite and PostgreSQL.

The promise: "Carnet accepts every ITI-65 example bundle in ../shared/fixtures once its patient exists, and its
search results look like the searchset examples". A fixture is bound to a test dossier by rewriting only what ties it
to its example patient (subject references, an INS on an in-bundle Patient), plus its masterIdentifier: that value is
unique across a Carnet server, and two IHE examples share one. A document that a bundle replaces is first published
by the same professional. Without the fixtures folder these tests skip, except with ``CI=true`` where they fail.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.documentreference import DocumentReference

from tests.access.oracle import category_is_accepted, class_of_type
from tests.conftest import FIXTURES, INS_SYSTEM, World

pytestmark = pytest.mark.fixtures

PDF = b"%PDF-1.4\n% replaced by a fixture\n%%EOF\n"
SEARCHSET_EXAMPLE = "mhd/Bundle-FindDocumentReferences.json"
PATCHES = ("jsonpatch-td3.3a-masquage-MASQUE_PS.json", "jsonpatch-td3.3a-demasquage-N.json",
           "jsonpatch-td3.3b-invisible-patient-INVISIBLE_PATIENT.json")


# --- finding the fixtures ------------------------------------------------------------------------------------------

def _json_files() -> list[tuple[Path, Any]]:
    if not FIXTURES.is_dir():
        return []
    return [(p, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(FIXTURES.rglob("*.json"))]


def _is_transaction(data: Any) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "Bundle" and data.get("type") == "transaction"


def _is_iti105(data: Any) -> bool:
    return isinstance(data, dict) and data.get("resourceType") == "DocumentReference" and any(
        (c.get("attachment") or {}).get("data") for c in data.get("content") or [])


def _params(predicate: Any) -> list[Any]:
    found = [pytest.param(p, id=str(p.relative_to(FIXTURES))) for p, data in _json_files() if predicate(data)]
    # Without the folder one placeholder case remains, so that the absence is reported (skip, or fail on CI).
    return found or [pytest.param(FIXTURES / "missing", id="fixtures-missing")]


TRANSACTIONS = _params(_is_transaction)
ITI105 = _params(_is_iti105)


def require_fixtures() -> None:
    if FIXTURES.is_dir():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"The conformance fixtures are required when CI=true ({FIXTURES} is missing)")
    pytest.skip(f"The conformance fixtures are not there ({FIXTURES})")


def load(path: Path) -> Any:
    require_fixtures()
    return json.loads(path.read_text(encoding="utf-8"))


# --- binding a fixture to a dossier --------------------------------------------------------------------------------

def fresh_master(res: dict[str, Any]) -> None:
    if "masterIdentifier" in res:
        res["masterIdentifier"] = {**res["masterIdentifier"], "value": f"urn:uuid:{uuid.uuid4()}"}


def publish_old(world: World) -> str:
    """A document for a fixture to replace, published (ITI-105) by the professional who then sends the fixture."""
    res = {"resourceType": "DocumentReference", "status": "current",
           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
           "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
           "subject": {"reference": f"Patient/{world.dossier}"},
           "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}}]}
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# Published examples whose declared category contradicts the class DOMAIN.md derives from their type (issue 15 §6):
# the ANS PDSm examples file consultation notes (11488-4, class 10) as class 11 and a summary of episode (34133-9,
# class 11) as class 10. Carnet refuses them as published (test below); ``bind`` makes the category agree.
CONTRADICTING_CATEGORY = ("pdsm/pdsm/Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json",
                          "pdsm/pdsm4dmp/Bundle-example-td2-1-remplacement.json",
                          "pdsm/pdsm4dmp/Bundle-example-td2-iti65-lot-soumission.json")


def agree_category_with_type(res: dict[str, Any]) -> None:
    """Set a DocumentReference's TRE_A03 category to the class its type has (the oracle's, from DOMAIN.md)."""
    doc_type = next((c.get("code") for c in (res.get("type") or {}).get("coding") or []
                     if class_of_type(c.get("code") or "")), None)
    if doc_type is None:
        return
    for concept in res.get("category") or []:
        for c in concept.get("coding") or []:
            if "TRE_A03" in str(c.get("system")) and not category_is_accepted(doc_type, c.get("code")):
                c["code"] = class_of_type(doc_type)
                c.pop("display", None)


# Published examples whose content is a placeholder that is not what they declare (issue 15 §7): the ANS PDSm
# examples send "Hello World" / "Hello" as application/pdf. Carnet refuses them as published (tests below);
# ``bind`` and ``real_pdf`` put a real PDF in their place.
PLACEHOLDER_PDF = ("pdsm/pdsm/Bundle-bundle-exemple-comprehensiveprovidedocument-replace.json",
                   "pdsm/pdsm/DocumentReference-PDSmSimplifiedExample.json")


def real_pdf(holder: dict[str, Any]) -> None:
    """A Binary or an attachment declared application/pdf whose data is not a PDF gets a PDF as its data."""
    if holder.get("contentType") == "application/pdf" and holder.get("data") and \
            not base64.b64decode(holder["data"]).startswith(b"%PDF-"):
        holder["data"] = base64.b64encode(PDF).decode()
        for stated in ("size", "hash"):
            holder.pop(stated, None)


def bind(bundle: dict[str, Any], world: World, keep_in_bundle_patient: bool = False,
         agree_categories: bool = True, real_contents: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """The bundle with its patient references pointing at ``world.dossier``; replaced documents published first;
    categories that contradict their type made to agree (unless ``agree_categories`` is false); placeholder contents
    that are not what they declare replaced by real ones (unless ``real_contents`` is false).
    Returns the bound bundle and the map {fixture's id of a replaced document: Carnet's id}."""
    b = copy.deepcopy(bundle)
    entries = b.get("entry") or []
    full_urls = {e.get("fullUrl") for e in entries}
    patient_urls = {e.get("fullUrl") for e in entries if (e.get("resource") or {}).get("resourceType") == "Patient"}
    replaced: dict[str, str] = {}

    def target(old: str) -> str:
        if old not in replaced:
            replaced[old] = publish_old(world)
        return replaced[old]

    for e in entries:
        res = e.get("resource") or {}
        rtype = res.get("resourceType")
        if rtype == "Patient":
            res["identifier"] = [*(res.get("identifier") or []), {"system": INS_SYSTEM, "value": world.ins}]
        if rtype == "Binary" and real_contents:
            real_pdf(res)
        if rtype in ("List", "DocumentReference") and "subject" in res:
            if not (keep_in_bundle_patient and res["subject"].get("reference") in patient_urls):
                res["subject"] = {**res["subject"], "reference": f"Patient/{world.dossier}"}
        if rtype == "DocumentReference":
            fresh_master(res)
            if agree_categories:
                agree_category_with_type(res)
            for rel in res.get("relatesTo") or []:
                ref = (rel.get("target") or {}).get("reference") or ""
                if ref.startswith("DocumentReference/") and ref not in full_urls:
                    rel["target"]["reference"] = f"DocumentReference/{target(ref.split('/', 1)[1])}"
        req = e.get("request") or {}
        if req.get("method") == "PATCH" and str(req.get("url", "")).startswith("DocumentReference/"):
            req["url"] = f"DocumentReference/{target(req['url'].split('/', 1)[1])}"
    return b, replaced


def post_bundle(world: World, bundle: dict[str, Any]) -> dict[str, Any]:
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["resourceType"] == "Bundle" and out["type"] == "transaction-response"
    assert len(out["entry"]) == len(bundle["entry"])
    return dict(out)


def created_documents(bundle: dict[str, Any], response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Carnet's id of each DocumentReference of the request -> the fixture's content resource (Binary or Bundle)."""
    by_url = {e.get("fullUrl"): e["resource"] for e in bundle["entry"]}
    out = {}
    for e, resp in zip(bundle["entry"], response["entry"], strict=True):
        if e["resource"]["resourceType"] == "DocumentReference" and e["request"]["method"] == "POST":
            doc_id = resp["response"]["location"].split("/")[1]
            out[doc_id] = by_url[e["resource"]["content"][0]["attachment"]["url"]]
    return out


def search(world: World, role: str = "gp", **kw: Any) -> dict[str, Any]:
    r = world.client.get("/fhir/DocumentReference", params={"patient": str(world.dossier)},
                         headers=world.headers(role, **kw))
    assert r.status_code == 200, r.text
    return dict(r.json())


def found_ids(world: World, role: str = "gp", **kw: Any) -> set[str]:
    return {e["resource"]["id"] for e in search(world, role, **kw).get("entry", [])}


def expected_bytes(content: dict[str, Any]) -> bytes:
    if content["resourceType"] == "Binary":
        return base64.b64decode(content["data"])
    return json.dumps(content).encode()  # a FHIR document: compared as JSON below


# --- ITI-65 --------------------------------------------------------------------------------------------------------

def test_the_fixture_folder_holds_the_published_examples() -> None:
    require_fixtures()
    assert len([p for p in TRANSACTIONS if p.id != "fixtures-missing"]) >= 6
    assert len([p for p in ITI105 if p.id != "fixtures-missing"]) >= 2
    for name in PATCHES:
        assert (FIXTURES / "pdsm" / "pdsm4dmp" / name).is_file()
    assert (FIXTURES / SEARCHSET_EXAMPLE).is_file()


@pytest.mark.parametrize("path", TRANSACTIONS)
def test_every_iti65_example_bundle_is_accepted_once_its_patient_exists(world: World, path: Path) -> None:
    bundle, replaced = bind(load(path), world)
    out = post_bundle(world, bundle)
    for e, resp in zip(bundle["entry"], out["entry"], strict=True):
        if e["resource"]["resourceType"] in ("List", "DocumentReference") and e["request"]["method"] == "POST":
            assert resp["response"]["status"].startswith("201"), (e["fullUrl"], resp)
    docs = created_documents(bundle, out)
    assert docs
    assert set(docs) <= found_ids(world)
    for doc_id, content in docs.items():
        r = world.client.get(f"/fhir/Binary/{doc_id}", headers={**world.headers("gp"), "Accept": "*/*"})
        assert r.status_code == 200, r.text
        if content["resourceType"] == "Binary":
            assert r.content == base64.b64decode(content["data"])
        else:  # the FHIR Document Publish option: the document Bundle is the content
            assert r.headers["content-type"].startswith("application/fhir+json")
            assert json.loads(r.content) == content
    for old_id in replaced.values():
        r = world.client.get(f"/fhir/DocumentReference/{old_id}", headers=world.headers("gp"))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "superseded"


@pytest.mark.parametrize("name", CONTRADICTING_CATEGORY)
def test_a_published_example_whose_category_contradicts_its_type_is_refused_whole(world: World, name: str) -> None:
    require_fixtures()
    bundle, _ = bind(load(FIXTURES / name), world, agree_categories=False)
    before = found_ids(world)
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    assert any(".category" in x for i in r.json()["issue"] for x in i.get("expression", [])), r.text
    assert found_ids(world) == before


@pytest.mark.parametrize("name", PLACEHOLDER_PDF)
def test_a_published_example_whose_pdf_is_a_placeholder_is_refused_naming_the_content_type(world: World,
                                                                                            name: str) -> None:
    require_fixtures()
    data = load(FIXTURES / name)
    if data["resourceType"] == "Bundle":
        bundle, _ = bind(data, world, real_contents=False)  # publishes the document it replaces first
        before = found_ids(world)
        r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    else:
        data["subject"] = {"reference": f"Patient/{world.dossier}"}
        fresh_master(data)
        before = found_ids(world)
        r = world.client.post("/fhir/DocumentReference", json=data, headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    assert [x for i in r.json()["issue"] for x in i.get("expression", [])] == [
        "DocumentReference.content[0].attachment.contentType"]
    assert found_ids(world) == before


def test_the_minimal_bundles_own_patient_entry_is_matched_to_the_dossier_by_its_ins(world: World) -> None:
    bundle, _ = bind(load(FIXTURES / "mhd" / "Bundle-ex-minimalProvideDocumentBundleSimple.json"), world,
                     keep_in_bundle_patient=True)
    assert any(e["resource"].get("subject", {}).get("reference", "").startswith("urn:uuid:") for e in bundle["entry"])
    out = post_bundle(world, bundle)
    docs = created_documents(bundle, out)
    assert set(docs) <= found_ids(world)


def test_a_bundle_for_a_patient_without_a_dossier_is_refused(world: World) -> None:
    bundle, _ = bind(load(FIXTURES / "mhd" / "Bundle-ex-minimalProvideDocumentBundleSimple.json"), world,
                     keep_in_bundle_patient=True)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["identifier"] = [{"system": INS_SYSTEM, "value": _other_ins(world)}]
    r = world.client.post("/fhir", json=bundle, headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    assert r.json()["resourceType"] == "OperationOutcome"


def _other_ins(world: World) -> str:
    from carnet.identity.ins import fake_nir_for

    return fake_nir_for(900_000 + world.n)  # a valid INS no test dossier uses


@pytest.mark.parametrize("path", TRANSACTIONS)
def test_carnet_search_results_have_the_shape_of_the_mhd_searchset_example(world: World, path: Path) -> None:
    example = load(FIXTURES / SEARCHSET_EXAMPLE)
    bundle, _ = bind(load(path), world)
    post_bundle(world, bundle)
    ours = search(world)
    for key in ("resourceType", "type", "total", "link", "entry"):
        assert key in example and key in ours, key
    assert ours["resourceType"] == example["resourceType"] == "Bundle"
    assert ours["type"] == example["type"] == "searchset"
    assert isinstance(ours["total"], int) and ours["total"] == len(ours["entry"]) >= 1
    assert [lk["relation"] for lk in ours["link"]][:1] == [lk["relation"] for lk in example["link"]][:1] == ["self"]
    want = set(example["entry"][0])
    for entry in ours["entry"]:
        assert want <= set(entry), (want, set(entry))
        assert entry["search"]["mode"] == example["entry"][0].get("search", {}).get("mode", "match") == "match"
        assert entry["fullUrl"].endswith(f"/DocumentReference/{entry['resource']['id']}")
        DocumentReference.model_validate(entry["resource"])


# --- ITI-105 -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ITI105)
def test_every_iti105_example_is_published_once_its_patient_exists(world: World, path: Path) -> None:
    res = load(path)
    res["subject"] = {**(res.get("subject") or {}), "reference": f"Patient/{world.dossier}"}
    fresh_master(res)
    real_pdf(res["content"][0]["attachment"])
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    doc_id = r.json()["id"]
    assert doc_id in found_ids(world)
    r = world.client.get(f"/fhir/Binary/{doc_id}", headers={**world.headers("gp"), "Accept": "*/*"})
    assert r.status_code == 200
    assert r.content == base64.b64decode(res["content"][0]["attachment"]["data"])


# --- PDSm JSON Patch (TD3.3) ---------------------------------------------------------------------------------------

def json_patch(world: World, doc_id: str, name: str, role: str | None = "gp", **kw: Any) -> Any:
    body = (FIXTURES / "pdsm" / "pdsm4dmp" / name).read_bytes()
    return world.client.patch(f"/fhir/DocumentReference/{doc_id}", content=body,
                              headers={**world.headers(role, **kw), "Content-Type": "application/json-patch+json"})


def publish_normal(world: World) -> str:
    res = {"resourceType": "DocumentReference", "status": "current",
           "masterIdentifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
           "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
           "securityLabel": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
                                          "code": "N"}]}],
           "subject": {"reference": f"Patient/{world.dossier}"},
           "content": [{"attachment": {"contentType": "application/pdf", "data": base64.b64encode(PDF).decode()}}]}
    r = world.client.post("/fhir/DocumentReference", json=res, headers=world.headers("gp"))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_the_masking_patch_hides_a_document_from_a_nurse_but_not_from_its_author(world: World) -> None:
    require_fixtures()
    doc_id = publish_normal(world)
    assert doc_id in found_ids(world, "nurse")
    r = json_patch(world, doc_id, "jsonpatch-td3.3a-masquage-MASQUE_PS.json")
    assert r.status_code == 200, r.text
    assert r.json()["securityLabel"][0]["coding"][0]["code"] == "MASQUE_PS"
    assert doc_id not in found_ids(world, "nurse")
    assert doc_id in found_ids(world, "gp")


def test_the_unmasking_patch_shows_the_document_to_the_nurse_again(world: World) -> None:
    require_fixtures()
    doc_id = publish_normal(world)
    assert json_patch(world, doc_id, "jsonpatch-td3.3a-masquage-MASQUE_PS.json").status_code == 200
    assert doc_id not in found_ids(world, "nurse")
    r = json_patch(world, doc_id, "jsonpatch-td3.3a-demasquage-N.json")
    assert r.status_code == 200, r.text
    assert r.json()["securityLabel"][0]["coding"][0]["code"] == "N"
    assert doc_id in found_ids(world, "nurse")


def test_the_invisible_patient_patch_hides_the_document_from_the_patient_only(world: World) -> None:
    require_fixtures()
    doc_id = publish_normal(world)
    assert doc_id in found_ids(world, None, kind="patient_portal")
    r = json_patch(world, doc_id, "jsonpatch-td3.3b-invisible-patient-INVISIBLE_PATIENT.json")
    assert r.status_code == 200, r.text
    assert doc_id not in found_ids(world, None, kind="patient_portal")
    assert doc_id in found_ids(world, "nurse")


# --- an integrator's first attempt: an unchanged example (issue 16 §4) -----------------------------------------------

UNCHANGED = (("mhd/Bundle-ex-comprehensiveProvideDocumentBundleSimple.json", "subject does not reference a dossier"),
             ("mhd/Bundle-ex-minimalProvideDocumentBundleSimple.json", "This Patient has no INS identifier"))


@pytest.mark.parametrize(("name", "problem"), UNCHANGED)
def test_an_unchanged_ihe_example_is_refused_with_what_to_do(world: World, name: str, problem: str) -> None:
    before = found_ids(world)
    r = world.client.post("/fhir", json=load(FIXTURES / name), headers=world.headers("gp"))
    assert r.status_code == 422, r.text
    text = r.json()["issue"][0]["diagnostics"]
    assert problem in text
    assert "PDQm (ITI-78" in text and "Patient/{id}" in text and "urn:oid:1.2.250.1.213.1.4.8" in text
    assert found_ids(world) == before


def test_the_readmes_walkthrough_publishes_the_unchanged_comprehensive_example(world: World) -> None:
    """README, "Publishing an IHE MHD example": find the dossier by INS (ITI-78), point the example's subjects at
    it and give it a fresh masterIdentifier (the jq filter there), post it (ITI-65)."""
    bundle = load(FIXTURES / "mhd" / "Bundle-ex-comprehensiveProvideDocumentBundleSimple.json")
    r = world.client.get("/fhir/Patient", params={"identifier": f"{INS_SYSTEM}|{world.ins}"},
                         headers=world.headers("gp"))
    assert r.status_code == 200, r.text
    patient_id = r.json()["entry"][0]["resource"]["id"]
    for e in bundle["entry"]:  # jq: (.entry[].resource | select(.subject) | .subject.reference) |= "Patient/…"
        if "subject" in e["resource"]:
            e["resource"]["subject"]["reference"] = f"Patient/{patient_id}"
        if e["resource"]["resourceType"] == "DocumentReference":
            e["resource"]["masterIdentifier"]["value"] = f"urn:uuid:{uuid.uuid4()}"
    out = post_bundle(world, bundle)
    assert created_documents(bundle, out).keys() <= found_ids(world)
