"""Ingest under a real `gunicorn -w 2`, configured as users configure it: the OpenTelemetry SDK's
exporter from its OTEL_* environment variables, sentry-sdk from a DSN holding the ingest key,
a browser-style envelope with the key in the query string (redacted from the access log)."""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import sentry_sdk
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from monitoring.errors.sentry import shutdown_sentry
from monitoring.metrics.histogram import RELATIVE_ACCURACY
from tests.conftest import ADMIN_KEY, INGEST_KEY, METRICS_KEY
from tests.support.otel_sdk import NANOS, SpanRecorder

pytestmark = pytest.mark.slow

HEADERS = {"X-API-Key": METRICS_KEY}
EMAIL = "jane.doe@example.com"
CARD = "4242 4242 4242 4242"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJqYW5lIn0.c2lnbmF0dXJl"


class CheckoutFailed(Exception):
    pass


def test_sdk_exports_and_sentry_events_read_back_from_every_worker(
    gunicorn_server: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = gunicorn_server(env={
        "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "INGEST_API_KEY": INGEST_KEY,
        "SENTRY_PROJECTS": '{"1": "shop"}', "METRICS_FLUSH_INTERVAL": "1",
        "RATELIMIT_DEFAULT": "100000/minute", "RATELIMIT_EXPORT": "100000/minute",
    }, workers=2)
    # What a Node or Python app's deployment sets; the exporter reads them itself.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={INGEST_KEY}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    rng = random.Random(11)
    now_ns = time.time_ns()
    durations: list[float] = []
    exporter = OTLPSpanExporter()
    for batch in range(4):  # four exports: they land on either worker
        recorder = SpanRecorder("shop")
        for i in range(250):
            duration_ns = int(rng.lognormvariate(math.log(0.05), 0.7) * NANOS) + 1
            recorder.request("GET", "/tickets/:id", 200, now_ns - 60 * NANOS + (batch * 250 + i) * 1_000_000,
                             duration_ns)
            durations.append(duration_ns / NANOS)
        assert exporter.export(recorder.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()

    sentry_sdk.init(dsn=f"http://{INGEST_KEY}@127.0.0.1:{server.port}/1", default_integrations=False)
    try:
        try:
            raise CheckoutFailed(f"card {CARD} of {EMAIL} refused; Authorization: Bearer {TOKEN}")
        except CheckoutFailed as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(timeout=10)
    finally:
        shutdown_sentry(timeout=2.0)
    browser = requests.post(f"{server.url}/api/1/envelope/?sentry_key={INGEST_KEY}&sentry_version=7",
                            data=b'{}\n{"type":"client_report"}\n{"discarded_events":[]}\n', timeout=10)
    assert browser.status_code == 200 and browser.json() == {}

    def read(path: str) -> Any:
        response = requests.get(server.url + path, headers=HEADERS, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        performance = read("/api/monitoring/metrics?category=performance&window=15m")["performance"]
        groups = read("/api/monitoring/errors")["groups"]
        if performance["requests.count"] == 1_000 and groups:
            break
        time.sleep(0.25)
    exact = sorted(durations)[math.ceil(0.95 * len(durations)) - 1] * 1000
    for _ in range(6):  # whichever worker answers
        performance = read("/api/monitoring/metrics?category=performance&window=15m")["performance"]
        assert performance["requests.count"] == 1_000
        assert abs(performance["api.response_time.p95"] - exact) <= RELATIVE_ACCURACY * exact
        (group,) = read("/api/monitoring/errors")["groups"]
        assert group["service"] == "shop" and "CheckoutFailed" in group["type"]
        assert EMAIL not in group["message"] and TOKEN not in group["message"] and CARD not in group["message"]
    assert len(server.worker_pids()) == 2
    server.stop()
    log = server.log()
    assert "/api/1/envelope/?sentry_key=[redacted]" in log
    assert INGEST_KEY not in log
