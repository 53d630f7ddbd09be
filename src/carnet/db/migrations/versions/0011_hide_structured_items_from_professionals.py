"""the patient hides one structured item from professionals

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:45:00

``clinical_item.masked``: the patient (or a legal representative) hid this allergy, condition, treatment,
vaccination or observation from professionals, as ``MASQUE_PS`` hides a document (issue 13 §3; the resource carries
the label in ``meta.security``). Existing items are not hidden.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('clinical_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('masked', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('clinical_item', schema=None) as batch_op:
        batch_op.drop_column('masked')
