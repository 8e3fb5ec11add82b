"""Every family the Grafana and Datadog documents query is in the export from the first scrape of a
fresh service: counters at 0 before their first event (so rate() and increase() see it), figures
not measured yet as NaN in Prometheus (never absent, never a made-up 0)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from monitoring.clock import ManualClock
from monitoring.dashboard.datadog import MEASURED_ONLY, WIDGETS, datadog_dashboard, metric_queries
from monitoring.dashboard.grafana import grafana_dashboard, promql_expressions
from monitoring.settings import Settings
from tests.conftest import ADMIN_KEY, METRICS_HEADERS, METRICS_KEY
from tests.support.receiver import RecordingHTTPServer
from tests.test_dashboard_platforms import datadog_metric_name, promql_metric_names

PROMETHEUS = "/api/monitoring/metrics?format=prometheus"
DATADOG = "/api/monitoring/metrics?format=datadog"


def grafana_names() -> set[str]:
    return {name for expr in promql_expressions(grafana_dashboard()) for name in promql_metric_names(expr)}


def datadog_names() -> set[str]:
    return {datadog_metric_name(q) for q in metric_queries(datadog_dashboard())}


def samples(exposition: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


@pytest.fixture
def stripe() -> Iterator[RecordingHTTPServer]:
    with RecordingHTTPServer() as server:
        yield server


@pytest.fixture
def fresh(make_settings: Callable[..., Settings], clock: ManualClock, stripe: RecordingHTTPServer) -> Iterator[Flask]:
    """A fresh shop's service: Stripe configured, nothing checked, sampled, requested or paid yet. Its
    process has said it runs (the heartbeat every process writes as its scheduler starts)."""
    app = create_app(make_settings({"STRIPE_SECRET_KEY": "sk_test_first_scrape_0123456789",
                                    "STRIPE_API_BASE": stripe.url}), clock=clock)
    monitoring = app.extensions["centinela"]
    monitoring.scheduler.heartbeat()
    yield app
    monitoring.shutdown()
    monitoring.store.dispose()


def test_every_grafana_family_is_in_the_first_scrape_zero_or_not_measured(fresh: Flask) -> None:
    response = fresh.test_client().get(PROMETHEUS, headers=METRICS_HEADERS)
    assert response.status_code == 200
    served = samples(response.get_data(as_text=True))
    assert grafana_names() - set(served) == set()

    def value(name: str, **labels: str) -> float:
        (found,) = [s for s in served[name] if all(s.labels.get(k) == v for k, v in labels.items())]
        return float(found.value)

    # Counters and states known in advance: zero.
    assert value("centinela_revenue_minor_units_total", currency="EUR") == 0  # REVENUE_CURRENCIES
    assert value("centinela_payments_total", outcome="succeeded") == 0
    assert value("centinela_circuit_breaker_open", service="stripe") == 0  # a breaker no call has used: closed
    assert value("centinela_http_requests_total", route="<unmatched>", status="5xx", internal="false") == 0
    assert value("centinela_http_request_duration_seconds_bucket", route="<unmatched>", le="+Inf") == 0
    assert value("centinela_incidents_open") == 0
    # Figures not measured yet: NaN, Prometheus' "no value".
    for name, labels in (("centinela_health_score", {}), ("centinela_dependency_up", {"service": "stripe"}),
                         ("centinela_dependency_response_seconds", {"service": "stripe"}),
                         ("centinela_uptime_ratio", {}), ("centinela_payment_success_ratio", {}),
                         ("centinela_system_cpu_usage_ratio", {}), ("centinela_system_memory_usage_ratio", {})):
        assert math.isnan(value(name, **labels)), name


def test_the_first_datadog_body_sends_every_name_but_the_gauges_not_measured_yet(fresh: Flask) -> None:
    body = fresh.test_client().get(DATADOG, headers=METRICS_HEADERS).get_json()
    sent = {series["metric"] for series in body["series"]}
    assert datadog_names() - sent == set(MEASURED_ONLY)  # exactly those, and no other name is missing
    assert MEASURED_ONLY <= datadog_names()  # the list names only what the document queries
    revenue = [s for s in body["series"] if s["metric"] == "payments.revenue_minor_units"]
    assert [(s["tags"][-1], s["points"][0][1]) for s in revenue] == [("currency:EUR", 0.0)]
    # What is left out is a gauge with no figure yet, never a count.
    counts = {q.split(":")[1].split("{")[0] for w in WIDGETS for q in w.queries if q.startswith("sum:")}
    assert not counts & MEASURED_ONLY


def test_measured_figures_replace_the_nans(fresh: Flask, clock: ManualClock) -> None:
    monitoring = fresh.extensions["centinela"]
    monitoring.health.run_round()
    monitoring.scheduler.run_process("system_sample")
    clock.advance(5)
    served = samples(fresh.test_client().get(PROMETHEUS, headers=METRICS_HEADERS).get_data(as_text=True))
    for name in ("centinela_health_score", "centinela_dependency_up", "centinela_uptime_ratio",
                 "centinela_system_cpu_usage_ratio", "centinela_system_memory_usage_ratio"):
        assert all(not math.isnan(float(s.value)) for s in served[name]), name
    assert len(served["centinela_system_cpu_usage_ratio"]) == 1  # the host, once: sampled now, no NaN twin


@pytest.mark.slow
def test_a_fresh_gunicorn_serves_every_family_on_its_first_scrape(
        gunicorn_server: Callable[..., Any], store_url: str, stripe: RecordingHTTPServer) -> None:
    server = gunicorn_server(env={
        "METRICS_API_KEY": METRICS_KEY, "ADMIN_API_KEY": ADMIN_KEY, "DATABASE_URL": store_url,
        "STRIPE_SECRET_KEY": "sk_test_first_scrape_0123456789", "STRIPE_API_BASE": stripe.url,
    }, workers=2)
    # The first scrape, as soon as the service answers: before or after the leader's first round.
    exposition = requests.get(server.url + PROMETHEUS, headers=METRICS_HEADERS, timeout=10).text
    assert grafana_names() - set(samples(exposition)) == set()
    body = requests.get(server.url + DATADOG, headers=METRICS_HEADERS, timeout=10).json()
    assert datadog_names() - {s["metric"] for s in body["series"]} <= set(MEASURED_ONLY)
