"""Access codes the patient gives a new professional, and the per-dossier count of wrong codes

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:30:00

``access_code`` (dossier data, keyed by ``dossier_key``): a single-use code, stored as a keyed hash, with its expiry
and its use. ``access_code_guard`` (dossier data): the wrong codes tried on a dossier, and until when its codes are
frozen (issue 13 §1). ``dossier.requires_code``: the patient requires a code of every professional not yet
authorized.
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('dossier') as batch_op:
        batch_op.add_column(sa.Column('requires_code', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'access_code',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('code_id', sa.Uuid(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=80), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_by', sa.String(length=40), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'], name='fk_access_code_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'code_id', name='pk_access_code'),
    )
    op.create_table(
        'access_code_guard',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('frozen_until', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'],
                                name='fk_access_code_guard_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', name='pk_access_code_guard'),
    )


def downgrade() -> None:
    with op.batch_alter_table('dossier') as batch_op:
        batch_op.drop_column('requires_code')
    op.drop_table('access_code_guard')
    op.drop_table('access_code')
