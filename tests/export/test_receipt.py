"""The complete copy carries a signed receipt of the patient's history that anyone can check offline with the script
in the copy (issue 15 §2), and that fails when the history in the copy was altered."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from carnet.audit import receipt as rc
from carnet.audit.anchor import checkpoint, from_settings
from tests.conftest import World
from tests.export.test_copy import copy_of, patient, publish, unzip


def anchored_copy(world: World) -> zipfile.ZipFile:
    publish(world, world.dossier, title="Compte rendu")
    checkpoint(world.services.engine, from_settings(world.services.settings), world.services.clock)
    return unzip(copy_of(world, patient(world)))


def run_script(tmp_path: Path, zf: zipfile.ZipFile, history: dict[str, Any] | None = None,
               bundle: dict[str, Any] | None = None) -> Any:
    """Run the copy's own verify_receipt.py with nothing of Carnet on the path (a fresh directory, -I)."""
    for name in ("audit/receipt.json", "audit/history.json", "audit/verify_receipt.py", "fhir/bundle.json"):
        (tmp_path / Path(name).name).write_bytes(zf.read(name))
    if history is not None:
        (tmp_path / "history.json").write_text(json.dumps(history))
    if bundle is not None:
        (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    return subprocess.run([sys.executable, "-I", "verify_receipt.py", "receipt.json", "history.json",  # noqa: S603
                           "bundle.json"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)


def test_the_receipt_verifies_offline_with_the_script_in_the_copy(world: World, tmp_path: Path) -> None:
    zf = anchored_copy(world)
    receipt = json.loads(zf.read("audit/receipt.json"))
    history = json.loads(zf.read("audit/history.json"))
    assert receipt["chain"] == str(world.dossier) and receipt["seq"] < len(history["records"])  # the copy's own
    assert history["records"][-1]["body"]["event"] == "dossier.copy"  # record comes after the checkpoint
    result = run_script(tmp_path, zf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"OK: {receipt['seq']} records up to ")
    assert "later record(s) link correctly but are not yet anchored" in result.stdout
    assert f"the bundle's {len(history['records'])} AuditEvents match the history" in result.stdout
    assert "audit/verify_receipt.py audit/receipt.json audit/history.json" in zf.read("README.txt").decode()
    assert "audit/receipt.json" in zf.read("SHA256SUMS").decode()


def test_an_altered_history_fails_the_receipt(world: World, tmp_path: Path) -> None:
    zf = anchored_copy(world)
    history = json.loads(zf.read("audit/history.json"))
    receipt = json.loads(zf.read("audit/receipt.json"))
    altered = json.loads(json.dumps(history))
    altered["records"][1]["body"]["actor_id"] = "someone-else"
    result = run_script(tmp_path, zf, altered)
    assert result.returncode == 1 and "record 2 was altered" in result.stdout
    shortened = {**history, "records": history["records"][:receipt["seq"] - 1]}  # a record removed
    assert "is missing" in run_script(tmp_path, zf, shortened).stdout
    rehashed = json.loads(json.dumps(history))  # altered and every hash recomputed: the checkpoint still says no
    rehashed["records"][0]["body"]["mode"] = "emergency"
    prev = rc.GENESIS
    for rec in rehashed["records"]:
        rec["prev_hash"] = prev
        rec["hash"] = prev = rc.link(prev, rec["seq"], hashlib.sha256(
            rc.canonical_json(rec["body"])).hexdigest())
    result = run_script(tmp_path, zf, rehashed)
    assert result.returncode == 1 and "differs from the one the checkpoint commits to" in result.stdout


def test_a_forged_receipt_fails(world: World) -> None:
    zf = anchored_copy(world)
    history = json.loads(zf.read("audit/history.json"))
    receipt = json.loads(zf.read("audit/receipt.json"))
    assert rc.verify(receipt, history).startswith("OK")
    bad_root = {**receipt, "checkpoint": {**receipt["checkpoint"], "root": "00" * 32}}
    bad_time = {**receipt, "checkpoint": {**receipt["checkpoint"], "time": "2020-01-01T00:00:00.000000Z"}}
    for forged, message in ((bad_root, "inclusion proof"), (bad_time, "signature")):
        try:
            rc.verify(forged, history)
        except rc.ReceiptError as exc:
            assert message in str(exc)
        else:
            raise AssertionError("a forged receipt verified")


def test_no_receipt_while_no_checkpoint_commits_to_the_chain(world: World) -> None:
    zf = unzip(copy_of(world, patient(world)))
    assert not any(n.startswith("audit/") for n in zf.namelist())
    assert "audit/" not in zf.read("README.txt").decode()


def test_the_copy_carries_no_receipt_when_part_of_the_history_is_withheld(world: World) -> None:
    """A chain with gaps would tell that records about a hidden document exist."""
    publish(world, world.dossier, "11526-1", title="À annoncer", labels=("INVISIBLE_PATIENT",))
    checkpoint(world.services.engine, from_settings(world.services.settings), world.services.clock)
    zf = unzip(copy_of(world, patient(world)))
    assert not any(n.startswith("audit/") for n in zf.namelist())


def test_an_access_hidden_or_changed_in_the_bundle_fails_too(world: World, tmp_path: Path) -> None:
    zf = anchored_copy(world)

    def bundle_with(change: Any) -> dict[str, Any]:
        bundle = json.loads(zf.read("fhir/bundle.json"))
        change(bundle, [e for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"])
        return bundle

    def as_normal(bundle: dict[str, Any], events: list[dict[str, Any]]) -> None:
        events[0]["resource"]["outcome"] = "4"

    result = run_script(tmp_path, zf, bundle=bundle_with(as_normal))
    assert result.returncode == 1 and "differs from its record in the history" in result.stdout
    result = run_script(tmp_path, zf, bundle=bundle_with(lambda b, events: b["entry"].remove(events[1])))
    assert result.returncode == 1 and "1 record(s) of the history have no AuditEvent" in result.stdout
