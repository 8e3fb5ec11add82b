"""The store: one SQL database (SQLite file by default, PostgreSQL for fleets) that every
process reads and writes. It is the single source of truth (DESIGN invariant 1).

When it stops answering (DESIGN invariant 9), ``Store.availability`` says so: every read,
write and ping that fails because the store is unreachable (``is_store_unavailable``) marks
it down, the first success marks it up again, and each change is logged once, with its
cause, in this process (never a traceback per request or per job). Listeners hear both
changes: the scheduler runs a health round at once and writes what was kept meanwhile.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert as generic_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.schema import Table

from monitoring.clock import Clock, SystemClock
from monitoring.private_files import create_private_file
from monitoring.store.schema import metadata

log = logging.getLogger(__name__)

# Any constant: every process that migrates takes the same PostgreSQL advisory lock.
_MIGRATION_LOCK_KEY = 0x63656E74
# Seconds a new PostgreSQL connection may take (unless the URL says otherwise): a host that
# does not answer at all must not hold a request, a job or the start-up for minutes.
CONNECT_TIMEOUT = 5
# Page cache of each pooled SQLite connection, KiB (see _sqlite_pragmas).
SQLITE_CACHE_KIB = 256
# Each SQLite connection keeps its own schema, page cache and prepared statements (Python's
# default: 128, about 6.5 KB each): the leader, whose shared jobs run ~130 distinct statements,
# ended a soak with ~860 of them, 5 MB of SQLite heap, on 8 kept connections. Four connections
# are kept between uses (more open for a burst, up to 16, and close after it) and 32 statements
# each, the most recent: the flush's statements stay prepared; a shared job that runs every
# few seconds prepares its own again, about 9 us each (a grouped SELECT here: 11.7 us
# unprepared, 2.6 us prepared).
SQLITE_POOL_KEPT = 4
SQLITE_POOL_MAX = 16
SQLITE_STATEMENTS = 32

# PostgreSQL SQLSTATE classes that mean "the server cannot serve us", not "this query is wrong":
# 08 connection exception, 28 invalid authorization (a role refused), 3D no such database,
# 53 insufficient resources (too many connections, disk full), 57 operator intervention
# (terminated, shutting down, cannot connect now), 58 system error (I/O).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "28", "3D", "53", "57", "58")
# SQLite's OperationalError also covers wrong SQL; those are bugs, not an outage.
_SQLITE_QUERY_ERRORS = ("no such ", "syntax error", "near ", "has no column", "already exists", "ambiguous")


def is_store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the store could not be reached or used (an outage), not a bad query."""
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free
        return True
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return False
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate:
        return str(sqlstate)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    message = str(original).lower()
    if type(original).__module__.startswith("sqlite3"):
        return not any(marker in message for marker in _SQLITE_QUERY_ERRORS)
    return True  # a driver error with no SQLSTATE: the connection itself failed


def describe_unavailability(error: BaseException) -> str:
    """A short cause for the log and the incident: the driver's first line, without the URL's secrets."""
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    text = lines[0] if lines else type(original).__name__
    # psycopg: 'connection failed: connection to server at "h", port 5432 failed: FATAL:  too many ...'
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1].strip()
    return " ".join(text.split())[:200]


@dataclass(frozen=True)
class Outage:
    """The store stopped answering at ``since`` (this process's clock), for ``cause``.

    ``writes`` when a write failed: a store that still reads but refuses writes (a read-only
    file) is only back once a write succeeds, so that reads in between do not end it.
    """

    since: float
    cause: str
    writes: bool


class StoreAvailability:
    """Whether the store answers, as this process last found it; each change logged once."""

    def __init__(self, describe: Callable[[], str], clock: Clock) -> None:
        self._describe = describe
        self._clock = clock
        self._lock = threading.Lock()
        self.outage: Outage | None = None
        # Called after each change, in the thread that saw it: keep them quick (schedule work).
        self.on_outage: list[Callable[[Outage], object]] = []
        self.on_recovery: list[Callable[[Outage], object]] = []

    @property
    def down(self) -> bool:
        return self.outage is not None

    def failed(self, error: BaseException, writing: bool = False) -> bool:
        """Note a failure; True when ``error`` means the store is unavailable (marked down)."""
        if not is_store_unavailable(error):
            return False
        with self._lock:
            if self.outage is not None:
                if writing and not self.outage.writes:
                    self.outage = Outage(self.outage.since, self.outage.cause, True)
                return True
            outage = self.outage = Outage(self._clock.now(), describe_unavailability(error), writing)
        log.error(
            "store unavailable (%s: %s): requests that need it answer 503, health rounds are kept in memory "
            "until it answers again", self._describe(), outage.cause,
        )
        self._notify(self.on_outage, outage)
        return True

    def answered(self, writing: bool = False) -> None:
        """Note a success: the end of an outage, if there was one (a write outage ends with a write)."""
        current = self.outage
        if current is None or (current.writes and not writing):  # the common case: no lock
            return
        with self._lock:
            outage = self.outage
            if outage is None or (outage.writes and not writing):
                return
            self.outage = None
        seconds = max(0.0, self._clock.now() - outage.since)
        log.warning("store answers again (%s) after %.0f s unavailable", self._describe(), seconds)
        self._notify(self.on_recovery, outage)

    @staticmethod
    def _notify(listeners: list[Callable[[Outage], object]], outage: Outage) -> None:
        for listener in list(listeners):
            try:
                listener(outage)
            except Exception:  # a listener must never turn an outage into a crash
                log.exception("store availability listener failed")


class Store:
    """Connections to the store, safe across fork: each process builds its own engine on first use."""

    def __init__(self, url: str, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self.dialect = make_url(url).get_backend_name()
        self._engine: Engine | None = None
        self._engine_pid: int | None = None
        self._lock = threading.Lock()
        self.availability = StoreAvailability(self.describe, self.clock)

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
                url, connect_args={"timeout": 30, "check_same_thread": False, "cached_statements": SQLITE_STATEMENTS},
                pool_size=SQLITE_POOL_KEPT, max_overflow=SQLITE_POOL_MAX - SQLITE_POOL_KEPT,
            )

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                # Hand transaction control to us (pysqlite's own BEGIN handling is deferred
                # and cannot do BEGIN IMMEDIATE), then set WAL for readers beside one writer.
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA busy_timeout=30000")
                _enter_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                # Each pooled connection keeps its own page cache, 2 MB by default: with up to 16
                # connections a worker's RSS climbed as the store grew (+2 to +4 MB per 5 min in
                # bench_soak) until every cache was full. 256 KiB each bounds it at 4 MB; the
                # pages still come from the OS's file cache, not the disk.
                cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                # Writers take the write lock up front: a deferred transaction that reads and
                # then writes can fail with SQLITE_BUSY at once instead of waiting its turn.
                immediate = conn.get_execution_options().get("sqlite_immediate", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

            _invalidate_on_outage(engine)
            return engine
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT}
        engine = create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_recycle=1800,
                               connect_args=connect_args)
        _invalidate_on_outage(engine)
        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A short read transaction."""
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn
        except Exception as error:
            self.availability.failed(error)
            raise
        self.availability.answered()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction: commits on success, rolls back on any exception."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    conn = conn.execution_options(sqlite_immediate=True)
                with conn.begin():
                    yield conn
        except Exception as error:
            self.availability.failed(error, writing=True)
            raise
        self.availability.answered(writing=True)

    def insert(self, table: Table) -> Any:
        """An INSERT that supports on_conflict_do_nothing/do_update on both dialects."""
        # The dialect's module on first use: a worker on SQLite never loads PostgreSQL's (2 MB).
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

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
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()
        except Exception as error:
            self.availability.failed(error)
            raise
        self.availability.answered()
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


def _enter_wal(cursor: Any, *, patience_s: float = 30.0) -> None:
    """Put the SQLite file in WAL mode (a property of the file: once set, every opener sees it).

    Switching a file into WAL takes an exclusive lock. When two connections switch a new file at
    once, the one that finds the other waiting for its shared lock is answered "database is
    locked" at once: SQLite skips the busy handler where waiting would deadlock. Six workers
    opening a new store together failed this way about once in sixty starts
    (test_many_processes_starting_at_once_migrate_safely[sqlite]). The loser lets go and asks
    again, and by then the file is usually in WAL already.
    """
    import sqlite3  # only a SQLite store gets here

    deadline = time.monotonic() + patience_s
    pause = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY  # "database is locked"
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _invalidate_on_outage(engine: Engine) -> None:
    """Treat an outage like a lost connection, so the pool starts afresh when the store returns.

    SQLite's driver knows no "disconnect": a connection opened while its file was read-only
    stays read-only for good, and one that hit a disk I/O error may keep failing. Marking those
    errors as disconnects makes SQLAlchemy drop the pooled connections.
    """

    @event.listens_for(engine, "handle_error")
    def _outage_is_disconnect(context: Any) -> None:
        error = context.sqlalchemy_exception
        if error is not None and is_store_unavailable(error):
            context.is_disconnect = True


def _current_revision(conn: Connection) -> str | None:
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def alembic_config(conn: Connection | None) -> Any:
    """Alembic's configuration for a migration on ``conn`` (scripts in monitoring/store/migrations)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = conn
    return config
