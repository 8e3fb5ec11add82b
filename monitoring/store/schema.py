"""Tables of the store. Timestamps are UTC epoch seconds (double precision): they compare
and subtract the same way on SQLite and PostgreSQL, and turn into RFC 3339 at the edge."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class JsonText(TypeDecorator[Any]):
    """A JSON value kept as TEXT, the one JSON column type of the store: written with sorted keys
    (a stored value reads the same however it was built), read back as the value.

    TEXT and not the dialects' JSON types: the columns are only written and read whole, never
    queried inside, and SQLite and PostgreSQL then store the same text (the store moves between
    them with ``python -m monitoring.store.transfer``). Non-ASCII is escaped, so any text the
    database takes (a lone surrogate that an older version let into a rule is ``\\ud83d``, not
    an encoding error). Values that JSON has no form for (a datetime in an audit detail) are
    written as their ``str``. Text that is not JSON (a row edited by hand) reads back as that
    text, so the one row is refused where it is used and the others still load.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, default=str)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None or value == "":
            return None
        try:
            return json.loads(value)
        except ValueError:
            return value


# One integer id type that autoincrements on both SQLite (INTEGER PRIMARY KEY) and PostgreSQL (BIGSERIAL).
Id = BigInteger().with_variant(Integer(), "sqlite")

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("acquired_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    # Increases on every change of holder: a fencing token for whoever wants to check it.
    Column("generation", BigInteger, nullable=False, default=1),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job", String(64), nullable=False),
    Column("holder", String(128), nullable=False),
    Column("started_at", Double, nullable=False),
    Column("finished_at", Double, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_job_runs_job_started", "job", "started_at"),
)

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(128), primary_key=True),
    Column("zone", String(64), nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("last_seen", Double, nullable=False),
    # Set by a clean shutdown: the instance left on purpose and is no longer listed (migration 2).
    Column("stopped_at", Double, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("kind", String(32), nullable=False),  # admin_action | config_change | access_denied
    Column("actor", String(64), nullable=False),  # key id such as "admin:3f2a9c1e", never the key
    Column("action", String(128), nullable=False),
    Column("client_ip", String(64), nullable=False, default=""),  # anonymised
    Column("path", String(512), nullable=False, default=""),
    Column("detail", JsonText, nullable=False, default={}),  # reason, before/after, ...
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_kind_at", "kind", "at"),
)

# Dashboard sign-ins: a session lives as a row, so signing out (or a revocation) ends it on
# every worker and host, whatever copy of the cookie someone kept.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("id", String(32), primary_key=True),  # random; the cookie carries it, signed
    Column("key_id", String(64), nullable=False),  # "metrics:3f2a9c1e", never the key
    Column("issued_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
    Index("ix_dashboard_sessions_expires", "expires_at"),
)
