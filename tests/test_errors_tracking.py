"""Error tracking: unhandled exceptions in routes are captured through Flask's signal, grouped by
fingerprint, counted, and reported over windows (``errors.rate``, share of requests)."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app import create_app
from monitoring.clock import ManualClock
from monitoring.errors.tracking import ErrorTracker, error_figures, fingerprint, is_our_code, list_error_groups
from monitoring.extension import Monitoring
from monitoring.metrics.categories import TimeWindow
from monitoring.settings import Settings
from monitoring.store.errors_tables import error_counts, error_groups
from tests.conftest import METRICS_HEADERS, METRICS_KEY
from tests.support.store import recreate_dropped_tables

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
PII_MESSAGE = "card 4242 4242 4242 4242 of jane.doe@example.com from 203.0.113.77 with sk_live_4eC39HqLyjWDarjtT1zdp7dc"


class PaymentDeclined(Exception):
    pass


def parse_order(raw: str) -> Any:
    """Our code calling the standard library, which raises: the group must name this function."""
    return json.loads(raw)


def charge(kind: str) -> None:
    if kind == "declined":
        raise PaymentDeclined(PII_MESSAGE)
    raise PaymentDeclined("declined on another line")  # same function, same group


def add_routes(app: Flask) -> None:
    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> Any:
        return parse_order("{broken")

    @app.get("/pay/<kind>")
    def pay(kind: str) -> Any:
        charge(kind)

    @app.get("/strange")
    def strange() -> Any:
        class Unprintable(Exception):
            def __str__(self) -> str:
                raise RuntimeError("no")

        raise Unprintable()

    @app.get("/fine")
    def fine() -> Any:
        return {"ok": True}


@pytest.fixture
def routes_app(app: Flask) -> Flask:
    add_routes(app)
    return app


@pytest.fixture
def store_app(store_url: str, make_settings: Callable[..., Settings], clock: ManualClock) -> Any:
    application = create_app(make_settings({"DATABASE_URL": store_url}), clock=clock)
    add_routes(application)
    yield application
    application.extensions["centinela"].shutdown()
    application.extensions["centinela"].store.dispose()


def flush(app: Flask) -> int:
    """The per-process job, called directly (no waiting for the scheduler)."""
    return app.extensions["centinela"].scheduler.jobs["errors_flush"].func()


def groups(app: Flask) -> dict[str, Any]:
    return {g.function: g for g in list_error_groups(app.extensions["centinela"].store)}


# --- capture through the signal ------------------------------------------------------------------


def test_exception_in_a_route_is_captured_and_the_answer_is_unchanged(routes_app: Flask, clock: ManualClock) -> None:
    client = routes_app.test_client()
    response = client.get("/orders/1")
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert routes_app.extensions["centinela"].errors.pending == 1
    assert flush(routes_app) == 1
    (group,) = groups(routes_app).values()
    assert group.exception_type == "json.decoder.JSONDecodeError"
    # The innermost frame of *our* code, not json.decoder where it was raised.
    assert (group.module, group.function) == (__name__, "parse_order")
    assert group.route == "GET /orders/<order_id>"
    assert group.count == 1 and group.first_seen == group.last_seen == clock.now()
    assert "Traceback" in group.stack_trace and "parse_order" in group.stack_trace


def test_groups_count_and_first_and_last_seen(routes_app: Flask, clock: ManualClock) -> None:
    client = routes_app.test_client()
    start = clock.now()
    for _ in range(3):
        client.get("/orders/1")
        clock.advance(10)
    flush(routes_app)
    client.get("/orders/2")
    client.get("/pay/declined")
    client.get("/pay/other")  # another line of the same function: the same group
    flush(routes_app)
    found = groups(routes_app)
    assert set(found) == {"parse_order", "charge"}
    assert (found["parse_order"].count, found["parse_order"].first_seen, found["parse_order"].last_seen) == (
        4, start, start + 30)
    assert found["charge"].count == 2
    assert found["charge"].exception_type == f"{__name__}.PaymentDeclined"
    # One trace and message per group: the first occurrence of the newest flush replaces older ones.
    assert found["charge"].message.startswith("card [card ****4242]")
    client.get("/pay/other")
    flush(routes_app)
    assert groups(routes_app)["charge"].message == "declined on another line"
    assert groups(routes_app)["charge"].count == 3


def test_stored_message_and_trace_are_sanitised(routes_app: Flask) -> None:
    routes_app.test_client().get("/pay/declined")
    flush(routes_app)
    group = groups(routes_app)["charge"]
    for stored in (group.message, group.stack_trace):
        for secret in ("4242 4242 4242 4242", "jane.doe@example.com", "203.0.113.77",
                       "sk_live_4eC39HqLyjWDarjtT1zdp7dc"):
            assert secret not in stored
        assert "[card ****4242]" in stored and "[email]" in stored and "203.0.113.0" in stored
        assert "sk_live_[redacted]" in stored


def test_a_broken_exception_is_still_captured_and_answered(routes_app: Flask) -> None:
    response = routes_app.test_client().get("/strange")
    assert response.status_code == 500 and response.get_json()["error"]["code"] == "internal_error"
    flush(routes_app)
    assert groups(routes_app)["add_routes.<locals>.strange"].message == "(message unavailable)"


def test_handled_errors_are_not_captured(routes_app: Flask) -> None:
    client = routes_app.test_client()
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/api/monitoring/errors").status_code == 401  # an ApiError
    assert client.post("/api/monitoring/events", data="{", content_type="application/json",
                       headers=METRICS_HEADERS).status_code == 400
    assert client.get("/fine").status_code == 200
    assert flush(routes_app) == 0


def test_a_host_app_is_tracked_too(make_settings: Callable[..., Settings], clock: ManualClock) -> None:
    host = Flask("festival_shop")
    Monitoring(host, settings=make_settings(), clock=clock)
    add_routes(host)
    assert host.test_client().get("/pay/declined").status_code == 500
    assert host.extensions["centinela"].errors.flush() == 1
    assert list_error_groups(host.extensions["centinela"].store)[0].function == "charge"


# --- fingerprints ---------------------------------------------------------------------------------


def raised(call: Callable[[], Any]) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - any exception is what we fingerprint
        return exc
    raise AssertionError("expected an exception")


def test_fingerprint_is_type_plus_innermost_frame_of_our_code() -> None:
    json_error = fingerprint(raised(lambda: parse_order("{")))
    assert (json_error.module, json_error.function, json_error.exception_type) == (
        __name__, "parse_order", "json.decoder.JSONDecodeError")
    # Two lines of one function: one group (lines move with every edit and deploy).
    assert fingerprint(raised(lambda: charge("declined"))).key == fingerprint(raised(lambda: charge("x"))).key
    # Same function, another type; same type, another function: other groups.
    assert fingerprint(raised(lambda: parse_order("[1, 2"))).key == json_error.key
    assert fingerprint(raised(lambda: parse_order(None))).key != json_error.key  # TypeError
    assert fingerprint(raised(lambda: json.loads("{"))).function != "parse_order"
    assert fingerprint(ValueError("never raised")).location == "(no frame)"


def test_our_code_is_neither_the_standard_library_nor_installed_packages() -> None:
    assert is_our_code(__file__)
    assert is_our_code(os.path.join(os.path.dirname(__file__), "..", "app.py"))
    assert not is_our_code(json.__file__)
    assert not is_our_code(flask.__file__)
    assert not is_our_code(pytest.__file__)
    assert not is_our_code("<frozen importlib._bootstrap>")
    assert not is_our_code("/srv/other-venv/lib/python3.11/site-packages/requests/api.py")


def test_pending_groups_are_bounded(store_url: str, clock: ManualClock) -> None:
    from monitoring.store.database import Store

    store = Store(store_url, clock)
    store.migrate()
    tracker = ErrorTracker(store, clock, max_pending_groups=2)
    for exc in (ValueError("a"), KeyError("b"), TypeError("c"), TypeError("c again")):
        tracker.capture(exc)
    tracker.capture(ValueError("a again"))  # a known group still counts
    assert (tracker.pending, tracker.dropped) == (3, 2)
    assert tracker.flush() == 3
    store.dispose()


# --- the store: several workers, failures, retention (SQLite and PostgreSQL) ----------------------


def test_two_workers_flushing_one_group_add_up(store_app: Any, clock: ManualClock) -> None:
    monitoring = store_app.extensions["centinela"]
    worker_a, worker_b = ErrorTracker(monitoring.store, clock), ErrorTracker(monitoring.store, clock)
    worker_a.capture(raised(lambda: charge("other")))
    clock.advance(30)
    declined = raised(lambda: charge("declined"))
    worker_b.capture(declined)
    worker_b.capture(declined)
    worker_b.flush()  # worker b flushes first, though worker a saw the group first
    clock.advance(30)
    worker_a.capture(declined)
    worker_a.flush()
    (group,) = list_error_groups(monitoring.store)
    assert group.count == 4
    assert (group.first_seen, group.last_seen) == (clock.now() - 60, clock.now())
    # The newest flush (worker a's, last seen later) brings its message and trace.
    assert group.message == "declined on another line"


def test_a_failed_flush_keeps_the_captures_for_the_next(store_app: Any) -> None:
    monitoring = store_app.extensions["centinela"]
    client = store_app.test_client()
    client.get("/pay/declined")
    with monitoring.store.write() as conn:
        conn.execute(text("DROP TABLE error_counts"))  # a real store failure
    with pytest.raises(DBAPIError):  # no such table
        flush(store_app)
    client.get("/pay/declined")
    recreate_dropped_tables(monitoring.store)  # the store is back
    assert flush(store_app) == 2
    assert list_error_groups(monitoring.store)[0].count == 2


def test_retention_purges_old_groups_and_buckets(store_app: Any, clock: ManualClock) -> None:
    monitoring = store_app.extensions["centinela"]
    client = store_app.test_client()
    client.get("/orders/1")
    flush(store_app)
    clock.advance(29 * DAY)
    client.get("/pay/declined")
    flush(store_app)
    clock.advance(2 * DAY)
    removed = monitoring.services.purge_expired()
    assert (removed["error_groups"], removed["error_counts"]) == (1, 1)
    assert [g.function for g in list_error_groups(monitoring.store)] == ["charge"]
    with monitoring.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(error_counts)).scalar_one() == 1


# --- figures over windows -------------------------------------------------------------------------


def test_error_rate_over_windows(store_app: Any, clock: ManualClock) -> None:
    monitoring = store_app.extensions["centinela"]
    client = store_app.test_client()
    for _ in range(4):  # 50 minutes before the end
        client.get("/orders/1")
    clock.advance(47 * MINUTE)
    for _ in range(6):  # 3 minutes before the end
        client.get("/pay/declined")
    client.get("/orders/1")
    flush(store_app)
    clock.advance(3 * MINUTE)

    def at(seconds: float, label: str) -> Any:
        return error_figures(monitoring.store, TimeWindow(clock.now() - seconds, clock.now(), label), requests=None)

    five = at(5 * MINUTE, "5m")
    assert (five.count, five.rate_per_minute, five.share) == (7, pytest.approx(7 / 5), None)
    assert [(g.function, g.count_in_window, g.count) for g in five.top_groups] == [("charge", 6, 6),
                                                                                   ("parse_order", 1, 5)]
    hour = at(HOUR, "1h")
    assert (hour.count, hour.rate_per_minute, hour.total) == (11, pytest.approx(11 / 60), 11)
    assert at(MINUTE, "1m").count == 0
    assert error_figures(monitoring.store, TimeWindow(clock.now() - 300, clock.now(), "5m"), requests=70).share == (
        pytest.approx(0.1))


def test_errors_category_in_the_export_with_the_share_of_requests(routes_app: Flask, clock: ManualClock) -> None:
    client = routes_app.test_client()
    for _ in range(8):
        assert client.get("/fine").status_code == 200
    for _ in range(2):
        assert client.get("/pay/declined").status_code == 500
    monitoring = routes_app.extensions["centinela"]
    monitoring.scheduler.jobs["metrics_flush"].func()  # the request metrics' own flush job
    flush(routes_app)
    clock.advance(MINUTE)

    body = client.get("/api/monitoring/metrics?category=errors&window=5m", headers=METRICS_HEADERS).get_json()
    errors = body["errors"]
    assert (errors["errors.count"], errors["errors.total"]) == (2, 2)
    assert errors["errors.rate"] == pytest.approx(0.4)  # 2 errors in 5 minutes
    assert errors["requests.count"] == 10  # the two failed requests count as requests too
    assert errors["errors.share"] == pytest.approx(0.2)
    assert errors["groups"][0]["where"] == f"{__name__}:charge" and "stackTrace" not in errors["groups"][0]

    prometheus = client.get("/api/monitoring/metrics?category=errors&format=prometheus",
                            headers=METRICS_HEADERS).get_data(as_text=True)
    samples = {s.name: s.value for f in text_string_to_metric_families(prometheus) for s in f.samples}
    assert samples["centinela_errors_total"] == 2
    datadog = client.get("/api/monitoring/metrics?category=errors&format=datadog&window=5m",
                         headers=METRICS_HEADERS).get_json()
    points = {s["metric"]: s["points"][0][1] for s in datadog["series"]}
    assert points["errors.unhandled.rate"] == pytest.approx(0.4) and points["errors.unhandled.count"] == 2
    assert points["errors.unhandled.share"] == pytest.approx(0.2)


# --- /api/monitoring/errors -----------------------------------------------------------------------


def test_errors_endpoint_lists_groups_with_their_trace(routes_app: Flask, clock: ManualClock) -> None:
    client = routes_app.test_client()
    client.get("/orders/1")
    clock.advance(HOUR)
    client.get("/pay/declined")
    flush(routes_app)
    listed = client.get("/api/monitoring/errors", headers=METRICS_HEADERS).get_json()["groups"]
    assert [g["where"] for g in listed] == [f"{__name__}:charge", f"{__name__}:parse_order"]
    assert listed[0]["count"] == 1 and listed[0]["lastSeen"] == "2026-01-01T01:00:00.000Z"
    assert "PaymentDeclined" in listed[0]["stackTrace"] and "jane.doe" not in listed[0]["stackTrace"]
    recent = client.get("/api/monitoring/errors?since=2026-01-01T00:30:00Z&limit=5", headers=METRICS_HEADERS)
    assert [g["where"] for g in recent.get_json()["groups"]] == [f"{__name__}:charge"]
    assert len(client.get(f"/api/monitoring/errors?limit=1&api_key={METRICS_KEY}").get_json()["groups"]) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=many", "since=yesterday"])
def test_errors_endpoint_bad_parameters_are_400(client: Any, query: str) -> None:
    response = client.get(f"/api/monitoring/errors?{query}", headers=METRICS_HEADERS)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_parameter"


def test_errors_endpoint_needs_a_key(client: Any) -> None:
    assert client.get("/api/monitoring/errors").status_code == 401
    assert client.get("/api/monitoring/errors", headers={"X-API-Key": "wrong"}).status_code == 401


def test_error_groups_table_is_what_the_endpoint_shows(routes_app: Flask) -> None:
    routes_app.test_client().get("/pay/declined")
    flush(routes_app)
    with routes_app.extensions["centinela"].store.read() as conn:
        (row,) = conn.execute(select(error_groups)).all()
    assert row.count == 1 and "jane.doe" not in row.message
