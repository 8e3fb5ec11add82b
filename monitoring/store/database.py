"""The store: one SQL database (SQLite file by default, PostgreSQL for fleets) that every
process reads and writes. It is the single source of truth (DESIGN invariant 1)."""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import create_engine, event, func, insert as generic_insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.schema import CreateIndex, CreateTable, Table

from monitoring.clock import Clock, SystemClock
from monitoring.private_files import create_private_file
from monitoring.store.schema import metadata, schema_migrations

log = logging.getLogger(__name__)

# Additive migrations after the tables first existed: (version, description, step).
# New tables need no entry: migrate() creates every missing table and index.
Migration = tuple[int, str, Callable[[Connection], None]]
def _add_instances_stopped_at(conn: Connection) -> None:
    # A store made before the column existed; a new one already has it (migrate() creates tables first).
    if "stopped_at" not in {column["name"] for column in inspect(conn).get_columns("instances")}:
        conn.execute(text("ALTER TABLE instances ADD COLUMN stopped_at DOUBLE PRECISION"))


MIGRATIONS: list[Migration] = [
    (1, "initial schema", lambda conn: None),
    (2, "instances.stopped_at: a cleanly stopped instance leaves the zones at once", _add_instances_stopped_at),
]

# Any constant: every process that migrates takes the same PostgreSQL advisory lock.
_MIGRATION_LOCK_KEY = 0x63656E74


class Store:
    """Connections to the store, safe across fork: each process builds its own engine on first use."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self.dialect = make_url(url).get_backend_name()
        self._engine: Engine | None = None
        self._engine_pid: int | None = None
        self._lock = threading.Lock()

    # --- connections -------------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        # gunicorn forks workers: a pool inherited from the parent would share sockets, so a
        # process that finds an engine built by another pid builds its own.
        pid = os.getpid()
        if self._engine is None or self._engine_pid != pid:
            with self._lock:
                if self._engine is None or self._engine_pid != pid:
                    if self._engine is not None:
                        self._engine.dispose(close=False)
                    self._engine = self._build_engine()
                    self._engine_pid = pid
        return self._engine

    def _build_engine(self) -> Engine:
        url = make_url(self.url)
        if self.dialect == "sqlite":
            if url.database and url.database != ":memory:":
                # Owner-only (SQLite gives its -wal and -shm files the same mode): it holds
                # alert history, audit entries and business figures.
                create_private_file(Path(url.database))
            engine = create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=8, max_overflow=8
            )

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # Hand transaction control to us (pysqlite's own BEGIN handling is deferred
                # and cannot do BEGIN IMMEDIATE), then set WAL for readers beside one writer.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                # Writers take the write lock up front: a deferred transaction that reads and
                # then writes can fail with SQLITE_BUSY at once instead of waiting its turn.
                immediate = conn.get_execution_options().get("sqlite_immediate", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            return engine
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=1800)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction: commits on success, rolls back on any exception."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn

    def insert(self, table: Table) -> Any:
        """An INSERT that supports on_conflict_do_nothing/do_update on both dialects."""
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return generic_insert(table)

    def dispose(self) -> None:
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
        self._engine = None

    # --- schema ----------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create missing tables and apply pending migrations; safe when many processes start at once."""
        # Import the modules that declare tables so that metadata knows them all.
        import monitoring.store.tables  # noqa: F401

        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            for table in metadata.sorted_tables:
                conn.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
            current = conn.execute(select(func.coalesce(func.max(schema_migrations.c.version), 0))).scalar_one()
            for version, description, step in MIGRATIONS:
                if version > current:
                    step(conn)
                    conn.execute(
                        schema_migrations.insert().values(
                            version=version, description=description, applied_at=self.clock.now()
                        )
                    )
                    current = version
            return int(current)

    # --- facts about the store ---------------------------------------------------------------

    def ping(self) -> float:
        """One real round trip; returns its duration in seconds."""
        started = time.perf_counter()
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
        return time.perf_counter() - started

    def size_bytes(self) -> int:
        """Bytes the store takes on disk (SQLite file plus WAL; PostgreSQL: our tables)."""
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if not database or database == ":memory:":
                return 0
            return sum(os.path.getsize(p) for p in (database, database + "-wal") if os.path.exists(p))
        with self.read() as conn:
            total = 0
            for table in metadata.sorted_tables:
                total += conn.execute(
                    text("SELECT COALESCE(pg_total_relation_size(to_regclass(:name)), 0)"), {"name": table.name}
                ).scalar_one()
            return int(total)

    def describe(self) -> str:
        """The URL with any password hidden, for logs and the configuration view."""
        return make_url(self.url).render_as_string(hide_password=True)
