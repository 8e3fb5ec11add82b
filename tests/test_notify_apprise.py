"""Apprise channels with the real Apprise library: its json://, form:// and mailto:// targets
pointed at the recording HTTP server and the recording SMTP server on this machine. Each URL
is a channel of its own (apprise-<name>): one failing for a while holds back no other, and each
is delivered once; what Apprise logged is the answer; the notice is markdown where the service
takes it and our escaped HTML where it takes HTML; secrets inside the URLs never reach a
response or a log line; APPRISE_URLS is checked at start-up; routing, escalation, fallback,
the test action and the listing know the channels by name and as ``apprise``."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask

from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from monitoring.notify.apprise_urls import mask_apprise_url, scrub_apprise_text, split_apprise_urls
from monitoring.notify.figures import delivery_report
from monitoring.notify.model import ESCALATED, FIRING
from monitoring.notify.outbox import DELIVERED, PENDING, Delivery, Outbox
from monitoring.settings import ConfigError, Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer
from tests.support.smtp import RecordingSMTPServer
from tests.test_notify_support import (  # noqa: F401  (fixtures)
    START,
    enqueue,
    make_alert,
    make_notification,
    make_outbox,
    make_sqlite_outbox,
    receiver,
)

ROOT = Path(__file__).resolve().parents[1]
ALERTS = "/api/monitoring/alerts"
EXTERNAL = "https://centinela.festival.example"
JSON_SECRET = "hookToken7f3a9c2e"  # a secret path segment, as webhook URLs carry
JSON_PASSWORD = "basicAuthPw42"
# Telegram's real URL shape: tgram://<bot token>/<chat id>
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TELEGRAM_URL = f"tgram://{TELEGRAM_TOKEN}/-1001234567890"


def targets_env(receiver: RecordingHTTPServer, **extra: str) -> dict[str, str]:
    """Two Apprise URLs, one per line, named: channels apprise-json and apprise-form."""
    urls = (f"json=json://centinela:{JSON_PASSWORD}@127.0.0.1:{receiver.port}/json/{JSON_SECRET}\n"
            f"form=form://127.0.0.1:{receiver.port}/form")
    return {"APPRISE_URLS": urls, "NOTIFY_EXTERNAL_URL": EXTERNAL, "NOTIFY_BACKOFF_BASE": "4",
            "NOTIFY_BACKOFF_MAX": "20", "NOTIFY_TIMEOUT": "3", **extra}


def only(outbox: Outbox, key: str) -> Delivery:
    delivery = outbox.find(key)
    assert delivery is not None
    return delivery


def drive(outbox: Outbox, clock: ManualClock, keys: list[str], runs: int = 10) -> None:
    """Run the delivery job at each next attempt until every delivery is finished."""
    for _ in range(runs):
        waiting = [only(outbox, k) for k in keys if only(outbox, k).status in (PENDING, "sending")]
        if not waiting:
            return
        clock.set(max(clock.now(), min(d.next_attempt_at or clock.now() for d in waiting)))
        outbox.deliver_due()
    raise AssertionError("deliveries still unfinished")


def payment_notification(**kwargs: Any) -> Any:
    alert = make_alert(runbook_url="https://runbooks.example/payments", value="0.032",
                       description="Refunds failing for ana.garcia@example.org")
    return make_notification("a1b2c3d4e5f60718:firing:1", FIRING,
                             replace(alert, labels={**alert.labels, "route": "/checkout"}), **kwargs)


# --- one channel per URL, delivered independently -------------------------------------------------


def test_each_url_is_delivered_once_and_a_failing_one_holds_back_no_other(
    receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(targets_env(receiver))
    json_path = f"/json/{JSON_SECRET}"
    receiver.route(json_path, 200, {"ok": True})
    receiver.respond_sequence([(503, "overloaded, try later"), (503, "overloaded, try later")])  # the form target
    keys = enqueue(outbox, payment_notification())
    assert keys == ["a1b2c3d4e5f60718:firing:1/apprise-json", "a1b2c3d4e5f60718:firing:1/apprise-form"]

    run = outbox.deliver_due()
    assert (run.delivered, run.retried) == (1, 1)
    json_row, form_row = only(outbox, keys[0]), only(outbox, keys[1])
    assert (json_row.status, form_row.status, form_row.attempts) == (DELIVERED, PENDING, 1)
    assert form_row.last_error == "Failed to send Form POST notification: Servers are overloaded., error=503."
    assert form_row.last_status_code is None
    assert form_row.to_json()["lastStatus"]["httpStatus"] is None and "smtpCode" not in form_row.to_json()["lastStatus"]
    assert form_row.next_attempt_at == clock.now() + 2.0  # its own backoff: 0.5 × 4 s

    drive(outbox, clock, keys)
    assert [only(outbox, k).status for k in keys] == [DELIVERED, DELIVERED]
    assert (only(outbox, keys[0]).attempts, only(outbox, keys[1]).attempts) == (1, 3)
    to_json = [r for r in receiver.requests if r.path == json_path]
    to_form = [r for r in receiver.requests if r.path == "/form"]
    assert len(to_json) == 1 and len(to_form) == 3  # the JSON target once, never again while the form one failed

    sent = to_json[0].json()
    assert to_json[0].header("Authorization", "").startswith("Basic ")
    assert sent["title"] == "[CRITICAL] Firing: Payment failure rate 3.2% > 1%" and sent["type"] == "failure"
    for fact in ("**Payment failure rate 3.2% > 1%**", "- Severity: Critical", "- Service: payments",
                 "- Status: Firing", "- Value: 0.032", "- Since: 2026-01-01T00:00:00.000Z", "- Labels: route=/checkout",
                 "- [Runbook](https://runbooks.example/payments)",
                 f"Acknowledge: `POST {EXTERNAL}/api/monitoring/alerts` with "
                 '`{"action": "acknowledge", "fingerprint": "a1b2c3d4e5f60718"}`',
                 f"[Dashboard]({EXTERNAL}/api/monitoring/dashboard)",
                 "notification a1b2c3d4e5f60718:firing:1/apprise-json"):
        assert fact in sent["message"], fact
    assert "ana.garcia@example.org" not in sent["message"] and "Refunds failing for \\[email]" in sent["message"]
    form = {k: v[0] for k, v in parse_qs(to_form[-1].text).items()}
    assert form["title"] == sent["title"] and form["type"] == "failure"
    assert form["message"].startswith("**Payment failure rate 3.2% > 1%**")
    assert form["message"].endswith("notification a1b2c3d4e5f60718:firing:1/apprise-form")

    report = delivery_report(outbox, TimeWindow(START - 60, clock.now() + 1, "1h"))
    assert report.json["notifications"]["finishedInWindow"]["delivered"] == 2


def test_a_service_that_takes_html_gets_the_escaped_html_not_apprises_markdown_conversion(
    make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    with RecordingSMTPServer() as smtp:
        url = f"mailto://127.0.0.1:{smtp.port}/oncall@festival.example?from=alerts@festival.example&mode=insecure"
        outbox = make_sqlite_outbox({"APPRISE_URLS": f"mail={url}"})
        assert outbox.channels.get("apprise-mail").describe()["format"] == "html"
        alert = make_alert(summary="Payment failures <img src=x onerror=alert(1)>")
        enqueue(outbox, make_notification("x:firing:1", FIRING, alert))
        assert outbox.deliver_due().delivered == 1
        (mail,) = smtp.wait_for(1)
    page = mail.part("html")
    assert "Payment failures &lt;img src=x onerror=alert(1)&gt;" in page and "<img" not in page
    assert mail.message["Subject"] == "[CRITICAL] Firing: Payment failures <img src=x onerror=alert(1)>"


def test_an_answer_that_does_not_come_in_time_is_retried(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox({"APPRISE_URLS": f"slow=json://127.0.0.1:{receiver.port}/slow", "NOTIFY_TIMEOUT": "0.3"})
    receiver.hang(10)
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().retried == 1
    delivery = only(outbox, key)
    assert delivery.last_error == "timeout after 0.6s (Apprise)" and delivery.last_latency_ms < 3000
    receiver.respond(200)  # releases the hanging request


# --- secrets -------------------------------------------------------------------------------------------


def test_the_configuration_view_masks_every_secret_inside_the_urls(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    env = targets_env(receiver)
    env["APPRISE_URLS"] += f"\ntelegram={TELEGRAM_URL}  ntfys://ntfy.sh/centinela-alerts-x7k2p9"
    response = make_app(env).test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS)
    text = response.get_data(as_text=True)
    for secret in (JSON_SECRET, JSON_PASSWORD, TELEGRAM_TOKEN, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "123456789",
                   "centinela-alerts-x7k2p9"):
        assert secret not in text, secret
    shown = {c["name"]: c for c in response.get_json()["channels"] if c.get("kind") == "apprise"}
    assert list(shown) == ["apprise-json", "apprise-form", "apprise-telegram", "apprise-4"]
    assert shown["apprise-json"] == {"name": "apprise-json", "kind": "apprise", "configured": True,
                                     "source": "APPRISE_URLS", "target": f"json://127.0.0.1:{receiver.port}/***",
                                     "service": "JSON", "format": "markdown"}
    assert (shown["apprise-telegram"]["target"], shown["apprise-telegram"]["service"]) == ("tgram://***/***", "Telegram")
    assert shown["apprise-4"]["target"] == "ntfys://ntfy.sh/***"
    routing = response.get_json()["routing"]["bySeverity"]["critical"]
    assert [n for n in routing if n.startswith("apprise")] == list(shown)  # "apprise" routes to each


def test_secrets_in_the_urls_never_reach_a_log_line(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the most Apprise ever logs, debug lines with URLs included
    outbox = make_sqlite_outbox(targets_env(receiver))
    receiver.respond(500, {"error": "no such hook"})
    keys = enqueue(outbox, make_notification())
    assert outbox.deliver_due().retried == 2
    with pytest.raises(ConfigError):  # Apprise logs why it cannot use a URL, quoting the URL
        Settings.from_env({"APPRISE_URLS": "tgram://abc/12345"})
    # Apprise's lines and ours (urllib3's debug log of request paths is every HTTP client's, the
    # host's included: its to configure, and off unless the host turns DEBUG on for it).
    lines = [r.getMessage() for r in caplog.records if r.name == "apprise" or r.name.startswith("monitoring")]
    assert any("JSON POST URL: http://127.0.0.1" in line for line in lines)  # it did log the URL ...
    assert any("Unparseable Telegram URL tgram://***/***" in line for line in lines)
    assert any("Response Details" in line and "no such hook" in line for line in lines)
    logged = "\n".join(lines) + "".join(only(outbox, k).last_answer + only(outbox, k).last_error for k in keys)
    for secret in (JSON_SECRET, JSON_PASSWORD, "tgram://abc", "abc/12345"):
        assert secret not in logged, secret  # ... masked, before any handler saw it


def test_the_log_scrubber_masks_urls_tokens_and_pii() -> None:
    line = (f"The Telegram Bot Token specified ({TELEGRAM_TOKEN}) is invalid; posting to "
            f"https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage for ana@example.org, "
            "workflow://prod-161.westeurope.logic.azure.com:443/6...4/K...A/?image=yes")
    assert scrub_apprise_text(line) == (
        "The Telegram Bot Token specified ([redacted]) is invalid; posting to https://api.telegram.org/*** "
        "for [email], workflow://prod-161.westeurope.logic.azure.com:443/***")
    assert scrub_apprise_text("Sent JSON POST notification.") == "Sent JSON POST notification."
    assert mask_apprise_url("mailto://user:pw@gmail.com/?to=a@x.example") == "mailto://gmail.com/***"
    assert mask_apprise_url("discord://1234567890/abcdefTOKENxyz") == "discord://***/***"
    assert mask_apprise_url("json://[::1]:8080") == "json://[::1]:8080"


def test_apprises_logger_is_scrubbed_for_everyone_who_listens(caplog: pytest.LogCaptureFixture,
                                                               make_sqlite_outbox: Callable[..., Outbox]) -> None:
    make_sqlite_outbox({"APPRISE_URLS": "json://127.0.0.1:9/x"})  # installs the scrubber
    caplog.set_level(logging.WARNING)
    logging.getLogger("apprise").warning("The Telegram Bot Token specified (%s) is invalid.", TELEGRAM_TOKEN)
    assert caplog.records[-1].getMessage() == "The Telegram Bot Token specified ([redacted]) is invalid."
    assert TELEGRAM_TOKEN not in caplog.text


# --- APPRISE_URLS ---------------------------------------------------------------------------------------


def test_apprise_urls_are_separated_by_whitespace_and_named() -> None:
    raw = ("telegram=tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567890\n"
           "  mailto://user:pw@festival.example?to=a@festival.example,b@festival.example\t"
           "TEAMS=workflows://prod-161.westeurope.logic.azure.com:443/643e69f83c8944438d68119179a10a64/sig123/\n")
    targets = split_apprise_urls(raw)
    assert [(t.channel, t.position, t.scheme) for t in targets] == [
        ("apprise-telegram", 1, "tgram"), ("apprise-2", 2, "mailto"), ("apprise-teams", 3, "workflows")]
    assert targets[1].url.endswith("to=a@festival.example,b@festival.example")  # commas stay inside a URL
    assert TELEGRAM_TOKEN not in repr(targets)
    settings = Settings.from_env({"APPRISE_URLS": raw})
    assert [t.channel for t in settings.apprise_urls] == ["apprise-telegram", "apprise-2", "apprise-teams"]
    assert TELEGRAM_TOKEN not in repr(settings)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("json://127.0.0.1/x hooks.example/y", "entry 2 is not an Apprise URL (scheme://...) nor name=URL"),
        ("a=json://127.0.0.1/x a=form://127.0.0.1/y", "entry 2: channel apprise-a is named twice"),
        ("json://127.0.0.1/x 1=form://127.0.0.1/y", "entry 2: channel apprise-1 is named twice"),
        ("-x=json://127.0.0.1/x", "entry 1 is not an Apprise URL"),
        ("nosuchservice://token/x", "entry 1 (nosuchservice://...): Apprise cannot use this URL"),
        ("tgram://abc/12345", "entry 1 (tgram://...): Apprise cannot use this URL"),
        (" ".join(f"json://127.0.0.1/{i}" for i in range(21)), "at most 20 URLs"),
    ],
)
def test_bad_apprise_urls_stop_start_up_without_echoing_them(raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"APPRISE_URLS": raw})
    message = str(caught.value)
    assert message.startswith("APPRISE_URLS=(hidden): ") and expected in message
    assert "127.0.0.1" not in message and "abc" not in message and "token/x" not in message


# --- routing, escalation, fallback, the test action, the listing ----------------------------------


def test_routes_escalation_and_fallback_name_apprise_channels(
    receiver: RecordingHTTPServer, make_sqlite_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    env = targets_env(receiver, ALERT_WEBHOOK_URL=receiver.url + "/hook", NOTIFY_ROUTES='{"critical": ["webhook", "apprise-json"]}',
                      NOTIFY_ESCALATION_CHANNEL="apprise-form", NOTIFY_FALLBACK_CHANNEL="apprise")
    outbox = make_sqlite_outbox(env)
    assert outbox.routes.to_json() == {
        "bySeverity": {"critical": ["webhook", "apprise-json"], "high": ["webhook", "apprise-json", "apprise-form"],
                       "medium": ["webhook", "apprise-json", "apprise-form"],
                       "low": ["webhook", "apprise-json", "apprise-form"],
                       "info": ["webhook", "apprise-json", "apprise-form"]},
        "escalation": "apprise-form", "fallback": "apprise"}
    assert enqueue(outbox, make_notification()) == ["a1b2c3d4e5f60718:firing:1/webhook",
                                                    "a1b2c3d4e5f60718:firing:1/apprise-json"]
    assert enqueue(outbox, make_notification("a1b2c3d4e5f60718:escalated:1", ESCALATED)) == [
        "a1b2c3d4e5f60718:escalated:1/apprise-form"]
    # The webhook refuses for good: "apprise" as the fallback tells every Apprise channel.
    receiver.route("/hook", 410, "gone")
    outbox.deliver_due()
    assert only(outbox, "a1b2c3d4e5f60718:firing:1/webhook").status == "failed"
    outbox.deliver_due()
    notices = [d for d in outbox.page() if d.notification_id.startswith("undeliverable-")]
    assert sorted(d.channel for d in notices) == ["apprise-form", "apprise-json"]
    assert all(d.status == DELIVERED for d in notices)
    to_json = [r.json() for r in receiver.requests if r.path == f"/json/{JSON_SECRET}"]
    to_form = [{k: v[0] for k, v in parse_qs(r.text).items()} for r in receiver.requests if r.path == "/form"]
    # apprise-json had the alert, apprise-form its escalation; then each of them the failure notice.
    assert [m["title"] for m in to_json] == ["[CRITICAL] Firing: Payment failure rate 3.2% > 1%",
                                             "[CRITICAL] Firing: Could not notify webhook: Payment failure rate 3.2% > 1%"]
    assert [m["title"] for m in to_form] == ["[CRITICAL] Escalated: Payment failure rate 3.2% > 1%",
                                             "[CRITICAL] Firing: Could not notify webhook: Payment failure rate 3.2% > 1%"]
    for told in (to_json[1]["message"], to_form[1]["message"]):
        assert "Could not notify webhook: Payment failure rate 3.2% > 1%" in told
        assert "Delivery failed after 1 attempt(s): HTTP 410" in told


def test_the_test_action_and_the_listing_know_each_apprise_channel(
    receiver: RecordingHTTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app(targets_env(receiver))
    client = app.test_client()
    receiver.route("/form", 503, "overloaded")
    body = client.post(ALERTS, json={"action": "test", "channel": "apprise"}, headers=ADMIN_HEADERS).get_json()
    json_result, form_result = body["results"]
    assert body["ok"] is False
    assert (json_result["channel"], json_result["kind"], json_result["service"], json_result["ok"]) == (
        "apprise-json", "apprise", "JSON", True)
    assert json_result["status"] is None and json_result["body"] == "JSON: sent"
    assert (form_result["channel"], form_result["ok"]) == ("apprise-form", False)
    assert form_result["error"] == "Failed to send Form POST notification: Servers are overloaded., error=503."
    (request,) = [r for r in receiver.requests if r.path.startswith("/json/")]
    assert request.json()["title"] == "[INFO] Firing: Test notification from Centinela"
    one = client.post(ALERTS, json={"action": "test", "channel": "apprise-json"}, headers=ADMIN_HEADERS).get_json()
    assert [r["channel"] for r in one["results"]] == ["apprise-json"]
    missing = client.post(ALERTS, json={"action": "test", "channel": "apprise-teams"}, headers=ADMIN_HEADERS)
    assert missing.status_code == 409
    assert missing.get_json()["error"]["message"] == ("channel apprise-teams is not configured: APPRISE_URLS names "
                                                      "apprise-json, apprise-form")
    assert JSON_SECRET not in json.dumps(body) + json.dumps(one)

    enqueue(app.extensions["centinela"].outbox, make_notification())
    every = client.get(f"{ALERTS}?action=deliveries&channel=apprise", headers=ADMIN_HEADERS).get_json()
    assert [d["channel"] for d in every["deliveries"]] == ["apprise-form", "apprise-json"]
    one_listed = client.get(f"{ALERTS}?action=deliveries&channel=apprise-form", headers=ADMIN_HEADERS).get_json()
    assert [d["channel"] for d in one_listed["deliveries"]] == ["apprise-form"]


def test_without_apprise_urls_the_channel_says_how_to_configure_it(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    response = client.post(ALERTS, json={"action": "test", "channel": "apprise"}, headers=ADMIN_HEADERS)
    assert response.status_code == 409
    assert response.get_json()["error"]["message"] == "channel apprise is not configured: set APPRISE_URLS"
    channels = client.get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS).get_json()["channels"]
    assert {"name": "apprise", "configured": False, "reason": "set APPRISE_URLS"} in channels


def test_apprise_is_imported_only_when_apprise_urls_is_set() -> None:
    code = ("import sys; from monitoring.settings import Settings; from monitoring.notify.channels import "
            "build_channels; build_channels(Settings.from_env({{}})); print('apprise' in sys.modules, end=' '); "
            "build_channels(Settings.from_env({{'APPRISE_URLS': 'json://127.0.0.1/x'}})); print('apprise' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code.format()], capture_output=True, text=True, timeout=60,
                            cwd=ROOT)
    assert result.stdout.strip() == "False True", result.stderr
