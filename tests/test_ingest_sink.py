"""IngestSink: decoded records into the recorder and the error groups, bounded, spans winning."""
from __future__ import annotations

from typing import Any

from monitoring.clock import ManualClock
from monitoring.errors.tracking import list_error_groups
from monitoring.ingest.otlp_encoding import OtlpEncoding
from monitoring.ingest.otlp_metrics import MetricBatch
from monitoring.ingest.otlp_traces import TraceBatch
from monitoring.ingest.records import IngestedError, IngestedRequest, RequestContribution
from monitoring.ingest.sentry_protocol import SentryBatch
from monitoring.ingest.sink import SPANS_WIN_SECONDS
from monitoring.metrics.histogram import LatencyHistogram


def contribution(service: str, at: float, count: int = 10) -> RequestContribution:
    histogram = LatencyHistogram()
    for _ in range(count):
        histogram.record(0.05)
    return RequestContribution(service, "GET", "/a", 200, at - 60, at, histogram, 0.01)


def pending(monitoring: Any) -> dict[tuple[str, str, str], int]:
    found: dict[tuple[str, str, str], int] = {}
    for key, aggregate in monitoring.services.metrics.recorder.drain().items():
        found[(key.service, key.method, key.route)] = found.get((key.service, key.method, key.route), 0) + aggregate.count
    return found


def test_requests_land_in_the_minute_they_ended_under_their_service(monitoring: Any, clock: ManualClock) -> None:
    now = clock.now()
    sink = monitoring.services.ingest.sink
    sink.record_traces(TraceBatch(OtlpEncoding.PROTOBUF, requests=(
        IngestedRequest("shop", "GET", "/a", 200, 0.01, now - 120),
        IngestedRequest("shop", "_OTHER", "/a", 200, 0.01, now),
    )))
    drained = monitoring.services.metrics.recorder.drain()
    assert {(k.minute, k.method, k.service) for k in drained} == {
        (now - 120 - (now - 120) % 60, "GET", "shop"), (now - now % 60, "OTHER", "shop")}


def test_metrics_of_a_service_with_recent_spans_are_dropped_until_its_spans_stop(
    monitoring: Any, clock: ManualClock
) -> None:
    sink = monitoring.services.ingest.sink
    now = clock.now()
    sink.record_traces(TraceBatch(OtlpEncoding.PROTOBUF, requests=(IngestedRequest("shop", "GET", "/a", 200, 0.01, now),)))
    result = sink.record_metrics(MetricBatch(OtlpEncoding.PROTOBUF, contributions=(
        contribution("shop", now), contribution("billing", now))))
    assert result.superseded_contributions == 1
    assert pending(monitoring) == {("shop", "GET", "/a"): 1, ("billing", "GET", "/a"): 10}
    clock.advance(SPANS_WIN_SECONDS + 1)
    later = clock.now()
    assert sink.record_metrics(MetricBatch(OtlpEncoding.PROTOBUF, contributions=(
        contribution("shop", later),))).superseded_contributions == 0
    assert pending(monitoring) == {("shop", "GET", "/a"): 10}


def test_errors_are_grouped_by_their_fingerprint_under_their_service(monitoring: Any, clock: ManualClock) -> None:
    sink = monitoring.services.ingest.sink
    error = IngestedError("shop", "0123456789abcdef", "TypeError", "x is undefined", "", clock.now(), "sentry",
                          location="app.cart:total", route="GET /cart")
    result = sink.record_sentry(SentryBatch(errors=(error, error)))
    assert result.errors == 2
    monitoring.services.errors.flush()
    (group,) = list_error_groups(monitoring.services.store)
    assert (group.fingerprint, group.service, group.count, group.where, group.route) == (
        "0123456789abcdef", "shop", 2, "app.cart:total", "GET /cart")
