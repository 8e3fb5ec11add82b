"""Request rollups in the store: flush, downsample, and figures over a window.

Write path. Every process flushes its aggregate (monitoring.metrics.recorder) every
METRICS_FLUSH_INTERVAL seconds and at worker exit. A flush read-merge-writes, per route, the
minute row and the hour row of every minute it carries, and the route's running totals, in
one short transaction under a store-wide writer lock (SQLite's BEGIN IMMEDIATE; a
transaction advisory lock on PostgreSQL), so two workers merging into the same row never lose
each other's samples. Histograms merge exactly (one fixed bucket layout), so a row written by
three workers in twelve flushes equals one written by one process at once.

Downsampling. Hour rows exist from the first flush of each hour, so downsampling is dropping
the minute resolution: a leader-only job deletes minute rows older than ``MINUTE_HORIZON``
(48 h) and every row older than METRICS_RETENTION_DAYS.

Read path. ``figures(window)`` merges the rows that cover the window: hour rows for its whole
hours, minute rows for the partial hours at its edges (hour rows where the minutes are gone),
so percentiles over any window, across workers and hosts, are a merge of at most a few hundred
rows per route, within the histogram's 1 % relative error. Figures come from the store only
(not this process's unflushed minute), so every worker answers the same; the price is that the
newest METRICS_FLUSH_INTERVAL seconds are not in them yet.

Services. Every route belongs to one service (request_routes.service). Each read takes
``service``: None (the default) combines every service, as before the dimension; a name
keeps that service's routes only (an unknown name reads as no requests). ``services()``
lists the services the store knows, and ``RequestFigures.per_service()`` breaks a combined
read down without a second query.
"""
from __future__ import annotations

import array
import math
import struct
import sys
import typing
import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Integer, and_, bindparam, cast, delete, false, func, or_, select, text, update
from sqlalchemy.engine import Connection

from monitoring.clock import Clock
from monitoring.durations import DAY, HOUR, MINUTE
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.histogram import FORMAT_VERSION, LatencyHistogram
from monitoring.metrics.recorder import RequestAggregate, RequestRecorder, RollupKey
from monitoring.metrics.scope import INCLUDE_INTERNAL
from monitoring.store.database import Store
from monitoring.store.metrics_tables import (
    DEFAULT_SERVICE,
    ROUTE_LENGTH,
    SERVICE_LENGTH,
    STATUS_COLUMNS,
    request_rollups,
    request_routes,
)

MINUTE_HORIZON = 48 * HOUR
# Any constant: every process that writes rollups takes the same PostgreSQL advisory lock.
_ROLLUP_WRITER_LOCK = 0x726F6C6C

RouteKey = tuple[str, str, bool, str]  # method, route template, internal, service

# --- the stored histogram ----------------------------------------------------------------
#
# Not LatencyHistogram.to_bytes(): that encoding spends a delta and a count per bucket. The
# stored form is dense over the bucket index range, each count split into byte planes (all
# low bytes, then all second bytes, ...), then deflated: the gaps and high bytes are runs of
# zeros that deflate all but removes. Minute rows come out about 10 % smaller, hour rows and
# totals about 25 % smaller, and decoding is C-speed slicing instead of a varint parse. The
# bucket layout, and so the 1 % bound, is LatencyHistogram's own.
_STORED_VERSION = 2
_STORED_HEADER = struct.Struct("<BQdddQiIB")  # version, count, sum, min, max, zero, first index, buckets, width
_WORD_TYPES = {width: code for code in "BHILQ" for width in (array.array(code).itemsize,) if width in (1, 2, 4, 8)}


def encode_histogram(histogram: LatencyHistogram) -> bytes:
    """The stored form of a histogram (see above)."""
    buckets = histogram.buckets()
    first = min(buckets) if buckets else 0
    span = max(buckets) - first + 1 if buckets else 0
    counts = array.array(_WORD_TYPES[8], bytes(8 * span))
    for index, count in buckets.items():
        counts[index - first] = count
    needed = (max(counts, default=0).bit_length() + 7) // 8
    width = next(w for w in (1, 2, 4, 8) if w >= needed)
    words = array.array(_WORD_TYPES[width], counts)
    if sys.byteorder == "big":
        words.byteswap()
    interleaved = words.tobytes()
    planes = b"".join(interleaved[k::width] for k in range(width))
    empty = histogram.count == 0
    header = _STORED_HEADER.pack(
        _STORED_VERSION, histogram.count, histogram.sum,
        0.0 if empty else histogram.min, 0.0 if empty else histogram.max,
        histogram.zero_count, first, span, width,
    )
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(header + planes) + compressor.flush()


@dataclass(frozen=True)
class _Stored:
    count: int
    total: float
    low: float
    high: float
    zero: int
    first: int
    counts: array.array[int]  # bucket counts from index ``first`` on, zeros included


def _unpack(blob: bytes) -> _Stored:
    try:
        raw = zlib.decompress(blob, -15)
        version, count, total, low, high, zero, first, span, width = _STORED_HEADER.unpack_from(raw)
    except (zlib.error, struct.error) as exc:
        raise ValueError(f"not a stored histogram: {exc}") from None
    if version != _STORED_VERSION or width not in _WORD_TYPES or len(raw) != _STORED_HEADER.size + span * width:
        raise ValueError("not a stored histogram (version, width or length)")
    interleaved = bytearray(span * width)
    for k in range(width):  # planes back into little-endian words, by C-level slice assignment
        interleaved[k::width] = raw[_STORED_HEADER.size + k * span:_STORED_HEADER.size + (k + 1) * span]
    counts = array.array(_WORD_TYPES[width], bytes(interleaved))
    if sys.byteorder == "big":
        counts.byteswap()
    return _Stored(count, total, low, high, zero, first, counts)


def _histogram_from(count: int, total: float, low: float, high: float, zero: int,
                    buckets: Mapping[int, int]) -> LatencyHistogram:
    """A LatencyHistogram through its validating public constructor."""
    return LatencyHistogram.from_dict({
        "version": FORMAT_VERSION, "count": count, "sum": total,
        "min": low if count else None, "max": high if count else None, "zero": zero,
        "buckets": [[index, c] for index, c in buckets.items()],
    })


def decode_histogram(blob: bytes) -> LatencyHistogram:
    """A LatencyHistogram from its stored form; ValueError if the blob is not one."""
    stored = _unpack(blob)
    buckets = {index: c for index, c in enumerate(stored.counts, stored.first) if c}
    return _histogram_from(stored.count, stored.total, stored.low, stored.high, stored.zero, buckets)


class StoredHistogramSum:
    """Stored histograms added up without building a LatencyHistogram per row (the read path's hot loop)."""

    __slots__ = ("buckets", "zero", "count", "total", "low", "high")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zero = self.count = 0
        self.total = 0.0
        self.low, self.high = math.inf, -math.inf

    def add(self, blob: bytes) -> None:
        stored = _unpack(blob)
        if not stored.count:
            return
        buckets, get = self.buckets, self.buckets.get
        for index, c in enumerate(stored.counts, stored.first):
            if c:
                buckets[index] = get(index, 0) + c
        self.zero += stored.zero
        self.count += stored.count
        self.total += stored.total
        self.low, self.high = min(self.low, stored.low), max(self.high, stored.high)

    def histogram(self) -> LatencyHistogram:
        return _histogram_from(self.count, self.total, self.low, self.high, self.zero, self.buckets)


def floor_to(seconds: float, step: int) -> float:
    return math.floor(seconds / step) * step


def ceil_to(seconds: float, step: int) -> float:
    return math.ceil(seconds / step) * step


def _aggregate_from_row(row: Any) -> RequestAggregate:
    aggregate = RequestAggregate()
    aggregate.histogram = decode_histogram(row.histogram)
    aggregate.status = [int(getattr(row, name)) for name in STATUS_COLUMNS]
    return aggregate


def _row_values(aggregate: RequestAggregate) -> dict[str, Any]:
    values: dict[str, Any] = dict(zip(STATUS_COLUMNS, aggregate.status, strict=False))
    values["histogram"] = encode_histogram(aggregate.histogram)
    return values


# --- what the read path returns -------------------------------------------------------------


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
    """One route (method + template) of one service over a window."""

    method: str
    route: str
    internal: bool
    aggregate: RequestAggregate = field(default_factory=RequestAggregate)
    service: str = DEFAULT_SERVICE


@dataclass
class ServiceFigures(AggregateReadout):
    """One service's requests over a window (its routes merged)."""

    service: str
    aggregate: RequestAggregate = field(default_factory=RequestAggregate)


@dataclass
class RequestFigures(AggregateReadout):
    """Everything the performance category reports for one window, merged from the store."""

    window: TimeWindow
    covered_from: float  # the window widened to the rollups read: whole minutes, or hours where minutes are gone
    covered_to: float
    include_internal: bool
    aggregate: RequestAggregate  # all routes in scope together
    routes: list[RouteFigures]
    internal_count: int  # requests to the monitoring endpoints in the window (left out unless included)
    service: str | None = None  # the one service read, or None for all of them combined

    @property
    def covered_seconds(self) -> float:
        return max(self.covered_to - self.covered_from, 1e-9)

    def per_service(self) -> list[ServiceFigures]:
        """The routes merged per service, busiest first (histograms merge exactly, so p95 per service is exact)."""
        found: dict[str, ServiceFigures] = {}
        for route in self.routes:
            entry = found.get(route.service)
            if entry is None:
                entry = found[route.service] = ServiceFigures(route.service)
            entry.aggregate.merge(route.aggregate)
        return sorted(found.values(), key=lambda f: (-f.count, f.service))


@dataclass(frozen=True)
class RequestCounts:
    """Request counts over a window without the latency histograms: cheap over any window."""

    window: TimeWindow
    covered_from: float
    covered_to: float
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
    created_at: float | None  # None: a series exported at 0 before the route's first request
    service: str = DEFAULT_SERVICE


@dataclass(frozen=True)
class ReadPlan:
    """Which rows cover a window: an SQL condition, and the interval they cover."""

    condition: Any
    covered_from: float
    covered_to: float


def _update_aggregates(conn: Connection, table: Any, key_columns: tuple[str, ...],
                       merged: list[tuple[tuple[Any, ...], RequestAggregate]],
                       also: Mapping[str, Any] | None = None) -> None:
    """Write merged aggregates back to their rows, found by ``key_columns``, in one executemany."""
    if not merged:
        return
    extra = dict(also or {})
    columns = ("histogram", *STATUS_COLUMNS, *extra)
    statement = (
        update(table)
        .where(*[table.c[name] == bindparam(f"key_{name}") for name in key_columns])
        .values({c: bindparam(f"new_{c}") for c in columns})
    )
    conn.execute(statement, [
        {**{f"key_{name}": value for name, value in zip(key_columns, key, strict=False)},
         **{f"new_{k}": v for k, v in {**_row_values(aggregate), **extra}.items()}}
        for key, aggregate in merged
    ])


class RequestRollups:
    """The request rollups of one store: flush, downsample, and read."""

    def __init__(self, store: Store, clock: Clock, minute_horizon: float = MINUTE_HORIZON,
                 retention_seconds: float | None = None) -> None:
        self.store = store
        self.clock = clock
        self.minute_horizon = minute_horizon
        self.retention_seconds = retention_seconds
        # (method, route, internal, service) -> id: ids never change once written, so any process may keep them.
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
                self.store.insert(t).on_conflict_do_nothing(index_elements=["service", "route", "method", "internal"]),
                [{"service": v, "method": m, "route": r, "internal": int(i), **{name: 0 for name in STATUS_COLUMNS},
                  "created_at": now, "updated_at": now} for m, r, i, v in sorted(missing)],
            )
            services = sorted({v for _, _, _, v in missing})
            routes = sorted({r for _, r, _, _ in missing})
            for row in conn.execute(select(t.c.id, t.c.method, t.c.route, t.c.internal, t.c.service)
                                    .where(t.c.service.in_(services), t.c.route.in_(routes))):
                key = (row.method, row.route, bool(row.internal), row.service)
                if key in missing:
                    ids[key] = int(row.id)
        return ids

    def flush(self, entries: Mapping[RollupKey, RequestAggregate]) -> int:
        """Merge a drained aggregate into minute rows, hour rows and running totals; returns minute rows touched."""
        minutes: dict[float, dict[RouteKey, RequestAggregate]] = defaultdict(dict)
        hours: dict[float, dict[RouteKey, RequestAggregate]] = defaultdict(dict)
        totals: dict[RouteKey, RequestAggregate] = {}
        for key, aggregate in entries.items():
            if not aggregate.count:
                continue
            route_key = (key.method, key.route[:ROUTE_LENGTH], bool(key.internal), key.service[:SERVICE_LENGTH])
            minutes[key.minute][route_key] = aggregate
            for bucket in (hours[floor_to(key.minute, HOUR)], totals):
                if route_key in bucket:
                    bucket[route_key].merge(aggregate)
                else:
                    bucket[route_key] = aggregate.copy()
        if not totals:
            return 0
        now = self.clock.now()
        with self.store.write() as conn:
            self._lock_writers(conn)
            ids = self._route_ids_for(conn, set(totals), now)
            touched = 0
            for minute, aggregates in sorted(minutes.items()):
                touched += self._merge_rows(conn, MINUTE, minute, {ids[k]: a for k, a in aggregates.items()})
            for hour, aggregates in sorted(hours.items()):
                self._merge_rows(conn, HOUR, hour, {ids[k]: a for k, a in aggregates.items()})
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
                select(t.c.route_id, t.c.histogram, *[t.c[name] for name in STATUS_COLUMNS]).where(
                    t.c.resolution == resolution, t.c.bucket_start == bucket_start,
                    t.c.route_id.in_(sorted(aggregates)),
                )
            )
        }
        inserts, updates = [], []
        for route_id, aggregate in aggregates.items():
            row = existing.get(route_id)
            if row is None:
                inserts.append({"resolution": resolution, "bucket_start": bucket_start, "route_id": route_id,
                                **_row_values(aggregate)})
            else:
                merged = _aggregate_from_row(row)
                merged.merge(aggregate)
                updates.append(((resolution, bucket_start, route_id), merged))
        if inserts:
            conn.execute(t.insert(), inserts)
        _update_aggregates(conn, t, ("resolution", "bucket_start", "route_id"), updates)
        return len(inserts) + len(updates)

    def _merge_totals(self, conn: Connection, totals: Mapping[int, RequestAggregate], now: float) -> None:
        t = request_routes
        rows = conn.execute(
            select(t.c.id, t.c.histogram, *[t.c[name] for name in STATUS_COLUMNS]).where(t.c.id.in_(sorted(totals)))
        )
        merged = []
        for row in rows:
            total = totals[row.id].copy()
            if row.histogram is not None:
                total.merge(_aggregate_from_row(row))
            merged.append(((row.id,), total))
        _update_aggregates(conn, t, ("id",), merged, {"updated_at": now})

    def downsample(self, batch_seconds: float = DAY) -> int:
        """The leader's job: drop minute rows past the minute horizon, and rows past retention; rows deleted.

        Hour rows were written alongside the minutes, so nothing is merged here. Deletes go
        a day of rows per transaction, so a job that was missed for weeks catches up in short
        transactions.
        """
        now = self.clock.now()
        t = request_rollups
        targets = [(t.c.resolution == MINUTE, floor_to(now - self.minute_horizon, HOUR))]
        if self.retention_seconds is not None:
            targets.append((t.c.resolution == HOUR, now - self.retention_seconds))
        removed = 0
        for which, cutoff in targets:
            while True:
                with self.store.write() as conn:
                    oldest = conn.execute(select(func.min(t.c.bucket_start)).where(which)).scalar()
                    if oldest is None or oldest >= cutoff:
                        break
                    upto = min(cutoff, oldest + batch_seconds)
                    removed += conn.execute(delete(t).where(which, t.c.bucket_start < upto)).rowcount
        return removed

    # --- reading -------------------------------------------------------------------------

    def plan(self, window: TimeWindow) -> ReadPlan:
        """The rows that cover ``window``: hour rows for its whole hours, minute rows at its edges.

        An edge older than the minute horizon has no minute rows left: its whole hour row is
        read instead, and the covered interval widens to that hour.
        """
        t = request_rollups
        minutes_kept_from = floor_to(self.clock.now() - self.minute_horizon, HOUR)
        start, end = floor_to(window.start, MINUTE), ceil_to(window.end, MINUTE)
        first_whole, after_whole = ceil_to(start, HOUR), floor_to(end, HOUR)
        if first_whole >= after_whole:  # no whole hour inside: one or two partial hours
            edges = [(start, min(end, first_whole)), (max(start, first_whole), end)]
            whole: tuple[float, float] | None = None
        else:
            edges = [(start, first_whole), (after_whole, end)]
            whole = (first_whole, after_whole)
        # Covered: from the window's start widened to its minute (a minute row holds the whole
        # minute), to its end (no row holds anything later than the data it was flushed with).
        parts, covered_from, covered_to = [], start, window.end
        if whole is not None:
            parts.append(and_(t.c.resolution == HOUR, t.c.bucket_start >= whole[0], t.c.bucket_start < whole[1]))
        for low, high in edges:
            if low >= high:
                continue
            if low >= minutes_kept_from:
                parts.append(and_(t.c.resolution == MINUTE, t.c.bucket_start >= low, t.c.bucket_start < high))
            else:
                hour = floor_to(low, HOUR)
                parts.append(and_(t.c.resolution == HOUR, t.c.bucket_start == hour))
                covered_from, covered_to = min(covered_from, hour), max(covered_to, hour + HOUR)
        return ReadPlan(or_(*parts) if parts else false(), covered_from, covered_to)

    def counts(self, window: TimeWindow, include_internal: bool = INCLUDE_INTERNAL,
               service: str | None = None) -> RequestCounts:
        """Requests per status class over ``window`` (of one service, or all when None), summed in SQL."""
        t, r = request_rollups, request_routes
        plan = self.plan(window)
        query = (
            select(*[func.coalesce(func.sum(t.c[name]), 0) for name in STATUS_COLUMNS])
            .select_from(t.join(r, t.c.route_id == r.c.id))
            .where(plan.condition)
        )
        if not include_internal:
            query = query.where(r.c.internal == 0)
        query = _of_service(query, service)
        with self.store.read() as conn:
            status = [int(n) for n in conn.execute(query).one()]
        return RequestCounts(window, plan.covered_from, plan.covered_to, status)

    def counts_per_bucket(self, first: float, step: int, buckets: int, include_internal: bool = INCLUDE_INTERNAL,
                          service: str | None = None) -> list[int]:
        """Requests per bucket of ``step`` seconds from ``first``, in one grouped SUM over the minute rows.

        No histogram is read: this is what tells a caller which buckets changed since it last
        computed them. The buckets must lie within the minute horizon (whole minutes, ``step`` a
        multiple of a minute).
        """
        if step % MINUTE or first % MINUTE:
            raise ValueError("buckets must be whole minutes")
        t, r = request_rollups, request_routes
        offset = (t.c.bucket_start - first) / step
        # SQLite's CAST truncates, which is floor here (bucket_start >= first); PostgreSQL's rounds, so floor it.
        index = (func.floor(offset) if self.store.dialect == "postgresql" else cast(offset, Integer)).label("bucket")
        # typing.cast: sum() starts from the int 0, and ``0 + column`` is a column (the stubs cannot tell).
        requests = typing.cast(ColumnElement[int], sum(func.coalesce(func.sum(t.c[name]), 0) for name in STATUS_COLUMNS))
        query = (
            select(index, requests)
            .select_from(t.join(r, t.c.route_id == r.c.id))
            .where(t.c.resolution == MINUTE, t.c.bucket_start >= first, t.c.bucket_start < first + step * buckets)
            .group_by(index)
        )
        if not include_internal:
            query = query.where(r.c.internal == 0)
        query = _of_service(query, service)
        counts = [0] * buckets
        with self.store.read() as conn:
            for bucket, count in conn.execute(query):
                if 0 <= int(bucket) < buckets:
                    counts[int(bucket)] = int(count)
        return counts

    def figures(self, window: TimeWindow, include_internal: bool = INCLUDE_INTERNAL,
                service: str | None = None) -> RequestFigures:
        """Counts, status classes and merged histograms, overall and per route, over ``window``.

        ``service`` keeps one service's routes (None: every service combined).
        """
        t, r = request_rollups, request_routes
        plan = self.plan(window)
        found: dict[int, tuple[RouteFigures, StoredHistogramSum]] = {}
        with self.store.read() as conn:
            # typing.cast: as in counts_per_bucket, sum() of column expressions is a column expression.
            internal_requests = typing.cast(ColumnElement[int], sum(func.sum(t.c[name]) for name in STATUS_COLUMNS))
            internal_count = conn.execute(
                select(func.coalesce(internal_requests, 0))
                .select_from(t.join(r, t.c.route_id == r.c.id))
                .where(plan.condition, r.c.internal == 1)
                .where(*_service_condition(service))
            ).scalar_one()
            query = (
                select(t.c.route_id, r.c.method, r.c.route, r.c.internal, r.c.service, t.c.histogram,
                       *[t.c[name] for name in STATUS_COLUMNS])
                .select_from(t.join(r, t.c.route_id == r.c.id))
                .where(plan.condition)
            )
            if not include_internal:
                query = query.where(r.c.internal == 0)
            query = _of_service(query, service)
            for row in conn.execute(query):
                entry = found.get(row.route_id)
                if entry is None:
                    entry = found[row.route_id] = (RouteFigures(row.method, row.route, bool(row.internal),
                                                                service=row.service),
                                                   StoredHistogramSum())
                figures, histograms = entry
                histograms.add(row.histogram)
                status = figures.aggregate.status
                for index, name in enumerate(STATUS_COLUMNS):
                    status[index] += getattr(row, name)
        overall = RequestAggregate()
        for figures, histograms in found.values():  # per route first, then one merge per route
            figures.aggregate.histogram = histograms.histogram()
            overall.merge(figures.aggregate)
        return RequestFigures(
            window=window,
            covered_from=plan.covered_from,
            covered_to=plan.covered_to,
            include_internal=include_internal,
            aggregate=overall,
            routes=sorted((f for f, _ in found.values()), key=lambda f: (-f.count, f.route, f.method, f.service)),
            internal_count=int(internal_count),
            service=service,
        )

    def totals(self, service: str | None = None) -> list[RouteTotal]:
        """Running totals per route since the store began (for Prometheus counters and buckets)."""
        t = request_routes
        query = (
            select(t.c.method, t.c.route, t.c.internal, t.c.service, t.c.histogram, t.c.created_at,
                   *[t.c[name] for name in STATUS_COLUMNS])
            .where(t.c.histogram.is_not(None), *_service_condition(service))
            .order_by(t.c.service, t.c.route, t.c.method, t.c.internal)
        )
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [RouteTotal(row.method, row.route, bool(row.internal), _aggregate_from_row(row), row.created_at,
                           row.service) for row in rows]

    def services(self) -> list[str]:
        """Every service with requests in the store, by name (the unique key's leading column)."""
        t = request_routes
        with self.store.read() as conn:
            return [row[0] for row in conn.execute(select(t.c.service).distinct().order_by(t.c.service))]

    def routes_by_service(self) -> dict[str, set[str]]:
        """Every service's route templates in the store: what a cardinality guard can be seeded with at start."""
        t = request_routes
        found: dict[str, set[str]] = {}
        with self.store.read() as conn:
            for service, route in conn.execute(select(t.c.service, t.c.route).distinct()):
                found.setdefault(service, set()).add(route)
        return found

    def row_counts(self) -> dict[int, int]:
        """Rows per resolution (60, 3600): for the storage bench and the tests."""
        t = request_rollups
        with self.store.read() as conn:
            return {int(res): int(n) for res, n in conn.execute(
                select(t.c.resolution, func.count()).group_by(t.c.resolution))}


def _service_condition(service: str | None) -> list[Any]:
    """The WHERE terms on request_routes for one service (none for every service)."""
    return [] if service is None else [request_routes.c.service == service]


def _of_service(query: Any, service: str | None) -> Any:
    """``query`` over rollup rows, kept to one service's routes: their ids come from the
    unique key (service first), so the rollup rows are still read by primary key."""
    if service is None:
        return query
    ids = select(request_routes.c.id).where(request_routes.c.service == service)
    return query.where(request_rollups.c.route_id.in_(ids.scalar_subquery()))


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
