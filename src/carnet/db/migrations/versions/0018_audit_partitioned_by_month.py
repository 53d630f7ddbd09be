"""audit partitioned by month on PostgreSQL

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 21:30:00

PostgreSQL: ``audit`` becomes a table partitioned by RANGE on ``recorded``, one partition a month
(``audit_y2026m12``), plus a DEFAULT partition (``audit_default``) so that an append never fails for want of a
partition (docs/AUDIT.md "Partitions"). Its primary key becomes ``(dossier_key, seq, recorded)``: a partitioned
table's keys must contain the partition column (and, on Citus, the distribution column). The existing rows move as
they are (same values: every hash chain stays whole); partitions are made from the oldest record's month to
``CARNET_AUDIT_PARTITIONS_AHEAD`` (3) months after the current one. The table is rebuilt under an ACCESS EXCLUSIVE
lock: run the upgrade in a maintenance window on a large deployment.

SQLite: ``audit`` stays one plain table; only its primary key gains ``recorded`` (the same key as PostgreSQL's).
Both: ``audit_archive``, one row per audit month written to the archive store and dropped (``carnet audit archive``).
"""

import datetime as dt
import os

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, m = [], first
    while m <= last:
        out.append(m)
        m = dt.date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return out


def upgrade() -> None:
    op.create_table('audit_archive',
                    sa.Column('month', sa.String(length=7), nullable=False),
                    sa.Column('part', sa.Integer(), nullable=False),
                    sa.Column('blob_key', sa.String(length=64), nullable=False),
                    sa.Column('records', sa.BigInteger(), nullable=False),
                    sa.Column('chains', sa.Integer(), nullable=False),
                    sa.Column('content_sha256', sa.String(length=64), nullable=False),
                    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('month', 'part', name=op.f('pk_audit_archive')))
    conn = op.get_bind()
    if conn.dialect.name != 'postgresql':
        with op.batch_alter_table('audit', recreate='always') as batch_op:
            batch_op.drop_constraint('pk_audit', type_='primary')
            batch_op.create_primary_key('pk_audit', ['dossier_key', 'seq', 'recorded'])
        return
    op.execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit RENAME TO audit_unpartitioned")
    op.execute("ALTER TABLE audit_unpartitioned RENAME CONSTRAINT pk_audit TO pk_audit_unpartitioned")
    op.execute("ALTER INDEX ix_audit_dossier_key_recorded RENAME TO ix_audit_unpartitioned_dossier_key_recorded")
    op.execute("CREATE TABLE audit (LIKE audit_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
               "PARTITION BY RANGE (recorded)")
    op.execute("ALTER TABLE audit ADD CONSTRAINT pk_audit PRIMARY KEY (dossier_key, seq, recorded)")
    op.execute("CREATE INDEX ix_audit_dossier_key_recorded ON audit (dossier_key, recorded)")
    op.execute("CREATE TABLE audit_default PARTITION OF audit DEFAULT")
    oldest = conn.execute(sa.text("SELECT min(recorded) FROM audit_unpartitioned")).scalar()
    now = dt.datetime.now(dt.UTC)
    ahead = int(os.environ.get('CARNET_AUDIT_PARTITIONS_AHEAD') or 3)
    current = dt.date(now.year, now.month, 1)
    last = current
    for _ in range(ahead):
        last = dt.date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    first = current
    if oldest is not None:
        oldest = oldest.astimezone(dt.UTC)
        first = min(first, dt.date(oldest.year, oldest.month, 1))
    for month in _months(first, last):
        nxt = dt.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        op.execute(f"CREATE TABLE audit_y{month.year:04d}m{month.month:02d} PARTITION OF audit "
                   f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')")
    op.execute("INSERT INTO audit SELECT * FROM audit_unpartitioned")
    op.execute("DROP TABLE audit_unpartitioned")


def downgrade() -> None:
    op.drop_table('audit_archive')
    conn = op.get_bind()
    if conn.dialect.name != 'postgresql':
        with op.batch_alter_table('audit', recreate='always') as batch_op:
            batch_op.drop_constraint('pk_audit', type_='primary')
            batch_op.create_primary_key('pk_audit', ['dossier_key', 'seq'])
        return
    op.execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")
    op.execute("ALTER TABLE audit RENAME TO audit_partitioned")
    op.execute("ALTER TABLE audit_partitioned RENAME CONSTRAINT pk_audit TO pk_audit_partitioned")
    op.execute("ALTER INDEX ix_audit_dossier_key_recorded RENAME TO ix_audit_partitioned_dossier_key_recorded")
    op.execute("CREATE TABLE audit (LIKE audit_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    op.execute("ALTER TABLE audit ADD CONSTRAINT pk_audit PRIMARY KEY (dossier_key, seq)")
    op.execute("CREATE INDEX ix_audit_dossier_key_recorded ON audit (dossier_key, recorded)")
    op.execute("INSERT INTO audit SELECT * FROM audit_partitioned")
    op.execute("DROP TABLE audit_partitioned")  # its partitions with it (archived months stay in their archives)
