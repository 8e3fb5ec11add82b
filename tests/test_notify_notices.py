"""Notices that tell the truth, read at real local receivers: an acknowledgement says who and
why on every channel; the routing view lists only channels that exist; no tracing header leaves
for a third party while Sentry is on; the dashboard banner names a firing alert worse than the
health status; an older store gains the column the lifecycle needs."""
from __future__ import annotations

from collections.abc import Callable

from alembic import command
from flask import Flask
from sqlalchemy import inspect

from monitoring.errors.sentry import sentry_active
from monitoring.notify.prompt import PromptDelivery
from monitoring.store.database import Store, alembic_config
from monitoring.store.migrations import HEAD
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer
from tests.test_alerts_support import ALERTS, Host, make_host, receiver  # noqa: F401
from tests.test_sentry import ingest, sentry_app  # noqa: F401  (fixtures: a local Sentry, an app using it)

ROUTING_KEY = "R0123456789abcdef0123456789abcd1"
TRACING_HEADERS = ("sentry-trace", "baggage", "traceparent", "tracestate")


def every_channel(receiver: RecordingHTTPServer) -> dict[str, str]:
    """Webhook, Slack, PagerDuty (its Events URL pointed here) and the escalation webhook, all local."""
    return {
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "SLACK_WEBHOOK_URL": receiver.url + "/slack",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "PAGERDUTY_EVENTS_URL": receiver.url + "/v2/enqueue",
        "ESCALATION_WEBHOOK_URL": receiver.url + "/escalate",
    }


def test_the_acknowledgement_says_who_and_why_on_every_channel(
    make_host: Callable[..., Host], receiver: RecordingHTTPServer,
) -> None:
    host = make_host(every_channel(receiver))
    alert = host.post({"action": "trigger", "severity": "critical", "description": "Payment system down",
                       "service": "payments"})["alert"]
    host.deliver()
    assert sorted(r.path for r in receiver.requests) == ["/escalate", "/hook", "/slack", "/v2/enqueue"]
    receiver.clear()
    acked = host.post({"action": "acknowledge", "id": alert["id"], "comment": "failing over to the backup PSP"})
    who = acked["alert"]["acknowledged"]["by"]
    assert who.startswith("admin:")
    host.deliver()
    got = {r.path: r for r in receiver.requests}
    assert sorted(got) == ["/escalate", "/hook", "/slack", "/v2/enqueue"]  # escalated: the escalation hears it too
    for path in ("/hook", "/escalate"):
        body = got[path].json()
        assert body["event"] == "acknowledged"
        assert body["alerts"][0]["annotations"]["acknowledged_by"] == who
        assert body["alerts"][0]["annotations"]["acknowledge_comment"] == "failing over to the backup PSP"
    slack = got["/slack"].json()
    assert f"Acknowledged by {who}: failing over to the backup PSP" in slack["text"]
    assert slack["blocks"][0]["text"]["text"].startswith("🔴 CRITICAL · Acknowledged: Payment system down")
    assert any(f"Acknowledged by *{who}*: failing over to the backup PSP" in b.get("text", {}).get("text", "")
               for b in slack["blocks"])
    pagerduty = got["/v2/enqueue"].json()
    assert (pagerduty["event_action"], pagerduty["dedup_key"]) == ("acknowledge", alert["fingerprint"])
    assert pagerduty["payload"]["summary"] == f"Acknowledged by {who}: failing over to the backup PSP " \
                                              "(Payment system down)"
    assert pagerduty["payload"]["custom_details"]["acknowledged_by"] == who
    assert pagerduty["payload"]["custom_details"]["comment"] == "failing over to the backup PSP"


def test_the_routing_view_lists_only_configured_channels(make_app: Callable[..., Flask]) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    routing = app.test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()["routing"]
    assert routing == {"bySeverity": {s: ["webhook"] for s in ("critical", "high", "medium", "low", "info")},
                       "escalation": None, "fallback": None}
    app = make_app({"ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook", "NOTIFY_ESCALATION_CHANNEL": "pagerduty",
                    "NOTIFY_FALLBACK_CHANNEL": "slack"})
    routing = app.test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()["routing"]
    assert (routing["escalation"], routing["fallback"]) == (None, None)  # named, but not configured: reach nobody


def test_no_tracing_header_leaves_for_a_third_party_while_sentry_is_on(
    sentry_app: Callable[..., Flask], ingest: RecordingHTTPServer,
) -> None:
    with RecordingHTTPServer() as third_parties:
        app = sentry_app(**every_channel(third_parties), STRIPE_SECRET_KEY="sk_test_trace0123456789",
                         STRIPE_API_BASE=third_parties.url + "/stripe", BREVO_API_KEY="xkeysib-trace0123456789",
                         BREVO_API_BASE=third_parties.url + "/brevo",
                         HEALTH_CHECKS=f'[{{"name": "search", "type": "http", "url": "{third_parties.url}/search"}}]')
        assert sentry_active()
        monitoring = app.extensions["centinela"]
        client = app.test_client()
        # Inside a request (the Flask integration's scope): the test action, and a trigger delivered at once.
        monitoring.outbox.prompt = PromptDelivery(monitoring.outbox, background=False)
        assert client.post(ALERTS, json={"action": "test"}, headers=ADMIN_HEADERS).status_code == 200
        assert client.post(ALERTS, json={"action": "trigger", "severity": "critical", "description": "down"},
                           headers=ADMIN_HEADERS).status_code == 200
        # Outside a request (the scheduler's threads): a health round and the delivery job.
        monitoring.health.run_round()
        client.post(ALERTS, json={"action": "trigger", "severity": "low", "description": "later"},
                    headers=ADMIN_HEADERS)
        monitoring.clock.advance(600)
        monitoring.alerting.dispatch_due()
        monitoring.outbox.prompt = None
        monitoring.outbox.deliver_due()
        paths = {r.path for r in third_parties.requests}
        assert {"/hook", "/slack", "/v2/enqueue", "/escalate", "/stripe/v1/balance", "/brevo/v3/account",
                "/search"} <= paths
        leaked = [(r.path, name) for r in third_parties.requests for name in TRACING_HEADERS if r.header(name)]
        assert leaked == []
        # Sentry itself is still sent to (the alert message, by our own channel).
        assert any(r.path == "/api/1/envelope/" for r in ingest.requests)


def test_the_dashboard_banner_names_a_firing_alert_worse_than_the_health_status(
    make_host: Callable[..., Host],
) -> None:
    host = make_host({"DASHBOARD_PUBLIC": "true"})  # the public view too, as the service shows it
    host.monitoring.health.run_round()  # the database answers: healthy
    document = host.client.get("/api/monitoring/dashboard", headers=METRICS_HEADERS).get_json()
    assert document["status"]["status"] == "healthy" and "alert" not in document["status"]
    host.post({"action": "trigger", "severity": "medium", "description": "Refunds slow", "service": "refunds"})
    status = host.client.get("/api/monitoring/dashboard", headers=METRICS_HEADERS).get_json()["status"]
    assert status["status"] == "healthy"  # health is still health
    assert status["alert"]["status"] == "degraded" and status["alert"]["word"] == "Medium alert firing"
    host.post({"action": "trigger", "severity": "critical", "description": "Payment system down",
               "service": "payments"})
    status = host.client.get("/api/monitoring/dashboard", headers=METRICS_HEADERS).get_json()["status"]
    assert status["alert"] == {"status": "unhealthy", "word": "Critical alert firing", "severity": "critical",
                               "name": "ManualAlert", "summary": "Payment system down",
                               "firedAt": "2026-01-01T00:00:00.000Z", "firing": 2}
    public = host.client.get("/api/monitoring/dashboard/data").get_json()  # the page's feed, signed out
    assert public["view"] == "public"
    assert "alert" not in public["status"] and "alerts" not in public  # the public view has no alerts


def test_an_older_store_gains_the_cleared_at_column(store_url: str) -> None:
    store = Store(store_url)
    store.migrate()
    with store.write() as conn:  # the store as the release at revision 0002 left it
        command.downgrade(alembic_config(conn), "0002")
        assert "cleared_at" not in {c["name"] for c in inspect(conn).get_columns("alerts")}
    assert store.migrate() == HEAD
    with store.read() as conn:
        assert "cleared_at" in {c["name"] for c in inspect(conn).get_columns("alerts")}
        assert "stopped_at" in {c["name"] for c in inspect(conn).get_columns("instances")}
    assert store.migrate() == HEAD  # again: nothing to do
    store.dispose()
