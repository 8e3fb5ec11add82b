"""Business figures over windows, from the store, with an injected clock; and the ``business``
category in the metrics export (JSON, Prometheus, Datadog)."""
from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.business.currencies import MINOR_UNIT_EXPONENTS, format_minor_units, is_currency
from monitoring.business.figures import business_figures
from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from tests.conftest import METRICS_HEADERS
from tests.test_business_events import store_app  # noqa: F401 - the app on SQLite and PostgreSQL

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def record(app: Any, *events: dict[str, Any]) -> None:
    recorder = app.extensions["centinela"].business.recorder
    for start in range(0, len(events), 500):
        recorder.record_raw(list(events[start:start + 500]))


def payment(outcome: str = "succeeded", amount: int = 1000, currency: str = "EUR") -> dict[str, Any]:
    return {"type": "payment", "outcome": outcome, "amount": amount, "currency": currency}


def window(clock: ManualClock, seconds: float, label: str) -> TimeWindow:
    return TimeWindow(clock.now() - seconds, clock.now(), label)


def figures(app: Any, clock: ManualClock, seconds: float = 5 * MINUTE, label: str = "5m") -> Any:
    return business_figures(app.extensions["centinela"].store, window(clock, seconds, label))


# --- payments -----------------------------------------------------------------------------------


def test_success_and_failure_rates_over_windows(store_app: Any, clock: ManualClock) -> None:
    record(store_app, *[payment("failed")] * 3, *[payment()] * 7)  # an hour ago: 7 of 10 succeeded
    clock.advance(HOUR - 2 * MINUTE)
    record(store_app, *[payment()] * 99, payment("failed"))  # two minutes ago: 99 of 100
    clock.advance(2 * MINUTE)

    recent = figures(store_app, clock).payments
    assert (recent.succeeded, recent.failed, recent.total) == (99, 1, 100)
    assert recent.success_rate == pytest.approx(99.0) and recent.failure_rate == pytest.approx(1.0)
    assert recent.failure_ratio == pytest.approx(0.01)

    hours = figures(store_app, clock, 2 * HOUR, "2h").payments
    assert (hours.succeeded, hours.failed) == (106, 4)
    assert hours.success_rate == pytest.approx(100 * 106 / 110)

    # The window is half-open: the first batch, exactly one hour back, is in [now-1h, now).
    assert figures(store_app, clock, HOUR, "1h").payments.total == 110
    clock.advance(1)
    assert figures(store_app, clock, HOUR, "1h").payments.total == 100


def test_no_payments_means_no_rate_not_zero_or_hundred(store_app: Any, clock: ManualClock) -> None:
    empty = figures(store_app, clock).payments
    assert (empty.total, empty.success_rate, empty.failure_rate, empty.failure_ratio) == (0, None, None, None)


# --- revenue ------------------------------------------------------------------------------------


def test_revenue_is_exact_where_float_arithmetic_is_not(store_app: Any, clock: ManualClock) -> None:
    # 0.10 + 0.20 euros, a thousand times: floats drift off 300.00, integer cents cannot.
    float_sum = sum([0.10, 0.20] * 1000)
    assert float_sum != 300.0  # the trap this test is about
    record(store_app, *[payment(amount=10), payment(amount=20)] * 1000)
    # Beyond 2**53 a float cannot even hold the total.
    huge = [10**15 - 1] * 9 + [10**15]
    record(store_app, *[payment(amount=amount, currency="USD") for amount in huge])
    assert float(sum(huge)) != sum(huge) == 9_999_999_999_999_991
    clock.advance(1)

    revenue = {r.currency: r for r in figures(store_app, clock).revenue}
    assert revenue["EUR"].amount_minor == 30000 and revenue["EUR"].amount == "300.00"
    assert revenue["EUR"].payments == 2000
    assert revenue["USD"].amount_minor == 9_999_999_999_999_991
    assert revenue["USD"].amount == "99999999999999.91"
    assert isinstance(revenue["USD"].amount_minor, int)


def test_revenue_per_currency_in_its_own_exponent_and_only_succeeded(store_app: Any, clock: ManualClock) -> None:
    record(
        store_app,
        payment(amount=500, currency="JPY"),
        payment(amount=1500, currency="BHD"),
        payment(amount=1999, currency="eur"),
        payment(amount=1, currency="EUR"),
        payment("failed", amount=99999, currency="EUR"),  # never revenue
        payment(amount=0, currency="GBP"),  # a free ticket is still a payment
    )
    clock.advance(1)
    shown = [(r.currency, r.amount_minor, r.amount, r.payments) for r in figures(store_app, clock).revenue]
    assert shown == [("BHD", 1500, "1.500", 1), ("EUR", 2000, "20.00", 2), ("GBP", 0, "0.00", 1),
                     ("JPY", 500, "500", 1)]


def test_currency_table_and_formatting() -> None:
    assert len(MINOR_UNIT_EXPONENTS) > 150
    assert [MINOR_UNIT_EXPONENTS[c] for c in ("EUR", "USD", "JPY", "KRW", "BHD", "KWD", "CLF")] == [2, 2, 0, 0, 3, 3, 4]
    assert is_currency("EUR") and not is_currency("eur") and not is_currency("XAU") and not is_currency("ABC")
    assert format_minor_units(5, "EUR") == "0.05"
    assert format_minor_units(123456, "EUR") == "1234.56"
    assert format_minor_units(123456, "JPY") == "123456"
    assert format_minor_units(5, "KWD") == "0.005"
    assert format_minor_units(-1999, "USD") == "-19.99"
    assert format_minor_units(12345, "CLF") == "1.2345"


# --- active users -------------------------------------------------------------------------------


def activity(user: Any, action: str = "view") -> dict[str, Any]:
    return {"type": "user_activity", "user_id": user, "action": action}


def test_active_users_are_unique_over_each_trailing_window(store_app: Any, clock: ManualClock) -> None:
    record(store_app, activity("old"))  # 30d 23h before the end: only in the 31d window
    clock.advance(2 * DAY)
    record(store_app, activity("month-1"), activity("month-2"))  # 28d 23h before the end
    clock.advance(28 * DAY)
    record(store_app, activity("day-1"))  # 23 hours before the end
    clock.advance(22 * HOUR + 30 * MINUTE)
    record(store_app, activity("hour-1"), activity("hour-1", "checkout"))  # 30 minutes before
    clock.advance(28 * MINUTE)
    for _ in range(5):  # the same person five times in the last minutes is one active user
        record(store_app, activity("now-1"))
    record(store_app, activity(7), activity("7"))  # 7 and "7" are one user id
    clock.advance(2 * MINUTE)

    assert figures(store_app, clock).active_users == {"5m": 2, "1h": 3, "24h": 4, "30d": 6}
    assert figures(store_app, clock, 2 * HOUR, "2h").active_users["2h"] == 3
    assert figures(store_app, clock, 31 * DAY, "31d").active_users["31d"] == 7


# --- tickets ------------------------------------------------------------------------------------


def test_ticket_operations_per_kind(store_app: Any, clock: ManualClock) -> None:
    def ticket(operation: str, quantity: int = 1) -> dict[str, Any]:
        return {"type": "ticket", "operation": operation, "quantity": quantity}

    record(store_app, ticket("purchased", 10))  # outside the window
    clock.advance(HOUR)
    record(store_app, ticket("purchased", 2), ticket("purchased", 3), ticket("scanned"), ticket("scanned"),
           ticket("refunded", 2), ticket("transferred"))
    clock.advance(1)
    by_kind = {op.operation: (op.operations, op.tickets) for op in figures(store_app, clock).tickets}
    assert by_kind == {"purchased": (2, 5), "validated": (0, 0), "scanned": (2, 2), "transferred": (1, 1),
                       "refunded": (1, 2), "cancelled": (0, 0)}


# --- the business category in the export ---------------------------------------------------------


def seed_export(client: Any) -> None:
    events = [payment(amount=1999), payment(amount=1), payment("failed", amount=500),
              {"type": "ticket", "operation": "purchased", "quantity": 4}, activity("u1"), activity("u2")]
    assert client.post("/api/monitoring/events", json={"events": events}, headers=METRICS_HEADERS).status_code == 201


def test_business_category_as_json(client: Any, clock: ManualClock) -> None:
    seed_export(client)
    clock.advance(10)
    body = client.get("/api/monitoring/metrics?category=business&window=1h", headers=METRICS_HEADERS).get_json()
    figures = body["business"]
    assert figures["payments.success_rate"] == pytest.approx(66.6667)
    assert figures["payments.failure_rate"] == pytest.approx(33.3333)
    assert (figures["payments.count"], figures["payments.succeeded"], figures["payments.failed"]) == (3, 2, 1)
    assert figures["revenue"] == [{"currency": "EUR", "minorUnits": 2000, "amount": "20.00", "payments": 2}]
    assert figures["users.active"] == {"5m": 2, "1h": 2, "24h": 2, "30d": 2}
    assert figures["tickets.operations"]["purchased"] == {"operations": 1, "tickets": 4}
    clock.advance(HOUR)
    later = client.get("/api/monitoring/metrics?category=business&window=1h", headers=METRICS_HEADERS).get_json()
    assert later["business"]["payments.success_rate"] is None and later["business"]["revenue"] == []


def test_business_category_as_prometheus(client: Any, clock: ManualClock) -> None:
    seed_export(client)
    clock.advance(HOUR)  # counters are totals since the store began: the window does not shrink them
    response = client.get("/api/monitoring/metrics?category=business&format=prometheus", headers=METRICS_HEADERS)
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    assert samples[("centinela_payments_total", (("outcome", "succeeded"),))] == 2
    assert samples[("centinela_payments_total", (("outcome", "failed"),))] == 1
    assert samples[("centinela_revenue_minor_units_total", (("currency", "EUR"),))] == 2000
    assert samples[("centinela_ticket_operations_total", (("operation", "purchased"),))] == 1
    assert samples[("centinela_tickets_total", (("operation", "purchased"),))] == 4
    assert samples[("centinela_active_users", (("window", "5m"),))] == 0
    assert samples[("centinela_active_users", (("window", "24h"),))] == 2


def test_business_category_as_datadog(client: Any, clock: ManualClock) -> None:
    seed_export(client)
    clock.advance(10)
    body = client.get("/api/monitoring/metrics?category=business&format=datadog&window=5m",
                      headers=METRICS_HEADERS).get_json()
    series = {(s["metric"], tuple(t for t in s.get("tags", []) if not t.startswith("zone:"))): s
              for s in body["series"]}
    assert series[("payments.success_rate", ())]["points"][0][1] == pytest.approx(200 / 3)
    count = series[("payments.count", ("outcome:failed",))]
    assert count["points"][0][1] == 1 and count["type"] == "count" and count["interval"] == 300
    assert series[("payments.revenue_minor_units", ("currency:EUR",))]["points"][0][1] == 2000
    assert series[("users.active", ("window:1h",))]["points"][0][1] == 2
    assert series[("tickets.quantity", ("operation:purchased",))]["points"][0][1] == 4
