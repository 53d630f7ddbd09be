"""auth yields an actor and reads only its own tables, never dossier data.

What auth needs to know of accounts and dossiers (does this account still act on this dossier? under which names?)
it asks its caller for, as a function (:data:`carnet.auth.smart.ActingLinkReader`,
:data:`carnet.auth.smart.DossierNames`); the import contract ``auth-no-dossier-data`` in ``.importlinter`` keeps it
from importing the services that would answer. This test reads the source of every module of ``carnet.auth`` and
lists the tables it names.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from carnet.db.tables import metadata

AUTH = Path(__file__).resolve().parents[2] / "src" / "carnet" / "auth"
TABLES_MODULE = "carnet.db.tables"

#: auth's own tables: registered clients, the jti replay cache, SMART authorization codes, refresh tokens (the grants
#: of patients' apps), and the sessions of the portals.
OWN_TABLES = frozenset({"client", "token_jti", "oauth_code", "refresh_token", "web_session", "pro_session"})
#: The professional directory: reference data (who may act, in which profession), read to build a professional's
#: Actor. No dossier data.
DIRECTORY = frozenset({"practitioner"})
ALLOWED = OWN_TABLES | DIRECTORY
#: Tables holding dossier data, or people's accounts and their links to dossiers: never read by auth.
NEVER = frozenset({"dossier", "account_dossier", "access_grant", "representative", "document", "audit", "account",
                   "patient_index", "ins_lookup", "task", "clinical_item", "contact", "outbox"})

_SQL_TABLE = re.compile(r"\b(?:from|join|update|into|table)\s+\"?([a-z_]+)", re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _absolute(module: str | None, level: int, package: str) -> str:
    if not level:
        return module or ""
    base = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join(base + ([module] if module else []))


def tables_named(source: str, package: str = "carnet.auth") -> set[str]:
    """Every table of ``carnet.db.tables`` a module's source names: imported by name, read as an attribute of the
    module, or named in raw SQL. The module itself used any other way (``getattr``, passed along) counts as
    ``carnet.db.tables``, which no allow-list holds."""
    tree = ast.parse(source)
    names: set[str] = set()
    aliases: set[str] = set()  # local names bound to the tables module
    dotted = False  # ``import carnet.db.tables``: reached as carnet.db.tables.<name>
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, package)
            if module == TABLES_MODULE:
                names.update(alias.name for alias in node.names)  # "*" included: never allowed
            elif module == "carnet.db":
                aliases.update(alias.asname or alias.name for alias in node.names if alias.name == "tables")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == TABLES_MODULE:
                    if alias.asname:
                        aliases.add(alias.asname)
                    else:
                        dotted = True
    module_values: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in aliases:
                names.add(node.attr)
                module_values.add(id(node.value))
            elif dotted and ast.unparse(node.value) == TABLES_MODULE:
                names.add(node.attr)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in aliases and id(node) not in module_values:
            names.add(TABLES_MODULE)
    known = set(metadata.tables)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if node.value == TABLES_MODULE:
                names.add(TABLES_MODULE)  # importlib and the like
            names.update(word for word in _SQL_TABLE.findall(node.value) if word.lower() in known)
    return names


def auth_modules() -> list[Path]:
    return sorted(AUTH.rglob("*.py"))


def test_the_allow_list_names_real_tables_and_no_dossier_data() -> None:
    assert ALLOWED <= set(metadata.tables)
    assert NEVER <= set(metadata.tables)
    assert ALLOWED.isdisjoint(NEVER)


@pytest.mark.parametrize("path", auth_modules(), ids=lambda p: p.name)
def test_auth_reads_only_its_own_tables(path: Path) -> None:
    named = tables_named(path.read_text(encoding="utf-8"))

    assert named <= ALLOWED, f"carnet.auth.{path.stem} names tables that are not auth's own: {sorted(named - ALLOWED)}"


def test_the_check_sees_the_tables_auth_does_read() -> None:
    """Not vacuous: the modules that touch the database are seen doing it."""
    assert {"refresh_token", "oauth_code", "client"} <= tables_named((AUTH / "smart.py").read_text(encoding="utf-8"))
    assert {"client", "practitioner", "token_jti"} <= tables_named((AUTH / "web.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("source", "expected"), [
    ("from carnet.db.tables import client, dossier\n", {"client", "dossier"}),
    ("from carnet.db.tables import account_dossier as links\n", {"account_dossier"}),
    ("from carnet.db.tables import *\n", {"*"}),
    ("from ..db.tables import access_grant\n", {"access_grant"}),
    ("from carnet.db import tables\nq = tables.dossier.c.ins\n", {"dossier"}),
    ("from carnet.db import tables as t\nq = t.account_dossier\n", {"account_dossier"}),
    ("import carnet.db.tables as t\nq = t.access_grant\n", {"access_grant"}),
    ("import carnet.db.tables\nq = carnet.db.tables.representative\n", {"representative"}),
    ("from carnet.db import tables\nq = getattr(tables, 'dossier')\n", {TABLES_MODULE}),
    ("import importlib\nm = importlib.import_module('carnet.db.tables')\n", {TABLES_MODULE}),
    ("from sqlalchemy import text\nq = text('SELECT ins FROM dossier JOIN account_dossier USING (dossier_key)')\n",
     {"dossier", "account_dossier"}),
    ('def f():\n    """Read nothing from dossier."""\n    return 1\n', set()),
    ("from carnet.db.tables import refresh_token\nq = refresh_token.c.family_id\n", {"refresh_token"}),
])
def test_the_check_finds_every_way_of_naming_a_table(source: str, expected: set[str]) -> None:
    assert tables_named(source) == expected


def test_the_check_would_fail_on_a_dossier_table() -> None:
    source = ("from carnet.db.tables import account_dossier, dossier, refresh_token\n"
              "def ins(conn, key):\n"
              "    return conn.execute(select(dossier.c.ins).where(dossier.c.dossier_key == key)).scalar()\n")

    named = tables_named(source)

    assert named - ALLOWED == {"account_dossier", "dossier"}
    with pytest.raises(AssertionError):
        assert named <= ALLOWED
