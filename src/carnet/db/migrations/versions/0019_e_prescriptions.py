"""E-prescriptions: prescriptions, their lines, what was dispensed, the lookups by number and by pharmacy

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 21:40:00

``prescription``, ``prescription_line``, ``medication_dispense`` (dossier data, keyed by ``dossier_key``): a
prescription written by a clinician (issue 12 §2), its MedicationRequests and the MedicationDispenses recorded by
pharmacists. ``prescription_number`` (lookup by number) and ``prescription_by_pharmacy`` (lookup by the pharmacy the
patient sent it to).
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'prescription',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('prescription_id', sa.Uuid(), nullable=False),
        sa.Column('number', sa.String(length=24), nullable=False),
        sa.Column('scan_hash', sa.String(length=64), nullable=False),
        sa.Column('prescriber_id', sa.String(length=12), nullable=False),
        sa.Column('prescriber_name', sa.String(length=200), nullable=False),
        sa.Column('encounter_ref', sa.String(length=200), nullable=True),
        sa.Column('authored_at', TS, nullable=False),
        sa.Column('first_dispense_by', TS, nullable=False),
        sa.Column('valid_until', TS, nullable=False),
        sa.Column('document_id', sa.Uuid(), nullable=True),
        sa.Column('pharmacy_id', sa.String(length=40), nullable=True),
        sa.Column('pharmacy_name', sa.String(length=200), nullable=True),
        sa.Column('sent_at', TS, nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'], name='fk_prescription_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'prescription_id', name='pk_prescription'),
    )
    op.create_table(
        'prescription_line',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('prescription_id', sa.Uuid(), nullable=False),
        sa.Column('line_no', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('display', sa.String(length=400), nullable=False),
        sa.Column('dosage_text', sa.Text(), nullable=True),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit', sa.String(length=40), nullable=False),
        sa.Column('repeats', sa.Integer(), nullable=False),
        sa.Column('dispensed', sa.Integer(), nullable=False),
        sa.Column('resource', JSON, nullable=False),
        sa.ForeignKeyConstraint(['dossier_key', 'prescription_id'],
                                ['prescription.dossier_key', 'prescription.prescription_id'],
                                name='fk_prescription_line_dossier_key_prescription'),
        sa.PrimaryKeyConstraint('dossier_key', 'prescription_id', 'line_no', name='pk_prescription_line'),
    )
    op.create_table(
        'medication_dispense',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('dispense_id', sa.Uuid(), nullable=False),
        sa.Column('prescription_id', sa.Uuid(), nullable=False),
        sa.Column('line_no', sa.Integer(), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('pharmacist_id', sa.String(length=12), nullable=False),
        sa.Column('pharmacist_name', sa.String(length=200), nullable=False),
        sa.Column('pharmacy_id', sa.String(length=40), nullable=True),
        sa.Column('at', TS, nullable=False),
        sa.Column('resource', JSON, nullable=False),
        sa.ForeignKeyConstraint(['dossier_key', 'prescription_id', 'line_no'],
                                ['prescription_line.dossier_key', 'prescription_line.prescription_id',
                                 'prescription_line.line_no'],
                                name='fk_medication_dispense_dossier_key_prescription_line'),
        sa.PrimaryKeyConstraint('dossier_key', 'dispense_id', name='pk_medication_dispense'),
    )
    op.create_table(
        'prescription_number',
        sa.Column('number', sa.String(length=24), nullable=False),
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('prescription_id', sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint('number', name='pk_prescription_number'),
    )
    op.create_table(
        'prescription_by_pharmacy',
        sa.Column('pharmacy_id', sa.String(length=40), nullable=False),
        sa.Column('number', sa.String(length=24), nullable=False),
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('prescription_id', sa.Uuid(), nullable=False),
        sa.Column('sent_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('pharmacy_id', 'number', name='pk_prescription_by_pharmacy'),
    )


def downgrade() -> None:
    op.drop_table('prescription_by_pharmacy')
    op.drop_table('prescription_number')
    op.drop_table('medication_dispense')
    op.drop_table('prescription_line')
    op.drop_table('prescription')
