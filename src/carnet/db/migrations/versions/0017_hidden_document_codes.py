"""Codes for the documents the patient hid (issue 13 §1, the second code)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:50:00

``access_code.kind``: ``access`` (the first code: makes a new professional authorized) or ``hidden`` (the second:
shows an authorized professional the documents the patient hid from professionals, ``MASQUE_PS``).
``access_grant.sees_hidden``: the professional took up a code for hidden documents on this authorization.
Both columns of existing dossier tables (distributed by ``dossier_key``); existing rows are ``access`` / false.
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_code') as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), nullable=False, server_default='access'))
    with op.batch_alter_table('access_grant') as batch_op:
        batch_op.add_column(sa.Column('sees_hidden', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('access_grant') as batch_op:
        batch_op.drop_column('sees_hidden')
    with op.batch_alter_table('access_code') as batch_op:
        batch_op.drop_column('kind')
