"""GET /api/monitoring/metrics: JSON, Prometheus (linted by promtool), OpenMetrics, Datadog
(loaded into datadog-api-client's models), categories, windows, bad input, rate limit."""
from __future__ import annotations

import math
import random
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from monitoring.clock import ManualClock
from monitoring.extension import Monitoring
from monitoring.metrics.categories import CategoryReport, DatadogPoint, TimeWindow
from monitoring.metrics.histogram import PROMETHEUS_BUCKETS
from monitoring.settings import Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS, METRICS_KEY

URL = "/api/monitoring/metrics"
PROMTOOL = shutil.which("promtool")
ALL_CATEGORIES = ["system", "performance", "business", "errors", "health", "uptime", "alerts"]


def assert_json_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return str(error["message"])


@pytest.fixture
def shop(make_settings: Callable[..., Settings], clock: ManualClock) -> Any:
    """A host app with its own routes and Monitoring(app), with traffic recorded and flushed."""
    app = Flask("shop")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/tickets/<int:ticket_id>")
    def ticket(ticket_id: int) -> Any:
        return {"id": ticket_id}

    @app.post("/checkout")
    def checkout() -> Any:
        raise RuntimeError("card declined badly")

    @app.get('/odd/"quoted"\\path')
    def odd() -> Any:  # label values with quotes and backslashes must be escaped in the exposition
        return "odd"

    monitoring = Monitoring(app, settings=make_settings(), clock=clock)
    client = app.test_client()
    for ticket_id in range(120):
        client.get(f"/tickets/{ticket_id}")
    for _ in range(3):
        client.post("/checkout")
    client.get('/odd/"quoted"\\path')
    client.get("/missing")
    client.get("/api/health/live")
    monitoring.scheduler.run_process("metrics_flush")
    monitoring.scheduler.run_process("system_sample")
    clock.advance(30)
    yield app
    monitoring.shutdown()
    monitoring.store.dispose()


def get(app: Flask, query: str = "", headers: dict[str, str] | None = None) -> Any:
    return app.test_client().get(f"{URL}{query}", headers={**METRICS_HEADERS, **(headers or {})})


# --- JSON ------------------------------------------------------------------------------------


def test_json_has_every_category_and_the_window(shop: Flask, clock: ManualClock) -> None:
    monitoring = shop.extensions["centinela"]
    monitoring.services.categories.pop("business", None)  # not installed (yet) in this build
    response = get(shop)
    assert response.status_code == 200
    body = response.get_json()
    assert list(body)[:2] == ["timestamp", "window"]
    assert [k for k in body if k not in ("timestamp", "window")][: len(ALL_CATEGORIES)] == ALL_CATEGORIES
    assert body["window"] == {
        "label": "5m",
        "from": "2025-12-31T23:55:30.000Z",
        "to": "2026-01-01T00:00:30.000Z",
        "seconds": 300.0,
    }
    assert body["business"] == {
        "available": False,
        "reason": "no business figures in this service yet: their provider is not installed",
    }


def test_performance_json_figures(shop: Flask) -> None:
    body = get(shop, "?category=performance").get_json()
    assert set(body) == {"timestamp", "window", "performance"}
    perf = body["performance"]
    # 120 tickets + 3 checkouts (500) + 1 odd + 1 unmatched 404; the health probe is internal
    assert perf["requests.count"] == 125
    assert perf["status"] == {"1xx": 0, "2xx": 121, "3xx": 0, "4xx": 1, "5xx": 3}
    assert perf["errors.count"] == 3
    # covered: from 23:55:00 (the window's start widened to its minute) to 00:00:30
    assert perf["scope"]["coveredSeconds"] == 330
    assert perf["requests.per_second"] == round(125 / 330, 4)
    assert perf["requests.per_minute"] == round(125 * 60 / 330, 3)
    assert perf["errors.rate"] == round(3 * 60 / 330, 4)  # 5xx per minute
    assert perf["errors.share"] == round(3 / 125, 6)
    assert perf["scope"]["internal"] == "excluded" and perf["scope"]["internalRequests"] == 1
    assert "include_internal=true" in perf["scope"]["note"]
    p50, p95, p99 = perf["api.response_time.p50"], perf["api.response_time.p95"], perf["api.response_time.p99"]
    assert 0 < p50 <= p95 <= p99 < 5000  # milliseconds
    routes = {(r["method"], r["route"]): r for r in perf["routes"]}
    assert set(routes) == {
        ("GET", "/tickets/<ticket_id>"), ("POST", "/checkout"), ("GET", '/odd/"quoted"\\path'), ("GET", "<unmatched>")
    }
    assert routes[("GET", "/tickets/<ticket_id>")]["count"] == 120
    assert routes[("POST", "/checkout")]["errors"] == 3
    assert routes[("POST", "/checkout")]["status"]["5xx"] == 3

    everything = get(shop, "?category=performance&include_internal=true").get_json()["performance"]
    assert everything["requests.count"] == 126 and everything["scope"]["internal"] == "included"
    assert ("GET", "/api/health/live") in {(r["method"], r["route"]) for r in everything["routes"]}


def test_window_parameter(shop: Flask, clock: ManualClock) -> None:
    clock.advance(2 * 3600)
    assert get(shop, "?category=performance&window=1h").get_json()["performance"]["requests.count"] == 0
    body = get(shop, "?category=performance&window=24h").get_json()
    assert body["performance"]["requests.count"] == 125 and body["window"]["label"] == "24h"
    assert get(shop, "?category=performance&window=30d").status_code == 200


def test_system_json_reports_every_live_worker_and_the_scheduler(shop: Flask) -> None:
    system = get(shop, "?category=system").get_json()["system"]
    assert 0 < system["system.memory.usage"] <= 100
    assert system["process.memory.rss"] > 10_000_000 and system["process.threads"] >= 1
    assert system["process.open_fds"] > 0 and system["store.size"] > 0
    assert len(system["workers"]) == 1 and system["workers"][0]["rssBytes"] == system["process.memory.rss"]
    assert system["hosts"][0]["memorySource"] in ("host", "cgroup-v1", "cgroup-v2")
    assert {job["name"] for job in system["scheduler"]["jobs"]} >= {"metrics_flush", "metrics_downsample",
                                                                     "system_sample", "retention"}


# --- bad input -------------------------------------------------------------------------------


def test_unknown_category_is_a_400_listing_the_valid_ones(shop: Flask) -> None:
    message = assert_json_error(get(shop, "?category=bogus"), 400, "invalid_parameter")
    assert "'bogus'" in message and "system, performance, business, errors, health, uptime, alerts" in message


def test_unknown_format_is_a_400(shop: Flask) -> None:
    message = assert_json_error(get(shop, "?format=xml"), 400, "invalid_parameter")
    assert "json, prometheus, datadog" in message


@pytest.mark.parametrize("window", ["5", "5s", "1w", "31d", "0m", "-1h", "1.5h", "abc", "5m;drop"])
def test_bad_window_is_a_400_listing_the_valid_forms(shop: Flask, window: str) -> None:
    message = assert_json_error(get(shop, f"?window={window}"), 400, "invalid_parameter")
    assert "1m, 5m, 15m, 1h, 6h, 24h, 7d, 30d" in message and "from 1m to 30d" in message


def test_bad_include_internal_is_a_400(shop: Flask) -> None:
    assert "true or false" in assert_json_error(get(shop, "?include_internal=maybe"), 400, "invalid_parameter")


def test_a_key_is_required(shop: Flask) -> None:
    assert shop.test_client().get(URL).status_code == 401
    assert shop.test_client().get(URL, headers={"X-API-Key": "wrong"}).status_code == 401
    assert shop.test_client().get(f"{URL}?api_key={METRICS_KEY}&format=prometheus").status_code == 200


def test_a_failing_provider_is_reported_and_the_rest_still_answers(shop: Flask) -> None:
    def broken(window: TimeWindow) -> CategoryReport:
        raise RuntimeError("provider bug")

    shop.extensions["centinela"].services.categories["uptime"] = broken
    body = get(shop).get_json()
    assert body["uptime"]["available"] is False and "server log" in body["uptime"]["reason"]
    assert body["performance"]["requests.count"] == 125
    exposition = get(shop, "?format=prometheus").get_data(as_text=True)
    assert 'centinela_metrics_category_available{category="uptime"} 0.0' in exposition
    assert 'centinela_metrics_category_available{category="performance"} 1.0' in exposition


# --- Prometheus -------------------------------------------------------------------------------


def _promtool_check(exposition: bytes) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=exposition.decode(), capture_output=True, text=True, timeout=30
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus; .ci/run installs it)")
def test_prometheus_output_passes_promtool_check_metrics(shop: Flask) -> None:
    response = get(shop, "?format=prometheus")
    assert response.status_code == 200
    assert response.content_type == "text/plain; version=0.0.4; charset=utf-8"
    result = _promtool_check(response.get_data())
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus; .ci/run installs it)")
def test_promtool_does_complain_about_a_bad_exposition() -> None:
    """The lint test above can fail: promtool flags what our names avoid."""
    bad = b"# HELP http_requests Requests.\n# TYPE http_requests counter\nhttp_requests 1\n"
    result = _promtool_check(bad)
    assert result.returncode != 0 and "_total" in result.stdout + result.stderr


def test_prometheus_counters_and_histogram_from_the_store(shop: Flask) -> None:
    families = {f.name: f for f in parse_prometheus(get(shop, "?format=prometheus").get_data(as_text=True))}
    requests = {
        (s.labels["method"], s.labels["route"], s.labels["status"], s.labels["internal"]): s.value
        for s in families["centinela_http_requests"].samples
        if s.name == "centinela_http_requests_total"
    }
    assert requests[("GET", "/tickets/<ticket_id>", "2xx", "false")] == 120
    assert requests[("POST", "/checkout", "5xx", "false")] == 3
    assert requests[("GET", '/odd/"quoted"\\path', "2xx", "false")] == 1
    assert requests[("GET", "/api/health/live", "2xx", "true")] == 1
    histogram = families["centinela_http_request_duration_seconds"]
    assert histogram.type == "histogram"
    tickets = [s for s in histogram.samples if s.labels.get("route") == "/tickets/<ticket_id>"]
    buckets = [(s.labels["le"], s.value) for s in tickets if s.name.endswith("_bucket")]
    assert [le for le, _ in buckets] == [repr(float(b)) for b in PROMETHEUS_BUCKETS] + ["+Inf"]
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1][1] == 120
    assert [s.value for s in tickets if s.name.endswith("_count")] == [120]


def test_prometheus_buckets_agree_with_the_recorded_samples(
    make_settings: Callable[..., Settings], clock: ManualClock
) -> None:
    app = Flask("latency")
    monitoring = Monitoring(app, settings=make_settings(), clock=clock)
    recorder = app.extensions["centinela"].services.metrics.recorder
    rng = random.Random(3)
    samples = [rng.lognormvariate(math.log(0.08), 1.0) for _ in range(5000)]
    for value in samples:
        recorder.record("GET", "/search", 200, value)
    monitoring.scheduler.run_process("metrics_flush")
    exposition = get(app, "?format=prometheus").get_data(as_text=True)
    buckets = {
        s.labels["le"]: s.value
        for f in parse_prometheus(exposition)
        for s in f.samples
        if s.name == "centinela_http_request_duration_seconds_bucket" and s.labels["route"] == "/search"
    }
    for bound in PROMETHEUS_BUCKETS:
        exact = sum(1 for v in samples if v <= bound)
        # never more than exact; less only by samples within one 2 % log bucket below the bound
        near = sum(1 for v in samples if bound / 1.0203 < v <= bound)
        assert exact - near <= buckets[repr(float(bound))] <= exact
    monitoring.shutdown()
    monitoring.store.dispose()


def test_openmetrics_when_the_scraper_asks_for_it(shop: Flask) -> None:
    response = get(shop, "?format=prometheus", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = response.get_data(as_text=True)
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(text)}  # the strict OpenMetrics parser
    assert families["centinela_http_requests"].type == "counter"
    assert families["centinela_http_request_duration_seconds"].type == "histogram"
    assert families["centinela_http_request_duration_seconds"].unit == "seconds"
    assert families["centinela_process_resident_memory_bytes"].unit == "bytes"


# --- Datadog ---------------------------------------------------------------------------------


def load_into_datadog_models(body: dict[str, Any]) -> Any:
    """Build datadog-api-client's MetricsPayload from the body: the models check every field's type."""
    from datadog_api_client.v1.model.metrics_payload import MetricsPayload
    from datadog_api_client.v1.model.point import Point
    from datadog_api_client.v1.model.series import Series

    assert set(body) == {"series"}
    series = []
    for item in body["series"]:
        assert set(item) <= set(Series.attribute_map), item  # nothing the API does not know
        fields = {k: ([Point(p) for p in v] if k == "points" else v) for k, v in item.items()}
        series.append(Series(**fields))
    return MetricsPayload(series=series)


def test_datadog_body_is_accepted_by_the_datadog_api_client_models(shop: Flask, clock: ManualClock) -> None:
    response = get(shop, "?format=datadog")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    payload = load_into_datadog_models(body)
    as_sent = payload.to_dict()
    assert len(as_sent["series"]) == len(body["series"]) > 0
    by_name: dict[str, list[dict[str, Any]]] = {}
    for item in body["series"]:
        by_name.setdefault(item["metric"], []).append(item)
        assert item["type"] in ("gauge", "count", "rate")
        ((ts, value),) = item["points"]
        assert ts == int(clock.now()) and isinstance(ts, int) and isinstance(value, (int, float))
        assert "zone:default" in item["tags"] and item["host"]
        if item["metric"] in ("requests.count", "errors.count"):
            assert item["type"] == "count" and item["interval"] == 330  # the covered seconds
    overall = [i for i in by_name["api.response_time.p95"] if not any(t.startswith("route:") for t in i["tags"])]
    assert len(overall) == 1
    json_p95 = get(shop, "?category=performance").get_json()["performance"]["api.response_time.p95"]
    assert overall[0]["points"][0][1] == json_p95  # same name and unit (ms) as the JSON
    assert by_name["system.memory.usage"][0]["points"][0][1] > 0  # %
    errors_rate = [i for i in by_name["errors.rate"]][0]["points"][0][1]
    assert errors_rate == pytest.approx(3 * 60 / 330)
    routes = {t for i in by_name["requests.count"] for t in i["tags"] if t.startswith("route:")}
    assert "route:/tickets/<ticket_id>" in routes


def test_datadog_exporter_drops_values_it_cannot_send(shop: Flask) -> None:
    def odd(window: TimeWindow) -> CategoryReport:
        return CategoryReport(json={}, datadog=[DatadogPoint("odd.nan", float("nan")), DatadogPoint("odd.one", 1.0)])

    shop.extensions["centinela"].services.categories["uptime"] = odd
    names = [s["metric"] for s in get(shop, "?format=datadog&category=uptime").get_json()["series"]]
    assert names == ["odd.one"]


# --- rate limit -------------------------------------------------------------------------------


def test_export_is_rate_limited_per_key(make_settings: Callable[..., Settings], clock: ManualClock) -> None:
    app = Flask("limited-export")
    monitoring = Monitoring(app, settings=make_settings({"RATELIMIT_EXPORT": "2/minute"}), clock=clock)
    client = app.test_client()
    assert [client.get(URL, headers=METRICS_HEADERS).status_code for _ in range(3)] == [200, 200, 429]
    limited = client.get(URL, headers=METRICS_HEADERS)
    assert_json_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    # another key, from the same address, has a budget of its own
    assert client.get(URL, headers=ADMIN_HEADERS).status_code == 200
    monitoring.shutdown()
    monitoring.store.dispose()
