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

from sqlalchemy import create_engine, event, insert as generic_insert, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.schema import Table

from monitoring.clock import Clock, SystemClock
from monitoring.private_files import create_private_file
from monitoring.store.schema import metadata

log = logging.getLogger(__name__)

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

    def migrate(self) -> str:
        """Bring the schema to the newest Alembic revision; safe when many processes start at once.

        Under one lock (PostgreSQL: an advisory lock in the transaction; SQLite: BEGIN
        IMMEDIATE), the first process upgrades and the others find it done. A store already at
        head is recognised without loading Alembic. A store made by the hand-rolled
        migrations of earlier versions is stamped at the baseline revision, then upgraded.
        """
        from monitoring.store.migrations import BASELINE, HEAD

        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            tables = set(inspect(conn).get_table_names())
            if "alembic_version" in tables and _current_revision(conn) == HEAD:
                return HEAD
            from alembic import command

            config = alembic_config(conn)
            if "alembic_version" not in tables and "schema_migrations" in tables:
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
            return _current_revision(conn) or ""

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
        import monitoring.store.tables  # noqa: F401  # every table in the metadata

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


def _current_revision(conn: Connection) -> str | None:
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(conn: Connection | None) -> Any:
    """Alembic's configuration for a migration on ``conn`` (scripts in monitoring/store/migrations)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = conn
    return config
