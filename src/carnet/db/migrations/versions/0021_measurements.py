"""Measurements from connected devices, apps and the patient's hand (issue 17 §1 and §4)

Revision ID: 0021
Revises: 0017
Create Date: 2026-12-04 21:20:00

``measurement``: one narrow row per reading, keyed ``(dossier_key, measure, taken_at, source_no)`` (the read index
and the de-duplication). ``measure_source``: the devices and apps feeding a dossier, which the patient may stop.
``measure_series``: per measure, its counts and span and whether the patient hid it from professionals. All three
are dossier data, distributed by ``dossier_key``.
"""

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'measurement',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('measure', sa.SmallInteger(), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source_no', sa.SmallInteger(), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('value2', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint('dossier_key', 'measure', 'taken_at', 'source_no', name='pk_measurement'),
    )
    op.create_table(
        'measure_source',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('source_no', sa.SmallInteger(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('identifier', sa.String(length=300), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('client_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_upload_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('readings', sa.BigInteger(), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'],
                                name='fk_measure_source_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'source_no', name='pk_measure_source'),
    )
    op.create_table(
        'measure_series',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('measure', sa.SmallInteger(), nullable=False),
        sa.Column('hidden', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('readings', sa.BigInteger(), nullable=False),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'],
                                name='fk_measure_series_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'measure', name='pk_measure_series'),
    )


def downgrade() -> None:
    op.drop_table('measure_series')
    op.drop_table('measure_source')
    op.drop_table('measurement')
