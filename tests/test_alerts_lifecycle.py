"""The alert lifecycle, driven by real recorded traffic and events and the injected clock:
each default rule fires and resolves; ``for`` and ``keep_firing_for``; one alert per rule and
label set; the state change and its notifications commit (or roll back) together."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import select, text

from monitoring.store.alerts_tables import alerts
from tests.support.receiver import SwitchableTCPServer
from tests.support.store import recreate_dropped_tables
from tests.test_alerts_support import Host, make_host, names, receiver  # noqa: F401

MINUTE = 60.0


# --- the five default rules ------------------------------------------------------------------------


def test_payment_failures_fire_at_once_and_resolve(make_host: Callable[..., Host], store_url: str) -> None:
    host = make_host({"DATABASE_URL": store_url})  # SQLite and PostgreSQL
    host.payments(succeeded=98, failed=2)  # 2 % > PAYMENT_FAILURE_THRESHOLD (1 %)
    run = host.evaluate()
    assert run.fired and run.count("firing") == 1
    alert = host.firing()["PaymentFailures"]
    assert alert["severity"] == "critical" and alert["value"] == pytest.approx(0.02)
    assert alert["summary"] == "Payment failure rate 2% > 1% over 5m"
    assert alert["labels"] == {"alertname": "PaymentFailures", "severity": "critical", "service": "payments",
                               "category": "business"}
    (firing,) = host.notifications("firing")
    assert names(firing) == ["PaymentFailures"] and firing.alerts[0].fingerprint == alert["fingerprint"]

    # keep_firing_for (5 min) counts from the last evaluation that breached.
    host.advance(4 * MINUTE)
    assert host.evaluate().resolved == []  # the failures are still in the window
    host.advance(2 * MINUTE)
    host.payments(succeeded=50, failed=0)
    run = host.evaluate()
    assert run.resolved == [] and run.cleared == [alert["fingerprint"]]  # out of the window, kept firing
    kept = host.firing()["PaymentFailures"]
    # The value shown is the one just evaluated, not the breach's 2 %; the alert says it has cleared.
    assert kept["value"] == 0.0 and kept["clearedAt"] == "2026-01-01T00:06:00.000Z"
    assert kept["notifications"]["nextRepeatAt"] is None
    host.advance(3 * MINUTE)
    run = host.evaluate()
    assert run.resolved == [alert["fingerprint"]]
    assert host.firing() == {}
    (resolved,) = host.notifications("resolved")
    assert resolved.alerts[0].status == "resolved" and resolved.alerts[0].ends_at == host.clock.now()
    # The resolve says how long it lasted and what the figure is now, not the breach wording.
    assert resolved.alerts[0].summary == "Resolved after 9 m: payment failure rate 0.0 % over 5 m"
    assert resolved.alerts[0].annotations["firing_summary"] == "Payment failure rate 2% > 1% over 5m"
    (episode,) = host.history(fingerprint=alert["fingerprint"])
    assert episode["state"] == "resolved" and episode["resolvedBy"] == "evaluation"
    assert [e["kind"] for e in episode["events"]] == ["pending", "firing", "notified", "notified", "cleared",
                                                      "resolved", "notified"]


def test_payment_failure_rate_at_the_threshold_does_not_fire(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.payments(succeeded=99, failed=1)  # exactly 1 %: not above it
    assert host.evaluate().fired == []
    host.payments(succeeded=0, failed=1)  # 2 of 101
    assert host.evaluate().fired
    assert "PaymentFailures" in host.firing()


def test_high_error_rate_from_real_500s_fires_and_resolves(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.requests("/tickets", 90)
    host.requests("/checkout", 10)  # 10 % answered 500 > ERROR_RATE_THRESHOLD (5 %)
    host.requests("/api/monitoring/alerts?action=active", 50)  # monitoring endpoints are left out
    host.flush()
    host.evaluate()
    alert = host.firing()["HighErrorRate"]
    assert alert["severity"] == "high" and alert["value"] == pytest.approx(0.10)
    assert alert["summary"] == "Error rate 10% of requests > 5% over 5m"

    host.advance(6 * MINUTE)  # the 500s are out of the 5-minute window
    host.requests("/tickets", 20)
    host.flush()
    assert host.evaluate().resolved == [alert["fingerprint"]]
    assert host.firing() == {}


def test_slow_api_fires_after_holding_three_minutes_and_resolves(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.record_durations("/tickets", 3.0, 20)  # p95 3000 ms > API_RESPONSE_THRESHOLD (2000 ms)
    host.flush()
    host.evaluate()
    (pending,) = host.active(state="pending")
    assert pending["name"] == "SlowApiResponse" and host.firing() == {}
    host.advance(2 * MINUTE)
    host.record_durations("/tickets", 3.0, 20)
    host.flush()
    host.evaluate()
    assert host.firing() == {}  # two minutes: still pending
    host.advance(MINUTE)
    host.record_durations("/tickets", 3.0, 20)
    host.flush()
    host.evaluate()
    alert = host.firing()["SlowApiResponse"]
    assert alert["value"] == pytest.approx(3000, rel=0.01)
    assert alert["activeAt"] == pending["activeAt"]  # the same alert, now firing

    host.advance(6 * MINUTE)
    host.record_durations("/tickets", 0.05, 50)  # fast again
    host.flush()
    host.evaluate()
    assert host.firing() == {}
    assert [a["state"] for a in host.history()] == ["resolved"]


def test_database_unavailable_from_a_refused_port_and_its_breaker(make_host: Callable[..., Host]) -> None:
    with SwitchableTCPServer() as orders_db:
        host = make_host({
            "HEALTH_CHECKS": json.dumps([{"name": "orders-db", "type": "tcp", "host": "127.0.0.1",
                                          "port": orders_db.port, "timeout": 1, "critical": True}]),
            "ALERT_DATABASE_CHECKS": "database,orders-db",
            "BREAKER_FAILURE_THRESHOLD": "2",
            "BREAKER_RESET_TIMEOUT": "30",
            "BREAKER_SUCCESS_THRESHOLD": "1",
        })
        health = host.monitoring.health
        health.run_round()
        assert host.evaluate().fired == []  # both databases answer

        orders_db.refuse()
        health.run_round()
        host.evaluate()
        alert = host.firing()["DatabaseUnavailable"]  # fires at once
        assert alert["labels"]["service"] == "orders-db" and alert["severity"] == "critical"
        assert alert["summary"] == "orders-db is unavailable: connection refused"

        health.run_round()  # second failure: the breaker opens
        host.evaluate()
        assert host.firing()["DatabaseUnavailable"]["summary"] == "orders-db is unavailable: circuit breaker open"

        orders_db.resume()
        host.advance(10)
        health.run_round()  # breaker still open: not called, still down
        host.evaluate()
        assert "DatabaseUnavailable" in host.firing()
        host.advance(30)
        health.run_round()  # the trial succeeds and closes the breaker
        run = host.evaluate()
        assert run.resolved == [alert["fingerprint"]] and host.firing() == {}


def test_database_rule_watches_the_database_check_by_default(make_host: Callable[..., Host]) -> None:
    host = make_host()
    rule = host.rules()["DatabaseUnavailable"]
    assert rule["match"] == ['service=~"database"'] and rule["figure"] == "dependency_down"
    host.monitoring.health.run_round()
    run = host.evaluate()
    assert run.outcomes["DatabaseUnavailable"].samples == 1 and run.fired == []


def test_high_memory_usage_held_ten_minutes_from_real_samples(make_host: Callable[..., Host]) -> None:
    host = make_host({"MEMORY_USAGE_THRESHOLD": "0.01"})  # the real sampled memory % is above it

    def sample_and_evaluate() -> None:
        host.monitoring.scheduler.run_process("system_sample")
        host.evaluate()

    sample_and_evaluate()
    (pending,) = host.active(state="pending")
    assert pending["name"] == "HighMemoryUsage" and pending["labels"]["host"]
    host.advance(5 * MINUTE)
    sample_and_evaluate()
    assert host.firing() == {}
    host.advance(5 * MINUTE)
    sample_and_evaluate()
    alert = host.firing()["HighMemoryUsage"]
    assert alert["value"] > 0.01 and alert["summary"].startswith("Memory usage ")

    host.post({"action": "update_rule", "rule": {"name": "HighMemoryUsage", "threshold": 100}})
    host.advance(15)
    sample_and_evaluate()
    assert host.firing() == {}


# --- for, keep_firing_for, fingerprints ----------------------------------------------------------------


def _error_rule(host: Host, **changes: object) -> None:
    host.post({"action": "update_rule", "rule": {"name": "HighErrorRate", "window": "1m", **changes}})


def _errors(host: Host, failing: int, ok: int = 0) -> None:
    host.requests("/checkout", failing)
    host.requests("/tickets", ok)
    host.flush()


def test_for_drops_a_pending_alert_that_stops_before_it_fires(make_host: Callable[..., Host]) -> None:
    host = make_host()
    _error_rule(host, **{"for": "2m"})
    _errors(host, 5)
    run = host.evaluate()
    assert run.opened and run.fired == []
    host.advance(3 * MINUTE)  # out of the 1-minute window before the 2 minutes passed
    _errors(host, 0, 10)
    assert host.evaluate().dropped == run.opened
    assert host.active() == [] and host.history() == []  # it never was an alert
    assert host.notifications() == []


def test_for_fires_once_the_condition_held_long_enough(make_host: Callable[..., Host]) -> None:
    host = make_host()
    _error_rule(host, **{"for": "2m"})
    for _ in range(4):
        _errors(host, 5)
        host.evaluate()
        if host.firing():
            break
        host.advance(MINUTE)
    alert = host.firing()["HighErrorRate"]
    assert host.clock.now() - 1_767_225_600.0 == 2 * MINUTE  # pending at 0, 1 min; firing at 2 min
    assert alert["firedAt"] == "2026-01-01T00:02:00.000Z" and alert["activeAt"] == "2026-01-01T00:00:00.000Z"


def test_keep_firing_for_damps_flapping_into_one_alert(make_host: Callable[..., Host]) -> None:
    host = make_host()
    _error_rule(host, keep_firing_for="3m")
    _errors(host, 5)
    host.evaluate()
    fingerprint = host.firing()["HighErrorRate"]["fingerprint"]
    # Flapping, one evaluation every 2 minutes over a 1-minute window: clear, breaching, clear.
    for failing in (0, 5, 0):
        host.advance(2 * MINUTE)
        _errors(host, failing, 10)
        host.evaluate()
        assert host.firing()["HighErrorRate"]["fingerprint"] == fingerprint
    host.advance(2 * MINUTE)  # 4 minutes since it last breached: over keep_firing_for
    _errors(host, 0, 10)
    assert host.evaluate().resolved == [fingerprint]
    assert len(host.notifications("firing")) == 1 and len(host.notifications("resolved")) == 1
    assert len(host.history()) == 1


def test_one_alert_per_rule_and_label_set_with_a_stable_fingerprint(make_host: Callable[..., Host], store_url: str) -> None:
    host = make_host({"DATABASE_URL": store_url})  # SQLite and PostgreSQL
    host.post({"action": "add_rule", "rule": {
        "name": "RouteErrors", "figure": "errors.count", "match": ['route=~"/.+"'], "comparison": ">",
        "threshold": 2, "severity": "low", "summary": "{value} errors on {method} {route}", "window": "5m",
        "group_by": ["route"]}})
    host.requests("/checkout", 5)
    host.requests("/nowhere", 3)  # 404s: not errors
    host.flush()
    host.evaluate()
    (alert,) = host.active(severity="low")
    assert alert["labels"]["route"] == "/checkout" and alert["summary"] == "5 errors on GET /checkout"
    host.advance(30)
    host.requests("/checkout", 2)
    host.flush()
    host.evaluate()
    (again,) = host.active(severity="low")
    assert again["fingerprint"] == alert["fingerprint"] and again["id"] == alert["id"] and again["value"] == 7
    # Resolved and breaching again: a new episode under the same fingerprint.
    host.post({"action": "resolve", "fingerprint": alert["fingerprint"], "comment": "fixed the provider"})
    host.evaluate()
    (episode,) = host.active(severity="low")
    assert episode["fingerprint"] == alert["fingerprint"] and episode["id"] != alert["id"]


def test_a_disabled_rule_resolves_its_alerts_and_is_not_evaluated(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.payments(0, 3)
    host.evaluate()
    assert "PaymentFailures" in host.firing()
    host.post({"action": "update_rule", "rule": {"name": "PaymentFailures", "enabled": False}})
    run = host.evaluate()
    assert "PaymentFailures" not in run.outcomes and host.firing() == {}
    (episode,) = host.history()
    assert episode["events"][-2]["detail"] == {"why": "rule disabled"}
    assert len(host.notifications("resolved")) == 1


def test_a_rule_whose_figure_fails_keeps_its_alerts_and_says_why(make_host: Callable[..., Host]) -> None:
    host = make_host()
    host.post({"action": "add_rule", "rule": {"name": "Throughput", "figure": "requests.count", "comparison": ">",
                                              "threshold": 3, "severity": "info", "summary": "busy"}})
    host.requests("/tickets", 5)
    host.flush()
    host.evaluate()
    assert "Throughput" in host.firing()

    def broken(window: object) -> object:
        raise RuntimeError("rollups unreadable")

    host.monitoring.services.categories["performance"] = broken
    run = host.evaluate()
    assert "categories failed" in run.outcomes["Throughput"].error
    assert "Throughput" in host.firing()  # a figure we cannot read says nothing: not resolved
    status = host.rules()["Throughput"]["status"]
    assert status["state"] == "firing" and "performance: RuntimeError" in status["error"]


# --- one transaction ------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [
    "notify_deliveries",  # the enqueue fails: the alert's state change must not commit alone
    "alert_rule_status",  # the evaluation's last write fails, after the alert fired and was enqueued
])
def test_the_alert_and_its_notification_commit_or_roll_back_together(
    make_host: Callable[..., Host], store_url: str, table: str,
) -> None:
    host = make_host({"DATABASE_URL": store_url})  # SQLite and PostgreSQL
    host.payments(0, 5)
    store = host.monitoring.store
    with store.write() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    with pytest.raises(Exception, match=table):
        host.evaluate()
    recreate_dropped_tables(store)  # the table is back, empty
    with store.read() as conn:
        assert conn.execute(select(alerts)).all() == []
    assert host.outbox_rows() == []

    host.evaluate()
    with store.read() as conn:
        assert [row.state for row in conn.execute(select(alerts))] == ["firing"]
    assert [r["event"] for r in host.outbox_rows()] == ["firing", "escalated"]
