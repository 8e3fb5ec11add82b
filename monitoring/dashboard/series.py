"""Time series for the dashboard's charts: per-bucket figures over a trailing span.

Requests: every bucket is one ``RequestRollups.figures`` call over exactly that bucket, so a
bucket's p50/p95/p99 are quantiles of the histograms merged across workers and hosts (never an
average of percentiles), and its counts are the rollups' own. The rollups have no per-bucket
query, and this is one built only from their public window query.

Payments: one grouped count per series over the business events table (the business feature
offers figures over one window, not per bucket; asking it once per bucket would cost eight
queries a bucket).

The last bucket is the one ``now`` falls in: partial, so new traffic shows at the next flush
instead of at the next minute; its ``seconds`` says how much of it has elapsed and ``complete``
is false. Legends read the last complete bucket, and say which (``latest``).

Decoding a day of minute histograms for every refresh would cost seconds, so a ``BucketMemo``
keeps each bucket's figures with the request count they were computed from. Every refresh
first reads the count of every bucket in one grouped SUM (no histogram); a remembered bucket
is reused only while the store still holds exactly that many requests in it. A flush only
ever adds requests to a bucket, so an unchanged count means unchanged rows: the memo answers
what the store would, in every worker alike, and samples that reach the store late (a flush
retried after a store outage) show at the next refresh.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Integer, cast, func, select

from monitoring.business.events import FAILED, SUCCEEDED
from monitoring.clock import isoformat
from monitoring.durations import HOUR
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.rollups import RequestRollups
from monitoring.store.business_tables import payment_events
from monitoring.store.database import Store


@dataclass(frozen=True)
class SeriesSpec:
    """A trailing span cut into buckets of ``step`` seconds."""

    label: str
    span: int
    step: int

    def __post_init__(self) -> None:
        if self.step <= 0 or self.span % self.step:
            raise ValueError(f"series {self.label}: the span must be a whole number of steps")

    @property
    def buckets(self) -> int:
        return self.span // self.step

    def starts(self, now: float) -> list[float]:
        """Bucket starts, oldest first; the last bucket holds ``now``."""
        last = math.floor(now / self.step) * self.step
        return [last - (self.buckets - 1 - i) * self.step for i in range(self.buckets)]


LAST_HOUR = SeriesSpec("1h", 3600, 60)
LAST_DAY = SeriesSpec("24h", 86400, 900)
SERIES = (LAST_HOUR, LAST_DAY)


@dataclass(frozen=True)
class RequestPoint:
    start: float
    seconds: float  # elapsed part of the bucket (less than the step for the current one)
    count: int
    errors: int  # 5xx responses
    p50: float | None  # seconds
    p95: float | None
    p99: float | None


@dataclass(frozen=True)
class PaymentPoint:
    start: float
    succeeded: int
    failed: int


class BucketMemo:
    """Figures of buckets already computed, each with the request count it was computed from."""

    def __init__(self) -> None:
        # (service or None for all, step, start) -> point: one span per series per service viewed.
        self._points: dict[tuple[str | None, int, float], RequestPoint] = {}
        self._lock = threading.Lock()

    def get(self, step: int, start: float, count: int, service: str | None = None) -> RequestPoint | None:
        """The remembered bucket, if the store still holds ``count`` requests in it."""
        with self._lock:
            found = self._points.get((service, step, start))
        return found if found is not None and found.count == count else None

    def put(self, step: int, point: RequestPoint, service: str | None = None) -> None:
        with self._lock:
            self._points[(service, step, point.start)] = point

    def forget_before(self, step: int, start: float) -> None:
        """Drop the buckets of ``step`` that fell out of the span (keeps the memo at one span per series)."""
        with self._lock:
            for key in [k for k in self._points if k[1] == step and k[2] < start]:
                del self._points[key]


def request_series(rollups: RequestRollups, spec: SeriesSpec, now: float,
                   memo: BucketMemo | None = None, service: str | None = None) -> list[RequestPoint]:
    """Requests of the monitored app (monitoring endpoints left out, as in every SLO figure) per bucket;
    of one service, or every service combined when ``service`` is None."""
    starts = spec.starts(now)
    if spec.step % HOUR and starts[0] < now - rollups.minute_horizon:
        # Older minutes are merged into hour rows: a bucket shorter than an hour would read the whole hour.
        raise ValueError(f"series {spec.label}: buckets shorter than an hour only within the minute horizon")
    counts = (rollups.counts_per_bucket(starts[0], spec.step, spec.buckets, service=service)
              if memo is not None else None)
    if memo is not None:
        memo.forget_before(spec.step, starts[0])
    points = []
    for i, start in enumerate(starts):
        elapsed = max(0.0, min(start + spec.step, now) - start)
        known = memo.get(spec.step, start, counts[i], service) if memo is not None and counts is not None else None
        if known is not None:
            points.append(replace(known, seconds=elapsed))
            continue
        figures = rollups.figures(TimeWindow(start, start + spec.step, f"{spec.step}s"), service=service)
        p50, p95, p99 = figures.histogram.quantiles((0.5, 0.95, 0.99))
        point = RequestPoint(start, elapsed, figures.count, figures.errors, p50, p95, p99)
        if memo is not None:
            memo.put(spec.step, point, service)
        points.append(point)
    return points


def payment_series(store: Store, spec: SeriesSpec, now: float) -> list[PaymentPoint]:
    """Succeeded and failed payments per bucket, in one grouped query."""
    starts = spec.starts(now)
    first, end = starts[0], starts[-1] + spec.step
    t = payment_events
    offset = (t.c.at - first) / spec.step
    # SQLite's CAST truncates, which is floor here (at >= first); PostgreSQL's rounds, so floor it.
    index = func.floor(offset) if store.dialect == "postgresql" else cast(offset, Integer)
    bucket = index.label("bucket")
    counts = {i: {SUCCEEDED: 0, FAILED: 0} for i in range(spec.buckets)}
    with store.read() as conn:
        rows = conn.execute(
            select(bucket, t.c.outcome, func.count())
            .where(t.c.at >= first, t.c.at < end)
            .group_by(bucket, t.c.outcome)
        ).all()
    for i, outcome, count in rows:
        slot = counts.get(int(i))
        if slot is not None and outcome in slot:
            slot[outcome] += int(count)
    return [PaymentPoint(starts[i], counts[i][SUCCEEDED], counts[i][FAILED]) for i in range(spec.buckets)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def series_json(spec: SeriesSpec, now: float, requests: list[RequestPoint],
                payments: list[PaymentPoint] | None) -> dict[str, Any]:
    """One chartable series: a point per bucket (latency in ms, counts per bucket), and ``latest``, the last
    complete bucket, which legends and summaries read (the current bucket is still filling)."""
    points = []
    for i, point in enumerate(requests):
        item: dict[str, Any] = {
            "at": isoformat(point.start),
            "seconds": round(point.seconds, 3),
            "complete": point.seconds >= spec.step,
            "requests": point.count,
            "errors": point.errors,
            "errorShare": round(point.errors / point.count, 6) if point.count else None,
            "p50": _ms(point.p50),
            "p95": _ms(point.p95),
            "p99": _ms(point.p99),
        }
        if payments is not None:
            item["payments"] = {"succeeded": payments[i].succeeded, "failed": payments[i].failed}
        points.append(item)
    first = requests[0].start if requests else now
    complete = [i for i, item in enumerate(points) if item["complete"]]
    latest = None
    if complete:
        start = requests[complete[-1]].start
        figures = {k: v for k, v in points[complete[-1]].items() if k not in ("at", "seconds", "complete")}
        latest = {"from": isoformat(start), "to": isoformat(start + spec.step), **figures}
    return {
        "window": spec.label,
        "stepSeconds": spec.step,
        "from": isoformat(first),
        "to": isoformat(now),
        "points": points,
        "latest": latest,
    }
