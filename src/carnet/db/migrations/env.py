"""Alembic environment: the URL comes from the caller (``carnet db upgrade``) or from the settings."""

from __future__ import annotations

import re

from alembic import context
from carnet.config import Settings
from carnet.db.engine import make_engine, normalise_url
from carnet.db.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or Settings().effective_database_url


# audit's monthly partitions (carnet.audit.partitions) are made at run time and are not in the metadata
_AUDIT_PARTITION = re.compile(r"audit_default|audit_y\d{4}m\d{2}")


def _include_name(name, type_, parent_names) -> bool:
    return not (type_ == "table" and name is not None and _AUDIT_PARTITION.fullmatch(name))


def run_migrations_offline() -> None:
    context.configure(url=normalise_url(url), target_metadata=metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(url, pool_size=1)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True,
                      include_name=_include_name)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
