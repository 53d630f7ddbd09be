"""submission_set.designation_type: ITI-66 searches SubmissionSets by designationType

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 19:20:00

The List's ``ihe-designationType`` extension (its first coding, ``system|code``), filled from the stored resource for
the SubmissionSets stored before.
"""

import json

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

DESIGNATION = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-designationType"


def designation_of(resource: dict) -> str | None:
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == DESIGNATION:
            for c in (ext.get("valueCodeableConcept") or {}).get("coding") or []:
                if isinstance(c, dict) and c.get("code"):
                    return f"{c.get('system') or ''}|{c['code']}"[:300]
    return None


def upgrade() -> None:
    with op.batch_alter_table('submission_set', schema=None) as batch_op:
        batch_op.add_column(sa.Column('designation_type', sa.String(length=300), nullable=True))
    conn = op.get_bind()
    t = sa.table('submission_set', sa.column('dossier_key', sa.Uuid), sa.column('list_id', sa.Uuid),
                 sa.column('resource', sa.Text), sa.column('designation_type', sa.String))
    rows = conn.execute(sa.select(t.c.dossier_key, t.c.list_id, t.c.resource)
                        .where(t.c.resource.like('%ihe-designationType%'))).all()
    for r in rows:
        value = designation_of(json.loads(r.resource))
        if value:
            conn.execute(sa.update(t).where(t.c.dossier_key == r.dossier_key, t.c.list_id == r.list_id)
                         .values(designation_type=value))


def downgrade() -> None:
    with op.batch_alter_table('submission_set', schema=None) as batch_op:
        batch_op.drop_column('designation_type')
