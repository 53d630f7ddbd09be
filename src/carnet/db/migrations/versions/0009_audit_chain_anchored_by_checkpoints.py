"""audit chains anchored by signed checkpoints outside the database

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:20:00

``audit_chain.anchored_seq`` and ``anchored_in``: how far a signed checkpoint (written outside the database by
``carnet.audit.anchor``) commits to each chain, and which checkpoint. The partial index holds only the chains whose
head moved since (``seq <> anchored_seq``), so that each checkpoint reads the changed heads without scanning every
chain. Existing chains start at 0: the first checkpoint commits to all of them.
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anchored_seq', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('anchored_in', sa.BigInteger(), nullable=True))
    op.create_index('ix_audit_chain_unanchored', 'audit_chain', ['dossier_key'], unique=False,
                    postgresql_where=sa.text('seq <> anchored_seq'), sqlite_where=sa.text('seq <> anchored_seq'))


def downgrade() -> None:
    op.drop_index('ix_audit_chain_unanchored', table_name='audit_chain',
                  postgresql_where=sa.text('seq <> anchored_seq'), sqlite_where=sa.text('seq <> anchored_seq'))
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.drop_column('anchored_in')
        batch_op.drop_column('anchored_seq')
