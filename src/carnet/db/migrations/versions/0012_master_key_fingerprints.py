"""master_key: the check value of every master key that wraps document keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:30:00

A node started with another master key than the one the database's documents are wrapped under (a key file missing
on one node, so generated afresh) refuses to start instead of writing documents no other node can open
(``carnet.admin.check_master_keys``). A reference table: a few rows, no dossier.
"""

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('master_key',
                    sa.Column('key_id', sa.String(length=32), nullable=False),
                    sa.Column('fingerprint', sa.String(length=64), nullable=False),
                    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
                    sa.PrimaryKeyConstraint('key_id'))


def downgrade() -> None:
    op.drop_table('master_key')
