"""Rules derived from the health checks in force, with real dependencies (local servers for
Stripe, Brevo and an http check, a local TCP port for a database) and the injected clock: one
down rule per dependency (critical for a critical one, else high), one slow rule per
dependency with a latency threshold, on the window mean of its response times; where each
comes from; changed and disabled like any rule."""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from monitoring.store.health_tables import health_results
from tests.conftest import METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer, SwitchableTCPServer
from tests.test_alerts_support import ALERTS, Host, make_host, receiver  # noqa: F401

MINUTE = 60.0
DEFAULT_TIMING = {"ALERT_GROUP_WAIT": ""}


def dependencies_env(stripe: RecordingHTTPServer, brevo: RecordingHTTPServer, search_url: str,
                     orders_db_port: int) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": "sk_test_derived0123456789",
        "STRIPE_API_BASE": stripe.url,
        "BREVO_API_KEY": "xkeysib-derived0123456789",
        "BREVO_API_BASE": brevo.url,
        "HEALTH_CHECKS": json.dumps([
            {"name": "orders-db", "type": "tcp", "host": "127.0.0.1", "port": orders_db_port, "timeout": 1,
             "critical": True},
            {"name": "search", "type": "http", "url": search_url, "timeout": 2, "latency_threshold_ms": 300},
        ]),
        "ALERT_DATABASE_CHECKS": "database,orders-db",
    }


def test_every_dependency_in_force_has_its_rules_and_says_where_they_come_from(
    make_host: Callable[..., Host],
) -> None:
    with RecordingHTTPServer() as stripe, RecordingHTTPServer() as brevo, SwitchableTCPServer() as orders_db:
        host = make_host(dependencies_env(stripe, brevo, brevo.url + "/search", orders_db.port))
        rules = host.rules()
        derived = {name: (r["figure"], r["match"], r["comparison"], r["threshold"], r["window"], r["for"],
                          r["severity"])
                   for name, r in rules.items() if r["origin"] == "derived"}
        assert derived == {
            # DatabaseUnavailable already watches database and orders-db (ALERT_DATABASE_CHECKS).
            "DatabaseSlow": ("dependency_response_time", ['service="database"'], ">", 1000.0, "3m", "1m", "medium"),
            "StripeUnavailable": ("dependency_down", ['service="stripe"'], ">", 0.0, "5m", "0s", "critical"),
            "StripeSlow": ("dependency_response_time", ['service="stripe"'], ">", 2000.0, "3m", "1m", "medium"),
            "BrevoUnavailable": ("dependency_down", ['service="brevo"'], ">", 0.0, "5m", "0s", "high"),
            "BrevoSlow": ("dependency_response_time", ['service="brevo"'], ">", 2000.0, "3m", "1m", "medium"),
            "SearchUnavailable": ("dependency_down", ['service="search"'], ">", 0.0, "5m", "0s", "high"),
            "SearchSlow": ("dependency_response_time", ['service="search"'], ">", 300.0, "3m", "1m", "medium"),
        }
        assert rules["StripeUnavailable"]["derivedFrom"] == "health check stripe (critical): down is critical"
        assert rules["SearchSlow"]["derivedFrom"] == "health check search (non-critical): latency threshold 300 ms"
        assert all(rules[n]["derivedFrom"] is None for n in ("PaymentFailures", "DatabaseUnavailable"))
        configuration = host.client.get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()
        assert {r["name"]: r["origin"] for r in configuration["rules"]}["BrevoUnavailable"] == "derived"

        # A check the host app registers later has its rules at once.
        host.monitoring.health.register("payouts", lambda: True, critical=True)
        later = host.rules()
        assert later["PayoutsUnavailable"]["severity"] == "critical" and "PayoutsSlow" not in later


def test_a_critical_dependency_down_pages_at_once_and_its_resolve_says_it_is_back(
    make_host: Callable[..., Host],
) -> None:
    with RecordingHTTPServer() as stripe:
        host = make_host({**DEFAULT_TIMING, "STRIPE_SECRET_KEY": "sk_test_down0123456789", "STRIPE_API_BASE": stripe.url})
        stripe.respond(500, {"error": "upstream"})
        host.monitoring.health.run_round()
        run = host.evaluate()
        alert = host.firing()["StripeUnavailable"]
        assert alert["severity"] == "critical" and alert["labels"]["service"] == "stripe"
        assert alert["summary"] == "stripe is unavailable: HTTP 500"
        # Critical: in the evaluation that saw it (no group wait), and escalated with it.
        assert run.count("firing") == 1 and run.count("escalated") == 1
        (page,) = host.notifications("escalated", channel="escalation")
        assert page.alerts[0].labels["service"] == "stripe"

        stripe.respond(200, {"available": []})
        host.advance(45)
        host.monitoring.health.run_round()
        run = host.evaluate()
        assert run.resolved == [alert["fingerprint"]]
        (resolved,) = host.notifications("resolved")
        assert resolved.alerts[0].summary == "Resolved after 45 s: stripe answers again"
        assert resolved.alerts[0].annotations["firing_summary"] == "stripe is unavailable: HTTP 500"
        assert {n.event for n in host.notifications(channel="escalation")} == {"escalated", "resolved"}


def test_a_derived_rule_is_changed_disabled_and_reset_like_any_rule(make_host: Callable[..., Host]) -> None:
    with RecordingHTTPServer() as brevo:
        host = make_host({"BREVO_API_KEY": "xkeysib-derived0123456789", "BREVO_API_BASE": brevo.url})
        changed = host.post({"action": "update_rule", "rule": {"name": "BrevoUnavailable", "severity": "low",
                                                              "enabled": False}})["rule"]
        assert (changed["origin"], changed["severity"], changed["enabled"]) == ("derived", "low", False)
        assert changed["derivedFrom"].startswith("health check brevo")
        brevo.respond(503)
        host.monitoring.health.run_round()
        host.evaluate()
        assert "BrevoUnavailable" not in host.firing()
        reset = host.post({"action": "delete_rule", "name": "BrevoUnavailable"})
        assert reset["rule"]["enabled"] is True and reset["rule"]["severity"] == "high"
        host.evaluate()
        assert host.firing()["BrevoUnavailable"]["severity"] == "high"
        (entry, *_) = host.monitoring.audit.page(kind="config_change")
        assert entry.action == "alerts.delete_rule"


def _stored_mean(host: Host, service: str, start: float, end: float) -> float:
    r = health_results.c
    with host.monitoring.store.read() as conn:
        return float(conn.execute(
            select(func.avg(r.response_time_ms)).where(r.service == service, r.checked_at >= start,
                                                       r.checked_at < end, r.status.in_(("healthy", "degraded")))
        ).scalar_one())


def test_the_slow_rule_reads_the_window_mean_and_resolves_as_slow_checks_leave_the_window(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host({"HEALTH_CHECKS": json.dumps([{
        "name": "search", "type": "http", "url": receiver.url + "/search", "timeout": 2, "latency_threshold_ms": 60}])})
    host.post({"action": "update_rule", "rule": {"name": "SearchSlow", "for": "0"}})
    engine = host.monitoring.alerting
    receiver.route("/search", 200, {"ok": True}, delay=0.25)  # slow: 250 ms against a 60 ms threshold
    host.monitoring.health.run_round()
    host.evaluate()
    assert host.firing()["SearchSlow"]["value"] > 200
    receiver.unroute("/search")  # fast again
    resolved_at = None
    for step in range(1, 8):
        host.advance(30)
        host.monitoring.health.run_round()
        now = host.clock.now()
        mean = _stored_mean(host, "search", now - 180, now + 1)
        run = host.evaluate()
        (sample,) = [s for s in engine.figure_reader(now).samples("dependency_response_time", 180)
                     if s.labels["service"] == "search"]
        assert sample.labels == {"service": "search", "critical": "false"}
        assert sample.value == pytest.approx(mean, abs=0.1)  # the window mean, not the latest check
        # The exported figure a custom rule may read is the same window mean.
        (exported,) = [s for s in engine.figure_reader(now).samples("health.dependency.response_time", 180)
                       if s.labels["service"] == "search"]
        assert exported.value == pytest.approx(mean, abs=0.1)
        if mean > 60:
            assert "SearchSlow" in host.firing(), step  # the latest check is fast; the window is not yet
            assert host.firing()["SearchSlow"]["value"] == pytest.approx(mean, abs=0.1)
        else:
            assert run.resolved, step
            resolved_at = step
            break
    assert resolved_at is not None and resolved_at >= 2  # not at the first fast check
    (resolved,) = host.notifications("resolved")
    assert resolved.alerts[0].summary.startswith(f"Resolved after {resolved_at * 30 // 60} m")
    assert "search mean response time" in resolved.alerts[0].summary
