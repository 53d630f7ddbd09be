"""The schema's metadata (naming conventions) and the column types every table module shares."""

from __future__ import annotations

from sqlalchemy import JSON, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
TS = DateTime(timezone=True)

# The columns of ``document`` that the policy's visibility clause reads (carnet.access.policy.Visibility.where),
# carried in the index a search pages on (ix_document_page, migration 0025): PostgreSQL counts a dossier's visible
# documents from the index alone, and pages newest first in the index's order without reading the others.
PAGE_INCLUDE = ["deleted", "masked", "author_id", "class_code", "type_code", "invisible_patient",
                "invisible_patient_until", "invisible_representatives"]
