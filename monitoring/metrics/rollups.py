"""Request rollups in the store: flush, downsample minute -> hour, and figures over a window.

Write path. Every process flushes its aggregate (monitoring.metrics.recorder) every
METRICS_FLUSH_INTERVAL seconds and at worker exit. A flush read-merge-writes one row per
(minute, route) and the route's running totals, in one short transaction under a
store-wide writer lock (SQLite's BEGIN IMMEDIATE; a transaction advisory lock on
PostgreSQL), so two workers merging into the same minute row never lose each other's
samples. Histograms merge exactly (one fixed bucket layout), so a row written by three
workers in twelve flushes equals one written by one process at once.

Downsampling. A leader-only job merges minute rows older than ``MINUTE_HORIZON`` (48 h) into
hour rows, one hour per transaction: the minute rows are deleted and the hour row written in
the same transaction, so a reader sees one or the other, never both or neither. Retention
(the global retention job, through a RetentionRule) deletes rows older than
METRICS_RETENTION_DAYS.

Read path. ``figures(window)`` merges the histograms of every row in the window: percentiles
over any window, across workers and hosts, within the histogram's 1 % relative error.
Figures come from the store only (not this process's unflushed minute), so every worker
answers the same; the price is that the newest METRICS_FLUSH_INTERVAL seconds are not in
them yet.
"""
from __future__ import annotations

import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from sqlalchemy import and_, bindparam, delete, func, or_, select, text, update
from sqlalchemy.engine import Connection

from monitoring.clock import Clock
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.histogram import LatencyHistogram
from monitoring.metrics.recorder import RequestAggregate, RequestRecorder, RollupKey
from monitoring.store.database import Store
from monitoring.store.metrics_tables import ROUTE_LENGTH, STATUS_COLUMNS, request_rollups, request_routes

MINUTE = 60
HOUR = 3600
MINUTE_HORIZON = 48 * HOUR
# Any constant: every process that writes rollups takes the same PostgreSQL advisory lock.
_ROLLUP_WRITER_LOCK = 0x726F6C6C

RouteKey = tuple[str, str, bool]  # method, route template, internal


def encode_histogram(histogram: LatencyHistogram) -> bytes:
    """The stored form: raw deflate of the histogram's own encoding (about 40 % smaller)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(histogram.to_bytes()) + compressor.flush()


def decode_histogram(blob: bytes) -> LatencyHistogram:
    return LatencyHistogram.from_bytes(zlib.decompress(blob, -15))


def floor_to(seconds: float, step: int) -> float:
    return math.floor(seconds / step) * step


def _aggregate_from_row(row: Any) -> RequestAggregate:
    aggregate = RequestAggregate()
    aggregate.histogram = decode_histogram(row.histogram)
    aggregate.status = [int(getattr(row, name)) for name in STATUS_COLUMNS]
    return aggregate


def _row_values(aggregate: RequestAggregate) -> dict[str, Any]:
    values: dict[str, Any] = dict(zip(STATUS_COLUMNS, aggregate.status))
    values["count"] = aggregate.count
    values["histogram"] = encode_histogram(aggregate.histogram)
    return values


_AGGREGATE_COLUMNS = ("count", "histogram", *STATUS_COLUMNS)


def _update_aggregates(conn: Connection, table: Any, merged: Mapping[int, RequestAggregate],
                       also: Mapping[str, Any] | None = None) -> None:
    """Write merged aggregates back to their rows by id, in one executemany."""
    if not merged:
        return
    extra = dict(also or {})
    values = {c: bindparam(f"new_{c}") for c in (*_AGGREGATE_COLUMNS, *extra)}
    conn.execute(
        update(table).where(table.c.id == bindparam("row_id")).values(values),
        [{"row_id": row_id, **{f"new_{k}": v for k, v in {**_row_values(aggregate), **extra}.items()}}
         for row_id, aggregate in merged.items()],
    )


class AggregateReadout:
    """Count, errors, status classes and histogram of a RequestAggregate held in ``aggregate``."""

    aggregate: RequestAggregate

    @property
    def histogram(self) -> LatencyHistogram:
        return self.aggregate.histogram

    @property
    def count(self) -> int:
        return self.aggregate.count

    @property
    def errors(self) -> int:
        """5xx responses (unhandled exceptions are recorded as 500)."""
        return self.aggregate.errors

    @property
    def status(self) -> list[int]:
        """Requests per status class (index 0: outside 100..599, 1..5: 1xx..5xx)."""
        return self.aggregate.status


@dataclass
class RouteFigures(AggregateReadout):
    """One route (method + template) over a window."""

    method: str
    route: str
    internal: bool
    aggregate: RequestAggregate = field(default_factory=RequestAggregate)


@dataclass
class RequestFigures(AggregateReadout):
    """Everything the performance category reports for one window, merged from the store."""

    window: TimeWindow
    covered_from: float  # start of the first interval read: the window widened to whole rollups
    include_internal: bool
    aggregate: RequestAggregate  # all routes in scope together
    routes: list[RouteFigures]
    internal_count: int  # requests to the monitoring endpoints in the window (left out unless included)

    @property
    def covered_seconds(self) -> float:
        return max(self.window.end - self.covered_from, 1e-9)


@dataclass(frozen=True)
class RequestCounts:
    """Request counts over a window without the latency histograms: cheap over any window."""

    window: TimeWindow
    covered_from: float
    status: list[int]  # per status class, as RequestAggregate.status

    @property
    def count(self) -> int:
        return sum(self.status)

    @property
    def errors(self) -> int:
        return self.status[5]


@dataclass(frozen=True)
class RouteTotal:
    """Running totals of one route since the store began: the Prometheus counters and buckets."""

    method: str
    route: str
    internal: bool
    aggregate: RequestAggregate
    created_at: float


class RequestRollups:
    """The request rollups of one store: flush, downsample, and read."""

    def __init__(self, store: Store, clock: Clock, minute_horizon: float = MINUTE_HORIZON) -> None:
        self.store = store
        self.clock = clock
        self.minute_horizon = minute_horizon
        # (method, route, internal) -> id: ids never change once written, so any process may keep them.
        self._route_ids: dict[RouteKey, int] = {}

    # --- writing -------------------------------------------------------------------------

    def _lock_writers(self, conn: Connection) -> None:
        """Serialise rollup writers across processes and hosts (SQLite's write transaction already is)."""
        if self.store.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROLLUP_WRITER_LOCK})

    def _route_ids_for(self, conn: Connection, keys: set[RouteKey], now: float) -> dict[RouteKey, int]:
        """Ids of these routes, creating the missing ones (kept in the cache only once committed)."""
        ids = {key: self._route_ids[key] for key in keys if key in self._route_ids}
        missing = keys - ids.keys()
        if missing:
            t = request_routes
            conn.execute(
                self.store.insert(t).on_conflict_do_nothing(index_elements=["route", "method", "internal"]),
                [
                    {"method": m, "route": r, "internal": int(i), "count": 0,
                     **{name: 0 for name in STATUS_COLUMNS}, "created_at": now, "updated_at": now}
                    for m, r, i in sorted(missing)
                ],
            )
            routes = sorted({r for _, r, _ in missing})
            for row in conn.execute(select(t.c.id, t.c.method, t.c.route, t.c.internal).where(t.c.route.in_(routes))):
                key = (row.method, row.route, bool(row.internal))
                if key in missing:
                    ids[key] = int(row.id)
        return ids

    def flush(self, entries: Mapping[RollupKey, RequestAggregate]) -> int:
        """Merge a drained aggregate into the minute rows and the running totals; returns the rows touched."""
        by_minute: dict[float, dict[RouteKey, RequestAggregate]] = defaultdict(dict)
        totals: dict[RouteKey, RequestAggregate] = {}
        for key, aggregate in entries.items():
            if not aggregate.count:
                continue
            route_key = (key.method, key.route[:ROUTE_LENGTH], bool(key.internal))
            by_minute[key.minute][route_key] = aggregate
            if route_key in totals:
                totals[route_key].merge(aggregate)
            else:
                totals[route_key] = aggregate.copy()
        if not totals:
            return 0
        now = self.clock.now()
        with self.store.write() as conn:
            self._lock_writers(conn)
            ids = self._route_ids_for(conn, set(totals), now)
            touched = 0
            for minute, aggregates in sorted(by_minute.items()):
                touched += self._merge_rows(conn, MINUTE, minute, {ids[k]: a for k, a in aggregates.items()})
            self._merge_totals(conn, {ids[k]: a for k, a in totals.items()}, now)
        self._route_ids.update(ids)  # committed: from now on these ids exist for every process
        return touched

    def _merge_rows(
        self, conn: Connection, resolution: int, bucket_start: float, aggregates: Mapping[int, RequestAggregate]
    ) -> int:
        """Insert or merge into the rows of one interval, by route id (the caller holds the writer lock)."""
        t = request_rollups
        existing = {
            row.route_id: row
            for row in conn.execute(
                select(t.c.id, t.c.route_id, t.c.histogram, *[t.c[name] for name in STATUS_COLUMNS]).where(
                    t.c.resolution == resolution, t.c.bucket_start == bucket_start,
                    t.c.route_id.in_(sorted(aggregates)),
                )
            )
        }
        inserts, updates = [], {}
        for route_id, aggregate in aggregates.items():
            row = existing.get(route_id)
            if row is None:
                inserts.append({"resolution": resolution, "bucket_start": bucket_start, "route_id": route_id,
                                **_row_values(aggregate)})
            else:
                merged = _aggregate_from_row(row)
                merged.merge(aggregate)
                updates[row.id] = merged
        if inserts:
            conn.execute(t.insert(), inserts)
        _update_aggregates(conn, t, updates)
        return len(inserts) + len(updates)

    def _merge_totals(self, conn: Connection, totals: Mapping[int, RequestAggregate], now: float) -> None:
        t = request_routes
        rows = conn.execute(
            select(t.c.id, t.c.histogram, *[t.c[name] for name in STATUS_COLUMNS]).where(t.c.id.in_(sorted(totals)))
        )
        merged = {}
        for row in rows:
            merged[row.id] = totals[row.id].copy()
            if row.histogram is not None:
                merged[row.id].merge(_aggregate_from_row(row))
        _update_aggregates(conn, t, merged, {"updated_at": now})

    def downsample(self, max_hours: int = 10_000) -> int:
        """Merge minute rows older than the minute horizon into hour rows; returns the hours done.

        Only whole hours before ``now - minute_horizon`` are merged, one hour per transaction,
        so each transaction stays short and a run that was missed for days catches up.
        """
        cutoff = floor_to(self.clock.now() - self.minute_horizon, HOUR)
        t = request_rollups
        done = 0
        while done < max_hours:
            with self.store.write() as conn:
                self._lock_writers(conn)
                first = conn.execute(
                    select(func.min(t.c.bucket_start)).where(t.c.resolution == MINUTE, t.c.bucket_start < cutoff)
                ).scalar()
                if first is None:
                    break
                hour = floor_to(first, HOUR)
                in_hour = and_(t.c.resolution == MINUTE, t.c.bucket_start >= hour, t.c.bucket_start < hour + HOUR)
                merged: dict[int, RequestAggregate] = {}
                for row in conn.execute(
                    select(t.c.route_id, t.c.histogram, *[t.c[name] for name in STATUS_COLUMNS]).where(in_hour)
                ):
                    aggregate = _aggregate_from_row(row)
                    if row.route_id in merged:
                        merged[row.route_id].merge(aggregate)
                    else:
                        merged[row.route_id] = aggregate
                self._merge_rows(conn, HOUR, hour, merged)
                conn.execute(delete(t).where(in_hour))
            done += 1
        return done

    # --- reading -------------------------------------------------------------------------

    @staticmethod
    def _in_window(window: TimeWindow) -> tuple[Any, float, float]:
        """Rows of the window widened to whole rollups: minute rows from its minute, hour rows from its hour."""
        t = request_rollups
        minute_from = floor_to(window.start, MINUTE)
        hour_from = floor_to(window.start, HOUR)
        condition = and_(
            or_(
                and_(t.c.resolution == MINUTE, t.c.bucket_start >= minute_from),
                and_(t.c.resolution == HOUR, t.c.bucket_start >= hour_from),
            ),
            t.c.bucket_start < window.end,
        )
        return condition, minute_from, hour_from

    def counts(self, window: TimeWindow, include_internal: bool = False) -> RequestCounts:
        """Requests per status class over ``window``, summed in SQL (no histogram is read)."""
        t, r = request_rollups, request_routes
        in_window, minute_from, hour_from = self._in_window(window)
        query = (
            select(func.max(t.c.resolution), *[func.coalesce(func.sum(t.c[name]), 0) for name in STATUS_COLUMNS])
            .select_from(t.join(r, t.c.route_id == r.c.id))
            .where(in_window)
        )
        if not include_internal:
            query = query.where(r.c.internal == 0)
        with self.store.read() as conn:
            coarsest, *status = conn.execute(query).one()
        return RequestCounts(window, hour_from if coarsest == HOUR else minute_from, [int(n) for n in status])

    def figures(self, window: TimeWindow, include_internal: bool = False) -> RequestFigures:
        """Counts, status classes and merged histograms, overall and per route, over ``window``.

        The window is widened to whole rollups: minute rows from the minute containing
        ``window.start``, hour rows (older than the minute horizon) from its hour.
        """
        t, r = request_rollups, request_routes
        in_window, minute_from, hour_from = self._in_window(window)
        overall = RequestAggregate()
        routes: dict[int, RouteFigures] = {}
        read_hours = False
        with self.store.read() as conn:
            internal_count = conn.execute(
                select(func.coalesce(func.sum(t.c.count), 0))
                .select_from(t.join(r, t.c.route_id == r.c.id))
                .where(in_window, r.c.internal == 1)
            ).scalar_one()
            query = (
                select(t.c.resolution, t.c.route_id, r.c.method, r.c.route, r.c.internal, t.c.histogram,
                       *[t.c[name] for name in STATUS_COLUMNS])
                .select_from(t.join(r, t.c.route_id == r.c.id))
                .where(in_window)
            )
            if not include_internal:
                query = query.where(r.c.internal == 0)
            for row in conn.execute(query):
                aggregate = _aggregate_from_row(row)
                read_hours = read_hours or row.resolution == HOUR
                figures = routes.get(row.route_id)
                if figures is None:
                    figures = routes[row.route_id] = RouteFigures(row.method, row.route, bool(row.internal))
                figures.aggregate.merge(aggregate)
                overall.merge(aggregate)
        ordered = sorted(routes.values(), key=lambda f: (-f.count, f.route, f.method))
        return RequestFigures(
            window=window,
            covered_from=hour_from if read_hours else minute_from,
            include_internal=include_internal,
            aggregate=overall,
            routes=ordered,
            internal_count=int(internal_count),
        )

    def totals(self) -> list[RouteTotal]:
        """Running totals per route since the store began (for Prometheus counters and buckets)."""
        t = request_routes
        with self.store.read() as conn:
            rows = conn.execute(
                select(t.c.method, t.c.route, t.c.internal, t.c.histogram, t.c.created_at,
                       *[t.c[name] for name in STATUS_COLUMNS])
                .where(t.c.histogram.is_not(None))
                .order_by(t.c.route, t.c.method, t.c.internal)
            ).all()
        return [RouteTotal(row.method, row.route, bool(row.internal), _aggregate_from_row(row), row.created_at)
                for row in rows]

    def row_counts(self) -> dict[int, int]:
        """Rows per resolution (60, 3600): for the storage bench and the tests."""
        t = request_rollups
        with self.store.read() as conn:
            return {int(res): int(n) for res, n in conn.execute(
                select(t.c.resolution, func.count()).group_by(t.c.resolution))}


def flush_recorder(recorder: RequestRecorder, rollups: RequestRollups) -> int:
    """The flush job: drain this process's aggregate into the store; on failure keep it for the next try."""
    entries = recorder.drain()
    if not entries:
        return 0
    try:
        return rollups.flush(entries)
    except Exception:
        recorder.restore(entries)
        raise
