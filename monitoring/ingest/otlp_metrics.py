"""OTLP metrics: HTTP server duration histograms become request counts and latency histograms.

Read: ``http.server.request.duration`` (semantic conventions 1.2x, unit ``s``) and the older
``http.server.duration`` (unit ``ms``), as explicit-bucket or exponential histograms, with
delta or cumulative temporality. The metric's ``unit`` decides the scale (``s``, ``ms``,
``us``, ``ns``; the name's default when empty). Each data point becomes one
RequestContribution per (service, method, route, status, interval): method, route and status
from the same attributes as spans (``http.request.method``/``http.method``, ``http.route``,
``http.response.status_code``/``http.status_code``); every other attribute is dropped.
Conversion into the store's histogram and its error: see histogram_conversion.

Everything else (other metrics, other instrument kinds, points flagged as holding no
value) is accepted and ignored, counted in ``ignored_data_points``. Points that cannot be
believed (a time before 2000 or more than a day ahead, start after end, buckets that do not
add up to the count, an unknown unit or temporality) are rejected and counted for
``partial_success.rejected_data_points``.

Cumulative points need the previous point of their series to become a delta: see
CumulativeTracker, and its caveat about several worker processes.
"""
from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, TypedDict

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from monitoring.clock import Clock
from monitoring.ingest.histogram_conversion import (
    MAX_SCALE,
    MIN_SCALE,
    ConvertedHistogram,
    explicit_to_histogram,
    exponential_to_histogram,
)
from monitoring.ingest.otlp_encoding import (
    OtlpEncoding,
    OtlpResponse,
    encoding_of,
    metrics_response,
    parse_request,
    wanted_attributes,
)
from monitoring.ingest.otlp_traces import service_of
from monitoring.ingest.records import RequestContribution
from monitoring.ingest.routes import clean_route, normalise_method, parse_status
from monitoring.ingest.timestamps import DEFAULT_BOUNDS, NANOS, TimestampBounds, summarise_rejections

#: Metric name -> seconds per unit when the metric names no unit.
DURATION_METRICS = {"http.server.request.duration": 1.0, "http.server.duration": 0.001}
TIME_UNITS = {"s": 1.0, "ms": 0.001, "us": 1e-6, "\u00b5s": 1e-6, "ns": 1e-9, "min": 60.0}
_POINT_ATTRIBUTES = frozenset(
    {"http.route", "http.request.method", "http.method", "http.response.status_code", "http.status_code"}
)
_DELTA = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
_CUMULATIVE = metrics_pb2.AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_NO_RECORDED_VALUE = metrics_pb2.DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_DEFAULT_MAX_SERIES = 4_096


# --- points and the cumulative tracker ------------------------------------------------------


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


def _digest(attributes: Iterable[KeyValue]) -> bytes:
    hasher = hashlib.blake2b(digest_size=16)
    for attribute in sorted(attributes, key=lambda kv: kv.key):
        hasher.update(attribute.SerializeToString(deterministic=True))
    return hasher.digest()


def _exponential_buckets(point: HistogramPoint, scale: int) -> dict[int, int]:
    """The positive buckets of ``point`` at a scale no finer than its own (index -> count)."""
    shift = (point.scale or 0) - scale
    buckets: dict[int, int] = {}
    for k, count in enumerate(point.counts):
        if count:
            index = (point.offset + k) >> shift
            buckets[index] = buckets.get(index, 0) + count
    return buckets


class _DeltaFields(TypedDict):
    """The HistogramPoint fields a delta has whatever its kind (typed, so ``**`` keeps their types)."""

    start_ns: int
    time_ns: int
    count: int
    total_sum: float | None
    minimum: float | None
    maximum: float | None


def _difference(current: HistogramPoint, previous: HistogramPoint) -> HistogramPoint | None:
    """``current - previous`` over (previous.time, current.time]; None when they do not subtract."""
    total_sum = None
    if current.total_sum is not None and previous.total_sum is not None:
        total_sum = current.total_sum - previous.total_sum
    common: _DeltaFields = {
        "start_ns": previous.time_ns,
        "time_ns": current.time_ns,
        "count": current.count - previous.count,
        "total_sum": total_sum,
        "minimum": current.minimum,  # lifetime extremes: still true bounds of the delta's values
        "maximum": current.maximum,
    }
    if current.scale is None:
        if previous.scale is not None or current.bounds != previous.bounds:
            return None
        counts = tuple(now - before for now, before in zip(current.counts, previous.counts, strict=False))
        if any(n < 0 for n in counts):
            return None
        return HistogramPoint(counts=counts, bounds=current.bounds, **common)
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
    return HistogramPoint(
        counts=counts, scale=current.scale, offset=offset, zero_count=zero, negative_count=negative, **common
    )


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


# --- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricBatch:
    """What one ExportMetricsServiceRequest held, decoded."""

    encoding: OtlpEncoding
    contributions: tuple[RequestContribution, ...] = ()
    rejected_data_points: int = 0
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    ignored_data_points: int = 0  # other metrics, other kinds, points without a value
    baseline_points: int = 0  # first cumulative points that only set a baseline (or retries)

    @property
    def error_message(self) -> str:
        return summarise_rejections(self.rejection_reasons, "data point")

    def response(self) -> OtlpResponse:
        """The ExportMetricsServiceResponse to answer with, in the request's encoding."""
        return metrics_response(self.rejected_data_points, self.error_message, self.encoding)


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _optional(point: object, name: str) -> float | None:
    return getattr(point, name) if point.HasField(name) else None  # type: ignore[attr-defined]


def _explicit_point(point: metrics_pb2.HistogramDataPoint) -> HistogramPoint:
    bounds = tuple(point.explicit_bounds)
    counts = tuple(point.bucket_counts)
    if not counts and not bounds:
        counts = (point.count,)  # only count and sum were sent
    if len(counts) != len(bounds) + 1:
        raise _Rejected("bucket counts do not match the bounds")
    if any(not math.isfinite(b) for b in bounds) or any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        raise _Rejected("bounds are not finite and ascending")
    if sum(counts) != point.count:
        raise _Rejected("bucket counts do not add up to the count")
    return HistogramPoint(
        start_ns=point.start_time_unix_nano,
        time_ns=point.time_unix_nano,
        count=point.count,
        total_sum=_optional(point, "sum"),
        minimum=_optional(point, "min"),
        maximum=_optional(point, "max"),
        counts=counts,
        bounds=bounds,
    )


def _exponential_point(point: metrics_pb2.ExponentialHistogramDataPoint) -> HistogramPoint:
    if not MIN_SCALE <= point.scale <= MAX_SCALE:
        raise _Rejected(f"scale outside {MIN_SCALE}..{MAX_SCALE}")
    counts = tuple(point.positive.bucket_counts)
    negative = sum(point.negative.bucket_counts)
    if sum(counts) + negative + point.zero_count != point.count:
        raise _Rejected("bucket counts do not add up to the count")
    return HistogramPoint(
        start_ns=point.start_time_unix_nano,
        time_ns=point.time_unix_nano,
        count=point.count,
        total_sum=_optional(point, "sum"),
        minimum=_optional(point, "min"),
        maximum=_optional(point, "max"),
        counts=counts,
        scale=point.scale,
        offset=point.positive.offset,
        zero_count=point.zero_count,
        negative_count=negative,
    )


class _ConversionOptions(TypedDict):
    """The keyword arguments both histogram conversions take (typed, so ``**`` keeps their types)."""

    unit_seconds: float
    total_sum: float | None
    minimum: float | None
    maximum: float | None
    exact_extremes: bool


def _convert(point: HistogramPoint, unit_seconds: float, exact_extremes: bool) -> ConvertedHistogram:
    options: _ConversionOptions = {
        "unit_seconds": unit_seconds,
        "total_sum": point.total_sum,
        "minimum": point.minimum,
        "maximum": point.maximum,
        "exact_extremes": exact_extremes,
    }
    if point.scale is None:
        return explicit_to_histogram(point.bounds, point.counts, **options)
    return exponential_to_histogram(
        point.scale, point.zero_count, point.offset, point.counts, negative_count=point.negative_count, **options
    )


def _unit_seconds(metric: metrics_pb2.Metric) -> float:
    unit = metric.unit.strip()
    if not unit:
        return DURATION_METRICS[metric.name]
    seconds = TIME_UNITS.get(unit)
    if seconds is None:
        raise _Rejected("unit is not a time unit")
    return seconds


def _points_of(metric: metrics_pb2.Metric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def decode_metrics(
    body: bytes,
    content_type: str | None,
    *,
    clock: Clock,
    tracker: CumulativeTracker,
    bounds: TimestampBounds = DEFAULT_BOUNDS,
) -> MetricBatch:
    """Decode an (already inflated) OTLP/HTTP metrics body.

    Raises UnsupportedMediaType (415) or UndecodableBody (400); points it cannot believe are
    counted in the batch, not raised.
    """
    encoding = encoding_of(content_type)
    request = parse_request(body, encoding, ExportMetricsServiceRequest)
    contributions: list[RequestContribution] = []
    reasons: dict[str, int] = {}
    ignored = 0
    baselines = 0

    now = clock.now()

    def reject(reason: str, count: int = 1) -> None:
        reasons[reason] = reasons.get(reason, 0) + count

    for resource_metrics in request.resource_metrics:
        service = service_of(resource_metrics.resource.attributes)
        resource_digest = _digest(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if metric.name not in DURATION_METRICS or kind not in ("histogram", "exponential_histogram"):
                    ignored += _points_of(metric)
                    continue
                data = getattr(metric, kind)
                try:
                    unit_seconds = _unit_seconds(metric)
                    if data.aggregation_temporality not in (_DELTA, _CUMULATIVE):
                        raise _Rejected("temporality is unspecified")
                except _Rejected as refusal:
                    reject(refusal.reason, len(data.data_points))
                    continue
                cumulative = data.aggregation_temporality == _CUMULATIVE
                for raw in data.data_points:
                    if raw.flags & _NO_RECORDED_VALUE:
                        ignored += 1
                        continue
                    try:
                        point = _explicit_point(raw) if kind == "histogram" else _exponential_point(raw)
                        end = point.time_ns / NANOS
                        reason = bounds.check_instant(end, now)
                        if reason is not None:
                            raise _Rejected(reason)
                        if point.start_ns > point.time_ns:
                            raise _Rejected("start after end")
                    except _Rejected as refusal:
                        reject(refusal.reason)
                        continue
                    if cumulative:
                        key = SeriesKey(resource_digest, metric.name, metric.unit, _digest(raw.attributes), point.start_ns)
                        delta = tracker.delta(key, point)
                        if delta is None:
                            baselines += 1
                            continue
                        point = delta
                    if point.count <= 0:
                        continue
                    converted = _convert(point, unit_seconds, exact_extremes=not cumulative)
                    attributes = wanted_attributes(raw.attributes, _POINT_ATTRIBUTES)
                    start = point.start_ns / NANOS if point.start_ns else end
                    contributions.append(
                        RequestContribution(
                            service=service,
                            method=normalise_method(attributes.get("http.request.method", attributes.get("http.method"))),
                            route=clean_route(attributes.get("http.route")),
                            status=parse_status(
                                attributes.get("http.response.status_code", attributes.get("http.status_code"))
                            ),
                            interval_start=min(start, end),
                            interval_end=end,
                            histogram=converted.histogram,
                            max_relative_error=converted.max_relative_error,
                        )
                    )
    return MetricBatch(
        encoding=encoding,
        contributions=tuple(contributions),
        rejected_data_points=sum(reasons.values()),
        rejection_reasons=reasons,
        ignored_data_points=ignored,
        baseline_points=baselines,
    )

