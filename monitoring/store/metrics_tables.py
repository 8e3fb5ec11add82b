"""Tables of the request metrics and the resource samples.

``request_routes`` names each (service, method, route template, internal flag) once and keeps its
running totals since the store began (requests per status class and the cumulative latency
histogram): what Prometheus needs for ``_total`` counters and ``le`` buckets. The set of
routes is bounded (URL rule templates; ingested services and routes are capped by the ingest
side's CardinalityGuard), so it is never purged. The service lives here, not in every rollup row:
a rollup row names its route by id, and a read for one service finds that service's route ids
through the unique key, which leads with ``service``.

``request_rollups`` holds one row per (interval, route) with the requests per status class
and one latency histogram for all of them: minute rows (``resolution`` 60), kept 48 hours,
and hour rows (3600), kept METRICS_RETENTION_DAYS. Each flush merges into both the minute row
and the hour row of what it carries, so a window of many hours reads a few hour rows instead
of sixty times as many minute rows. Workers do not get rows of their own: each flush
read-merge-writes under one store-wide writer lock, so the row count does not grow with the
number of workers (per-process rows would multiply the minute tier, the bulk of the store,
by WORKERS, and every read would merge N times more histograms). The key is the primary key
(SQLite: WITHOUT ROWID, so the table is its own index): these rows are most of the store.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
)

from monitoring.store.schema import Id, metadata

ROUTE_LENGTH = 255
SERVICE_LENGTH = 100
# The service of rows written before the service dimension, and of callers that name none: the
# import name of Centinela's own app (app.py), so a standalone Centinela keeps one service.
DEFAULT_SERVICE = "app"
# Requests per status class: index 0 is anything outside 100..599, 1..5 are 1xx..5xx.
STATUS_COLUMNS = ("status_other", "status_1xx", "status_2xx", "status_3xx", "status_4xx", "status_5xx")


def _status_columns() -> list[Column[int]]:
    return [Column(name, BigInteger, nullable=False, default=0) for name in STATUS_COLUMNS]


request_routes = Table(
    "request_routes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("service", String(SERVICE_LENGTH), nullable=False, server_default=DEFAULT_SERVICE),
    Column("method", String(8), nullable=False),
    Column("route", String(ROUTE_LENGTH), nullable=False),  # URL rule template, never a raw path
    Column("internal", SmallInteger, nullable=False),  # 1 for the monitoring endpoints themselves
    *_status_columns(),
    # Running latency histogram since created_at (see monitoring.metrics.rollups.encode_histogram).
    Column("histogram", LargeBinary, nullable=True),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index("ux_request_routes_key", "service", "route", "method", "internal", unique=True),
)

request_rollups = Table(
    "request_rollups",
    metadata,
    Column("resolution", Integer, primary_key=True, autoincrement=False),  # seconds: 60 or 3600
    Column("bucket_start", Double, primary_key=True),  # epoch seconds, a multiple of resolution
    Column("route_id", Id, ForeignKey("request_routes.id"), primary_key=True, autoincrement=False),
    *_status_columns(),
    # count, exact sum/min/max and the 1 % log buckets (see monitoring.metrics.rollups.encode_histogram).
    Column("histogram", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

system_samples = Table(
    "system_samples",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("instance", String(128), nullable=False),  # scheduler instance id: host:pid:nonce
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("process_cpu_percent", Double, nullable=False),  # of one CPU (may exceed 100 with threads)
    Column("process_rss_bytes", BigInteger, nullable=False),
    Column("open_fds", Integer, nullable=False),
    Column("threads", Integer, nullable=False),
    Column("system_cpu_percent", Double, nullable=False),  # of all CPUs of the host
    Column("memory_used_bytes", BigInteger, nullable=False),
    Column("memory_limit_bytes", BigInteger, nullable=False),
    Column("memory_percent", Double, nullable=False),
    Column("memory_source", String(16), nullable=False),  # cgroup-v2 | cgroup-v1 | host
    Column("store_bytes", BigInteger, nullable=False),
    Index("ix_system_samples_at", "at"),
    Index("ix_system_samples_instance_at", "instance", "at"),
)
