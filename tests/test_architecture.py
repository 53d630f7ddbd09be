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

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "carnet"
MAX_LINES = 600



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
    assert cyclic_module_edges() == set()


def test_no_two_components_import_each_other() -> None:
    assert cyclic_component_edges() == set()


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
    assert long == set(), f"modules over {MAX_LINES} lines"


def test_the_contracts_cover_every_component() -> None:
    """Every component of Carnet is placed in a layer (or is a small utility below them all)."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    layered = set()
    for line in cfg["importlinter:contract:layers"]["layers"].split("\n"):
        layered.update(part.strip() for part in line.replace("|", ":").split(":") if part.strip())
    utilities = {"carnet.config", "carnet.errors", "carnet.fsutil", "carnet.ids", "carnet.logs", "carnet.qr",
                 "carnet.text"}
    g = graph()
    for u in utilities:  # utilities sit below everything: they import no other part of Carnet
        assert {m for m in g.find_modules_directly_imported_by(u) if m.startswith("carnet.")} <= utilities, u
    assert set(components()) - {"carnet.__init__"} <= layered | utilities


def test_the_contracts_list_no_exception() -> None:
    """No contract carries an ``ignore_imports`` list: every layer holds without exceptions."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    contracts = [name for name in cfg.sections() if name.startswith("importlinter:contract:")]
    assert len(contracts) >= 3
    for name in contracts:
        assert "ignore_imports" not in cfg[name], name


def test_the_layer_picture_in_the_docs_is_drawn_from_the_contracts() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("layers_diagram", ROOT / "scripts" / "layers_diagram.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.current() == module.block(), "run: python scripts/layers_diagram.py --write"
