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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypedDict

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from monitoring.clock import Clock
from monitoring.ingest.cumulative import CumulativeTracker, HistogramPoint, SeriesKey
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


def _digest(attributes: Iterable[KeyValue]) -> bytes:
    hasher = hashlib.blake2b(digest_size=16)
    for attribute in sorted(attributes, key=lambda kv: kv.key):
        hasher.update(attribute.SerializeToString(deterministic=True))
    return hasher.digest()



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

