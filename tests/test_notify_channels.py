"""What each channel sends, byte for byte, to a real local receiver: the webhook in
Alertmanager's v4 shape (and its signature), Slack as valid Block Kit, PagerDuty checked
field by field against the Events v2 rules, Sentry as an envelope. Plus routing, channel
detection, masking and the configuration parsers."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from monitoring.clock import ManualClock
from monitoring.notify.channel import mask_secret, mask_url
from monitoring.notify.channels import build_channels, detect_kind
from monitoring.notify.model import ACKNOWLEDGED, ESCALATED, FIRING, RESOLVED, AlertSnapshot, Notification
from monitoring.notify.outbox import DELIVERED, Outbox
from monitoring.notify.pagerduty import pagerduty_event
from monitoring.notify.routing import Routes
from monitoring.notify.slack import slack_message
from monitoring.settings import ConfigError, Settings
from tests.support.receiver import RecordedRequest, RecordingHTTPServer
from tests.test_notify_support import (  # noqa: F401  (fixtures)
    START,
    check_block_kit,
    enqueue,
    make_alert,
    make_notification,
    make_sqlite_outbox,
    receiver,
)

ROUTING_KEY = "R0123456789abcdef0123456789abcd1"  # 32 characters, like a PagerDuty integration key


def deliver(outbox: Outbox, notification: Notification, receiver: RecordingHTTPServer, n: int = 1) -> list[RecordedRequest]:
    """Enqueue, run the delivery job once, and return the ``n`` requests it made."""
    before = len(receiver.requests)
    keys = enqueue(outbox, notification)
    run = outbox.deliver_due()
    assert run.delivered == len(keys) == n, (run, keys)
    return receiver.wait_for(before + n)[before:]


# --- generic webhook: Alertmanager v4 ------------------------------------------------------------


def test_webhook_body_is_alertmanagers_v4_shape_exactly(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hooks/alerts"})
    first = make_alert("fp-1", summary="Payment failure rate 3.2% > 1%", runbook_url="https://runbooks.example/pay")
    second = make_alert("fp-2", severity="high", name="HighErrorRate", summary="5xx rate 7% > 5%",
                        runbook_url="https://runbooks.example/pay")
    notification = make_notification("grp-1:firing:1", FIRING, first, second)
    (request,) = deliver(outbox, notification, receiver)

    assert request.method == "POST" and request.path == "/hooks/alerts"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Idempotency-Key") == "grp-1:firing:1/webhook"
    assert request.header("X-Centinela-Signature") is None  # no secret configured
    assert request.json() == {
        "version": "4",
        "groupKey": '{}:{service="payments"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "centinela/webhook",
        "groupLabels": {"service": "payments"},
        "commonLabels": {"service": "payments"},
        "commonAnnotations": {"runbook_url": "https://runbooks.example/pay"},
        "externalURL": "",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "PaymentFailures", "severity": "critical", "service": "payments"},
                "annotations": {"summary": "Payment failure rate 3.2% > 1%", "runbook_url": "https://runbooks.example/pay"},
                "startsAt": "2026-01-01T00:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "fp-1",
            },
            {
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "severity": "high", "service": "payments"},
                "annotations": {"summary": "5xx rate 7% > 5%", "runbook_url": "https://runbooks.example/pay"},
                "startsAt": "2026-01-01T00:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "",
                "fingerprint": "fp-2",
            },
        ],
        "event": "firing",
        "idempotencyKey": "grp-1:firing:1/webhook",
    }


def test_webhook_resolved_and_acknowledged_keep_alertmanagers_status(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "NOTIFY_EXTERNAL_URL": "https://centinela.example"})
    resolved = make_notification("fp:resolved:1", RESOLVED, make_alert(status=RESOLVED))
    acknowledged = make_notification("fp:ack:1", ACKNOWLEDGED, make_alert(acknowledged_by="admin:3f2a9c1e"))
    deliver(outbox, resolved, receiver)
    body = receiver.requests[-1].json()
    assert (body["status"], body["event"]) == ("resolved", "resolved")
    assert body["alerts"][0]["endsAt"] == "2026-01-01T00:10:00.000Z"
    assert body["externalURL"] == "https://centinela.example"
    deliver(outbox, acknowledged, receiver)
    body = receiver.requests[-1].json()
    assert (body["status"], body["event"]) == ("firing", "acknowledged")  # still firing, now acknowledged
    assert body["commonAnnotations"]["acknowledged_by"] == "admin:3f2a9c1e"


def test_webhook_signature_verifies_over_timestamp_and_raw_body(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    secret = "whk-test-secret-2b7e1516"
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hook", "ALERT_WEBHOOK_SECRET": secret})
    clock.advance(42.7)
    (request,) = deliver(outbox, make_notification(), receiver)
    timestamp = request.header("X-Centinela-Timestamp")
    signature = request.header("X-Centinela-Signature")
    assert timestamp == str(int(START + 42.7))
    # What a receiver does, written out independently of our code: HMAC-SHA256 over "<ts>." + raw body.
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    wrong_secret = hmac.new(b"other", timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert signature != "sha256=" + wrong_secret
    tampered = hmac.new(secret.encode(), timestamp.encode() + b"." + request.body.replace(b"3.2%", b"0.1%"),
                        hashlib.sha256).hexdigest()
    assert signature != "sha256=" + tampered
    assert secret not in request.text and secret not in str(request.headers)


def test_sent_text_passes_the_pii_sanitiser(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hook"})
    alert = make_alert(summary="Card 4242 4242 4242 4242 declined for ana@example.com",
                       description="api_key=sk_live_abcdef123456 from 203.0.113.77")
    (request,) = deliver(outbox, make_notification("fp:pii:1", FIRING, alert), receiver)
    text = request.text
    for secret in ("4242 4242 4242 4242", "ana@example.com", "sk_live_abcdef123456", "203.0.113.77"):
        assert secret not in text
    assert "[card ****4242]" in text and "[email]" in text and "203.0.113.0" in text


# --- Slack Block Kit ------------------------------------------------------------------------------


def test_slack_message_is_valid_block_kit_with_severity_service_start_and_runbook(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/services/T0/B0/x", "ALERT_WEBHOOK_KIND": "slack"})
    alert = make_alert(runbook_url="https://runbooks.example/payments", description="Stripe answers <5xx> & retries")
    (request,) = deliver(outbox, make_notification("fp:firing:1", FIRING, alert), receiver)
    message = request.json()
    check_block_kit(message)
    header, section, footer = message["blocks"]
    assert header["text"]["text"] == "🔴 CRITICAL · Firing: Payment failure rate 3.2% > 1%"
    assert section["text"]["text"] == "*Payment failure rate 3.2% &gt; 1%*\nStripe answers &lt;5xx&gt; &amp; retries"
    assert [f["text"] for f in section["fields"]] == [
        "*Severity*\n🔴 Critical",
        "*Service*\npayments",
        "*Started*\n<!date^1767225600^{date_short_pretty} {time}|2026-01-01T00:00:00.000Z>",
        "*Status*\nFiring",
    ]
    assert section["accessory"]["url"] == "https://runbooks.example/payments"
    assert "fp:firing:1/webhook" in footer["elements"][0]["text"]
    assert message["text"] == (
        "[CRITICAL] Firing: Payment failure rate 3.2% &gt; 1% (service payments, started 2026-01-01T00:00:00.000Z)"
        " Runbook: https://runbooks.example/payments"
    )
    assert request.header("Idempotency-Key") == "fp:firing:1/webhook"


def test_slack_message_stays_within_block_kit_limits_for_huge_groups(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"SLACK_WEBHOOK_URL": receiver.url + "/slack"})
    alerts = [
        make_alert(f"fp-{i}", severity="medium", name="SlowApi", summary="S" * 5000, description="d" * 9000,
                   runbook_url="https://runbooks.example/" + "x" * 4000)
        for i in range(60)
    ]
    notification = make_notification("grp:firing:9", FIRING, *alerts)
    (request,) = deliver(outbox, notification, receiver)
    message = request.json()
    check_block_kit(message)  # header ≤ 150, section text ≤ 3000, ≤ 50 blocks, no over-long button URL
    assert len(message["blocks"]) == 50
    assert message["blocks"][-2]["elements"][0]["text"] == "…and 13 more alerts"
    assert all("accessory" not in b for b in message["blocks"])  # a 4000-character URL is not a button


def test_slack_resolved_message(receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]) -> None:
    outbox = make_sqlite_outbox({"SLACK_WEBHOOK_URL": receiver.url + "/slack"})
    (request,) = deliver(outbox, make_notification("fp:resolved:1", RESOLVED, make_alert(status=RESOLVED)), receiver)
    message = request.json()
    check_block_kit(message)
    assert message["blocks"][0]["text"]["text"].startswith("✅ CRITICAL · Resolved:")
    assert "*Status*\nResolved" in [f["text"] for f in message["blocks"][1]["fields"]]


@pytest.mark.parametrize(
    "breakage",
    [
        lambda m: m["blocks"][0]["text"].update(text="h" * 151),
        lambda m: m["blocks"][1]["text"].update(text="s" * 3001),
        lambda m: m["blocks"].extend([{"type": "divider"}] * 50),
        lambda m: m["blocks"][1]["fields"].extend(m["blocks"][1]["fields"] * 2),
        lambda m: m["blocks"].append({"type": "image"}),
        lambda m: m.update(text=""),
    ],
)
def test_the_block_kit_check_catches_what_slack_would_refuse(breakage: Callable[[dict[str, Any]], Any]) -> None:
    message = slack_message(make_notification(), "k")
    check_block_kit(message)
    breakage(message)
    with pytest.raises(AssertionError):
        check_block_kit(message)


# --- PagerDuty Events v2 --------------------------------------------------------------------------

PD_SEVERITIES = {"critical", "error", "warning", "info"}


def check_pagerduty_trigger(event: dict[str, Any]) -> None:
    """The Events API v2 rules for a trigger, field by field."""
    assert set(event) <= {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
    assert isinstance(event["routing_key"], str) and len(event["routing_key"]) == 32
    assert event["event_action"] == "trigger"
    assert isinstance(event["dedup_key"], str) and 1 <= len(event["dedup_key"]) <= 255
    payload = event["payload"]
    assert set(payload) <= {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}
    assert isinstance(payload["summary"], str) and 1 <= len(payload["summary"]) <= 1024
    assert isinstance(payload["source"], str) and 1 <= len(payload["source"]) <= 255
    assert payload["severity"] in PD_SEVERITIES
    datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))  # ISO 8601
    for name in ("component", "group", "class"):
        assert isinstance(payload[name], str) and payload[name]
    assert isinstance(payload["custom_details"], dict)
    for link in event.get("links", []):
        assert set(link) == {"href", "text"} and link["href"].startswith(("http://", "https://"))


def test_pagerduty_trigger_one_event_per_alert_checked_field_by_field(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({
        "ALERT_WEBHOOK_URL": receiver.url + "/v2/enqueue", "ALERT_WEBHOOK_KIND": "pagerduty",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY, "NOTIFY_EXTERNAL_URL": "https://centinela.example",
    })
    first = make_alert("fp-pay", runbook_url="https://runbooks.example/pay", description="Stripe declines")
    second = make_alert("fp-err", severity="high", name="HighErrorRate", summary="x" * 3000)
    requests = deliver(outbox, make_notification("grp:firing:1", FIRING, first, second), receiver, n=2)
    events = {r.json()["dedup_key"]: r for r in requests}
    assert set(events) == {"fp-pay", "fp-err"}  # dedup_key = the alert's fingerprint
    for request in requests:
        check_pagerduty_trigger(request.json())
    pay = events["fp-pay"].json()
    assert pay == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "fp-pay",
        "payload": {
            "summary": "[CRITICAL] Payment failure rate 3.2% > 1%",
            "source": "payments",
            "severity": "critical",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "component": "payments",
            "group": "payments",
            "class": "PaymentFailures",
            "custom_details": {
                "event": "firing",
                "severity": "critical",
                "description": "Stripe declines",
                "labels": {"alertname": "PaymentFailures", "severity": "critical", "service": "payments"},
                "annotations": {"summary": "Payment failure rate 3.2% > 1%", "runbook_url": "https://runbooks.example/pay",
                                "description": "Stripe declines"},
                "group_key": '{}:{service="payments"}',
                "idempotency_key": "grp:firing:1/webhook/fp-pay",
            },
        },
        "links": [{"href": "https://runbooks.example/pay", "text": "Runbook"}],
        "client": "Centinela",
        "client_url": "https://centinela.example",
    }
    assert events["fp-pay"].header("Idempotency-Key") == "grp:firing:1/webhook/fp-pay"
    err = events["fp-err"].json()["payload"]
    assert len(err["summary"]) == 1024 and err["summary"].endswith("…") and err["severity"] == "error"


@pytest.mark.parametrize(
    "breakage",
    [
        lambda e: e["payload"].update(summary="s" * 1025),
        lambda e: e["payload"].update(severity="high"),
        lambda e: e["payload"].update(timestamp="yesterday"),
        lambda e: e.update(dedup_key="d" * 256),
        lambda e: e.update(routing_key="short"),
        lambda e: e["payload"].pop("source"),
    ],
)
def test_the_pagerduty_check_catches_what_events_v2_would_refuse(breakage: Callable[[dict[str, Any]], Any]) -> None:
    event = pagerduty_event(make_notification(), ROUTING_KEY, "k")
    check_pagerduty_trigger(event)
    breakage(event)
    with pytest.raises((AssertionError, KeyError, ValueError)):
        check_pagerduty_trigger(event)


@pytest.mark.parametrize("ours, theirs", [("critical", "critical"), ("high", "error"), ("medium", "warning"),
                                          ("low", "info"), ("info", "info")])
def test_pagerduty_severity_mapping(
    ours: str, theirs: str, receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/v2/enqueue", "ALERT_WEBHOOK_KIND": "pagerduty",
                                 "PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    (request,) = deliver(outbox, make_notification(f"fp:{ours}", FIRING, make_alert(severity=ours)), receiver)
    check_pagerduty_trigger(request.json())
    assert request.json()["payload"]["severity"] == theirs


def test_escalation_to_pagerduty_then_acknowledge_and_resolve(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({
        "ALERT_WEBHOOK_URL": receiver.url + "/hook",
        "ESCALATION_WEBHOOK_URL": receiver.url + "/v2/enqueue", "ESCALATION_WEBHOOK_KIND": "pagerduty",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
    })
    alert = make_alert("fp-db", name="DatabaseUnavailable", service="database")
    deliver(outbox, make_notification("fp-db:escalated:1", ESCALATED, alert), receiver)
    (escalation,) = receiver.requests
    assert escalation.path == "/v2/enqueue"  # an escalation goes to the escalation channel only
    check_pagerduty_trigger(escalation.json())

    # Acknowledged in Centinela: the webhook hears it, and PagerDuty gets `acknowledge` for the same dedup_key.
    keys = enqueue(outbox, make_notification("fp-db:ack:1", ACKNOWLEDGED, alert, escalated=True))
    assert keys == ["fp-db:ack:1/webhook", "fp-db:ack:1/escalation/fp-db"]
    outbox.deliver_due()
    ack = [r for r in receiver.wait_for(3) if r.path == "/v2/enqueue"][-1]
    assert ack.json() == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "fp-db"}

    enqueue(outbox, make_notification("fp-db:resolved:1", RESOLVED, make_alert("fp-db", status=RESOLVED), escalated=True))
    outbox.deliver_due()
    resolve = [r for r in receiver.wait_for(5) if r.path == "/v2/enqueue"][-1]
    assert resolve.json() == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "fp-db"}


def test_acknowledging_an_alert_that_never_escalated_does_not_page(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hook",
                                 "ESCALATION_WEBHOOK_URL": receiver.url + "/v2/enqueue",
                                 "ESCALATION_WEBHOOK_KIND": "pagerduty", "PAGERDUTY_ROUTING_KEY": ROUTING_KEY})
    assert enqueue(outbox, make_notification("fp:ack:2", ACKNOWLEDGED)) == ["fp:ack:2/webhook"]


# --- Sentry -----------------------------------------------------------------------------------------


def test_sentry_gets_one_envelope_per_alert_with_level_and_tags(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"SENTRY_DSN": f"http://publickey123@127.0.0.1:{receiver.port}/42",
                                 "SENTRY_ENVIRONMENT": "staging"})
    first = make_alert("fp-pay")
    second = make_alert("fp-mem", severity="medium", name="HighMemoryUsage", service="system", summary="Memory 91%")
    requests = deliver(outbox, make_notification("grp:firing:2", FIRING, first, second), receiver, n=2)
    by_fingerprint = {}
    for request in requests:
        assert request.path == "/api/42/envelope/"
        assert request.header("Content-Type") == "application/x-sentry-envelope"
        auth = request.header("X-Sentry-Auth")
        assert auth.startswith("Sentry ") and "sentry_version=7" in auth and "sentry_key=publickey123" in auth
        header_line, item_line, event_line = request.body.rstrip(b"\n").split(b"\n")
        header, item, event = json.loads(header_line), json.loads(item_line), json.loads(event_line)
        assert item["type"] == "event" and item["length"] == len(event_line)
        assert header["event_id"] == event["event_id"] and re.fullmatch(r"[0-9a-f]{32}", event["event_id"])
        by_fingerprint[event["tags"]["alert.fingerprint"]] = event
    pay, mem = by_fingerprint["fp-pay"], by_fingerprint["fp-mem"]
    assert (pay["level"], mem["level"]) == ("fatal", "warning")
    assert pay["message"] == {"formatted": "[CRITICAL] Payment failure rate 3.2% > 1%"}
    assert pay["tags"] == {"alert.name": "PaymentFailures", "alert.severity": "critical", "alert.event": "firing",
                           "alert.fingerprint": "fp-pay", "service": "payments"}
    assert pay["fingerprint"] == ["centinela-alert", "fp-pay"]
    assert pay["environment"] == "staging" and pay["logger"] == "centinela.alerts"
    # The event id is derived from the idempotency key: a retry is the same event to Sentry.
    assert pay["event_id"] == uuid.uuid5(uuid.UUID("6f1c1f4e-3c55-4a7e-9a43-0c9b5f1d2e71"),
                                         "grp:firing:2/sentry/fp-pay").hex


def test_sentry_is_not_sent_acknowledgements_or_resolutions(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"SENTRY_DSN": f"http://k@127.0.0.1:{receiver.port}/42",
                                 "ALERT_WEBHOOK_URL": receiver.url + "/hook"})
    assert enqueue(outbox, make_notification("fp:resolved:3", RESOLVED, make_alert(status=RESOLVED))) == [
        "fp:resolved:3/webhook"
    ]


# --- routing, channel detection, masking, configuration -----------------------------------------


def test_channel_kind_is_detected_from_the_host_unless_overridden() -> None:
    assert detect_kind("https://hooks.slack.com/services/T0/B0/XYZ") == "slack"
    assert detect_kind("https://events.pagerduty.com/v2/enqueue") == "pagerduty"
    assert detect_kind("https://ops.example/hooks/centinela") == "webhook"
    assert detect_kind("http://127.0.0.1:9000/x", "slack") == "slack"


def test_system_description_configuration_gives_slack_alerts_and_pagerduty_escalation() -> None:
    settings = Settings.from_env({
        "ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/YOUR/WEBHOOK",
        "ESCALATION_WEBHOOK_URL": "https://events.pagerduty.com/v2/enqueue",
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
    })
    channels = build_channels(settings)
    assert {n: c.kind for n, c in channels.channels.items()} == {"webhook": "slack", "escalation": "pagerduty"}
    assert channels.missing["pagerduty"] == "PagerDuty is configured as channel escalation"
    routes = Routes.from_settings({}, "", "", channels.names)
    assert routes.escalation == "escalation"


def test_a_pagerduty_url_without_routing_key_is_not_a_channel() -> None:
    channels = build_channels(Settings.from_env({"ESCALATION_WEBHOOK_URL": "https://events.pagerduty.com/v2/enqueue"}))
    assert channels.names == []
    assert "PAGERDUTY_ROUTING_KEY" in channels.missing["escalation"]


def test_routes_by_event_and_severity_skip_unconfigured_channels() -> None:
    routes = Routes.from_settings({"info": [], "medium": ["slack", "sentry"]}, "", "webhook",
                                  ["webhook", "slack", "pagerduty"])
    configured = ["webhook", "slack", "pagerduty"]
    assert routes.escalation == "pagerduty" and routes.fallback == "webhook"

    def targets(severity: str, event: str = FIRING, **kw: Any) -> list[str]:
        return routes.targets(make_notification("n", event, make_alert(severity=severity), **kw), configured)

    assert targets("critical") == ["webhook", "slack", "pagerduty"]
    assert targets("medium") == ["slack"]  # sentry is routed but not configured
    assert targets("info") == []
    assert targets("low", ESCALATED) == ["pagerduty"]
    assert targets("low", RESOLVED, escalated=True) == ["webhook", "slack", "pagerduty"]
    assert targets("critical", RESOLVED, escalated=True) == ["webhook", "slack", "pagerduty"]  # once each
    assert targets("critical", channels=("slack", "nowhere")) == ["slack"]
    off = Routes.from_settings({}, "none", "none", configured)
    assert (off.escalation, off.fallback) == (None, None)


def test_masking_hides_tokens_paths_and_keys() -> None:
    assert mask_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET") == "https://hooks.slack.com/services/***"
    assert mask_url("https://ops.example/3f9a8b7c6d5e") == "https://ops.example/***"
    assert mask_url("https://ops.example:8443/hook?token=abc") == "https://ops.example:8443/***"
    assert mask_url("https://user:pw@ops.example/") == "https://ops.example"
    assert mask_secret(ROUTING_KEY) == "****bcd1" and mask_secret("short") == "****"


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("NOTIFY_ROUTES", "{critical: [", "expected a JSON object"),
        ("NOTIFY_ROUTES", '["slack"]', "expected a JSON object"),
        ("NOTIFY_ROUTES", '{"urgent": ["slack"]}', "unknown severity 'urgent'"),
        ("NOTIFY_ROUTES", '{"critical": "slack"}', "critical: expected a list of channel names"),
        ("NOTIFY_ROUTES", '{"critical": ["sms"]}', "critical: unknown channel 'sms'"),
        ("NOTIFY_ROUTES", '{"critical": ["apprise-"]}', "critical: unknown channel 'apprise-'"),
        ("NOTIFY_ESCALATION_CHANNEL", "opsgenie",
         "expected one of: webhook, escalation, slack, pagerduty, sentry, email, apprise, apprise-<name>, none"),
        ("NOTIFY_FALLBACK_CHANNEL", "Apprise-Tele gram", "expected one of"),
        ("ALERT_WEBHOOK_KIND", "teams", "expected one of: webhook, slack, pagerduty"),
        ("NOTIFY_GIVE_UP_AFTER", "forever", "expected a positive duration"),
        ("NOTIFY_GIVE_UP_AFTER", "0h", "expected a positive duration"),
        ("NOTIFY_TIMEOUT", "-1", "expected a positive number"),
        ("SLACK_WEBHOOK_URL", "hooks.slack.com/x", "expected an http:// or https:// URL"),
    ],
)
def test_bad_notification_settings_stop_start_up(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(f"{name}=") and expected in str(caught.value)


def test_notification_settings_parse() -> None:
    settings = Settings.from_env({"NOTIFY_GIVE_UP_AFTER": "90m", "NOTIFY_ROUTES": '{"critical": ["pagerduty"]}',
                                  "NOTIFY_FALLBACK_CHANNEL": "Slack"})
    assert settings.notify_give_up_after == 5400
    assert settings.notify_routes == {"critical": ("pagerduty",)}
    assert settings.notify_fallback_channel == "slack"
    assert Settings.from_env({}).notify_give_up_after == 86400  # 24 h by default
    assert Settings.from_env({"NOTIFY_GIVE_UP_AFTER": "3600"}).notify_give_up_after == 3600
    assert ROUTING_KEY not in repr(Settings.from_env({"PAGERDUTY_ROUTING_KEY": ROUTING_KEY}))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AlertSnapshot("", {"alertname": "x", "severity": "info"}), "fingerprint"),
        (lambda: AlertSnapshot("fp with space", {"alertname": "x", "severity": "info"}), "fingerprint"),
        (lambda: AlertSnapshot("fp", {"severity": "info"}), "alertname"),
        (lambda: AlertSnapshot("fp", {"alertname": "x", "severity": "urgent"}), "severity"),
        (lambda: AlertSnapshot("fp", {"alertname": "x", "severity": "info"}, status="pending"), "status"),
        (lambda: make_notification("n", "paged"), "event"),
        (lambda: make_notification("n" * 161), "notification id"),
        (lambda: Notification("n", FIRING, ()), "at least one alert"),
    ],
)
def test_malformed_notifications_are_refused_when_built(build: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_delivered_rows_say_so(receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]) -> None:
    outbox = make_sqlite_outbox({"ALERT_WEBHOOK_URL": receiver.url + "/hook"})
    (key,) = enqueue(outbox, make_notification())
    outbox.deliver_due()
    delivery = outbox.find(key)
    assert delivery is not None and delivery.status == DELIVERED and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.last_answer == '{"ok": true}'
