"""Teleconsultations and the signalling relay between the two browsers (issue 12 §1)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 21:30:00

``teleconsultation`` (dossier data, keyed by ``dossier_key``): a video consultation, its professional, its state,
which connection holds each side and what document both screens show. ``teleconsult_signal`` (dossier data,
co-located): the messages the two sockets exchange, numbered per consultation, relayed through the database so that
the two sides may sit on different nodes. ``teleconsult_by_clinician`` (lookup by the professional's national id):
their agenda across dossiers.
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'teleconsultation',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('consultation_id', sa.Uuid(), nullable=False),
        sa.Column('clinician_id', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('minutes', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('clinician_conn', sa.String(length=36), nullable=True),
        sa.Column('patient_conn', sa.String(length=36), nullable=True),
        sa.Column('patient_actor', sa.String(length=64), nullable=True),
        sa.Column('shown', JSON, nullable=True),
        sa.Column('signal_seq', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'],
                                name='fk_teleconsultation_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'consultation_id', name='pk_teleconsultation'),
    )
    op.create_table(
        'teleconsult_signal',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('consultation_id', sa.Uuid(), nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.Column('sender', sa.String(length=12), nullable=False),
        sa.Column('target_conn', sa.String(length=36), nullable=True),
        sa.Column('message', JSON, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['dossier_key', 'consultation_id'],
                                ['teleconsultation.dossier_key', 'teleconsultation.consultation_id'],
                                name='fk_teleconsult_signal_dossier_key_teleconsultation'),
        sa.PrimaryKeyConstraint('dossier_key', 'consultation_id', 'seq', name='pk_teleconsult_signal'),
    )
    op.create_table(
        'teleconsult_by_clinician',
        sa.Column('clinician_id', sa.String(length=40), nullable=False),
        sa.Column('consultation_id', sa.Uuid(), nullable=False),
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('clinician_id', 'consultation_id', name='pk_teleconsult_by_clinician'),
    )


def downgrade() -> None:
    op.drop_table('teleconsult_by_clinician')
    op.drop_table('teleconsult_signal')
    op.drop_table('teleconsultation')
