"""an index on document.blob_key

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 15:40:00

The blob garbage collector asks, for batches of blob keys found in the store, which ones a document row references
(``carnet.documents.blob_refs``): an index lookup per batch, not a scan of the document table.
"""

from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_blob_key'), ['blob_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_blob_key'))
