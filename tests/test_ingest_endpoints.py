"""The ingest endpoints with the clients users run: the OpenTelemetry Python SDK's OTLP/HTTP
exporters and sentry-sdk, against a running Centinela (Werkzeug's threaded server: workers do
not matter here; tests/test_ingest_gunicorn.py runs gunicorn). Figures are read back over HTTP
after the flush jobs ran, as any worker would answer them."""
from __future__ import annotations

import gzip
import http.client
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sentry_sdk
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.trace.export import SpanExportResult
from werkzeug.serving import make_server

from app import create_app
from monitoring.clock import ManualClock
from monitoring.errors.sentry import shutdown_sentry
from monitoring.metrics.histogram import RELATIVE_ACCURACY
from monitoring.security.log_redaction import redact_message
from tests.conftest import ADMIN_KEY, INGEST_KEY, METRICS_HEADERS, METRICS_KEY
from tests.support.otel_sdk import NANOS, MetricRecorder, SpanRecorder

DATA = Path(__file__).parent / "data" / "otlp"
PROTOBUF = "application/x-protobuf"
EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"
SECRETS = (EMAIL, CARD, "4242424242424242", TOKEN)
PROJECTS = '{"1": "shop", "2": "shop-web"}'
MIB = 1024 * 1024


class PaymentDeclined(Exception):
    pass


def decline() -> PaymentDeclined:
    try:
        raise PaymentDeclined(f"card {CARD} of {EMAIL} declined; Authorization: Bearer {TOKEN}")
    except PaymentDeclined as exc:
        return exc


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@dataclass
class Running:
    """A Centinela serving on a real socket, with the test's hand on its flush jobs."""

    url: str
    app: Any
    clock: ManualClock

    @property
    def services(self) -> Any:
        return self.app.extensions["centinela"].services

    def flush(self) -> None:
        self.services.metrics.flush()
        self.services.errors.flush()

    def read(self, path: str) -> Any:
        response = requests.get(self.url + path, headers=METRICS_HEADERS, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def performance(self, window: str = "15m") -> dict[str, Any]:
        return self.read(f"/api/monitoring/metrics?category=performance&window={window}")["performance"]

    def error_groups(self) -> list[dict[str, Any]]:
        return self.read("/api/monitoring/errors")["groups"]

    def stored_requests(self) -> int:
        return sum(total.aggregate.count for total in self.services.metrics.rollups.totals() if not total.internal)


@pytest.fixture
def start_centinela(make_settings: Callable[..., Any]) -> Iterator[Callable[..., Running]]:
    servers: list[Any] = []

    def start(env: dict[str, str] | None = None) -> Running:
        clock = ManualClock(time.time())
        app = create_app(make_settings({"SENTRY_PROJECTS": PROJECTS, **(env or {})}), clock=clock)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, app))
        return Running(f"http://127.0.0.1:{server.server_port}", app, clock)

    yield start
    for server, app in servers:
        server.shutdown()
        app.extensions["centinela"].shutdown()
        app.extensions["centinela"].store.dispose()


@pytest.fixture
def centinela(start_centinela: Callable[..., Running]) -> Running:
    return start_centinela()


def span_exporter(centinela: Running, key: str = INGEST_KEY, **options: Any) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=centinela.url + "/v1/traces", headers={"X-API-Key": key}, timeout=10,
                            **options)


def post_otlp(centinela: Running, path: str, body: bytes, headers: dict[str, str] | None = None,
              key: str | None = INGEST_KEY) -> requests.Response:
    sent = {"Content-Type": PROTOBUF, **({"X-API-Key": key} if key else {}), **(headers or {})}
    return requests.post(centinela.url + path, data=body, headers=sent, timeout=30)


def status_of(response: requests.Response) -> status_pb2.Status:
    if response.headers["Content-Type"].startswith(PROTOBUF):
        return status_pb2.Status.FromString(response.content)
    document = response.json()
    return status_pb2.Status(code=document.get("code", 0), message=document.get("message", ""))


def assert_nothing_stored(centinela: Running) -> None:
    centinela.flush()
    assert centinela.stored_requests() == 0
    assert centinela.error_groups() == []


# --- OTLP with the OpenTelemetry SDK ------------------------------------------------------------


@pytest.mark.parametrize("compression", [Compression.Gzip, Compression.NoCompression])
def test_sdk_spans_give_exact_counts_p95_within_one_percent_and_scrubbed_errors(
    centinela: Running, compression: Compression
) -> None:
    rng = random.Random(7)
    recorder = SpanRecorder("shop")
    now_ns = int(centinela.clock.now() * NANOS)
    durations = []
    for i in range(1_500):
        duration_ns = int(rng.lognormvariate(math.log(0.08), 0.8) * NANOS) + 1
        start = now_ns - 120 * NANOS + i * 40_000_000
        recorder.request("GET", "/tickets/:id", 200, start, duration_ns)
        durations.append(duration_ns / NANOS)
    for i in range(12):
        start = now_ns - 60 * NANOS + i * NANOS
        recorder.request("POST", "/checkout", 500, start, 90_000_000, exception=decline())
        durations.append(0.09)
    recorder.request("GET", None, 404, now_ns - NANOS, 2_000_000)  # no http.route: <unmatched>
    durations.append(0.002)
    exporter = span_exporter(centinela, compression=compression)
    assert exporter.export(recorder.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()

    centinela.flush()
    figures = centinela.performance()
    assert figures["requests.count"] == 1_513
    assert figures["status"]["5xx"] == 12 and figures["status"]["4xx"] == 1
    for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        exact_ms = nearest_rank(durations, q) * 1000
        assert abs(figures[f"api.response_time.{name}"] - exact_ms) <= RELATIVE_ACCURACY * exact_ms, name
    routes = {(r["method"], r["route"]): r["count"] for r in figures["routes"]}
    assert routes[("GET", "/tickets/:id")] == 1_500 and routes[("GET", "<unmatched>")] == 1
    assert {r["service"] for r in figures["routes"]} == {"shop"}
    assert {s["service"]: s["requests.count"] for s in figures["services"]}.get("shop") == 1_513
    (group,) = centinela.error_groups()
    assert group["count"] == 12 and "PaymentDeclined" in group["type"] and group["service"] == "shop"
    assert group["route"] == "POST /checkout"
    text = json.dumps(centinela.read("/api/monitoring/errors"))
    assert not any(secret in text for secret in SECRETS), text
    assert "[email]" in group["message"] and "[redacted]" in group["message"]


def test_bearer_authorization_is_the_other_way_to_send_the_key(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    recorder.request("GET", "/", 200, int((centinela.clock.now() - 5) * NANOS), 1_000_000)
    exporter = OTLPSpanExporter(endpoint=centinela.url + "/v1/traces",
                                headers={"Authorization": f"Bearer {INGEST_KEY}"}, timeout=10)
    assert exporter.export(recorder.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    centinela.flush()
    assert centinela.stored_requests() == 1


def test_sdk_duration_histogram_counts_a_service_without_spans(centinela: Running) -> None:
    meter = MetricRecorder(service="billing", exponential=True)
    rng = random.Random(3)
    values = [rng.lognormvariate(math.log(0.05), 0.6) for _ in range(400)]
    for value in values:
        meter.record(value, **{"http.request.method": "GET", "http.route": "/invoices/{id}",
                               "http.response.status_code": 200})
    for _ in range(4):
        meter.record(0.2, **{"http.request.method": "POST", "http.route": "/invoices",
                             "http.response.status_code": 503})
    exporter = OTLPMetricExporter(endpoint=centinela.url + "/v1/metrics", headers={"X-API-Key": INGEST_KEY},
                                  timeout=10, compression=Compression.Gzip)
    assert exporter.export(meter.collect()) is MetricExportResult.SUCCESS
    exporter.shutdown()
    meter.shutdown()
    centinela.flush()
    figures = centinela.performance()
    assert figures["requests.count"] == 404 and figures["status"]["5xx"] == 4
    assert {s["service"]: s["requests.count"] for s in figures["services"]}.get("billing") == 404
    exact_ms = nearest_rank(values + [0.2] * 4, 0.95) * 1000
    # the default exponential scale (20, refined as values come) is far finer than the store's 1 %
    assert abs(figures["api.response_time.p95"] - exact_ms) <= 0.02 * exact_ms


def test_a_service_sending_spans_and_metrics_is_counted_once_spans_win(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    now_ns = int(centinela.clock.now() * NANOS)
    for i in range(30):
        recorder.request("GET", "/tickets/:id", 200, now_ns - 30 * NANOS + i * NANOS, 20_000_000)
    exporter = span_exporter(centinela)
    assert exporter.export(recorder.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    meter = MetricRecorder(service="shop")
    for _ in range(30):
        meter.record(0.02, **{"http.request.method": "GET", "http.route": "/tickets/:id",
                              "http.response.status_code": 200})
    response = post_otlp(centinela, "/v1/metrics", meter.otlp_bytes())
    assert response.status_code == 200
    meter.shutdown()
    centinela.flush()
    assert centinela.performance()["requests.count"] == 30
    assert centinela.services.ingest.sink.counters.superseded_contributions == 1


def test_other_metrics_are_accepted_and_ignored(centinela: Running) -> None:
    response = post_otlp(centinela, "/v1/metrics", (DATA / "metrics.json").read_bytes(),
                         {"Content-Type": "application/json"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {}
    assert_nothing_stored(centinela)


def test_the_specifications_json_trace_example_is_accepted_in_json(centinela: Running) -> None:
    document = json.loads((DATA / "trace.json").read_text())
    # The example's times are from 2018; move its span into the last minute to see it counted.
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    end = int(centinela.clock.now() * NANOS) - NANOS
    span["startTimeUnixNano"], span["endTimeUnixNano"] = str(end - 1_000_000_000), str(end)
    response = post_otlp(centinela, "/v1/traces", json.dumps(document).encode(), {"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json") and response.json() == {}
    centinela.flush()
    assert centinela.stored_requests() == 1


def test_absurd_times_are_refused_in_partial_success_and_not_stored(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    now_ns = int(centinela.clock.now() * NANOS)
    recorder.request("GET", "/a", 200, now_ns - NANOS, -500_000_000)  # ends before it starts
    recorder.request("GET", "/b", 200, 5 * NANOS, 1_000_000)  # 1970
    recorder.request("GET", "/c", 200, now_ns + 3 * 86400 * NANOS, 1_000_000)  # three days ahead
    recorder.request("GET", "/ok", 200, now_ns - NANOS, 1_000_000)
    response = post_otlp(centinela, "/v1/traces", recorder.otlp_bytes())
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 3 and answer.partial_success.error_message
    centinela.flush()
    assert [t.route for t in centinela.services.metrics.rollups.totals() if not t.internal] == ["/ok"]


# --- OTLP refusals --------------------------------------------------------------------------------


def test_a_body_that_does_not_decode_is_400_with_a_status_in_protobuf(centinela: Running) -> None:
    response = post_otlp(centinela, "/v1/traces", b"\xff\xff\xff\xff not protobuf")
    assert response.status_code == 400 and response.headers["Content-Type"] == PROTOBUF
    assert status_of(response).message
    json_response = post_otlp(centinela, "/v1/traces", b"{not json", {"Content-Type": "application/json"})
    assert json_response.status_code == 400 and "message" in json_response.json()
    assert_nothing_stored(centinela)


def test_another_content_type_is_415(centinela: Running) -> None:
    for content_type in ("text/plain", "application/grpc", ""):
        response = post_otlp(centinela, "/v1/traces", b"{}", {"Content-Type": content_type})
        assert response.status_code == 415, content_type
        assert "application/x-protobuf" in status_of(response).message
    response = post_otlp(centinela, "/v1/traces", b"xx", {"Content-Encoding": "zstd"})
    assert response.status_code == 415


def test_a_gzip_bomb_is_413_and_nothing_is_kept(centinela: Running) -> None:
    bomb = gzip.compress(b"\0" * (65 * MIB), compresslevel=9)
    assert len(bomb) < 200_000
    response = post_otlp(centinela, "/v1/traces", bomb, {"Content-Encoding": "gzip"})
    assert response.status_code == 413 and response.headers["Content-Type"] == PROTOBUF
    assert "inflates past" in status_of(response).message
    assert_nothing_stored(centinela)


def test_a_huge_batch_is_accepted_whole(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    now_ns = int(centinela.clock.now() * NANOS)
    for i in range(20_000):
        recorder.request("GET", "/tickets/:id", 200, now_ns - 60 * NANOS + i * 1000, 1_000_000)
    body = recorder.otlp_bytes()
    response = post_otlp(centinela, "/v1/traces", gzip.compress(body), {"Content-Encoding": "gzip"})
    assert response.status_code == 200
    centinela.flush()
    assert centinela.stored_requests() == 20_000


def test_missing_wrong_and_read_keys_are_refused_with_a_status(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    recorder.request("GET", "/", 200, int((centinela.clock.now() - 5) * NANOS), 1_000_000)
    body = recorder.otlp_bytes()
    assert post_otlp(centinela, "/v1/traces", body, key=None).status_code == 401
    assert post_otlp(centinela, "/v1/traces", body, key="wrong_key_0123456789").status_code == 401
    refused = post_otlp(centinela, "/v1/traces", body, key=METRICS_KEY)
    assert refused.status_code == 403 and "ingest key" in status_of(refused).message
    assert METRICS_KEY not in refused.text
    exporter = span_exporter(centinela, key="wrong_key_0123456789")
    assert exporter.export(recorder.spans) is SpanExportResult.FAILURE  # 401 is not retried
    exporter.shutdown()
    assert_nothing_stored(centinela)
    assert post_otlp(centinela, "/v1/traces", body, key=ADMIN_KEY).status_code == 200  # admin grants all


def test_over_the_rate_limit_is_429_with_retry_after(start_centinela: Callable[..., Running]) -> None:
    centinela = start_centinela({"RATELIMIT_INGEST_ADDRESS": "2/minute"})
    statuses = [post_otlp(centinela, "/v1/traces", b"").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = post_otlp(centinela, "/v1/traces", b"")
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 60
    assert status_of(response).code == 8  # RESOURCE_EXHAUSTED
    sentry = requests.post(centinela.url + f"/api/1/envelope/?sentry_key={INGEST_KEY}", data=b"{}\n", timeout=10)
    assert sentry.status_code == 429
    assert sentry.headers["X-Sentry-Rate-Limits"] == f"{sentry.headers['Retry-After']}::key"


def test_ten_thousand_routes_are_capped(centinela: Running) -> None:
    recorder = SpanRecorder("shop")
    now_ns = int(centinela.clock.now() * NANOS)
    for i in range(10_000):
        recorder.request("GET", f"/items/{i}/detail", 200, now_ns - 30 * NANOS + i * 1000, 1_000_000)
    response = post_otlp(centinela, "/v1/traces", recorder.otlp_bytes())
    assert response.status_code == 200
    centinela.flush()
    totals = {t.route: t.aggregate.count for t in centinela.services.metrics.rollups.totals() if not t.internal}
    assert len(totals) == 251 and totals["<other>"] == 10_000 - 250
    assert sum(totals.values()) == 10_000


# --- the Sentry protocol with sentry-sdk -----------------------------------------------------------


@pytest.fixture
def sentry_off() -> Iterator[None]:
    yield
    shutdown_sentry(timeout=2.0)  # sentry-sdk's client is process-wide: no test leaves it on


def test_sentry_sdk_with_a_dsn_reports_a_scrubbed_error_group(centinela: Running, sentry_off: None) -> None:
    port = centinela.url.rsplit(":", 1)[1]
    sentry_sdk.init(dsn=f"http://{INGEST_KEY}@127.0.0.1:{port}/1", release="shop@1.0.0", default_integrations=False)
    for _ in range(3):
        try:
            raise PaymentDeclined(f"card {CARD} of {EMAIL} declined; Authorization: Bearer {TOKEN}")
        except PaymentDeclined as exc:
            sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=10)
    centinela.flush()
    groups = centinela.error_groups()
    (group,) = [g for g in groups if "PaymentDeclined" in g["type"]]
    assert group["count"] == 3 and group["service"] == "shop"
    assert group["where"].endswith("test_sentry_sdk_with_a_dsn_reports_a_scrubbed_error_group")
    text = json.dumps(centinela.read("/api/monitoring/errors"))
    assert not any(secret in text for secret in SECRETS), text
    assert "[email]" in group["message"] and "****4242" in group["message"]


def test_a_browser_style_envelope_chunked_without_content_type_with_the_key_in_the_query(
    centinela: Running,
) -> None:
    event_id = "0123456789abcdef0123456789abcdef"
    envelope = b"\n".join([
        json.dumps({"event_id": event_id, "sent_at": "2026-12-02T06:00:00Z"}).encode(),
        json.dumps({"type": "event"}).encode(),
        json.dumps({"event_id": event_id, "platform": "javascript", "level": "error",
                    "exception": {"values": [{"type": "TypeError", "value": f"x of {EMAIL} is undefined"}]}}).encode(),
        json.dumps({"type": "session"}).encode(),
        json.dumps({"sid": "abc", "status": "ok"}).encode(),
    ])
    host, port = centinela.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", f"/api/2/envelope/?sentry_key={INGEST_KEY}&sentry_version=7")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for start in range(0, len(envelope), 50):
        piece = envelope[start:start + 50]
        connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    connection.send(b"0\r\n\r\n")
    answer = connection.getresponse()
    body = json.loads(answer.read())
    connection.close()
    assert answer.status == 200 and body == {"id": event_id}
    assert answer.getheader("Access-Control-Allow-Origin") == "*"
    centinela.flush()
    (group,) = centinela.error_groups()
    assert group["type"] == "TypeError" and EMAIL not in group["message"]
    assert group["service"] == "shop-web"  # SENTRY_PROJECTS: project 2


def test_sentry_refusals(centinela: Running) -> None:
    url = centinela.url + "/api/{project}/{kind}/"
    event = json.dumps({"message": "hello"}).encode()
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={INGEST_KEY}, sentry_version=7"}
    unknown = requests.post(url.format(project="99", kind="store"), data=event, headers=auth, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_project"
    assert requests.post(url.format(project="1", kind="store"), data=event, timeout=10).status_code == 401
    wrong = {"X-Sentry-Auth": "Sentry sentry_key=wrong_key_0123456789"}
    assert requests.post(url.format(project="1", kind="store"), data=event, headers=wrong, timeout=10).status_code == 401
    read_key = {"X-Sentry-Auth": f"Sentry sentry_key={METRICS_KEY}"}
    assert requests.post(url.format(project="1", kind="store"), data=event, headers=read_key,
                         timeout=10).status_code == 403
    conflicting = requests.post(url.format(project="1", kind="store") + "?sentry_key=other_key_0123",
                                data=event, headers=auth, timeout=10)
    assert conflicting.status_code == 401
    broken = requests.post(url.format(project="1", kind="envelope"), data=b"{not json\n", headers=auth, timeout=10)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_envelope"
    typed = requests.post(url.format(project="1", kind="store"), data=event,
                          headers={**auth, "Content-Type": "image/png"}, timeout=10)
    assert typed.status_code == 415
    bomb = gzip.compress(b" " * (2 * MIB))
    too_large = requests.post(url.format(project="1", kind="store"), data=bomb,
                              headers={**auth, "Content-Encoding": "gzip"}, timeout=10)
    assert too_large.status_code == 413
    assert_nothing_stored(centinela)
    stored = requests.post(url.format(project="1", kind="store"), data=event, headers=auth, timeout=10)
    assert stored.status_code == 200 and len(stored.json()["id"]) == 32


def test_the_sentry_key_is_redacted_from_access_log_lines() -> None:
    line = f'127.0.0.1 "POST /api/1/envelope/?sentry_key={INGEST_KEY}&sentry_version=7 HTTP/1.1" 200'
    redacted = redact_message(line)
    assert INGEST_KEY not in redacted and "sentry_key=[redacted]" in redacted


def test_distinct_services_are_capped_too(centinela: Running) -> None:
    now_ns = int(centinela.clock.now() * NANOS)
    for i in range(30):
        recorder = SpanRecorder(f"service-{i:02d}")
        recorder.request("GET", "/", 200, now_ns - NANOS, 1_000_000)
        assert post_otlp(centinela, "/v1/traces", recorder.otlp_bytes()).status_code == 200
    centinela.flush()
    services: dict[str, int] = {}
    for total in centinela.services.metrics.rollups.totals():
        if not total.internal:
            services[total.service] = services.get(total.service, 0) + total.aggregate.count
    assert len(services) == 21 and services["<other>"] == 10 and sum(services.values()) == 30


def test_the_service_filter_and_a_rule_for_one_service_fire_from_ingested_spans(centinela: Running) -> None:
    now_ns = int(centinela.clock.now() * NANOS)
    for service, failing in (("shop", 6), ("billing", 0)):
        recorder = SpanRecorder(service)
        for i in range(20):
            status = 500 if i < failing else 200
            recorder.request("GET", "/pay", status, now_ns - 30 * NANOS + i * NANOS, 10_000_000)
        assert post_otlp(centinela, "/v1/traces", recorder.otlp_bytes()).status_code == 200
    centinela.flush()
    shop = centinela.read("/api/monitoring/metrics?category=performance&window=5m&service=shop")["performance"]
    assert shop["requests.count"] == 20 and shop["status"]["5xx"] == 6
    billing = centinela.read("/api/monitoring/metrics?category=performance&window=5m&service=billing")["performance"]
    assert billing["requests.count"] == 20 and billing["status"]["5xx"] == 0
    rule = {"figure": "error_rate", "comparison": ">", "threshold": 0.1, "severity": "high",
            "summary": "{service} error rate {value_percent} over {window}"}
    for name, service in (("ShopErrors", "shop"), ("BillingErrors", "billing")):
        response = requests.post(centinela.url + "/api/monitoring/alerts", headers={"X-Admin-Key": ADMIN_KEY},
                                 json={"action": "add_rule", "rule": {**rule, "name": name, "service": service}},
                                 timeout=10)
        assert response.status_code == 200, response.text
    centinela.services.alerting.evaluate()
    firing = {a["name"]: a for a in centinela.read("/api/monitoring/alerts?action=active&state=firing")["alerts"]}
    assert "ShopErrors" in firing and "BillingErrors" not in firing
    assert firing["ShopErrors"]["labels"]["service"] == "shop"


def test_a_restarted_centinela_keeps_the_routes_it_had_at_the_bound(
    start_centinela: Callable[..., Running],
) -> None:
    first = start_centinela({"INGEST_MAX_ROUTES": "3"})
    now_ns = int(first.clock.now() * NANOS)

    def send(centinela: Running, routes: list[str]) -> None:
        recorder = SpanRecorder("shop")
        for route in routes:
            recorder.request("GET", route, 200, now_ns - NANOS, 1_000_000)
        assert post_otlp(centinela, "/v1/traces", recorder.otlp_bytes()).status_code == 200
        centinela.flush()

    send(first, ["/c", "/b", "/a"])
    second = start_centinela({"INGEST_MAX_ROUTES": "3"})  # another worker, or a restart: same store
    send(second, ["/new", "/a"])
    routes = {t.route: t.aggregate.count for t in second.services.metrics.rollups.totals() if not t.internal}
    assert routes == {"/a": 2, "/b": 1, "/c": 1, "<other>": 1}


def test_a_process_decoding_all_it_will_sheds_load_with_503_and_retry_after(centinela: Running) -> None:
    gate = centinela.services.ingest.gate
    held = 0
    while gate.try_enter():  # what four slow exports in flight on threaded workers look like
        held += 1
    try:
        response = post_otlp(centinela, "/v1/traces", b"")
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
        assert status_of(response).code == 14  # UNAVAILABLE
        sentry = requests.post(centinela.url + f"/api/1/envelope/?sentry_key={INGEST_KEY}", data=b"{}\n", timeout=10)
        assert sentry.status_code == 503 and "Retry-After" in sentry.headers
    finally:
        for _ in range(held):
            gate.leave()
    assert held == 4 and post_otlp(centinela, "/v1/traces", b"").status_code == 200


def test_only_post_is_an_export(centinela: Running) -> None:
    response = requests.get(centinela.url + "/v1/traces", headers={"X-API-Key": INGEST_KEY}, timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]  # routing's answer: the app's


def test_a_sentry_http_server_transaction_counts_as_a_request_of_its_service(centinela: Running) -> None:
    now = centinela.clock.now()
    transaction = {"type": "transaction", "event_id": "ab" * 16, "transaction": "/orders/{id}",
                   "transaction_info": {"source": "route"}, "start_timestamp": now - 1.25, "timestamp": now - 1.0,
                   "contexts": {"trace": {"op": "http.server", "trace_id": "cd" * 16, "span_id": "ef" * 8},
                                "response": {"status_code": 201}},
                   "request": {"method": "POST", "url": f"https://shop.example/orders/8812?email={EMAIL}"}}
    envelope = b"\n".join([b'{"event_id":"' + b"ab" * 16 + b'"}', b'{"type":"transaction"}',
                           json.dumps(transaction).encode()])
    response = requests.post(
        centinela.url + "/api/1/envelope/", data=gzip.compress(envelope), timeout=10,
        headers={"X-Sentry-Auth": f"Sentry sentry_key={INGEST_KEY}, sentry_version=7", "Content-Encoding": "gzip"})
    assert response.status_code == 200 and response.json() == {"id": "ab" * 16}
    centinela.flush()
    (total,) = [t for t in centinela.services.metrics.rollups.totals() if not t.internal]
    assert (total.service, total.method, total.aggregate.count, total.aggregate.status[2]) == ("shop", "POST", 1, 1)
    assert EMAIL not in total.route and "8812" not in total.route


def test_an_embedding_app_serves_the_ingest_endpoints_only_when_asked(make_settings: Callable[..., Any]) -> None:
    from flask import Flask

    from monitoring.extension import Monitoring

    for configured, served in (({}, False), ({"INGEST_ENDPOINTS": "true"}, True)):
        host = Flask("shop")

        @host.post("/v1/traces")
        def own_traces():  # type: ignore[no-untyped-def]  # the host's own route keeps its path
            return {"host": True}

        Monitoring(host, settings=make_settings({"SENTRY_PROJECTS": PROJECTS, **configured}))
        try:
            client = host.test_client()
            paths = client.get("/api/openapi.json").get_json()["paths"]
            assert ("/api/{project}/envelope/" in paths) is served
            envelope = client.post(f"/api/1/envelope/?sentry_key={INGEST_KEY}", data=b"{}\n")
            assert envelope.status_code == (200 if served else 404)
            if not served:
                assert client.post("/v1/traces").get_json() == {"host": True}
        finally:
            host.extensions["centinela"].shutdown()
            host.extensions["centinela"].store.dispose()


def test_a_browser_preflight_is_answered(centinela: Running) -> None:
    response = requests.options(centinela.url + "/api/2/envelope/", timeout=10, headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
