"""notices to the médecin traitant

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 04:25:40

The médecin traitant learns of emergency (break the glass) and regulation accesses to their patients' dossiers in
the clinician portal's inbox: ``pro_notice`` is a dossier table, keyed ``(dossier_key, notice_id)``;
``pro_notice_by_recipient`` is its lookup by recipient (the inbox spans dossiers), written in the same transaction.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pro_notice_by_recipient',
    sa.Column('recipient_id', sa.String(length=12), nullable=False),
    sa.Column('notice_id', sa.Uuid(), nullable=False),
    sa.Column('dossier_key', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('recipient_id', 'notice_id', name=op.f('pk_pro_notice_by_recipient'))
    )
    with op.batch_alter_table('pro_notice_by_recipient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pro_notice_by_recipient_recipient_id_at'), ['recipient_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_pro_notice_by_recipient_recipient_id_read_at'), ['recipient_id', 'read_at'], unique=False)

    op.create_table('pro_notice',
    sa.Column('dossier_key', sa.Uuid(), nullable=False),
    sa.Column('notice_id', sa.Uuid(), nullable=False),
    sa.Column('recipient_id', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('accessor_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'], name=op.f('fk_pro_notice_dossier_key_dossier')),
    sa.PrimaryKeyConstraint('dossier_key', 'notice_id', name=op.f('pk_pro_notice'))
    )


def downgrade() -> None:
    op.drop_table('pro_notice')
    with op.batch_alter_table('pro_notice_by_recipient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pro_notice_by_recipient_recipient_id_read_at'))
        batch_op.drop_index(batch_op.f('ix_pro_notice_by_recipient_recipient_id_at'))

    op.drop_table('pro_notice_by_recipient')
