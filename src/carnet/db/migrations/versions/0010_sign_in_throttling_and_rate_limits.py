"""sign-in throttling and per-address rate limits instead of the account lock

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:10:00

Issue 15 §3. ``rate_limit`` (a sliding window per limit and client address) and ``sign_in_failure`` (failed sign-in
steps per identifier and address, per address, per identifier) are counters every node shares, each row found by its
own keyed hash (docs/SCALE.md). The account lock goes: ``account.failed_attempts`` and ``account.locked_until`` are
dropped. They cannot be carried over: the new counters are keyed by a hash of the identifier *and* the client
address, and a migration has neither the address nor the hashing key. A lock in force at upgrade time is lifted; the
throttle starts counting afresh, which costs an attacker at most one more round of tries per address.
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limit',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('period', sa.BigInteger(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('previous', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit'))
    )
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limit_expires_at'), ['expires_at'], unique=False)

    op.create_table('sign_in_failure',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=True),
    sa.Column('notice_due', sa.BigInteger(), nullable=True),
    sa.Column('noticed_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_failure'))
    )
    with op.batch_alter_table('sign_in_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_failure_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sign_in_failure_notice_due'), ['notice_due'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_attempts')


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('sign_in_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_failure_notice_due'))
        batch_op.drop_index(batch_op.f('ix_sign_in_failure_expires_at'))
    op.drop_table('sign_in_failure')
    with op.batch_alter_table('rate_limit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limit_expires_at'))
    op.drop_table('rate_limit')
