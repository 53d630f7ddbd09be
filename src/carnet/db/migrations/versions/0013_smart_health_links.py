"""SMART Health Links the patient shares, and their lookup by the link's public id

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 18:50:00

``shared_link`` (dossier data, keyed by ``dossier_key``): what a link shares, its limits and counters, its public id
and key sealed by the master key ring. ``shared_link_lookup``: the SHA-256 of a link's public id -> its dossier and
link (a lookup table, as SCALE.md asks for what spans dossiers).
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'shared_link',
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('link_id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('label', sa.String(length=80), nullable=False),
        sa.Column('contents', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.Column('sealed', sa.LargeBinary(), nullable=False),
        sa.Column('wrapped_key', sa.LargeBinary(), nullable=False),
        sa.Column('key_id', sa.String(length=32), nullable=False),
        sa.Column('passcode_hash', sa.String(length=200), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('max_opens', sa.Integer(), nullable=True),
        sa.Column('opens', sa.Integer(), nullable=False),
        sa.Column('passcode_failures', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['dossier_key'], ['dossier.dossier_key'], name='fk_shared_link_dossier_key_dossier'),
        sa.PrimaryKeyConstraint('dossier_key', 'link_id', name='pk_shared_link'),
    )
    op.create_table(
        'shared_link_lookup',
        sa.Column('id_hash', sa.String(length=64), nullable=False),
        sa.Column('dossier_key', sa.Uuid(), nullable=False),
        sa.Column('link_id', sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint('id_hash', name='pk_shared_link_lookup'),
    )


def downgrade() -> None:
    op.drop_table('shared_link_lookup')
    op.drop_table('shared_link')
