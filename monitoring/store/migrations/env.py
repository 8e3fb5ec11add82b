"""Alembic's environment for the store: migrations run on the connection Store.migrate() opened,
inside its transaction and under its lock (so many workers and hosts starting at once upgrade
the schema exactly once). Autogenerate compares against the tables' one declaration, the
SQLAlchemy metadata in monitoring/store/*_tables.py."""
from __future__ import annotations

from alembic import context

import monitoring.store.tables  # noqa: F401  # every table registers itself in the metadata
from monitoring.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things: batch mode rebuilds the table in the same transaction.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
