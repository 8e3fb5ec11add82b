"""GET /api/monitoring/uptime and its incident history through HTTP: the document and its schema, zones
from real heartbeats, the error-rate SLA from real traffic, the metrics export, retention, bad parameters."""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from monitoring.clock import ManualClock
from monitoring.durations import format_duration
from monitoring.extension import Monitoring
from monitoring.scheduler import Scheduler
from monitoring.settings import Settings
from monitoring.uptime.maintenance import parse_window_spec
from tests.conftest import METRICS_HEADERS
from tests.support import contract
from tests.test_metrics_export import load_into_datadog_models

UPTIME = "/api/monitoring/uptime"
HISTORY = "/api/monitoring/uptime/incidents"
DAY = 86400.0
PROMTOOL = shutil.which("promtool")


class Dependency:
    """A critical custom check whose answer the test sets: the real round, with no network needed."""

    def __init__(self, application: Any, name: str = "shop") -> None:
        self.up = True
        self.health = application.extensions["centinela"].health
        self.health.register(name, lambda: self.up, critical=True)

    def round(self, up: bool) -> None:
        self.up = up
        self.health.run_round()


def assert_error(response: Any, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) >= {"code", "message"} and error["code"] == "invalid_parameter"
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


# --- the document -------------------------------------------------------------------------------------


def test_the_document_keeps_the_system_description_names_and_matches_its_schema(
    make_app: Callable[..., Any], clock: ManualClock
) -> None:
    application = make_app({"HEALTH_CHECK_INTERVAL": str(3 * DAY)})  # a round vouches for 7.5 days
    shop = Dependency(application)
    shop.round(up=True)
    clock.advance(3600)
    shop.round(up=False)
    clock.advance(600)
    shop.round(up=True)
    clock.advance(5 * DAY + 14 * 3600 + 23 * 60 + 45)
    shop.round(up=True)
    response = application.test_client().get(UPTIME)  # public: no key
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["status", "uptime", "sla", "zones", "incidents", "mtbf", "mttr", "coverage", "maintenance",
                          "window"]
    assert body["status"] == "healthy"
    assert body["uptime"]["formatted"] == "5d 14h 23m 45s"
    assert body["uptime"]["since"] == "2026-01-01T01:10:00.000Z"
    assert set(body["sla"]["compliance"]) == {"overall", "uptime", "errorRate"}
    assert body["sla"]["target"] == 99.9
    assert body["incidents"]["history"] == HISTORY
    assert f"GET {UPTIME} 200" in contract.checked  # validated against the served document


def test_before_any_round_nothing_is_claimed(client: Any) -> None:
    body = client.get(UPTIME).get_json()
    assert body["status"] == "unknown"
    assert body["uptime"] == {**body["uptime"], "percentage": None, "since": None, "formatted": "0s"}
    assert body["sla"]["compliance"] == {"overall": None, "uptime": None, "errorRate": None}
    assert body["coverage"]["known"] == 0.0 and body["coverage"]["unknown"] == 100.0
    assert body["sla"]["burnRates"]["windows"]["1h"] is None
    assert body["mtbf"]["seconds"] is None and body["mttr"]["seconds"] is None


def test_sla_target_is_configurable(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app({"SLA_TARGET": "99.5", "HEALTH_CHECK_INTERVAL": str(DAY)})
    shop = Dependency(application)
    shop.round(up=True)
    clock.advance(DAY - 300)
    shop.round(up=False)
    clock.advance(300)
    shop.round(up=True)
    body = application.test_client().get(UPTIME + "?window=24h").get_json()
    assert body["sla"]["target"] == 99.5
    assert body["uptime"]["percentage"] == round(100 * (DAY - 300) / DAY, 4) == 99.6528
    assert body["sla"]["compliance"]["uptime"] is True  # 99.65 >= 99.5 (it would fail 99.9)
    assert body["sla"]["errorBudget"]["allowedSeconds"] == 432.0
    assert body["sla"]["errorBudget"]["remainingSeconds"] == 132.0
    assert body["sla"]["burnRates"]["windows"]["5m"] == 200.0  # the last five minutes were all down
    assert body["sla"]["burnRates"]["windows"]["30m"] == round(300 / 1800 / 0.005, 4)


def test_maintenance_in_progress_is_shown_and_left_out(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app({"HEALTH_CHECK_INTERVAL": str(DAY)})
    monitoring = application.extensions["centinela"]
    window = monitoring.uptime.calendar.create(parse_window_spec(
        {"type": "one_off", "start": "2026-01-01T01:00:00Z", "end": "2026-01-01T03:00:00Z", "reason": "upgrade"}))
    shop = Dependency(application)
    shop.round(up=True)
    clock.advance(3600)
    shop.round(up=False)  # down during the upgrade: planned
    clock.advance(1800)
    body = application.test_client().get(UPTIME + "?window=24h").get_json()
    assert body["maintenance"]["active"] == [{"window": window.id, "from": "2026-01-01T01:00:00.000Z",
                                              "to": "2026-01-01T03:00:00.000Z", "services": None, "reason": "upgrade"}]
    assert body["uptime"]["downSeconds"] == 0.0 and body["uptime"]["percentage"] == 100.0
    assert body["coverage"]["maintenanceSeconds"] == 1800.0
    assert body["incidents"]["open"]["cause"] == "critical dependency down: shop (check reported unhealthy)"
    assert body["incidents"]["count"] == 0  # no counted down time: not in MTBF / MTTR


# --- incident history -----------------------------------------------------------------------------------


def test_incident_history_pages_newest_first(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app({"HEALTH_CHECK_INTERVAL": "30"})
    shop = Dependency(application)
    for _ in range(5):
        shop.round(up=True)
        clock.advance(30)
        shop.round(up=False)
        clock.advance(30)
    client = application.test_client()
    first = client.get(HISTORY + "?limit=2").get_json()
    assert [i["status"] for i in first["incidents"]] == ["open", "resolved"]
    assert first["incidents"][0]["end"] is None and first["incidents"][0]["durationSeconds"] == 30.0
    assert first["next"]["before"] == first["incidents"][1]["id"]
    second = client.get(first["next"]["href"]).get_json()
    third = client.get(second["next"]["href"]).get_json()
    ids = [i["id"] for page in (first, second, third) for i in page["incidents"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    assert third["next"] is None
    starts = [i["start"] for page in (first, second, third) for i in page["incidents"]]
    assert starts[-1] == "2026-01-01T00:00:30.000Z"


@pytest.mark.parametrize("query", ["?limit=0", "?limit=201", "?limit=ten", "?before=0", "?before=-3", "?before=x"])
def test_bad_paging_parameters_are_a_400(client: Any, query: str) -> None:
    name = query[1:].split("=")[0]
    assert_error(client.get(HISTORY + query), 400, f"{name} must be a whole number")


# --- bad parameters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("?window=1y", "unknown window '1y'"),
        ("?window=12h", "unknown window '12h'"),
        ("?window=30", "unknown window '30'"),
        ("?month=2026-13", "month must be YYYY-MM"),
        ("?month=26-01", "month must be YYYY-MM"),
        ("?month=2026-1", "month must be YYYY-MM"),
        ("?month=1969-12", "month must be YYYY-MM"),
        ("?month=2026-02", "month 2026-02 has not begun yet"),
        ("?month=9999-12", "has not begun yet"),
        ("?window=30d&month=2025-12", "not both"),
    ],
)
def test_bad_window_or_month_is_a_400_listing_the_valid_forms(client: Any, query: str, fragment: str) -> None:
    assert_error(client.get(UPTIME + query), 400, fragment, "window=24h, 7d, 30d or 90d", "month=YYYY-MM")


@pytest.mark.parametrize("window, seconds", [("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY)])
def test_each_window(client: Any, window: str, seconds: float) -> None:
    body = client.get(f"{UPTIME}?window={window}").get_json()
    assert (body["window"]["label"], body["window"]["seconds"]) == (window, seconds)
    assert body["window"]["to"] == "2026-01-01T00:00:00.000Z"


def test_the_current_month_so_far(client: Any, clock: ManualClock) -> None:
    clock.advance(10 * DAY)
    body = client.get(UPTIME + "?month=2026-01").get_json()
    assert body["window"] == {"label": "2026-01", "from": "2026-01-01T00:00:00.000Z",
                              "to": "2026-02-01T00:00:00.000Z", "seconds": 31 * DAY,
                              "measuredTo": "2026-01-11T00:00:00.000Z", "complete": False}
    assert body["sla"]["errorBudget"]["allowedMinutes"] == 44.64


# --- zones --------------------------------------------------------------------------------------------------


def test_zones_go_down_when_their_instances_stop_heartbeating(
    make_app: Callable[..., Any], clock: ManualClock
) -> None:
    application = make_app({"ZONE": "eu-west-1a", "LEASE_TTL": "15"})
    monitoring = application.extensions["centinela"]
    # Other processes on the same store, each with its own zone: the scheduler's real heartbeat.
    second = Scheduler(monitoring.store, clock, 15, "eu-west-1a")
    us = Scheduler(monitoring.store, clock, 15, "us-east-1b")
    for scheduler in (monitoring.scheduler, second, us):
        scheduler.heartbeat()
    client = application.test_client()
    zones = {z["zone"]: z for z in client.get(UPTIME).get_json()["zones"]}
    assert {name: (z["status"], z["instancesUp"]) for name, z in zones.items()} == {
        "eu-west-1a": ("up", 2), "us-east-1b": ("up", 1)}
    assert [i["id"] for i in zones["us-east-1b"]["instances"]] == [us.instance.instance_id]

    clock.advance(10)
    monitoring.scheduler.heartbeat()  # only this one keeps beating
    clock.advance(6)  # 16 s since the others' last beat: more than LEASE_TTL
    zones = {z["zone"]: z for z in client.get(UPTIME).get_json()["zones"]}
    assert (zones["us-east-1b"]["status"], zones["us-east-1b"]["instancesUp"]) == ("down", 0)
    assert zones["us-east-1b"]["lastSeen"] == "2026-01-01T00:00:00.000Z"
    assert (zones["eu-west-1a"]["status"], zones["eu-west-1a"]["instancesUp"]) == ("up", 1)
    statuses = {i["id"]: i["status"] for i in zones["eu-west-1a"]["instances"]}
    assert statuses == {monitoring.scheduler.instance.instance_id: "up", second.instance.instance_id: "down"}

    us.heartbeat()  # back
    assert {z["zone"]: z["status"] for z in client.get(UPTIME).get_json()["zones"]}["us-east-1b"] == "up"
    clock.advance(DAY + 1)  # a day of silence: the zone's instances are no longer listed
    monitoring.scheduler.heartbeat()
    assert [z["zone"] for z in client.get(UPTIME).get_json()["zones"]] == ["eu-west-1a"]


# --- the error-rate SLA from real traffic ---------------------------------------------------------------------


@pytest.fixture
def shop_app(make_settings: Callable[..., Settings], clock: ManualClock) -> Iterator[Flask]:
    """A host app with Monitoring(app): its own routes are the traffic the error-rate SLA judges."""
    app = Flask("shop")

    @app.get("/tickets")
    def tickets() -> Any:
        return {"tickets": []}

    @app.post("/checkout")
    def checkout() -> Any:
        raise RuntimeError("payment provider exploded")

    # A host app's uptime is private by default; these tests read it as the service shows it. One round
    # judges the uptime SLI here: this is about the error rate, not about coverage.
    monitoring = Monitoring(app, settings=make_settings({"DASHBOARD_PUBLIC": "true", "UPTIME_MIN_COVERAGE": "0"}),
                            clock=clock)
    yield app
    monitoring.shutdown()
    monitoring.store.dispose()


def test_error_rate_compliance_from_recorded_requests(shop_app: Flask, clock: ManualClock) -> None:
    monitoring = shop_app.extensions["centinela"]
    client = shop_app.test_client()
    shop = Dependency(shop_app)
    shop.round(up=True)
    for _ in range(18):
        client.get("/tickets")
    for _ in range(40):
        client.get("/api/health/live")  # monitoring endpoints: left out of the share
    client.post("/checkout")
    monitoring.scheduler.run_process("metrics_flush")
    clock.advance(60)
    body = client.get(UPTIME + "?window=24h").get_json()
    assert body["sla"]["errorRate"]["requests"] == 19 and body["sla"]["errorRate"]["errors"] == 1
    assert body["sla"]["errorRate"]["share"] == round(1 / 19, 6)
    assert body["sla"]["compliance"] == {"overall": False, "uptime": True, "errorRate": False}  # 5.3 % > 5 %

    for _ in range(2):
        client.get("/tickets")
    monitoring.scheduler.run_process("metrics_flush")
    clock.advance(60)  # the figures read whole minutes that have begun before now
    body = client.get(UPTIME + "?window=24h").get_json()
    assert body["sla"]["errorRate"]["share"] == 0.047619
    assert body["sla"]["compliance"] == {"overall": True, "uptime": True, "errorRate": True}


# --- the metrics export ---------------------------------------------------------------------------------------


def test_the_uptime_category_of_the_metrics_export(make_app: Callable[..., Any], clock: ManualClock) -> None:
    application = make_app({"HEALTH_CHECK_INTERVAL": "30"})
    monitoring = application.extensions["centinela"]
    monitoring.scheduler.heartbeat()
    shop = Dependency(application)
    for i in range(10):
        shop.round(up=i not in (4, 5))  # down from 2 to 3 minutes in
        clock.advance(30)
    client = application.test_client()
    figures = client.get("/api/monitoring/metrics?category=uptime&window=5m", headers=METRICS_HEADERS).get_json()
    uptime = figures["uptime"]
    assert uptime["uptime.percentage"] == 80.0  # 60 of 300 s down
    assert uptime["uptime.down_seconds"] == 60.0 and uptime["incidents.count"] == 1
    assert uptime["mttr.seconds"] == 60.0 and uptime["mtbf.seconds"] == 240.0
    assert uptime["error_budget.allowed_seconds"] == 0.3
    assert uptime["zones"] == {"default": "down"}  # its one heartbeat is 300 s old
    assert uptime["incidents.open"] == 0
    # The same figure as the uptime endpoint over the same time.
    document = client.get(UPTIME + "?window=24h").get_json()
    assert document["uptime"]["downSeconds"] == uptime["uptime.down_seconds"]

    exposition = client.get("/api/monitoring/metrics?category=uptime&window=5m&format=prometheus",
                            headers=METRICS_HEADERS).get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(exposition) for s in family.samples}
    assert samples[("centinela_uptime_ratio", (("window", "5m"),))] == 0.8
    assert samples[("centinela_error_budget_remaining_ratio", (("window", "5m"),))] == pytest.approx(-199.0)
    assert samples[("centinela_error_budget_burn_rate", (("window", "5m"),))] == pytest.approx(200.0)
    assert samples[("centinela_sla_target_ratio", ())] == 0.999
    assert samples[("centinela_zone_up", (("zone", "default"),))] == 0.0
    assert samples[("centinela_mttr_seconds", (("window", "5m"),))] == 60.0
    if PROMTOOL:
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True,
                              timeout=30)
        assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == "", lint.stdout + lint.stderr

    series = client.get("/api/monitoring/metrics?category=uptime&window=5m&format=datadog",
                        headers=METRICS_HEADERS).get_json()
    load_into_datadog_models(series)
    points = {(s["metric"], tuple(s["tags"])): s["points"][0][1] for s in series["series"]}
    assert points[("uptime.percentage", ("zone:default", "window:5m"))] == 80.0
    assert points[("error_budget.burn_rate", ("zone:default", "window:1h"))] == pytest.approx(60 / 300 / 0.001)


# --- retention --------------------------------------------------------------------------------------------------


def test_incidents_and_the_timeline_are_kept_incident_retention_days(
    make_app: Callable[..., Any], clock: ManualClock
) -> None:
    application = make_app({"INCIDENT_RETENTION_DAYS": "10", "HEALTH_CHECK_INTERVAL": str(DAY)})
    monitoring = application.extensions["centinela"]
    shop = Dependency(application)
    shop.round(up=False)
    clock.advance(600)
    shop.round(up=True)  # incident 1 ends at 00:10
    clock.advance(5 * DAY)
    shop.round(up=False)  # incident 2 stays open
    clock.advance(10 * DAY)
    removed = monitoring.services.purge_expired()
    assert removed["incidents"] == 1
    assert removed["uptime_segments"] == 2  # the two segments of the first days
    page = application.test_client().get(HISTORY).get_json()["incidents"]
    assert [(i["status"], i["start"]) for i in page] == [("open", "2026-01-06T00:10:00.000Z")]


def test_format_duration() -> None:
    # monitoring/durations.py's one formatter: the non-zero units ("1h", formerly "1h 0m 0s" here);
    # the uptime figures pass it whole seconds (59.9 s of uptime reads "59s").
    assert format_duration(0) == "0s"
    assert format_duration(int(59.9)) == "59s"
    assert format_duration(3600) == "1h"
    assert format_duration(5 * DAY + 14 * 3600 + 23 * 60 + 45) == "5d 14h 23m 45s"
