"""claim lines: no foreign key to dossier, line hashes compared bytewise

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 04:40:00

The claims ingest (issue 3 §5) writes about a million lines a minute; the per-row foreign key check to ``dossier``
took 40% of its database time and a linguistic collation on the hash slowed every index insert. The ingest inserts
only lines whose dossier it joins, active, in the same statement, and the purge deletes a dossier's lines itself.
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('claim_line', schema=None) as batch_op:
        batch_op.drop_constraint('fk_claim_line_dossier_key_dossier', type_='foreignkey')
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('claim_line', 'line_hash', type_=sa.String(length=64, collation='C'),
                        existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('claim_line', 'line_hash', type_=sa.String(length=64), existing_nullable=False)
    with op.batch_alter_table('claim_line', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_claim_line_dossier_key_dossier', 'dossier', ['dossier_key'],
                                    ['dossier_key'])
