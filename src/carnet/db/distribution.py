"""Where each table lives on Citus: the placement declared in ``distribution.toml``, its check against the schema, and
``carnet db distribute``.

The check (:func:`problems`) runs in CI without Citus, so that a schema that would not distribute fails there: every
table placed once; each distributed table has its distribution column in its primary key and in every unique
constraint or unique index (and a partitioned table its partition column too: ``[partitioned]``); no foreign key
goes from a reference table to a distributed one; a foreign key between
distributed tables stays in one co-location group and includes the distribution column on both sides.

:func:`distribute` makes it so on a database where the ``citus`` extension exists: reference tables first, then each
group in its order (the first table of a group starts a new co-location group, the others join it). Tables already
placed are left alone, so running it again changes nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Index, MetaData, Table, UniqueConstraint, text

PLACEMENT_FILE = Path(__file__).with_name("distribution.toml")


@dataclass(frozen=True)
class Group:
    name: str
    column: str
    tables: tuple[str, ...]


@dataclass(frozen=True)
class Placement:
    reference: tuple[str, ...]
    groups: tuple[Group, ...]
    partitioned: tuple[tuple[str, str], ...] = ()  # (table, partition column): PostgreSQL declarative partitioning

    def group_of(self, table: str) -> Group | None:
        return next((g for g in self.groups if table in g.tables), None)


def load(path: Path = PLACEMENT_FILE) -> Placement:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    groups = tuple(Group(str(g["name"]), str(g["column"]), tuple(str(t) for t in g["tables"]))
                   for g in data.get("group", []))
    partitioned = tuple((str(t), str(c)) for t, c in (data.get("partitioned") or {}).items())
    return Placement(tuple(str(t) for t in data.get("reference", [])), groups, partitioned)


def _unique_column_sets(table: Table) -> list[tuple[str, set[str]]]:
    out = [(f"primary key of {table.name}", {c.name for c in table.primary_key.columns})]
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            out.append((f"unique constraint {constraint.name} of {table.name}", {c.name for c in constraint.columns}))
    for index in table.indexes:
        if isinstance(index, Index) and index.unique:
            out.append((f"unique index {index.name} of {table.name}", {c.name for c in index.columns}))
    return out


def problems(metadata: MetaData, placement: Placement) -> list[str]:
    """Why this schema would not distribute as placed (empty when it would)."""
    found: list[str] = []
    placed: dict[str, str] = {}
    for name in placement.reference:
        placed.setdefault(name, "reference")
    for group in placement.groups:
        for name in group.tables:
            if name in placed:
                found.append(f"{name} is placed twice")
            placed[name] = group.name
    found += [f"{name} is not placed in {PLACEMENT_FILE.name}" for name in metadata.tables if name not in placed]
    found += [f"{name} is placed but is no table" for name in placed if name not in metadata.tables]
    for group in placement.groups:
        types = set()
        for name in group.tables:
            table = metadata.tables.get(name)
            if table is None:
                continue
            if group.column not in table.c:
                found.append(f"{name} has no column {group.column} to be distributed by")
                continue
            types.add(type(table.c[group.column].type).__name__)
            found += [f"the {what} lacks the distribution column {group.column}"
                      for what, columns in _unique_column_sets(table) if group.column not in columns]
        if len(types) > 1:
            found.append(f"group {group.name}: its tables' {group.column} columns differ in type ({sorted(types)})")
    for name, column in placement.partitioned:
        table = metadata.tables.get(name)
        if table is None or column not in table.c:
            found.append(f"{name} is partitioned by {column}, which is no column of it")
            continue
        found += [f"the {what} lacks the partition column {column}"
                  for what, columns in _unique_column_sets(table) if column not in columns]
    for table in metadata.tables.values():
        source = placement.group_of(table.name)
        for fk in table.foreign_key_constraints:
            target_name = fk.referred_table.name
            target = placement.group_of(target_name)
            if table.name in placement.reference and target is not None:
                found.append(f"reference table {table.name} points to distributed {target_name}")
            if source is None or target is None:
                continue
            pairs = {(el.parent.name, el.column.name) for el in fk.elements}
            if source is not target:
                found.append(f"{table.name} -> {target_name} crosses co-location groups")
            elif (source.column, target.column) not in pairs:
                found.append(f"{table.name} -> {target_name} does not include {source.column}")
    return found


def citus_present(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and bool(
        conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'citus'")).scalar())


def distribute(conn: Connection, placement: Placement | None = None) -> list[str]:
    """Place every table as declared (``conn`` in autocommit: Citus moves each table's rows in its own
    transaction). Returns what was done, one line per table newly placed; raises if Citus is absent."""
    placement = placement or load()
    if not citus_present(conn):
        raise RuntimeError("the citus extension is not installed in this database (CREATE EXTENSION citus)")
    done: list[str] = []
    existing = set(conn.execute(text("SELECT logicalrelid::regclass::text FROM pg_dist_partition")).scalars())
    for name in placement.reference:
        if name not in existing:
            conn.execute(text("SELECT create_reference_table(CAST(:t AS regclass))"), {"t": name})
            done.append(f"{name}: reference table")
    for group in placement.groups:
        first = group.tables[0]
        for name in group.tables:
            if name in existing:
                continue
            conn.execute(text("SELECT create_distributed_table(CAST(:t AS regclass), :c, colocate_with => :w)"),
                         {"t": name, "c": group.column, "w": "none" if name == first else first})
            done.append(f"{name}: distributed by {group.column} (group {group.name})")
    return done
