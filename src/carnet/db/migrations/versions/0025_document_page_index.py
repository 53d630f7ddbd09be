"""documents: the search's index in the search's order, carrying the columns of the visibility clause

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 09:20:00

A search (ITI-67) pages a dossier's documents newest first, ``ORDER BY date DESC, document_id DESC``, and counts the
ones the caller may see. ``ix_document_dossier_key_date`` (0001) could not give that order (``document_id`` breaks the
ties), so PostgreSQL read every document row of the dossier and sorted them, then read them all again to count: on a
dossier of 200 documents, 390 buffers for a page of 20 (issue 11, docs/PERFORMANCE.md "Stage 4"). ``ix_document_page``
is in the page's order and, on PostgreSQL, carries the columns the visibility clause reads (``INCLUDE``): the page is
read in order and stops at its last row, and the count is an index-only scan. SQLite gets the key columns.

On a large table, an operator may build the index beforehand without blocking writes (``CREATE INDEX CONCURRENTLY
ix_document_page ...``, the statement below): this migration then keeps it.
"""

from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

INCLUDE = ["deleted", "masked", "author_id", "class_code", "type_code", "invisible_patient", "invisible_patient_until",
           "invisible_representatives"]


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_document_page ON document (dossier_key, date, document_id) "
                           f"INCLUDE ({', '.join(INCLUDE)})"))
    else:
        op.create_index('ix_document_page', 'document', ['dossier_key', 'date', 'document_id'], unique=False)
    op.drop_index('ix_document_dossier_key_date', table_name='document')


def downgrade() -> None:
    op.create_index('ix_document_dossier_key_date', 'document', ['dossier_key', 'date'], unique=False)
    op.drop_index('ix_document_page', table_name='document')
