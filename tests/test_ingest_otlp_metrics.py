"""OTLP metrics as the real OpenTelemetry Python SDK exports them: duration histograms (explicit and
exponential, delta and cumulative, seconds and the older milliseconds) become request counts and
store histograms with a stated error; everything else is accepted and ignored."""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExportResult

from monitoring.clock import ManualClock
from monitoring.ingest.body import OTLP_BODY_LIMITS, decode_body
from monitoring.ingest.errors import UndecodableBody, UnsupportedMediaType
from monitoring.ingest.histogram_conversion import explicit_to_histogram, exponential_to_histogram
from monitoring.ingest.otlp_metrics import CumulativeTracker, HistogramPoint, SeriesKey, decode_metrics
from monitoring.ingest.records import RequestContribution
from monitoring.metrics.histogram import RELATIVE_ACCURACY, nearest_rank
from tests.support.otel_sdk import NANOS, MetricRecorder
from tests.support.receiver import RecordingHTTPServer

DATA = Path(__file__).parent / "data" / "otlp"
PROTOBUF = "application/x-protobuf"
# The bucket advice of opentelemetry-instrumentation for http.server.request.duration.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
GET_TICKET = {"http.request.method": "GET", "http.route": "/tickets/:id", "http.response.status_code": 200,
              "url.scheme": "https", "server.address": "shop.example"}
POST_CHECKOUT = {"http.request.method": "POST", "http.route": "/checkout", "http.response.status_code": 500}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(time.time())


def tracker_before_now(clock: ManualClock) -> CumulativeTracker:
    """A tracker created before the SDK's series start, as a Centinela running before the app."""
    return CumulativeTracker(ManualClock(clock.now() - 60))


def decode(body: bytes, clock: ManualClock, tracker: CumulativeTracker | None = None):
    return decode_metrics(body, PROTOBUF, clock=clock, tracker=tracker if tracker is not None else tracker_before_now(clock))


def by_route(contributions: tuple[RequestContribution, ...]) -> dict[str, RequestContribution]:
    return {c.route: c for c in contributions}


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[nearest_rank(q, len(ordered)) - 1]


# --- explicit buckets -------------------------------------------------------------------------


def test_delta_explicit_histogram_gives_exact_counts_per_route_and_status(clock: ManualClock) -> None:
    sdk = MetricRecorder(boundaries=SECONDS_BUCKETS)
    for value in (0.012, 0.02, 0.03, 0.2, 0.4):
        sdk.record(value, **GET_TICKET)
    sdk.record(1.2, **POST_CHECKOUT)
    batch = decode(sdk.otlp_bytes(), clock)
    routes = by_route(batch.contributions)
    ticket, checkout = routes["/tickets/:id"], routes["/checkout"]
    assert (ticket.service, ticket.method, ticket.status, ticket.count) == ("shop", "GET", 200, 5)
    assert (checkout.method, checkout.status, checkout.count) == ("POST", 500, 1)
    assert ticket.histogram.sum == pytest.approx(0.662)
    # Delta points carry this interval's exact min and max.
    assert (ticket.histogram.min, ticket.histogram.max) == (0.012, 0.4)
    assert ticket.interval_start < ticket.interval_end <= clock.now() + 1
    assert batch.rejected_data_points == 0 and batch.response().body == b""


def test_explicit_buckets_state_their_error_and_stay_inside_it(clock: ManualClock) -> None:
    rng = random.Random(7)
    values = [min(rng.lognormvariate(math.log(0.08), 0.7), 9.0) for _ in range(3_000)]
    sdk = MetricRecorder(boundaries=SECONDS_BUCKETS)
    for value in values:
        sdk.record(value, **GET_TICKET)
    (contribution,) = decode(sdk.otlp_bytes(), clock).contributions
    # The widest occupied bucket sets the error: a p95 from default buckets is not within 1 %.
    assert contribution.max_relative_error > 0.2
    for q in (0.5, 0.95, 0.99):
        estimate = contribution.histogram.quantile(q)
        true_value = exact_quantile(values, q)
        assert abs(estimate - true_value) <= contribution.max_relative_error * true_value


def test_older_duration_metric_in_milliseconds(clock: ManualClock) -> None:
    sdk = MetricRecorder(name="http.server.duration", unit="ms")  # the SDK's default ms buckets
    for value in (12.0, 30.0, 180.0):
        sdk.record(value, **{"http.method": "GET", "http.route": "/tickets/<id>", "http.status_code": 200,
                             "http.target": "/tickets/8812?email=jane@example.com"})
    (contribution,) = decode(sdk.otlp_bytes(), clock).contributions
    assert (contribution.method, contribution.route, contribution.status, contribution.count) == (
        "GET", "/tickets/<id>", 200, 3)
    assert contribution.histogram.sum == pytest.approx(0.222)
    assert contribution.histogram.max == pytest.approx(0.18)
    assert "8812" not in repr(contribution)


def test_points_without_attributes_are_unmatched_with_unknown_method(clock: ManualClock) -> None:
    sdk = MetricRecorder(boundaries=SECONDS_BUCKETS)
    sdk.record(0.05)
    (contribution,) = decode(sdk.otlp_bytes(), clock).contributions
    assert (contribution.method, contribution.route, contribution.status) == ("_OTHER", "<unmatched>", 0)


# --- exponential buckets ----------------------------------------------------------------------


def test_exponential_histogram_p95_within_its_scale_error(clock: ManualClock) -> None:
    rng = random.Random(11)
    values = [rng.lognormvariate(math.log(0.12), 0.6) for _ in range(5_000)]
    sdk = MetricRecorder(exponential=True)
    for value in values:
        sdk.record(value, **GET_TICKET)
    (contribution,) = decode(sdk.otlp_bytes(), clock).contributions
    assert contribution.count == len(values)
    # 160 buckets over two decades leave the SDK at scale 4: 2.2 %, plus the store's 1 %.
    assert contribution.max_relative_error < 0.035
    for q in (0.5, 0.95, 0.99):
        estimate = contribution.histogram.quantile(q)
        true_value = exact_quantile(values, q)
        assert abs(estimate - true_value) <= contribution.max_relative_error * true_value, q


def test_fine_exponential_scale_is_within_the_store_error_plus_its_own(clock: ManualClock) -> None:
    values = [0.1 + i * 0.0001 for i in range(100)]  # a narrow spread: the SDK keeps a fine scale
    sdk = MetricRecorder(exponential=True)
    for value in values:
        sdk.record(value, **GET_TICKET)
    (contribution,) = decode(sdk.otlp_bytes(), clock).contributions
    assert contribution.max_relative_error < RELATIVE_ACCURACY + 0.002
    estimate = contribution.histogram.quantile(0.95)
    assert abs(estimate - exact_quantile(values, 0.95)) <= contribution.max_relative_error * exact_quantile(values, 0.95)


# --- cumulative temporality -------------------------------------------------------------------


@pytest.mark.parametrize("exponential", [False, True])
def test_cumulative_points_turn_into_deltas(exponential: bool, clock: ManualClock) -> None:
    sdk = MetricRecorder(exponential=exponential, temporality=AggregationTemporality.CUMULATIVE,
                         boundaries=None if exponential else SECONDS_BUCKETS)
    tracker = tracker_before_now(clock)
    for value in (0.1, 0.105, 0.11):
        sdk.record(value, **GET_TICKET)
    first = decode(sdk.otlp_bytes(), clock, tracker)
    # Scale drops when the spread widens: the previous point is re-bucketed to subtract.
    for value in (0.001, 10.0):
        sdk.record(value, **GET_TICKET)
    second = decode(sdk.otlp_bytes(), clock, tracker)
    third = decode(sdk.otlp_bytes(), clock, tracker)  # nothing new since
    assert [c.count for c in first.contributions] == [3]
    (delta,) = second.contributions
    assert delta.count == 2 and delta.histogram.sum == pytest.approx(10.001)
    assert delta.interval_start == first.contributions[0].interval_end
    assert delta.histogram.quantile(1.0) == pytest.approx(10.0, rel=delta.max_relative_error)
    assert third.contributions == () and tracker.series == 1


def test_cumulative_series_older_than_the_tracker_only_sets_a_baseline(clock: ManualClock) -> None:
    sdk = MetricRecorder(temporality=AggregationTemporality.CUMULATIVE, boundaries=SECONDS_BUCKETS)
    for value in (0.1, 0.2):
        sdk.record(value, **GET_TICKET)
    late_tracker = CumulativeTracker(ManualClock(clock.now() + 1))  # Centinela restarted after the app
    first = decode(sdk.otlp_bytes(), clock, late_tracker)
    sdk.record(0.3, **GET_TICKET)
    second = decode(sdk.otlp_bytes(), clock, late_tracker)
    assert first.contributions == () and first.baseline_points == 1
    assert [c.count for c in second.contributions] == [1]


def test_a_retried_export_counts_once(clock: ManualClock) -> None:
    sdk = MetricRecorder(temporality=AggregationTemporality.CUMULATIVE, boundaries=SECONDS_BUCKETS)
    sdk.record(0.1, **GET_TICKET)
    body = sdk.otlp_bytes()
    tracker = tracker_before_now(clock)
    assert [c.count for c in decode(body, clock, tracker).contributions] == [1]
    retried = decode(body, clock, tracker)
    assert retried.contributions == () and retried.baseline_points == 1


def test_tracker_is_bounded_and_an_evicted_series_never_counts_twice(clock: ManualClock) -> None:
    tracker = CumulativeTracker(ManualClock(clock.now() - 60), max_series=2)
    start = int((clock.now() - 30) * NANOS)

    def point(count: int, at: float) -> HistogramPoint:
        return HistogramPoint(start_ns=start, time_ns=int(at * NANOS), count=count, total_sum=0.1 * count,
                              minimum=0.1, maximum=0.1, counts=(0, count), bounds=(0.05,))

    keys = [SeriesKey(b"r", "http.server.request.duration", "s", bytes([i]), start) for i in range(3)]
    now = clock.now()
    assert tracker.delta(keys[0], point(5, now - 3)).count == 5
    assert tracker.delta(keys[1], point(5, now - 3)).count == 5
    tracker._clock.set(now)  # the eviction happens now, after the series started
    assert tracker.delta(keys[2], point(5, now - 2)).count == 5
    assert tracker.series == 2 and tracker.evictions == 1
    # keys[0] was forgotten: its next cumulative point only sets a new baseline.
    assert tracker.delta(keys[0], point(7, now - 1)) is None
    assert tracker.delta(keys[0], point(9, now)).count == 2


def test_a_count_that_goes_down_is_a_reset(clock: ManualClock) -> None:
    tracker = CumulativeTracker(ManualClock(clock.now() - 60))
    start = int((clock.now() - 30) * NANOS)
    key = SeriesKey(b"r", "m", "s", b"a", start)
    first = HistogramPoint(start, int((clock.now() - 2) * NANOS), 10, 1.0, None, None, (10, 0), (0.5,))
    again = HistogramPoint(start, int((clock.now() - 1) * NANOS), 3, 0.3, None, None, (3, 0), (0.5,))
    assert tracker.delta(key, first).count == 10
    assert tracker.delta(key, again).count == 3


# --- what is ignored, what is rejected -------------------------------------------------------


def test_specification_metrics_example_is_accepted_and_ignored(clock: ManualClock) -> None:
    batch = decode_metrics((DATA / "metrics.json").read_bytes(), "application/json", clock=clock,
                           tracker=tracker_before_now(clock))
    assert batch.contributions == () and batch.rejected_data_points == 0
    assert batch.ignored_data_points == 4  # a counter, a gauge, a histogram and an exponential one
    assert batch.response().body == b"{}"


def test_the_specification_example_renamed_to_a_duration_metric_is_read(clock: ManualClock) -> None:
    document = json.loads((DATA / "metrics.json").read_text())
    metrics = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    histogram = next(m for m in metrics if m["name"] == "my.histogram")
    histogram.update(name="http.server.request.duration", unit="s")
    histogram["histogram"]["aggregationTemporality"] = 1  # delta
    point = histogram["histogram"]["dataPoints"][0]
    point["startTimeUnixNano"] = str(int((clock.now() - 60) * NANOS))
    point["timeUnixNano"] = str(int(clock.now() * NANOS))
    batch = decode_metrics(json.dumps(document).encode(), "application/json", clock=clock,
                           tracker=tracker_before_now(clock))
    (contribution,) = batch.contributions
    assert (contribution.service, contribution.count, contribution.histogram.sum) == ("my.service", 2, 2.0)
    assert batch.ignored_data_points == 3


def test_other_metrics_from_the_sdk_are_ignored(clock: ManualClock) -> None:
    sdk = MetricRecorder(boundaries=SECONDS_BUCKETS)
    meter = sdk.provider.get_meter("other")
    meter.create_counter("orders.placed").add(3)
    meter.create_histogram("db.client.operation.duration", unit="s").record(0.01)
    meter.create_up_down_counter("http.server.active_requests").add(1)
    sdk.record(0.05, **GET_TICKET)
    batch = decode(sdk.otlp_bytes(), clock)
    assert [c.route for c in batch.contributions] == ["/tickets/:id"]
    assert batch.ignored_data_points == 3 and batch.rejected_data_points == 0


def test_sdk_points_with_bad_units_times_or_counts_are_rejected(clock: ManualClock) -> None:
    sdk = MetricRecorder(boundaries=SECONDS_BUCKETS)
    for value in (0.1, 0.2):
        sdk.record(value, **GET_TICKET)
    request = ExportMetricsServiceRequest.FromString(sdk.otlp_bytes())
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    good = metrics[0]

    def variant(change) -> None:
        copy = metrics.add()
        copy.CopyFrom(good)
        change(copy)

    variant(lambda m: setattr(m, "unit", "By"))
    variant(lambda m: m.histogram.data_points[0].bucket_counts.__setitem__(0, 7))
    variant(lambda m: setattr(m.histogram.data_points[0], "time_unix_nano", 900_000_000 * NANOS))
    variant(lambda m: setattr(m.histogram.data_points[0], "time_unix_nano", int((clock.now() + 3 * 86_400) * NANOS)))
    variant(lambda m: setattr(m.histogram, "aggregation_temporality", 0))
    variant(lambda m: m.histogram.data_points[0].explicit_bounds.__setitem__(1, 0.001))
    batch = decode_metrics(request.SerializeToString(), PROTOBUF, clock=clock, tracker=tracker_before_now(clock))
    assert [c.count for c in batch.contributions] == [2]
    assert batch.rejected_data_points == 6
    assert batch.rejection_reasons == {
        "unit is not a time unit": 1,
        "bucket counts do not add up to the count": 1,
        "timestamp before 2000": 1,
        "timestamp more than 86400 s in the future": 1,
        "temporality is unspecified": 1,
        "bounds are not finite and ascending": 1,
    }
    answer = ExportMetricsServiceResponse.FromString(batch.response().body)
    assert answer.partial_success.rejected_data_points == 6
    assert answer.partial_success.error_message.startswith("6 data points rejected:")


@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_other_content_types_are_415(content_type: str | None, clock: ManualClock) -> None:
    with pytest.raises(UnsupportedMediaType):
        decode_metrics(b"", content_type, clock=clock, tracker=tracker_before_now(clock))


def test_undecodable_metrics_body_is_400(clock: ManualClock) -> None:
    with pytest.raises(UndecodableBody):
        decode_metrics(b"\x0a\x05\x0a\x03", PROTOBUF, clock=clock, tracker=tracker_before_now(clock))


# --- the real exporter, over HTTP --------------------------------------------------------------


def test_real_metric_exporter_gzip_body_decodes(clock: ManualClock) -> None:
    sdk = MetricRecorder(exponential=True)
    for value in (0.05, 0.07, 0.09):
        sdk.record(value, **GET_TICKET)
    data = sdk.collect()
    with RecordingHTTPServer() as server:
        server.respond(200, b"", {"Content-Type": PROTOBUF})
        exporter = OTLPMetricExporter(endpoint=server.url + "/v1/metrics", compression=Compression.Gzip, timeout=5)
        assert exporter.export(data) is MetricExportResult.SUCCESS
        exporter.shutdown()
        (sent,) = server.wait_for(1, path="/v1/metrics")
    assert sent.header("content-encoding") == "gzip" and sent.header("content-type") == PROTOBUF
    body = decode_body(sent.body, sent.header("content-encoding"), OTLP_BODY_LIMITS)
    (contribution,) = decode_metrics(body, sent.header("content-type"), clock=clock,
                                     tracker=tracker_before_now(clock)).contributions
    assert contribution.count == 3 and contribution.route == "/tickets/:id"


# --- the conversions on their own --------------------------------------------------------------


def test_explicit_conversion_places_counts_at_geometric_midpoints() -> None:
    converted = explicit_to_histogram((0.1, 0.4), (0, 10, 0), unit_seconds=1.0)
    assert converted.histogram.count == 10
    assert converted.histogram.quantile(0.5) == pytest.approx(0.2, rel=RELATIVE_ACCURACY)
    assert converted.max_relative_error == pytest.approx((1 + 1.0) * (1 + RELATIVE_ACCURACY) - 1)  # sqrt(4) - 1


def test_explicit_conversion_uses_min_and_max_to_narrow_the_edge_buckets() -> None:
    converted = explicit_to_histogram((0.1,), (4, 6), unit_seconds=1.0, minimum=0.05, maximum=0.2,
                                      total_sum=1.0, exact_extremes=True)
    assert converted.histogram.min == 0.05 and converted.histogram.max == 0.2
    assert math.isfinite(converted.max_relative_error)
    unbounded = explicit_to_histogram((0.1,), (4, 6), unit_seconds=1.0)
    assert unbounded.max_relative_error == math.inf


def test_exponential_conversion_error_follows_the_scale() -> None:
    for scale, bound in ((3, 0.044), (5, 0.011), (8, 0.0014)):
        converted = exponential_to_histogram(scale, 0, 0, (5,), unit_seconds=1.0)
        own = converted.max_relative_error - RELATIVE_ACCURACY
        assert own == pytest.approx(bound, abs=0.0012), scale


def test_exponential_conversion_survives_absurd_offsets() -> None:
    converted = exponential_to_histogram(-10, 1, 2_000_000_000, (3,), unit_seconds=1.0, negative_count=2)
    assert converted.histogram.count == 6 and converted.histogram.zero_count == 3
