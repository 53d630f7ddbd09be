"""The shape of the code, checked: no import circle, no module over 600 lines, the layer contracts kept.

The layers themselves are `.importlinter` (run by ``lint-imports`` in ``make test``); this file asks grimp, the graph
library import-linter is built on, for what a contract cannot say: that nothing in Carnet imports itself back, between
modules or between Carnet's components (its direct sub-packages and top-level modules).
"""

from __future__ import annotations

import configparser
from functools import cache
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "carnet"
MAX_LINES = 600

# Issue 14 empties these lists; a new entry is a regression.
KNOWN_MODULE_CYCLE_EDGES: set[tuple[str, str]] = {
    ('carnet.context', 'carnet.notify.rules'),
    ('carnet.documents.service', 'carnet.tasks.service'),
    ('carnet.dossier.service', 'carnet.documents.service'),
    ('carnet.notify.outbox', 'carnet.context'),
    ('carnet.notify.rules', 'carnet.context'),
    ('carnet.notify.rules', 'carnet.notify.outbox'),
    ('carnet.tasks.service', 'carnet.documents.service'),
    ('carnet.tasks.service', 'carnet.dossier.service'),
}
KNOWN_COMPONENT_CYCLE_EDGES: set[tuple[str, str]] = {
    ('carnet.accounts', 'carnet.notify'),
    ('carnet.auth', 'carnet.notify'),  # was accounts <-> portal; through the exception context -> notify.rules
    ('carnet.claims', 'carnet.notify'),
    ('carnet.clinical', 'carnet.fhir'),
    ('carnet.context', 'carnet.notify'),
    ('carnet.documents', 'carnet.dossier'),
    ('carnet.documents', 'carnet.fhir'),
    ('carnet.documents', 'carnet.notify'),
    ('carnet.documents', 'carnet.tasks'),
    ('carnet.dossier', 'carnet.fhir'),
    ('carnet.dossier', 'carnet.notify'),
    ('carnet.dossier', 'carnet.tasks'),
    ('carnet.export', 'carnet.fhir'),
    ('carnet.fhir', 'carnet.history'),  # was audit <-> fhir; through the exception documents.service -> fhir.patch
    ('carnet.fhir', 'carnet.notify'),
    ('carnet.fhir', 'carnet.tasks'),
    ('carnet.notify', 'carnet.tasks'),
}
KNOWN_LONG_MODULES: set[str] = {
    'auth/tokens.py',
    'documents/service.py',
    'dossier/service.py',
    'fhir/routes.py',
}


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("carnet")


def cyclic_module_edges() -> set[tuple[str, str]]:
    """Every direct import a → b such that b reaches a again: the edges that lie on an import circle."""
    g = graph()
    edges = set()
    for importer in g.modules:
        for imported in g.find_modules_directly_imported_by(importer):
            if g.chain_exists(importer=imported, imported=importer):
                edges.add((importer, imported))
    return edges


def components() -> list[str]:
    return sorted(m for m in graph().modules if m.count(".") == 1)


def cyclic_component_edges() -> set[tuple[str, str]]:
    g = graph()
    comps = components()
    edges = set()
    for a in comps:
        for b in comps:
            if a < b and g.chain_exists(importer=a, imported=b, as_packages=True) and g.chain_exists(
                importer=b, imported=a, as_packages=True
            ):
                edges.add((a, b))
    return edges


def test_no_module_imports_itself_back() -> None:
    found = cyclic_module_edges()
    assert found - KNOWN_MODULE_CYCLE_EDGES == set(), "new import circle"
    assert KNOWN_MODULE_CYCLE_EDGES - found == set(), "an allowed circle is gone: remove it from the list"


def test_no_two_components_import_each_other() -> None:
    found = cyclic_component_edges()
    assert found - KNOWN_COMPONENT_CYCLE_EDGES == set(), "new circle between components"
    assert KNOWN_COMPONENT_CYCLE_EDGES - found == set(), "an allowed circle is gone: remove it from the list"


def test_the_cycle_check_sees_a_circle() -> None:
    """The check itself can fail: a graph with a → b → c → a has three cyclic edges."""
    g = grimp.ImportGraph()
    for m in ("x", "x.a", "x.b", "x.c", "x.d"):
        g.add_module(m)
    g.add_import(importer="x.a", imported="x.b")
    g.add_import(importer="x.b", imported="x.c")
    g.add_import(importer="x.c", imported="x.a")
    g.add_import(importer="x.a", imported="x.d")
    cyclic = {(i, j) for i in g.modules for j in g.find_modules_directly_imported_by(i)
              if g.chain_exists(importer=j, imported=i)}
    assert cyclic == {("x.a", "x.b"), ("x.b", "x.c"), ("x.c", "x.a")}


def test_no_module_over_600_lines() -> None:
    long = {str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
            if "migrations" not in p.parts and len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES}
    assert long - KNOWN_LONG_MODULES == set(), f"modules over {MAX_LINES} lines"
    assert KNOWN_LONG_MODULES - long == set(), "an allowed long module is now short: remove it from the list"


def test_the_contracts_cover_every_component() -> None:
    """Every component of Carnet is placed in a layer (or is a small utility below them all)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    layered = set()
    for line in cfg["importlinter:contract:layers"]["layers"].split("\n"):
        layered.update(part.strip() for part in line.replace("|", ":").split(":") if part.strip())
    utilities = {"carnet.config", "carnet.errors", "carnet.fsutil", "carnet.ids", "carnet.logs"}
    g = graph()
    for u in utilities:  # utilities sit below everything: they import no other part of Carnet
        assert {m for m in g.find_modules_directly_imported_by(u) if m.startswith("carnet.")} <= utilities, u
    assert set(components()) - {"carnet.__init__"} <= layered | utilities


@pytest.mark.parametrize("section", ["importlinter:contract:layers", "importlinter:contract:faces-no-tables"])
def test_the_contracts_list_no_exception(section: str) -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    ignored = [line for line in cfg[section].get("ignore_imports", "").split("\n") if line.strip()]
    assert ignored == KNOWN_CONTRACT_EXCEPTIONS.get(section, [])


KNOWN_CONTRACT_EXCEPTIONS: dict[str, list[str]] = {
    'importlinter:contract:layers': [
        'carnet.clinical.summary -> carnet.fhir.directory',
        'carnet.clinical.api -> carnet.fhir.transaction',
        'carnet.clinical.api -> carnet.fhir.http',
        'carnet.documents.service -> carnet.fhir.patch',
        'carnet.dossier.contacts -> carnet.fhir.transaction',
        'carnet.dossier.contacts -> carnet.fhir.validate',
        'carnet.context -> carnet.notify.rules',
    ],
    'importlinter:contract:faces-no-tables': [
        'carnet.fhir.directory -> carnet.db.tables',
        'carnet.fhir.routes -> carnet.db.tables',
        'carnet.fhir.search -> carnet.db.tables',
        'carnet.fhir.transaction -> carnet.db.tables',
    ],
}
