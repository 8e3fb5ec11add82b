"""Test help for store failures: a test drops a table to make a real write fail, then puts it back."""
from __future__ import annotations

import monitoring.store.tables  # noqa: F401  # every table in the metadata
from monitoring.store.database import Store
from monitoring.store.schema import metadata


def recreate_dropped_tables(store: Store) -> None:
    """Create the tables a test dropped, empty (migrate() would not: the store is at head)."""
    with store.write() as conn:
        metadata.create_all(conn, checkfirst=True)
