"""refresh_token keyed by its grant: primary key (family_id, token_hash)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:40:00

On Citus, refresh tokens are distributed by their grant (``family_id``): the check made on every API call with an
app's token (``grant_alive``), the rotation and the revocation of a grant each touch one shard. A distributed table's
primary key must contain its distribution column; new refresh tokens carry their grant id (``<grant>.<secret>``).
Tokens issued before keep working (looked up by their hash alone).
"""

from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_constraint('pk_refresh_token', type_='primary')
        batch_op.create_primary_key('pk_refresh_token', ['family_id', 'token_hash'])


def downgrade() -> None:
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_constraint('pk_refresh_token', type_='primary')
        batch_op.create_primary_key('pk_refresh_token', ['token_hash'])
