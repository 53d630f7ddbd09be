"""The placement of every table on Citus (``carnet/db/distribution.toml``) agrees with the schema, so that CI without
Citus catches a schema that would not distribute; on a Citus database, ``carnet db distribute`` placed every table as
declared, and running it again changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, ForeignKeyConstraint, Integer, MetaData, String, Table, UniqueConstraint, Uuid, text

from carnet.context import Services
from carnet.db import distribution
from carnet.db.distribution import Group, Placement, problems
from carnet.db.tables import metadata


def test_every_table_is_placed_and_would_distribute() -> None:
    assert problems(metadata, distribution.load()) == []


def _toy() -> tuple[MetaData, Placement]:
    md = MetaData()
    Table("ref", md, Column("code", String(8), primary_key=True))
    Table("parent", md, Column("k", Uuid, primary_key=True))
    Table("child", md, Column("k", Uuid, primary_key=True), Column("n", Integer, primary_key=True),
          ForeignKeyConstraint(["k"], ["parent.k"]))
    return md, Placement(("ref",), (Group("g", "k", ("parent", "child")),))


def test_the_toy_schema_distributes() -> None:
    md, placement = _toy()
    assert problems(md, placement) == []


def test_a_table_left_out_of_the_placement_is_reported() -> None:
    md, placement = _toy()
    Table("orphan", md, Column("k", Uuid, primary_key=True))
    assert problems(md, placement) == ["orphan is not placed in distribution.toml"]


def test_a_unique_constraint_without_the_distribution_column_is_reported() -> None:
    md, placement = _toy()
    Table("doc", md, Column("k", Uuid, primary_key=True), Column("n", Integer, primary_key=True),
          Column("ident", String(20)), UniqueConstraint("ident", name="uq_doc_ident"))
    placement = Placement(placement.reference, (Group("g", "k", ("parent", "child", "doc")),))
    assert problems(md, placement) == ["the unique constraint uq_doc_ident of doc lacks the distribution column k"]


def test_a_primary_key_without_the_distribution_column_is_reported() -> None:
    md, placement = _toy()
    Table("session", md, Column("hash", String(64), primary_key=True), Column("k", Uuid, nullable=False))
    placement = Placement(placement.reference, (*placement.groups, Group("s", "k", ("session",))))
    assert problems(md, placement) == ["the primary key of session lacks the distribution column k"]


def test_a_partitioned_table_whose_key_lacks_the_partition_column_is_reported() -> None:
    md, placement = _toy()
    Table("log", md, Column("k", Uuid, primary_key=True), Column("n", Integer, primary_key=True),
          Column("at", Integer, nullable=False))
    groups = (Group("g", "k", ("parent", "child", "log")),)
    assert problems(md, Placement(placement.reference, groups, (("log", "at"),))) == [
        "the primary key of log lacks the partition column at"]
    assert problems(md, Placement(placement.reference, groups, (("log", "when"),))) == [
        "log is partitioned by when, which is no column of it"]


def test_the_audit_is_declared_partitioned_by_its_time() -> None:
    assert ("audit", "recorded") in distribution.load().partitioned


def test_a_reference_table_pointing_to_a_distributed_one_is_reported() -> None:
    md, placement = _toy()
    Table("ref2", md, Column("code", String(8), primary_key=True), Column("k", Uuid),
          ForeignKeyConstraint(["k"], ["parent.k"]))
    placement = Placement(("ref", "ref2"), placement.groups)
    assert problems(md, placement) == ["reference table ref2 points to distributed parent"]


def test_a_foreign_key_without_the_distribution_column_is_reported() -> None:
    md, placement = _toy()
    Table("note", md, Column("k", Uuid, primary_key=True), Column("n", Integer, primary_key=True),
          Column("other", Uuid), ForeignKeyConstraint(["other"], ["parent.k"]))
    placement = Placement(placement.reference, (Group("g", "k", ("parent", "child", "note")),))
    assert problems(md, placement) == ["note -> parent does not include k"]


def test_without_citus_distribute_refuses_and_changes_nothing(services: Services) -> None:
    with services.engine.connect() as conn:
        if distribution.citus_present(conn):
            pytest.skip("this database has Citus")
        with pytest.raises(RuntimeError, match="citus extension"):
            distribution.distribute(conn)


def test_on_citus_every_table_is_placed_as_declared_and_distribute_is_idempotent(services: Services) -> None:
    with services.engine.connect() as conn:
        if not distribution.citus_present(conn):
            pytest.skip("no Citus here (see docs/SCALE.md to run the suite on a cluster)")
        assert conn.execute(text("SHOW citus.enable_repartition_joins")).scalar() == "off"  # the suite runs without
        placement = distribution.load()
        rows = conn.execute(text(
            "SELECT logicalrelid::regclass::text AS name, partmethod, "
            "column_to_column_name(logicalrelid, partkey) AS col, colocationid FROM pg_dist_partition")).all()
        placed = {r.name: r for r in rows}
        for name in placement.reference:
            assert placed[name].partmethod == "n", name
        for group in placement.groups:
            colocations = {placed[name].colocationid for name in group.tables}
            assert len(colocations) == 1, group.name
            assert all(placed[name].col == group.column for name in group.tables), group.name
        conn.commit()
        assert distribution.distribute(conn.execution_options(isolation_level="AUTOCOMMIT")) == []
