"""OTLP traces as the real OpenTelemetry Python SDK exports them (protobuf, through its own encoder
and through the real OTLPSpanExporter posting to a local server), and as the specification's
JSON examples write them: server spans become requests, exceptions become scrubbed errors,
unbelievable spans are rejected and reported in partial_success."""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest
from google.rpc import status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

from monitoring.clock import ManualClock
from monitoring.ingest.body import OTLP_BODY_LIMITS, decode_body
from monitoring.ingest.errors import IngestError, UndecodableBody, UnsupportedMediaType
from monitoring.ingest.otlp_encoding import (
    OtlpEncoding,
    encoding_of,
    failure_response,
    parse_request,
)
from monitoring.ingest.otlp_traces import decode_traces
from monitoring.ingest.records import IngestedRequest
from monitoring.metrics.histogram import RELATIVE_ACCURACY, LatencyHistogram, nearest_rank
from tests.support.otel_sdk import NANOS, SpanRecorder
from tests.support.receiver import RecordingHTTPServer

DATA = Path(__file__).parent / "data" / "otlp"
PROTOBUF = "application/x-protobuf"
EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"


class PaymentDeclined(Exception):
    pass


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def now_ns(clock: ManualClock) -> int:
    return int(clock.now() * NANOS)


def decline() -> PaymentDeclined:
    try:
        raise PaymentDeclined(f"card {CARD} of {EMAIL} declined; Authorization: Bearer {TOKEN}")
    except PaymentDeclined as exc:
        return exc


# --- what the SDK's spans become -------------------------------------------------------------


def test_server_spans_become_requests_with_their_route_method_status_and_duration(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - 10 * NANOS
    recorder.request("GET", "/tickets/:id", 200, start, 12_345_678, attributes={"url.path": "/tickets/8812"})
    recorder.request("POST", "/checkout", 502, start + NANOS, 250_000_000)
    batch = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock)
    assert batch.requests == (
        IngestedRequest("shop", "GET", "/tickets/:id", 200, 0.012345678, (start + 12_345_678) / NANOS),
        IngestedRequest("shop", "POST", "/checkout", 502, 0.25, (start + NANOS + 250_000_000) / NANOS),
    )
    assert batch.rejected_spans == 0 and batch.error_message == ""
    response = batch.response()
    assert response.content_type == PROTOBUF
    assert ExportTraceServiceResponse.FromString(response.body) == ExportTraceServiceResponse()  # no partial_success


def test_older_attribute_names_are_read_too(clock: ManualClock) -> None:
    recorder = SpanRecorder("legacy")
    start = now_ns(clock) - NANOS
    recorder.span("GET", start, start + 5_000_000,
                  attributes={"http.method": "GET", "http.status_code": 404, "http.route": "/a/<x>",
                              "http.target": "/a/1?secret=1"})
    (request,) = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).requests
    assert (request.method, request.route, request.status) == ("GET", "/a/<x>", 404)


def test_span_without_route_is_unmatched_never_the_raw_url(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.span("GET /tickets/8812?email=" + EMAIL, start, start + NANOS // 100,
                  attributes={"http.request.method": "GET", "url.full": f"https://shop/tickets/8812?email={EMAIL}",
                              "url.path": "/tickets/8812", "http.target": "/tickets/8812", "http.response.status_code": 404})
    (request,) = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).requests
    assert request.route == "<unmatched>"
    assert "8812" not in repr(request) and EMAIL not in repr(request)


def test_methods_are_normalised_and_unknown_ones_are_other(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    for method in ("get", "PURGE", "DELETE"):
        recorder.request(method, "/x", 200, start, 1_000_000)
    recorder.span("no method", start, start + 1_000_000, attributes={"http.route": "/y"})
    methods = [r.method for r in decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).requests]
    assert methods == ["GET", "_OTHER", "DELETE", "_OTHER"]


def test_service_defaults_to_unknown_service_and_is_scrubbed(clock: ManualClock) -> None:
    start = now_ns(clock) - NANOS
    # The SDK itself names a nameless service "unknown_service:python".
    anonymous = SpanRecorder(service=None)
    anonymous.request("GET", "/", 200, start, 1_000_000)
    assert decode_traces(anonymous.otlp_bytes(), PROTOBUF, clock=clock).requests[0].service == "unknown_service:python"
    # A sender with no service.name at all (a collector stripping it, a hand-rolled exporter).
    request = ExportTraceServiceRequest.FromString(anonymous.otlp_bytes())
    del request.resource_spans[0].resource.attributes[:]
    assert decode_traces(request.SerializeToString(), PROTOBUF, clock=clock).requests[0].service == "unknown_service"
    leaky = SpanRecorder(service=f"shop of {EMAIL}")
    leaky.request("GET", "/", 200, start, 1_000_000)
    assert decode_traces(leaky.otlp_bytes(), PROTOBUF, clock=clock).requests[0].service == "shop of [email]"


def test_non_server_spans_are_ignored_not_rejected(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.request("GET", "/tickets/:id", 200, start, 20_000_000)
    for kind in (SpanKind.INTERNAL, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER):
        recorder.span("SELECT tickets", start, start + 1_000_000, kind=kind, exception=decline())
    batch = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock)
    assert len(batch.requests) == 1 and batch.ignored_spans == 4
    assert batch.rejected_spans == 0 and batch.errors == ()


def test_recorded_exception_becomes_a_scrubbed_error_of_the_route(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.request("POST", "/checkout/:order", 500, start, 80_000_000, exception=decline(),
                     attributes={"enduser.id": EMAIL, "http.request.header.authorization": f"Bearer {TOKEN}"})
    batch = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock)
    (error,) = batch.errors
    assert error.service == "shop" and error.source == "otlp"
    assert error.exception_type.endswith("PaymentDeclined")
    assert error.message == "card [card ****4242] of [email] declined; Authorization: Bearer [redacted]"
    assert error.route == "POST /checkout/:order" and error.method == "POST"
    assert "Traceback" in error.stack and "decline" in error.stack
    assert start / NANOS <= error.timestamp <= (start + 80_000_000) / NANOS
    assert len(error.fingerprint) == 16
    everything = repr(batch)
    for secret in (EMAIL, CARD, "4242424242424242", TOKEN):
        assert secret not in everything


def test_same_exception_type_on_the_same_route_groups_together(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.request("POST", "/checkout/:order", 500, start, 1_000_000, exception=PaymentDeclined("order 1"))
    recorder.request("POST", "/checkout/:order", 500, start, 1_000_000, exception=PaymentDeclined("order 2"))
    recorder.request("GET", "/tickets/:id", 500, start, 1_000_000, exception=PaymentDeclined("order 3"))
    other = SpanRecorder("box-office")
    other.request("POST", "/checkout/:order", 500, start, 1_000_000, exception=PaymentDeclined("order 4"))
    first, second, third = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).errors
    (fourth,) = decode_traces(other.otlp_bytes(), PROTOBUF, clock=clock).errors
    assert first.fingerprint == second.fingerprint
    assert third.fingerprint != first.fingerprint  # another route
    assert fourth.fingerprint != first.fingerprint  # another service


def test_long_stack_trace_keeps_both_ends(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    frames = "\n".join(f"    at frame{i} (app.js:{i}:1)" for i in range(5000))
    # The SDK's record_exception writes a Python trace; a Node app sends its own text, as here.
    span = recorder.tracer.start_span("GET /y", kind=SpanKind.SERVER, start_time=start, attributes={"http.route": "/y"})
    span.add_event("exception", {"exception.type": "TypeError", "exception.message": f"bad {EMAIL}",
                                 "exception.stacktrace": f"TypeError: bad {EMAIL}\n{frames}\n    at main (app.js:1:1)"},
                   timestamp=start + 1)
    span.end(end_time=start + 2)
    (error,) = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).errors
    assert len(error.stack) <= 16_000
    assert error.stack.startswith("TypeError: bad [email]") and error.stack.endswith("at main (app.js:1:1)")
    assert "[... truncated ...]" in error.stack


# --- what cannot be believed ------------------------------------------------------------------


def test_absurd_times_are_rejected_and_reported_in_partial_success(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    now = now_ns(clock)
    recorder.request("GET", "/ok", 200, now - NANOS, 10_000_000)
    recorder.request("GET", "/old", 200, 900_000_000 * NANOS, 10_000_000)  # 1998
    recorder.request("GET", "/future", 200, now + 2 * 86_400 * NANOS, 10_000_000)
    recorder.span("GET /backwards", now - NANOS, now - 2 * NANOS, attributes={"http.route": "/backwards"})
    recorder.request("GET", "/hours", 200, now - 3 * 3600 * NANOS, 2 * 3600 * NANOS)
    recorder.request("GET", "/zero", 200, 0, 0)
    batch = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock)
    assert [r.route for r in batch.requests] == ["/ok"]
    assert batch.rejected_spans == 5
    assert batch.rejection_reasons == {
        "timestamp before 2000": 2,
        "timestamp more than 86400 s in the future": 1,
        "end before start": 1,
        "duration over 3600 s": 1,
    }
    response = ExportTraceServiceResponse.FromString(batch.response().body)
    assert response.partial_success.rejected_spans == 5
    assert response.partial_success.error_message.startswith("5 spans rejected: 2 timestamp before 2000")


def test_exceptions_of_rejected_spans_are_dropped_with_them(clock: ManualClock) -> None:
    recorder = SpanRecorder("shop")
    now = now_ns(clock)
    recorder.span("GET /x", now, now - NANOS, attributes={"http.route": "/x"}, exception=decline())
    batch = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock)
    assert batch.errors == () and batch.rejected_spans == 1


# --- the real exporter, over HTTP --------------------------------------------------------------


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate])
def test_real_exporter_bodies_and_headers_decode(compression: Compression) -> None:
    clock = ManualClock(time.time())
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.request("GET", "/tickets/:id", 200, start, 30_000_000)
    recorder.request("POST", "/checkout", 500, start, 90_000_000, exception=decline())
    answer = decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).response()
    with RecordingHTTPServer() as server:
        server.respond(200, answer.body, {"Content-Type": answer.content_type})
        exporter = OTLPSpanExporter(endpoint=server.url + "/v1/traces", compression=compression,
                                    headers={"X-API-Key": "ingest_key_0123"}, timeout=5)
        assert exporter.export(recorder.spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        (sent,) = server.wait_for(1, path="/v1/traces")
    assert sent.method == "POST"
    assert sent.header("content-type") == PROTOBUF
    assert sent.header("x-api-key") == "ingest_key_0123"
    expected_encoding = {Compression.Gzip: "gzip", Compression.Deflate: "deflate"}.get(compression)
    assert sent.header("content-encoding") == expected_encoding
    body = decode_body(sent.body, sent.header("content-encoding"), OTLP_BODY_LIMITS)
    batch = decode_traces(body, sent.header("content-type"), clock=clock)
    assert [(r.method, r.route, r.status) for r in batch.requests] == [("GET", "/tickets/:id", 200),
                                                                      ("POST", "/checkout", 500)]
    assert [e.message for e in batch.errors] == ["card [card ****4242] of [email] declined; "
                                                 "Authorization: Bearer [redacted]"]


# --- the specification's JSON encoding ---------------------------------------------------------


def spec_example(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def test_specification_trace_example_decodes(clock: ManualClock) -> None:
    batch = decode_traces((DATA / "trace.json").read_bytes(), "application/json", clock=clock)
    assert batch.encoding is OtlpEncoding.JSON
    assert batch.requests == (IngestedRequest("my.service", "_OTHER", "<unmatched>", 0, 1.0, 1544712661.0),)
    assert batch.response().body == b"{}" and batch.response().content_type == "application/json"


def test_hex_ids_decode_to_their_bytes_not_base64() -> None:
    request = parse_request((DATA / "trace.json").read_bytes(), OtlpEncoding.JSON, ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex("5B8EFFF798038103D269B633813FC60C")
    assert span.span_id == bytes.fromhex("EEE19B7EC3C1B174")
    assert span.parent_span_id == bytes.fromhex("EEE19B7EC3C1B173")


def test_json_variants_the_mapping_allows(clock: ManualClock) -> None:
    document = spec_example("trace.json")
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["kind"] = "SPAN_KIND_SERVER"  # enum by name
    span["startTimeUnixNano"] = 1544712660000000000  # int64 as a number
    span["endTimeUnixNano"] = "1544712660250000000"
    span["traceId"] = span["traceId"].lower()  # hex is case-insensitive
    span["attributes"].append({"key": "http.route", "value": {"stringValue": "/v1/things/{id}"}})
    span["attributes"].append({"key": "http.response.status_code", "value": {"intValue": "201"}})
    span["someFutureField"] = {"nested": True}  # unknown fields MUST be ignored
    body = json.dumps(document).encode()
    (request,) = decode_traces(body, "application/json; charset=utf-8", clock=clock).requests
    assert (request.route, request.status, request.duration_seconds) == ("/v1/things/{id}", 201, 0.25)


def test_json_partial_success_uses_camel_case_and_string_int64(clock: ManualClock) -> None:
    document = spec_example("trace.json")
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["endTimeUnixNano"] = "1544712650000000000"  # before its start
    batch = decode_traces(json.dumps(document).encode(), "application/json", clock=clock)
    answer = json.loads(batch.response().body)
    assert answer == {"partialSuccess": {"rejectedSpans": "1", "errorMessage": "1 span rejected: 1 end before start"}}


# --- bodies that are refused -----------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/grpc", "application/protobuf"])
def test_other_content_types_are_415(content_type: str | None, clock: ManualClock) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_traces(b"{}", content_type, clock=clock)
    assert caught.value.status == 415


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", PROTOBUF),  # a length beyond the body
        (b"not protobuf at all \xff\xfe", PROTOBUF),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"resourceSpans": "nope"}', "application/json"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex!"}]}]}]}', "application/json"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\\ud800"}]}]}]}', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"[" * 100_000, "application/json"),
    ],
)
def test_bodies_that_do_not_decode_are_400(body: bytes, content_type: str, clock: ManualClock) -> None:
    with pytest.raises(UndecodableBody) as caught:
        decode_traces(body, content_type, clock=clock)
    assert caught.value.status == 400
    assert "\\ud800" not in caught.value.message


def test_failure_body_is_a_status_in_the_request_encoding() -> None:
    binary = failure_response("body is not a protobuf", encoding_of(PROTOBUF))
    assert status_pb2.Status.FromString(binary.body).message == "body is not a protobuf"
    text = failure_response("body is not JSON", encoding_of("application/json"))
    assert json.loads(text.body) == {"code": 3, "message": "body is not JSON"}


def test_empty_request_is_a_full_success(clock: ManualClock) -> None:
    batch = decode_traces(b"", PROTOBUF, clock=clock)
    assert batch.requests == () and batch.response().body == b""


# --- accuracy ------------------------------------------------------------------------------------


def test_p95_of_sdk_span_durations_is_within_one_percent_in_the_store_histogram(clock: ManualClock) -> None:
    rng = random.Random(13)
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - 3600 * NANOS
    for i in range(2_000):
        duration_ns = int(rng.lognormvariate(math.log(0.08), 0.9) * NANOS) + 1
        recorder.request("GET", "/tickets/:id", 200, start + i * 1_000_000, duration_ns)
    exact = sorted((span.end_time - span.start_time) / NANOS for span in recorder.spans)
    histogram = LatencyHistogram()
    for request in decode_traces(recorder.otlp_bytes(), PROTOBUF, clock=clock).requests:
        histogram.record(request.duration_seconds)
    for q in (0.5, 0.95, 0.99):
        true_value = exact[nearest_rank(q, len(exact)) - 1]
        estimate = histogram.quantile(q)
        assert estimate is not None
        assert abs(estimate - true_value) <= RELATIVE_ACCURACY * true_value, (q, estimate, true_value)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=400), content_type=st.sampled_from([PROTOBUF, "application/json"]))
def test_any_bytes_give_a_batch_or_a_typed_refusal(body: bytes, content_type: str) -> None:
    try:
        batch = decode_traces(body, content_type, clock=ManualClock())
    except IngestError:
        return
    batch.response()


@settings(max_examples=100, deadline=None)
@given(mutation=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=8))
def test_corrupted_sdk_batches_give_a_batch_or_a_typed_refusal(mutation: list[tuple[int, int]]) -> None:
    clock = ManualClock()
    recorder = SpanRecorder("shop")
    start = now_ns(clock) - NANOS
    recorder.request("GET", "/tickets/:id", 200, start, 1_000_000, exception=PaymentDeclined("x"))
    body = bytearray(recorder.otlp_bytes())
    for position, value in mutation:
        body[position % len(body)] = value
    try:
        decode_traces(bytes(body), PROTOBUF, clock=clock)
    except IngestError:
        pass
