"""/api/monitoring/alerts through the Flask test client: the deliveries listing, the
configuration view with secrets masked, the synchronous test action, the delivery job
registered with the scheduler, and every bad input with its JSON error."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from monitoring.clock import ManualClock
from monitoring.notify.outbox import DELIVERED, PENDING
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer
from tests.test_notify_support import Steady, enqueue, make_notification, receiver  # noqa: F401

ALERTS = "/api/monitoring/alerts"
SLACK_TOKEN = "T0AAAAAAA/B0BBBBBBB/slackSecretToken42"
ROUTING_KEY = "PDroutingKey0123456789abcdefWXYZ"
WEBHOOK_SECRET = "hmac-secret-for-the-webhook-77"
SENTRY_KEY = "sentryPublicKey9f8e7d"



def full_env(receiver: RecordingHTTPServer) -> dict[str, str]:
    return {
        "ALERT_WEBHOOK_URL": receiver.url + "/hooks/alert-secret-path",
        "ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SLACK_WEBHOOK_URL": f"{receiver.url}/services/{SLACK_TOKEN}",
        "ESCALATION_WEBHOOK_URL": receiver.url + "/v2/enqueue",
        "ESCALATION_WEBHOOK_KIND": "pagerduty",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "SENTRY_DSN": f"http://{SENTRY_KEY}@127.0.0.1:{receiver.port}/42",
        "NOTIFY_TIMEOUT": "0.5",
    }


def error_of(response: Any, status: int, code: str | None = None) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    if code:
        assert error["code"] == code
    return error["message"]


# --- GET action=deliveries ------------------------------------------------------------------------


def test_deliveries_list_channel_attempts_last_status_and_next_attempt(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask], clock: ManualClock
) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "SLACK_WEBHOOK_URL": receiver.url + "/slack",
                    "NOTIFY_BACKOFF_BASE": "10"})
    outbox = app.extensions["centinela"].outbox
    outbox.rng = Steady(0.5)  # the jitter's random, injected
    receiver.route("/hook", 503, "upstream down")
    enqueue(outbox, make_notification())
    outbox.deliver_due()
    client = app.test_client()
    body = client.get(f"{ALERTS}?action=deliveries", headers=ADMIN_HEADERS).get_json()
    assert body["counts"] == {"pending": 1, "sending": 0, "delivered": 1, "failed": 0, "gave_up": 0, "cancelled": 0}
    slack, webhook = body["deliveries"]  # newest first
    assert (slack["channel"], slack["status"], slack["attempts"], slack["nextAttemptAt"]) == ("slack", DELIVERED, 1, None)
    assert webhook["channel"] == "webhook" and webhook["status"] == PENDING and webhook["attempts"] == 1
    assert webhook["lastStatus"]["httpStatus"] == 503 and webhook["lastStatus"]["answer"] == "upstream down"
    assert webhook["lastStatus"]["error"] == "HTTP 503"
    assert webhook["nextAttemptAt"] == "2026-01-01T00:00:05.000Z"  # 0.5 × 10 s after the attempt
    assert webhook["idempotencyKey"] == "a1b2c3d4e5f60718:firing:1/webhook"
    assert webhook["giveUpAt"] == "2026-01-02T00:00:00.000Z"


def test_deliveries_filter_and_page(receiver: RecordingHTTPServer, make_app: Callable[..., Flask]) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "SLACK_WEBHOOK_URL": receiver.url + "/slack"})
    outbox = app.extensions["centinela"].outbox
    for i in range(3):
        enqueue(outbox, make_notification(f"fp-{i}:firing:1"))
    client = app.test_client()
    first = client.get(f"{ALERTS}?action=deliveries&channel=webhook&limit=2", headers=ADMIN_HEADERS).get_json()
    assert [d["notificationId"] for d in first["deliveries"]] == ["fp-2:firing:1", "fp-1:firing:1"]
    second = client.get(f"{ALERTS}?action=deliveries&channel=webhook&limit=2&before={first['next']['before']}",
                        headers=ADMIN_HEADERS).get_json()
    assert [d["notificationId"] for d in second["deliveries"]] == ["fp-0:firing:1"] and second["next"] is None
    pending = client.get(f"{ALERTS}?action=deliveries&status=pending", headers=ADMIN_HEADERS).get_json()
    assert len(pending["deliveries"]) == 6
    assert client.get(f"{ALERTS}?action=deliveries&status=delivered", headers=ADMIN_HEADERS).get_json()["deliveries"] == []


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=lost", "status must be one of: pending, sending, delivered, failed, gave_up"),
        ("channel=sms", "channel must be one of: webhook, escalation, slack, pagerduty, sentry, email, apprise, "
                        "apprise-<name>"),
        ("channel=apprise-", "channel must be one of"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("limit=501", "limit must be a whole number from 1 to 500"),
        ("limit=ten", "limit must be a whole number from 1 to 500"),
        ("limit=-3", "limit must be a whole number from 1 to 500"),
        ("before=x", "before must be a whole number"),
    ],
)
def test_deliveries_bad_parameters(query: str, message: str, client: Any) -> None:
    assert message in error_of(client.get(f"{ALERTS}?action=deliveries&{query}", headers=ADMIN_HEADERS), 400,
                               "invalid_parameter")


def test_deliveries_need_the_admin_key(client: Any, monitoring: Any) -> None:
    error_of(client.get(f"{ALERTS}?action=deliveries"), 401, "unauthorized")
    error_of(client.get(f"{ALERTS}?action=deliveries", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    error_of(client.get(f"{ALERTS}?action=deliveries", headers=METRICS_HEADERS), 403, "forbidden")
    denied = monitoring.audit.page(kind="access_denied")
    assert denied[0].detail == {"reason": "insufficient_role", "needed": "admin"}
    assert client.get(f"{ALERTS}?action=deliveries&api_key={ADMIN_KEY}").status_code == 200


GET_ACTIONS = "active, configuration, deliveries, history, maintenance, rules, silences"
POST_ACTIONS = "acknowledge, add_rule, delete_maintenance, delete_rule, expire_silence, maintenance, resolve, silence, test, trigger, update_inhibitions, update_rule"


@pytest.mark.parametrize("query", ["", "?action=", "?action=silence", "?action=DELIVERIES"])
def test_missing_or_unknown_get_action_lists_the_valid_ones(query: str, client: Any) -> None:
    message = error_of(client.get(ALERTS + query, headers=ADMIN_HEADERS), 400, "invalid_action")
    assert message.endswith(f"valid actions: {GET_ACTIONS}")


# --- GET action=configuration ---------------------------------------------------------------------


def test_configuration_shows_channels_routing_thresholds_and_matrix_with_secrets_masked(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app({**full_env(receiver), "NOTIFY_FALLBACK_CHANNEL": "slack", "ERROR_RATE_THRESHOLD": "0.07"})
    response = app.test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    for secret in (SLACK_TOKEN, "slackSecretToken42", ROUTING_KEY, WEBHOOK_SECRET, SENTRY_KEY, "alert-secret-path"):
        assert secret not in text
    body = response.get_json()
    assert list(body)[:5] == ["thresholds", "severityMatrix", "channels", "routing", "delivery"]
    assert body["thresholds"] == {"paymentFailureRate": 0.01, "dbResponseMs": 1000, "apiResponseP95Ms": 2000,
                                  "memoryUsagePercent": 80, "errorRate": 0.07}
    assert [(r["severity"], r["responseTime"], r["escalation"]) for r in body["severityMatrix"]] == [
        ("critical", "< 5 min", "Immediate"), ("high", "< 15 min", "30 min"), ("medium", "< 1 hour", "2 hours"),
        ("low", "< 4 hours", "Next day"), ("info", "Best effort", "None"),
    ]
    channels = {c["name"]: c for c in body["channels"]}
    host = f"http://127.0.0.1:{receiver.port}"
    assert channels["webhook"] == {"name": "webhook", "kind": "webhook", "configured": True,
                                   "source": "ALERT_WEBHOOK_URL", "target": f"{host}/hooks/***", "signed": True}
    assert channels["slack"]["target"] == f"{host}/services/***"
    assert channels["escalation"]["kind"] == "pagerduty" and channels["escalation"]["routingKey"] == "****WXYZ"
    assert channels["sentry"]["target"] == f"http://***@127.0.0.1:{receiver.port}/42"
    assert channels["pagerduty"] == {"name": "pagerduty", "configured": False,
                                     "reason": "PagerDuty is configured as channel escalation"}
    assert body["routing"]["escalation"] == "escalation" and body["routing"]["fallback"] == "slack"
    # Only channels that are configured: PagerDuty is the escalation channel here, not channel pagerduty.
    assert body["routing"]["bySeverity"]["critical"] == ["webhook", "slack", "sentry"]
    assert body["delivery"]["giveUpAfterSeconds"] == 86400 and body["delivery"]["intervalSeconds"] == 5


def test_configuration_needs_a_key(client: Any) -> None:
    error_of(client.get(f"{ALERTS}?action=configuration"), 401, "unauthorized")
    body = client.get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()
    assert all(c["configured"] is False for c in body["channels"])
    assert body["channels"][0]["reason"] == "set ALERT_WEBHOOK_URL"


# --- POST action=test -----------------------------------------------------------------------------


def test_test_action_sends_now_and_answers_with_the_receivers_reply(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook"})
    receiver.respond(202, {"accepted": True, "note": "x" * 2000})
    response = app.test_client().post(ALERTS, json={"action": "test", "channel": "webhook"}, headers=ADMIN_HEADERS)
    assert response.status_code == 200
    body = response.get_json()
    (result,) = body["results"]
    assert body["ok"] is True and result["ok"] is True
    assert (result["channel"], result["kind"], result["status"]) == ("webhook", "webhook", 202)
    assert result["latencyMs"] > 0 and len(result["body"]) == 500 and result["body"].startswith('{"accepted": true')
    (request,) = receiver.requests
    sent = request.json()
    assert sent["version"] == "4" and sent["alerts"][0]["labels"]["alertname"] == "CentinelaTestNotification"
    assert request.header("Idempotency-Key") == result["idempotencyKey"]
    # Synchronous: nothing went through the outbox.
    assert app.extensions["centinela"].outbox.page() == []
    (entry,) = app.extensions["centinela"].audit.page(kind="admin_action")
    assert entry.action == "alerts.test" and entry.actor.startswith("admin:")
    assert entry.detail["results"] == [{"channel": "webhook", "ok": True, "status": 202, "error": ""}]


def test_test_action_reports_failures_and_timeouts(receiver: RecordingHTTPServer, make_app: Callable[..., Flask]) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "SLACK_WEBHOOK_URL": receiver.url + "/slack",
                    "NOTIFY_TIMEOUT": "0.3"})
    receiver.route("/hook", 500, {"error": "boom"})
    receiver.route("/slack", 200, "ok", delay=3)  # Slack hangs past the timeout
    response = app.test_client().post(ALERTS, json={"action": "test"}, headers=ADMIN_HEADERS)
    body = response.get_json()
    assert response.status_code == 200 and body["ok"] is False
    webhook, slack = body["results"]
    assert (webhook["status"], webhook["error"], webhook["body"]) == (500, "HTTP 500", '{"error": "boom"}')
    assert (slack["status"], slack["ok"], slack["error"]) == (None, False, "timeout after 0.3s")
    assert slack["latencyMs"] < 2500


def test_test_action_without_channel_tests_every_configured_channel(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app(full_env(receiver))
    body = app.test_client().post(ALERTS, json={"action": "test"}, headers=ADMIN_HEADERS).get_json()
    assert [(r["channel"], r["kind"], r["status"]) for r in body["results"]] == [
        ("webhook", "webhook", 200), ("escalation", "pagerduty", 200), ("slack", "slack", 200), ("sentry", "sentry", 200),
    ]
    paths = sorted(r.path for r in receiver.requests)
    assert paths == sorted(["/hooks/alert-secret-path", "/v2/enqueue", "/v2/enqueue", f"/services/{SLACK_TOKEN}",
                            "/api/42/envelope/"])
    # PagerDuty: the test incident is triggered, then resolved at once, under a dedup_key of its own.
    trigger, resolve = [r.json() for r in receiver.requests if r.path == "/v2/enqueue"]
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "info"
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert trigger["dedup_key"].startswith("centinela-test-")
    escalation = body["results"][1]
    assert escalation["ok"] is True and escalation["resolve"]["ok"] is True and escalation["resolve"]["status"] == 200
    again = app.test_client().post(ALERTS, json={"action": "test", "channel": "escalation"}, headers=ADMIN_HEADERS)
    second = [r.json() for r in receiver.requests if r.path == "/v2/enqueue"][2:]
    assert again.status_code == 200 and [e["event_action"] for e in second] == ["trigger", "resolve"]
    assert second[0]["dedup_key"] != trigger["dedup_key"]  # a new test, a new incident, resolved too
    assert SLACK_TOKEN not in json.dumps(body) and ROUTING_KEY not in json.dumps(body)


def test_test_action_unknown_and_unconfigured_channels(receiver: RecordingHTTPServer, make_app: Callable[..., Flask]) -> None:
    client = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook"}).test_client()
    message = error_of(client.post(ALERTS, json={"action": "test", "channel": "sms"}, headers=ADMIN_HEADERS),
                       400, "invalid_body")
    assert message == ("channel must be one of: webhook, escalation, slack, pagerduty, sentry, email, apprise, "
                       "apprise-<name>")
    message = error_of(client.post(ALERTS, json={"action": "test", "channel": "slack"}, headers=ADMIN_HEADERS),
                       409, "channel_not_configured")
    assert message == "channel slack is not configured: set SLACK_WEBHOOK_URL"
    assert receiver.requests == []


def test_test_action_with_nothing_configured(client: Any) -> None:
    message = error_of(client.post(ALERTS, json={"action": "test"}, headers=ADMIN_HEADERS), 409, "no_channel_configured")
    assert "ALERT_WEBHOOK_URL" in message


@pytest.mark.parametrize(
    "body, status, code, message",
    [
        ('{"action": "test",', 400, "invalid_json", "not valid JSON"),
        ('["test"]', 400, "invalid_body", "must be a JSON object"),
        ("{}", 400, "invalid_action", "action is required; valid actions: acknowledge, add_rule, delete_maintenance, delete_rule, expire_silence, maintenance, resolve, silence, test, trigger, update_inhibitions, update_rule"),
        ('{"action": 7}', 400, "invalid_action", "unknown action '7'; valid actions: acknowledge, add_rule, delete_maintenance, delete_rule, expire_silence, maintenance, resolve, silence, test, trigger, update_inhibitions, update_rule"),
        ('{"action": "tset"}', 400, "invalid_action", "unknown action 'tset'; valid actions: acknowledge, add_rule, delete_maintenance, delete_rule, expire_silence, maintenance, resolve, silence, test, trigger, update_inhibitions, update_rule"),
        ('{"action": "test", "channel": 5}', 400, "invalid_body", "channel must be one of"),
        ('{"action": "test", "channel": ["webhook"]}', 400, "invalid_body", "channel must be one of"),
        ('{"action": "test", "chanel": "webhook"}', 400, "invalid_body",
         "unknown field 'chanel' for action test; allowed: action, channel"),
    ],
)
def test_bad_post_bodies(body: str, status: int, code: str, message: str, client: Any) -> None:
    response = client.post(ALERTS, data=body, content_type="application/json", headers=ADMIN_HEADERS)
    assert message in error_of(response, status, code)


def test_post_refuses_non_json_huge_bodies_and_wrong_keys(client: Any) -> None:
    error_of(client.post(ALERTS, data="action=test", headers=ADMIN_HEADERS), 415, "unsupported_media_type")
    huge = json.dumps({"action": "test", "pad": "x" * (1024 * 1024 + 10)})
    error_of(client.post(ALERTS, data=huge, content_type="application/json", headers=ADMIN_HEADERS), 413)
    error_of(client.post(ALERTS, json={"action": "test"}), 401, "unauthorized")
    error_of(client.post(ALERTS, json={"action": "test"}, headers=METRICS_HEADERS), 403, "forbidden")
    error_of(client.put(ALERTS, json={"action": "test"}, headers=ADMIN_HEADERS), 405)


# --- the delivery job -------------------------------------------------------------------------------


def test_the_delivery_job_is_a_global_job_that_delivers(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "NOTIFY_DELIVERY_INTERVAL": "2.5"})
    monitoring = app.extensions["centinela"]
    job = monitoring.scheduler.jobs["notify_delivery"]
    assert (job.scope, job.interval) == ("global", 2.5)
    (key,) = enqueue(monitoring.outbox, make_notification())
    assert monitoring.scheduler.run_global("notify_delivery") is False  # not the leader: does nothing
    assert receiver.requests == []
    assert monitoring.scheduler.lease.try_acquire()
    assert monitoring.scheduler.run_global("notify_delivery") is True
    assert receiver.wait_for(1)[0].header("Idempotency-Key") == key


def test_openapi_documents_the_alerts_actions(client: Any) -> None:
    document = client.get("/api/openapi.json").get_json()
    operations = document["paths"]["/api/monitoring/alerts"]
    action = next(p for p in operations["get"]["parameters"] if p["name"] == "action")
    assert action["schema"]["enum"] == GET_ACTIONS.split(", ")
    body = operations["post"]["requestBody"]["content"]["application/json"]["schema"]
    union = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]  # discriminated by action
    assert sorted(union["discriminator"]["mapping"]) == POST_ACTIONS.split(", ")
    assert {"400", "401", "403", "409", "413", "415", "429"} <= set(operations["post"]["responses"])
