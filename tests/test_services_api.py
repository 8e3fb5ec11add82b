"""Two apps on one store, each its own service: the metrics export (JSON, Prometheus, Datadog),
error groups, the dashboard and alert rules read back per service and combined, over HTTP."""
from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, abort
from prometheus_client.parser import text_string_to_metric_families

from monitoring.clock import ManualClock
from monitoring.extension import Monitoring
from monitoring.metrics.histogram import RELATIVE_ACCURACY, nearest_rank
from monitoring.settings import Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.test_alerts_support import QUIET

METRICS = "/api/monitoring/metrics"
ALERTS = "/api/monitoring/alerts"
PROMTOOL = shutil.which("promtool")


def build(name: str, settings: Settings, clock: ManualClock) -> Flask:
    app = Flask(name)

    @app.get("/tickets")
    def tickets() -> Any:
        return {"tickets": []}

    @app.get("/checkout")
    def checkout() -> Any:  # an unhandled exception: a 500 and an error group
        raise RuntimeError("card declined")

    @app.get("/gone")
    def gone() -> Any:
        abort(410)

    Monitoring(app, settings=settings, clock=clock)
    return app


@pytest.fixture
def apps(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[dict[str, Flask]]:
    """``shop`` (its import name, no SERVICE_NAME) and ``search`` (SERVICE_NAME), sharing one store."""
    built = {
        "shop": build("shop", make_settings(QUIET), clock),
        "search": build("search_app", make_settings({**QUIET, "SERVICE_NAME": "search"}), clock),
    }
    yield built
    for app in built.values():
        Monitoring.of(app).shutdown()
        Monitoring.of(app).services.store.dispose()


def traffic(apps: dict[str, Flask], clock: ManualClock) -> None:
    shop, search = apps["shop"].test_client(), apps["search"].test_client()
    for _ in range(30):
        shop.get("/tickets")
    for _ in range(10):
        shop.get("/checkout")
    for _ in range(20):
        search.get("/tickets")
    search.get("/gone")
    for app in apps.values():
        services = Monitoring.of(app).services
        services.metrics.flush()
        services.errors.flush()
    clock.advance(60)


def get(app: Flask, path: str, status: int = 200) -> Any:
    response = app.test_client().get(path, headers=METRICS_HEADERS)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def test_json_figures_per_service_and_combined(apps: dict[str, Flask], clock: ManualClock) -> None:
    traffic(apps, clock)
    shop = apps["shop"]
    combined = get(shop, f"{METRICS}?category=performance&window=5m").get_json()["performance"]
    assert combined["requests.count"] == 61 and combined["errors.count"] == 10 and combined["service"] is None
    assert [(s["service"], s["requests.count"], s["errors.count"]) for s in combined["services"]] == [
        ("shop", 40, 10), ("search", 21, 0)]
    assert {(r["service"], r["route"]) for r in combined["routes"]} == {
        ("shop", "/tickets"), ("shop", "/checkout"), ("search", "/tickets"), ("search", "/gone")}

    one = get(shop, f"{METRICS}?category=performance&window=5m&service=search").get_json()["performance"]
    assert (one["requests.count"], one["errors.count"], one["service"]) == (21, 0, "search")
    assert one["status"]["4xx"] == 1 and [s["service"] for s in one["services"]] == ["search"]
    # Any worker of either app answers the same: the figures are the store's.
    assert get(apps["search"], f"{METRICS}?category=performance&window=5m&service=search").get_json()[
        "performance"]["requests.count"] == 21

    errors = get(shop, f"{METRICS}?category=errors&window=5m").get_json()["errors"]
    assert (errors["errors.count"], errors["errors.total"], errors["requests.count"]) == (10, 10, 61)
    assert errors["services"] == [{"service": "shop", "errors.count": 10}]
    shop_errors = get(shop, f"{METRICS}?category=errors&window=5m&service=shop").get_json()["errors"]
    assert (shop_errors["errors.count"], shop_errors["requests.count"]) == (10, 40)
    assert shop_errors["errors.share"] == pytest.approx(0.25)
    assert shop_errors["groups"][0]["service"] == "shop"
    none = get(shop, f"{METRICS}?category=errors&window=5m&service=search").get_json()["errors"]
    assert (none["errors.count"], none["errors.total"], none["groups"]) == (0, 0, [])

    # A service the store does not know is simply empty; the other categories have no service.
    unknown = get(shop, f"{METRICS}?window=5m&service=nobody").get_json()
    assert unknown["performance"]["requests.count"] == 0 and unknown["performance"]["services"] == []
    assert unknown["errors"]["errors.count"] == 0
    assert "system.memory.usage" in unknown["system"]


@pytest.mark.parametrize("service", ["x" * 101, "shop%00", "tab%09bed", "%20shop"])
def test_a_malformed_service_parameter_is_a_400(apps: dict[str, Flask], service: str) -> None:
    for path in (METRICS, "/api/monitoring/errors", "/api/monitoring/dashboard", "/api/monitoring/dashboard/data"):
        body = get(apps["shop"], f"{path}?service={service}", 400).get_json()
        assert body["error"]["code"] == "invalid_parameter" and "service" in body["error"]["message"]


def test_prometheus_and_datadog_carry_the_service(apps: dict[str, Flask], clock: ManualClock) -> None:
    traffic(apps, clock)
    response = get(apps["shop"], f"{METRICS}?format=prometheus")
    exposition = response.get_data(as_text=True)
    samples = [s for family in text_string_to_metric_families(exposition) for s in family.samples]

    def value(name: str, **labels: str) -> float:
        (found,) = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return float(found.value)

    assert value("centinela_http_requests_total", service="shop", route="/tickets", status="2xx") == 30
    assert value("centinela_http_requests_total", service="shop", route="/checkout", status="5xx") == 10
    assert value("centinela_http_requests_total", service="search", route="/tickets", status="2xx") == 20
    assert value("centinela_http_request_duration_seconds_count", service="search", route="/gone") == 1
    assert value("centinela_errors_total", service="shop") == 10
    assert not [s for s in samples if s.name == "centinela_errors_total" and s.labels["service"] == "search"]
    # The search app's own service is in its exposition from the start, at 0 (rate() sees the first error).
    own = get(apps["search"], f"{METRICS}?format=prometheus&category=errors").get_data(as_text=True)
    assert {s.labels["service"]: s.value for f in text_string_to_metric_families(own) for s in f.samples
            if s.name == "centinela_errors_total"} == {"search": 0, "shop": 10}
    if PROMTOOL is not None:
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True,
                              timeout=30)
        assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == "", lint.stdout + lint.stderr
    # One service's families only.
    only = get(apps["shop"], f"{METRICS}?format=prometheus&service=search").get_data(as_text=True)
    services = {s.labels["service"] for f in text_string_to_metric_families(only) for s in f.samples
                if s.name.startswith(("centinela_http_request", "centinela_errors"))}
    assert services == {"search"}

    series = get(apps["shop"], f"{METRICS}?format=datadog&window=5m").get_json()["series"]
    counts = {tuple(sorted(t for t in item["tags"] if t.startswith(("service:", "route:")))): item["points"][0][1]
              for item in series if item["metric"] == "requests.count"}
    assert counts[("service:shop",)] == 40 and counts[("service:search",)] == 21
    assert counts[("route:/tickets", "service:shop")] == 30 and counts[("route:/tickets", "service:search")] == 20
    assert counts[()] == 61  # the overall point stays untagged
    unhandled = [item for item in series if item["metric"] == "errors.unhandled.count"]
    assert {tuple(i["tags"][1:]): i["points"][0][1] for i in unhandled} == {(): 10}  # one service with errors


def test_p95_per_service_within_one_percent(apps: dict[str, Flask], clock: ManualClock) -> None:
    rng = random.Random(7)
    recorder = Monitoring.of(apps["shop"]).services.metrics.recorder
    durations = {"shop": [rng.lognormvariate(-3.0, 0.5) for _ in range(300)],
                 "search": [rng.lognormvariate(-1.0, 0.3) for _ in range(200)]}
    for service, samples in durations.items():
        for seconds in samples:
            recorder.record("GET", "/q", 200, seconds, service=service)
    Monitoring.of(apps["shop"]).services.metrics.flush()
    clock.advance(60)
    body = get(apps["shop"], f"{METRICS}?category=performance&window=5m").get_json()["performance"]
    per_service = {s["service"]: s for s in body["services"]}
    for service, samples in durations.items():
        exact = sorted(samples)[nearest_rank(0.95, len(samples)) - 1] * 1000
        assert per_service[service]["requests.count"] == len(samples)
        assert per_service[service]["api.response_time.p95"] == pytest.approx(exact, rel=RELATIVE_ACCURACY)
        alone = get(apps["shop"], f"{METRICS}?category=performance&window=5m&service={service}").get_json()
        assert alone["performance"]["api.response_time.p95"] == per_service[service]["api.response_time.p95"]


def test_error_groups_and_the_dashboard_per_service(apps: dict[str, Flask], clock: ManualClock) -> None:
    traffic(apps, clock)
    shop = apps["shop"]
    groups = get(shop, "/api/monitoring/errors").get_json()["groups"]
    assert [(g["service"], g["count"]) for g in groups] == [("shop", 10)]
    assert get(shop, "/api/monitoring/errors?service=search").get_json()["groups"] == []

    document = get(shop, "/api/monitoring/dashboard").get_json()
    assert document["appServices"] == {"selected": None, "known": ["search", "shop"]}
    assert document["performance"]["requests.count"] == 61
    one = get(shop, "/api/monitoring/dashboard/data?service=search").get_json()
    assert one["view"] == "full" and one["appServices"]["selected"] == "search"
    assert one["performance"]["requests.count"] == 21 and one["errors"]["errors.count"] == 0
    assert sum(p["requests"] for p in one["series"]["1h"]["points"]) == 21
    assert sum(p["requests"] for p in document["series"]["1h"]["points"]) == 61


def test_a_rule_for_one_service_fires_on_that_service_only(apps: dict[str, Flask], clock: ManualClock) -> None:
    admin = apps["shop"].test_client()
    rule = {"figure": "error_rate", "comparison": ">", "threshold": 0.1, "severity": "high",
            "summary": "{service} error rate {value_percent} over {window}"}
    for name, service in (("ShopErrors", "shop"), ("SearchErrors", "search")):
        response = admin.post(ALERTS, headers=ADMIN_HEADERS,
                              json={"action": "add_rule", "rule": {**rule, "name": name, "service": service}})
        assert response.status_code == 200, response.get_data(as_text=True)
    rules = {r["name"]: r for r in get(apps["shop"], f"{ALERTS}?action=rules").get_json()["rules"]}
    assert rules["ShopErrors"]["service"] == "shop" and rules["HighErrorRate"]["service"] is None

    engine = Monitoring.of(apps["shop"]).services.alerting
    traffic(apps, clock)
    engine.evaluate()
    firing = {a["name"]: a for a in get(apps["shop"], f"{ALERTS}?action=active&state=firing").get_json()["alerts"]}
    assert "ShopErrors" in firing and "SearchErrors" not in firing
    assert firing["ShopErrors"]["labels"]["service"] == "shop"
    assert firing["ShopErrors"]["annotations"]["summary"] == "shop error rate 25% over 5m"

    # The search app fails too, later: its own rule fires, from its own errors.
    search = apps["search"].test_client()
    for _ in range(5):
        search.get("/checkout")
    Monitoring.of(apps["search"]).services.metrics.flush()
    clock.advance(30)
    engine.evaluate()
    firing = {a["name"] for a in get(apps["shop"], f"{ALERTS}?action=active&state=firing").get_json()["alerts"]}
    assert {"ShopErrors", "SearchErrors"} <= firing


@pytest.mark.parametrize(("changes", "message"), [
    ({"service": "x" * 101}, "service must be a service name"),
    ({"service": "line\u2028break"}, "service must be a service name"),
    ({"service": " shop"}, "service must be a service name"),
    ({"service": 3}, "service must be a service name"),
    ({"service": "shop", "figure": "payment_failure_rate"}, "payment_failure_rate is not per service"),
])
def test_rule_service_validation(apps: dict[str, Flask], changes: dict[str, Any], message: str) -> None:
    rule = {"name": "Bad", "figure": "error_rate", "comparison": ">", "threshold": 0.1, "severity": "high",
            "summary": "bad", **changes}
    response = apps["shop"].test_client().post(ALERTS, headers=ADMIN_HEADERS, json={"action": "add_rule", "rule": rule})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_rule"
    assert any(p["field"] == "service" and f"service {p['message']}".startswith(message)
               or p["message"].startswith(message) for p in error["problems"]), error
    assert "Bad" not in {r["name"] for r in get(apps["shop"], f"{ALERTS}?action=rules").get_json()["rules"]}
