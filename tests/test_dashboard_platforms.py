"""The Grafana and Datadog dashboard documents: they import as they are, and every query names
only metrics that our real Prometheus and Datadog exports serve after real traffic."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from monitoring.clock import ManualClock
from monitoring.dashboard.datadog import datadog_dashboard, metric_queries
from monitoring.dashboard.grafana import DATASOURCE_VARIABLE, grafana_dashboard, promql_expressions
from monitoring.settings import Settings
from tests.conftest import ADMIN_KEY, METRICS_HEADERS, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer, free_port

DASHBOARD = "/api/monitoring/dashboard"
PROMTOOL = shutil.which("promtool")

# --- reading metric names out of PromQL and Datadog queries ----------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                 "offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords, labels or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![0-9.a-zA-Z_:])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group(0).lower() in _PROMQL_WORDS:
            continue  # a function call or a keyword
        names.add(match.group(0))
    return names


def datadog_metric_name(query: str) -> str:
    match = re.fullmatch(r"(?:avg|sum|min|max):([a-z0-9_.]+)\{[^}]*\}(?: by \{[a-z_,]+\})?", query)
    assert match, f"not a plain Datadog metric query: {query}"
    return match.group(1)


def test_the_promql_name_reader_finds_names_and_only_names() -> None:
    expr = ('(sum(rate(a_total{internal="false",status="5xx"}[5m])) or vector(0)) / '
            'sum by (le, route) (rate(b_bucket{x=~"by|on"}[1h])) * 60 + 1e-9 + c offset 5m > bool on (job) d')
    assert promql_metric_names(expr) == {"a_total", "b_bucket", "c", "d"}
    assert promql_metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))") == {"x_bucket"}


# --- a service with real traffic -------------------------------------------------------------


@pytest.fixture
def busy_service(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Flask]:
    """Every figure the dashboards chart exists: requests, payments, tickets, users, a dependency with a
    breaker, health rounds folded into uptime, and a resource sample."""
    with RecordingHTTPServer() as stripe:
        app = create_app(make_settings({"STRIPE_SECRET_KEY": "sk_test_platforms0123456789",
                                        "STRIPE_API_BASE": stripe.url}), clock=clock)
        monitoring = app.extensions["centinela"]
        client = app.test_client()
        monitoring.health.run_round()
        for i in range(25):
            assert client.get(f"/tickets/{i}").status_code == 404
        response = client.post("/api/monitoring/events", headers=METRICS_HEADERS, json={"events": [
            {"type": "payment", "outcome": "succeeded", "amount": 1999, "currency": "EUR"},
            {"type": "payment", "outcome": "failed", "amount": 500, "currency": "EUR"},
            {"type": "ticket", "operation": "purchased", "quantity": 2},
            {"type": "user_activity", "user_id": "u-7", "action": "login"}]})
        assert response.status_code == 201
        monitoring.scheduler.run_process("metrics_flush")
        monitoring.scheduler.run_process("system_sample")
        clock.advance(20)
        monitoring.health.run_round()
        yield app
        monitoring.shutdown()
        monitoring.store.dispose()


def served_prometheus_names(app: Flask) -> set[str]:
    response = app.test_client().get("/api/monitoring/metrics?format=prometheus", headers=METRICS_HEADERS)
    assert response.status_code == 200
    return {sample.name for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def served_datadog_names(app: Flask) -> set[str]:
    response = app.test_client().get("/api/monitoring/metrics?format=datadog", headers=METRICS_HEADERS)
    assert response.status_code == 200
    return {series["metric"] for series in response.get_json()["series"]}


# --- Grafana ---------------------------------------------------------------------------------


def grafana_document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get(DASHBOARD + "?platform=grafana", headers=METRICS_HEADERS)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def test_grafana_document_has_what_an_import_needs(app: Flask) -> None:
    document = grafana_document(app)
    assert document == grafana_dashboard()
    assert document["uid"] == "centinela-overview" and document["title"] == "Centinela" and document["id"] is None
    assert isinstance(document["schemaVersion"], int) and document["schemaVersion"] >= 36
    assert document["time"] == {"from": "now-6h", "to": "now"} and document["refresh"] == "30s"
    (variable,) = document["templating"]["list"]
    assert variable == {**variable, "name": DATASOURCE_VARIABLE, "type": "datasource", "query": "prometheus"}
    panels = document["panels"]
    assert {p["type"] for p in panels} == {"row", "stat", "timeseries"}
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"] and all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        assert [t["refId"] for t in panel["targets"]] == [chr(ord("A") + i) for i in range(len(panel["targets"]))]
        assert panel["fieldConfig"]["defaults"]["unit"] and panel["description"]
    latency = next(p for p in panels if p["title"] == "Latency p50 / p95 / p99")
    assert latency["type"] == "timeseries"
    assert ("histogram_quantile(0.95, sum by (le) (rate(centinela_http_request_duration_seconds_bucket"
            '{internal="false"}[5m])))') in [t["expr"] for t in latency["targets"]]


def test_every_promql_name_is_served_by_our_prometheus_export(busy_service: Flask) -> None:
    served = served_prometheus_names(busy_service)
    expressions = promql_expressions(grafana_document(busy_service))
    assert len(expressions) >= 20
    named = {name for expr in expressions for name in promql_metric_names(expr)}
    assert named, expressions
    assert named - served == set(), f"the Grafana dashboard queries metrics our export does not serve: {named - served}"
    # Suffix rules: counters are queried as _total, the histogram through _bucket, never the bare family.
    assert "centinela_http_requests_total" in named and "centinela_http_request_duration_seconds_bucket" in named
    assert "centinela_http_requests" not in named and "centinela_payments" not in named


def test_the_name_check_fails_for_a_name_the_export_does_not_serve(busy_service: Flask) -> None:
    served = served_prometheus_names(busy_service)
    for wrong in ("rate(centinela_http_requests[5m])", "centinela_http_request_duration_seconds",
                  "histogram_quantile(0.95, rate(centinela_latency_bucket[5m]))"):
        assert promql_metric_names(wrong) - served, wrong


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus; .ci/run installs it)")
def test_every_promql_expression_parses(tmp_path: Any) -> None:
    expressions = promql_expressions(grafana_dashboard())
    rules = {"groups": [{"name": "grafana", "rules": [{"record": f"centinela:panel{i}", "expr": expr}
                                                     for i, expr in enumerate(expressions)]}]}
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # YAML is a superset of JSON
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    path.write_text(json.dumps({"groups": [{"name": "bad", "rules": [{"record": "x:y", "expr": "sum(rate(x[5m]"}]}]}))
    assert subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, timeout=60).returncode != 0


# --- Datadog ---------------------------------------------------------------------------------


def unparsed_parts(value: Any, path: str = "dashboard") -> Iterator[str]:
    """Where the Datadog client could not map the JSON onto its models (unknown types or enum values)."""
    from datadog_api_client.model_utils import OpenApiModel, UnparsedObject

    if isinstance(value, UnparsedObject):
        yield path
        return
    if isinstance(value, OpenApiModel):
        if getattr(value, "_unparsed", False):
            yield path
        inner = value.get_oneof_instance() if hasattr(value, "get_oneof_instance") else None
        if inner is not None and inner is not value:
            yield from unparsed_parts(inner, path)
        for key, item in getattr(value, "_data_store", {}).items():
            yield from unparsed_parts(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from unparsed_parts(item, f"{path}[{index}]")


def load_datadog_dashboard(document: dict[str, Any]) -> Any:
    from datadog_api_client.api_client import ApiClient
    from datadog_api_client.configuration import Configuration
    from datadog_api_client.v1.model.dashboard import Dashboard

    return ApiClient(Configuration()).deserialize(json.dumps(document), (Dashboard,), True)


def test_datadog_document_loads_into_the_datadog_client_models(app: Flask) -> None:
    response = app.test_client().get(DASHBOARD + "?platform=datadog", headers=METRICS_HEADERS)
    assert response.status_code == 200
    document = response.get_json()
    assert document == datadog_dashboard()
    assert set(document) == {"title", "description", "layout_type", "widgets"} and document["layout_type"] == "ordered"
    model = load_datadog_dashboard(document)
    assert list(unparsed_parts(model)) == []
    kinds = {type(w.definition.get_oneof_instance()).__name__ for w in model.widgets}
    assert kinds == {"TimeseriesWidgetDefinition", "QueryValueWidgetDefinition"}
    assert model.to_dict() == document
    # The check above can fail: an unknown widget type or enum value is reported.
    broken = json.loads(json.dumps(document))
    broken["widgets"][0]["definition"]["type"] = "sparkline"
    broken["layout_type"] = "spiral"
    assert len(list(unparsed_parts(load_datadog_dashboard(broken)))) >= 2


def test_every_datadog_query_names_a_metric_our_datadog_export_sends(busy_service: Flask) -> None:
    served = served_datadog_names(busy_service)
    queries = metric_queries(datadog_dashboard())
    assert len(queries) >= 15
    named = {datadog_metric_name(q) for q in queries}
    assert named - served == set(), f"the Datadog dashboard queries metrics our export does not send: {named - served}"
    assert "api.response_time.p95" in named and "payments.success_rate" in named
    with pytest.raises(AssertionError):
        datadog_metric_name("avg:api.response_time.p95{*}.rollup(avg, 60) / 1000")


# --- a real Prometheus scraping a real gunicorn, answering every panel's query ----------------

PROMETHEUS = shutil.which("prometheus")


def prometheus_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    major, minor = re.search(r"version (\d+)\.(\d+)", out).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def scrape_config(target: str, key_file: Path, version: tuple[int, int]) -> dict[str, Any]:
    """The scrape config of docs/integrations.md: the key in a header (Prometheus 2.55+), else as a parameter."""
    job: dict[str, Any] = {
        "job_name": "centinela",
        "metrics_path": "/api/monitoring/metrics",
        "params": {"format": ["prometheus"]},
        "static_configs": [{"targets": [target]}],
    }
    if version >= (2, 55):
        job["http_headers"] = {"X-API-Key": {"files": [str(key_file)]}}
    else:
        job["params"]["api_key"] = [key_file.read_text().strip()]
    return {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package prometheus; .ci/run installs it)")
def test_a_real_prometheus_answers_every_grafana_query(gunicorn_server: Callable[..., Any], tmp_path: Path) -> None:
    assert PROMETHEUS is not None
    with RecordingHTTPServer() as stripe:
        server = gunicorn_server(env={
            "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY,
            "STRIPE_SECRET_KEY": "sk_test_prometheus0123456789", "STRIPE_API_BASE": stripe.url,
            "METRICS_FLUSH_INTERVAL": "0.5", "HEALTH_CHECK_INTERVAL": "1", "SYSTEM_SAMPLE_INTERVAL": "1",
            "RATELIMIT_DEFAULT": "100000/minute", "RATELIMIT_EXPORT": "100000/minute"})
        key_file = tmp_path / "centinela-metrics-key"
        key_file.write_text(METRICS_KEY + "\n")
        config = tmp_path / "prometheus.yml"
        config.write_text(json.dumps(scrape_config(server.url.split("//")[1], key_file,
                                                   prometheus_version(PROMETHEUS))))
        if PROMTOOL:
            checked = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True,
                                     timeout=60)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        port = free_port()
        log = open(tmp_path / "prometheus.log", "wb")
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}/api/v1"
        try:
            def events() -> None:
                requests.post(f"{server.url}/api/monitoring/events", headers=METRICS_HEADERS, timeout=5, json={"events": [
                    {"type": "payment", "outcome": "succeeded", "amount": 2500, "currency": "EUR"},
                    {"type": "ticket", "operation": "scanned"},
                    {"type": "user_activity", "user_id": "u-1", "action": "login"}]}).raise_for_status()

            def query(expr: str) -> list[Any]:
                body = requests.get(f"{api}/query", params={"query": expr}, timeout=5).json()
                assert body["status"] == "success", (expr, body)
                return body["data"]["result"]  # type: ignore[no-any-return]

            # Traffic between scrapes, so that every rate() has two samples that differ.
            deadline = time.monotonic() + 40
            expressions = promql_expressions(grafana_dashboard())
            missing = expressions
            while missing and time.monotonic() < deadline:
                for i in range(10):
                    requests.get(f"{server.url}/tickets/{i}", timeout=5)
                events()
                time.sleep(0.5)  # a real Prometheus scrapes on its own 1 s timer
                try:
                    missing = [expr for expr in expressions if not query(expr)]
                except requests.ConnectionError:
                    continue  # Prometheus still starting
            assert missing == [], f"queries with no data after 40 s: {missing}\n" + \
                (tmp_path / "prometheus.log").read_text()[-2000:]
            targets = requests.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
            assert [t["health"] for t in targets] == ["up"]
            # The trade-off docs/integrations.md states: a key sent as a parameter shows in the target listing.
            sent_as_parameter = "api_key" in scrape_config("x", key_file, prometheus_version(PROMETHEUS))[
                "scrape_configs"][0]["params"]
            assert (METRICS_KEY in targets[0]["scrapeUrl"]) == sent_as_parameter
            (p95,) = query(next(e for e in expressions if e.startswith("histogram_quantile(0.95,")))
            assert 0 < float(p95["value"][1]) < 10
        finally:
            prometheus.terminate()
            prometheus.wait(timeout=20)
            log.close()
