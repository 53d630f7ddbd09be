"""Trend alerts over measurements (issue 17 §3)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 21:40:00

``trend_dossier``: per dossier, the patient's alert choices and whether new readings wait for evaluation.
``trend_episode``: one row per episode of a trend rule (its alert). Both distributed by ``dossier_key``.
``trend_alert_by_recipient``: the lookup of the médecin traitant's alerts across dossiers, by recipient.
"""

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'trend_dossier',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('gp_alerts', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('patient_alerts', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('pending', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key']),
        sa.PrimaryKeyConstraint('dossier_key'),
    )
    op.create_index(op.f('ix_trend_dossier_pending_dossier_key'), 'trend_dossier', ['pending', 'dossier_key'], unique=False)
    op.create_table(
        'trend_episode',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('episode_id', sa.Uuid(), nullable=False),
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('measure', sa.SmallInteger(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('figure', sa.Float(), nullable=True),
        sa.Column('figure2', sa.Float(), nullable=True),
        sa.Column('recipient_id', sa.String(length=12), nullable=True),
        sa.Column('patient_told', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('acknowledged_by', sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key']),
        sa.PrimaryKeyConstraint('dossier_key', 'episode_id'),
    )
    op.create_table(
        'trend_alert_by_recipient',
        sa.Column('recipient_id', sa.String(length=12), nullable=False),
        sa.Column('episode_id', sa.Uuid(), nullable=False),
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('recipient_id', 'episode_id'),
    )
    op.create_index(op.f('ix_trend_alert_by_recipient_recipient_id_at'), 'trend_alert_by_recipient',
                    ['recipient_id', 'at'], unique=False)
    op.create_index(op.f('ix_trend_alert_by_recipient_recipient_id_acknowledged_at'), 'trend_alert_by_recipient',
                    ['recipient_id', 'acknowledged_at'], unique=False)


def downgrade() -> None:
    op.drop_table('trend_alert_by_recipient')
    op.drop_table('trend_episode')
    op.drop_index(op.f('ix_trend_dossier_pending_dossier_key'), table_name='trend_dossier')
    op.drop_table('trend_dossier')
