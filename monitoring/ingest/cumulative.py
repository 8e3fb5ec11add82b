"""Cumulative OTLP histogram points become deltas: the per-process memory of each series' last point.

Apart from the decoder (monitoring.ingest.otlp_metrics) so that the composition root builds
one tracker per app without importing the OTLP protobuf stack, which a worker loads only on
its first OTLP metrics request.
"""
from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

from monitoring.clock import Clock
from monitoring.ingest.timestamps import NANOS

_DEFAULT_MAX_SERIES = 4_096


@dataclass(frozen=True)
class HistogramPoint:
    """One histogram data point, explicit (``scale is None``) or exponential, in the sender's unit."""

    start_ns: int
    time_ns: int
    count: int
    total_sum: float | None
    minimum: float | None
    maximum: float | None
    counts: tuple[int, ...]  # explicit buckets, or the exponential positive buckets from ``offset``
    bounds: tuple[float, ...] = ()
    scale: int | None = None
    offset: int = 0
    zero_count: int = 0
    negative_count: int = 0


class SeriesKey(NamedTuple):
    """What identifies one cumulative series: resource, metric, attributes and start time."""

    resource: bytes  # digest of the resource's attributes
    metric: str
    unit: str
    attributes: bytes  # digest of the point's attributes
    start_ns: int


def _exponential_buckets(point: HistogramPoint, scale: int) -> dict[int, int]:
    """The positive buckets of ``point`` at a scale no finer than its own (index -> count)."""
    shift = (point.scale or 0) - scale
    buckets: dict[int, int] = {}
    for k, count in enumerate(point.counts):
        if count:
            index = (point.offset + k) >> shift
            buckets[index] = buckets.get(index, 0) + count
    return buckets


def _difference(current: HistogramPoint, previous: HistogramPoint) -> HistogramPoint | None:
    """``current - previous`` over (previous.time, current.time]; None when they do not subtract."""
    total_sum = None
    if current.total_sum is not None and previous.total_sum is not None:
        total_sum = current.total_sum - previous.total_sum
    # The delta keeps the current point's shape (bounds, or scale) and lifetime extremes: the
    # minimum and maximum are still true bounds of the delta's values.
    delta = dataclasses.replace(current, start_ns=previous.time_ns, count=current.count - previous.count,
                                total_sum=total_sum)
    if current.scale is None:
        if previous.scale is not None or current.bounds != previous.bounds:
            return None
        counts = tuple(now - before for now, before in zip(current.counts, previous.counts, strict=False))
        if any(n < 0 for n in counts):
            return None
        return dataclasses.replace(delta, counts=counts)
    if previous.scale is None or previous.scale < current.scale:
        return None  # a cumulative exponential histogram only ever coarsens its scale
    now = _exponential_buckets(current, current.scale)
    before = _exponential_buckets(previous, current.scale)
    indices = sorted(set(now) | set(before))
    if not indices:
        counts = ()
        offset = 0
    else:
        offset = indices[0]
        counts = tuple(now.get(i, 0) - before.get(i, 0) for i in range(offset, indices[-1] + 1))
    zero = current.zero_count - previous.zero_count
    negative = current.negative_count - previous.negative_count
    if any(n < 0 for n in counts) or zero < 0 or negative < 0:
        return None
    return dataclasses.replace(delta, counts=counts, offset=offset, zero_count=zero, negative_count=negative)


class CumulativeTracker:
    """Turns cumulative histogram points into deltas by remembering each series' last point.

    Per process: the memory is this object's, so it is right only when every point of a
    series reaches the same tracker. Under ``gunicorn -w N`` (sync workers close each
    connection) successive exports land on different workers, each seeing a different subset
    of the points, and their deltas overlap. Phase 2 must therefore either keep this state in
    the store (a shared implementation with the same ``delta`` method), run the metrics
    endpoint in one process, or tell users to export with delta temporality
    (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta``), which needs no memory.

    The first point of a series counts in full when the series started after this tracker's
    horizon (its creation, or the last eviction), since no earlier point can have been
    counted; otherwise it only sets the baseline (one interval is lost rather than the
    series' whole history counted twice after a restart). A point not newer than the last
    one (an exporter's retry) adds nothing. A count that went down is a reset: the new value
    counts in full. At most ``max_series`` series are remembered, least recently seen evicted.
    """

    def __init__(self, clock: Clock, max_series: int = _DEFAULT_MAX_SERIES) -> None:
        if max_series < 1:
            raise ValueError("max_series must be at least 1")
        self._clock = clock
        self._max_series = max_series
        self._lock = threading.Lock()
        self._last: OrderedDict[SeriesKey, HistogramPoint] = OrderedDict()
        self._horizon_ns = int(clock.now() * NANOS)
        self.evictions = 0

    @property
    def series(self) -> int:
        """How many series are remembered."""
        with self._lock:
            return len(self._last)

    def delta(self, key: SeriesKey, point: HistogramPoint) -> HistogramPoint | None:
        """The part of ``point`` not yet counted, or None when there is none to count."""
        with self._lock:
            previous = self._last.get(key)
            if previous is not None and point.time_ns <= previous.time_ns:
                self._last.move_to_end(key)
                return None
            counts_in_full = previous is None and point.start_ns >= self._horizon_ns
            self._remember(key, point)
            if previous is None:
                return point if counts_in_full else None
        if point.count < previous.count:
            return point  # reset without a new start time: everything since is new
        return _difference(point, previous)

    def _remember(self, key: SeriesKey, point: HistogramPoint) -> None:
        self._last[key] = point
        self._last.move_to_end(key)
        while len(self._last) > self._max_series:
            self._last.popitem(last=False)
            self.evictions += 1
            # An evicted series seen again must not count its history twice.
            self._horizon_ns = max(self._horizon_ns, int(self._clock.now() * NANOS))
