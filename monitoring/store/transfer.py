"""Copy every row of one store into another: moving from SQLite to PostgreSQL (or back).

    python -m monitoring.store.transfer SOURCE_URL TARGET_URL

Run it with the service stopped, so that nothing writes to the source meanwhile. The target is
migrated first (tables created as this version has them) and must hold no rows yet: a copy
never merges into a store that is in use. The source is read in one read transaction (one
consistent snapshot) and the target written in one write transaction, table by table in
foreign-key order, in batches: a copy that fails leaves the target as empty as it was. On
PostgreSQL the id sequences are then moved past the copied ids, so new rows do not collide.
Alembic's own bookkeeping (alembic_version) is the target's own, written by its migration.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy import Integer, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import Table

from monitoring.store.database import Store
from monitoring.store.schema import metadata

BATCH_ROWS = 1000


class TargetNotEmpty(ValueError):
    """The target store already holds rows: copying would mix two histories."""


def _tables() -> list[Table]:
    import monitoring.store.tables  # noqa: F401  (every table module, so that metadata knows them all)

    return list(metadata.sorted_tables)


def copy_store(source: Store, target: Store, batch: int = BATCH_ROWS) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; returns rows copied per table."""
    source.migrate()  # additive: a source made by an older version gets the columns this one reads
    target.migrate()
    tables = _tables()
    copied: dict[str, int] = {}
    with source.read() as reading, target.write() as writing:
        for table in tables:
            if writing.execute(select(func.count()).select_from(table)).scalar_one():
                raise TargetNotEmpty(f"the target already has rows in {table.name}; copy into an empty store")
        for table in tables:
            rows = reading.execution_options(yield_per=batch).execute(select(table))
            count = 0
            for part in rows.partitions(batch):
                writing.execute(table.insert(), [dict(row._mapping) for row in part])
                count += len(part)
            copied[table.name] = count
        if target.dialect == "postgresql":
            for table in tables:
                _advance_sequence(writing, table)
    return copied


def _advance_sequence(conn: Connection, table: Table) -> None:
    """Move an id column's sequence past the copied ids (inserts above gave them explicitly)."""
    column = table.c.get("id")
    # Only integer keys have a sequence; dashboard_sessions, say, is keyed by a random text id.
    if column is None or not column.primary_key or column.autoincrement is False or not isinstance(column.type, Integer):
        return
    conn.execute(
        text("SELECT setval(pg_get_serial_sequence(:table, 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
             f'FROM "{table.name}"'),
        {"table": table.name},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.store.transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the store to copy from, e.g. sqlite:///var/centinela.db")
    parser.add_argument("target", help="the empty store to copy into, e.g. postgresql://centinela@db/centinela")
    args = parser.parse_args(argv)
    source, target = Store(args.source), Store(args.target)
    try:
        copied = copy_store(source, target)
    except TargetNotEmpty as exc:
        print(f"centinela: {exc}", file=sys.stderr)
        return 1
    finally:
        source.dispose()
        target.dispose()
    total = sum(copied.values())
    print(f"centinela: copied {total} rows in {len(copied)} tables from {source.describe()} to {target.describe()}")
    for name, count in copied.items():
        if count:
            print(f"  {name}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
