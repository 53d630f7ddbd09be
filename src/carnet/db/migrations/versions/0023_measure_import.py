"""Apple Health imports' progress in the database, readable from any node (issue 17 §1)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 23:00:00

``measure_import`` (dossier data, keyed by ``dossier_key``): one row per import, its state and counts (never a
value), updated by the node running it so that the page's poll may land on any node.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'measure_import',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('import_id', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('error', sa.String(length=16), nullable=True),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('bytes_read', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.BigInteger(), nullable=False),
        sa.Column('stored', sa.BigInteger(), nullable=False),
        sa.Column('duplicates', sa.BigInteger(), nullable=False),
        sa.Column('bad', sa.BigInteger(), nullable=False),
        sa.Column('reasons', JSON, nullable=False),
        sa.Column('node', sa.String(length=80), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'],
                                name='fk_measure_import_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'import_id', name='pk_measure_import'),
    )


def downgrade() -> None:
    op.drop_table('measure_import')
