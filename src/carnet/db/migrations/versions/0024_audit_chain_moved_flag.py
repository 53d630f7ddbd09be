"""audit chains: a "moved since the last checkpoint" flag instead of an index on seq, so appends update in place

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 07:00:00

Every request appends to its dossier's chain, which moves ``audit_chain.seq``. The partial index of 0009 named
``seq`` in its predicate (``seq <> anchored_seq``), so PostgreSQL could never update a head in place (a HOT update):
each append wrote a new heap tuple and two index entries, and left a dead tuple for vacuum (issue 11, measured in
docs/PERFORMANCE.md). ``moved`` says the same thing as that predicate: set by every append, cleared by the
checkpointer when it commits the head it read (kept if the head moved again since). An append that finds it set
changes no indexed value, and the fill factor of 80 leaves each page room for the new version of its heads. Existing
chains get ``moved = (seq <> anchored_seq)``.
"""

from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moved', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute(sa.text("UPDATE audit_chain SET moved = (seq <> anchored_seq) WHERE seq <> anchored_seq"))
    op.drop_index('ix_audit_chain_unanchored', table_name='audit_chain',
                  postgresql_where=sa.text('seq <> anchored_seq'), sqlite_where=sa.text('seq <> anchored_seq'))
    op.create_index('ix_audit_chain_moved', 'audit_chain', ['dossier_key'], unique=False,
                    postgresql_where=sa.text('moved'), sqlite_where=sa.text('moved'))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(sa.text("ALTER TABLE audit_chain SET (fillfactor = 80)"))


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(sa.text("ALTER TABLE audit_chain RESET (fillfactor)"))
    op.drop_index('ix_audit_chain_moved', table_name='audit_chain',
                  postgresql_where=sa.text('moved'), sqlite_where=sa.text('moved'))
    op.create_index('ix_audit_chain_unanchored', 'audit_chain', ['dossier_key'], unique=False,
                    postgresql_where=sa.text('seq <> anchored_seq'), sqlite_where=sa.text('seq <> anchored_seq'))
    with op.batch_alter_table('audit_chain', schema=None) as batch_op:
        batch_op.drop_column('moved')
