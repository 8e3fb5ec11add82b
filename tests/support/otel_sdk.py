"""The real OpenTelemetry Python SDK, producing the exact bytes its OTLP/HTTP exporter sends.

``SpanRecorder`` wraps a TracerProvider with an InMemorySpanExporter; ``otlp_bytes`` runs the
exporter's own encoder (``encode_spans``) over the finished spans, which is what
``OTLPSpanExporter.export`` serialises and posts. ``MetricRecorder`` does the same for metrics
with an InMemoryMetricReader and ``encode_metrics``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

NANOS = 1_000_000_000


class SpanRecorder:
    """A TracerProvider for one service whose finished spans stay in memory."""

    def __init__(self, service: str | None = "shop", resource: Mapping[str, Any] | None = None) -> None:
        attributes = dict(resource or {})
        if service is not None:
            attributes["service.name"] = service
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(attributes))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("centinela.tests", "1.0")

    def span(
        self,
        name: str,
        start_ns: int,
        end_ns: int,
        *,
        kind: SpanKind = SpanKind.SERVER,
        attributes: Mapping[str, Any] | None = None,
        exception: BaseException | None = None,
    ) -> None:
        """One finished span with exactly these times (and an exception recorded on it, if given)."""
        span = self.tracer.start_span(name, kind=kind, start_time=start_ns, attributes=dict(attributes or {}))
        if exception is not None:
            span.record_exception(exception, timestamp=start_ns + (end_ns - start_ns) // 2)
        span.end(end_time=end_ns)

    def request(
        self, method: str, route: str | None, status: int, start_ns: int, duration_ns: int, **extra: Any
    ) -> None:
        """A server span with the current semantic conventions' HTTP attributes."""
        attributes: dict[str, Any] = {"http.request.method": method, "http.response.status_code": status}
        if route is not None:
            attributes["http.route"] = route
        attributes.update(extra.pop("attributes", {}))
        self.span(f"{method} {route or ''}".strip(), start_ns, start_ns + duration_ns, attributes=attributes, **extra)

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def otlp_bytes(self) -> bytes:
        """The ExportTraceServiceRequest the OTLP/HTTP exporter would post for these spans."""
        return encode_spans(self.spans).SerializePartialToString()


class MetricRecorder:
    """A MeterProvider with one duration histogram read on demand by an InMemoryMetricReader."""

    def __init__(
        self,
        *,
        service: str = "shop",
        name: str = "http.server.request.duration",
        unit: str = "s",
        exponential: bool = False,
        temporality: AggregationTemporality = AggregationTemporality.DELTA,
        boundaries: Sequence[float] | None = None,
    ) -> None:
        self.reader = InMemoryMetricReader(preferred_temporality={Histogram: temporality})
        views = []
        if exponential:
            views.append(View(instrument_name=name, aggregation=ExponentialBucketHistogramAggregation()))
        self.provider = MeterProvider(
            metric_readers=[self.reader], resource=Resource.create({"service.name": service}), views=views
        )
        meter = self.provider.get_meter("centinela.tests", "1.0")
        advisory = {"explicit_bucket_boundaries_advisory": list(boundaries)} if boundaries is not None else {}
        self.histogram = meter.create_histogram(name, unit=unit, description="request duration", **advisory)

    def record(self, value: float, **attributes: Any) -> None:
        self.histogram.record(value, attributes=attributes)

    def collect(self) -> MetricsData:
        data = self.reader.get_metrics_data()
        assert data is not None, "nothing was recorded"
        return data

    def otlp_bytes(self, data: MetricsData | None = None) -> bytes:
        """The ExportMetricsServiceRequest the OTLP/HTTP exporter would post for one collection."""
        return encode_metrics(data if data is not None else self.collect()).SerializePartialToString()

    def shutdown(self) -> None:
        self.provider.shutdown()
