"""Channel email against a real SMTP server on this machine (aiosmtpd, tests/support/smtp.py):
one message per notification with the subject, both parts and the facts; PII scrubbed in the
body; the notices of one alert threaded by Message-ID, In-Reply-To and References; a 451 reply
retried with backoff and then delivered, a 550 reply failed at once with the server's words and
reported to the fallback channel; STARTTLS and smtps:// with certificates verified; the
password never shown; every bad setting refused at start-up; the test action's SMTP answer."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from flask import Flask

from monitoring.clock import ManualClock
from monitoring.metrics.categories import TimeWindow
from monitoring.notify.channels import build_channels
from monitoring.notify.email_channel import message_id, thread_id
from monitoring.notify.figures import delivery_report
from monitoring.notify.model import ACKNOWLEDGED, ESCALATED, FIRING, RESOLVED, AlertSnapshot
from monitoring.notify.outbox import DELIVERED, FAILED, PENDING, Delivery, Outbox
from monitoring.settings import ConfigError, Settings
from tests.conftest import ADMIN_HEADERS, METRICS_HEADERS
from tests.support.receiver import RecordingHTTPServer, SwitchableTCPServer, free_port
from tests.support.smtp import RecordingSMTPServer, TestCA
from tests.test_notify_support import (  # noqa: F401  (fixtures)
    START,
    enqueue,
    make_alert,
    make_notification,
    make_outbox,
    make_sqlite_outbox,
    receiver,
)

ALERTS = "/api/monitoring/alerts"
EXTERNAL = "https://centinela.festival.example"
SENDER = "Centinela <alerts@festival.example>"
RECIPIENTS = "oncall@festival.example, Ops Team <ops@festival.example>"
DOMAIN = "festival.example"
PASSWORD = "s3cret/pa:ss-9f8e7d"
LOGIN = "8a1b2c001@smtp-brevo.com"  # Brevo's SMTP logins are addresses: %40 in the URL
ENCODED_PASSWORD = "s3cret%2Fpa%3Ass-9f8e7d"
ENCODED = f"8a1b2c001%40smtp-brevo.com:{ENCODED_PASSWORD}"


@pytest.fixture
def smtp() -> Iterator[RecordingSMTPServer]:
    with RecordingSMTPServer() as server:
        yield server


def email_env(smtp_url: str, **extra: str) -> dict[str, str]:
    return {"SMTP_URL": smtp_url, "ALERT_EMAIL_FROM": SENDER, "ALERT_EMAIL_TO": RECIPIENTS,
            "NOTIFY_EXTERNAL_URL": EXTERNAL, "NOTIFY_BACKOFF_BASE": "4", "NOTIFY_BACKOFF_MAX": "20", **extra}


def relay(smtp: RecordingSMTPServer, **extra: str) -> dict[str, str]:
    """The test server as a relay beside Centinela: plain SMTP on loopback."""
    return email_env(smtp.url(query="starttls=no"), **extra)


def only(outbox: Outbox, key: str) -> Delivery:
    delivery = outbox.find(key)
    assert delivery is not None
    return delivery


def payment_alert(**annotations: str) -> AlertSnapshot:
    return make_alert(runbook_url="https://runbooks.example/payments", value="0.032", **annotations)


# --- what arrives ---------------------------------------------------------------------------------


def test_a_group_arrives_as_one_message_with_subject_both_parts_and_the_facts(
    smtp: RecordingSMTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox(relay(smtp))
    first = make_alert(runbook_url="https://runbooks.example/payments", value="0.032")
    first = replace(first, labels={**first.labels, "route": "/checkout", "zone": "<b>eu</b>"})
    second = make_alert("0f1e2d3c4b5a6978", "high", "CheckoutSlow", summary="Checkout p95 2400 ms > 2000 ms")
    (key,) = enqueue(outbox, make_notification("grp:firing:1", FIRING, first, second))
    assert key == "grp:firing:1/email"
    assert outbox.deliver_due().delivered == 1
    (mail,) = smtp.wait_for(1)
    assert len(smtp.received) == 1  # one message for the group
    assert mail.mail_from == "alerts@festival.example"
    assert mail.rcpt_tos == ("oncall@festival.example", "ops@festival.example")
    message = mail.message
    assert message["Subject"] == "[CRITICAL] Firing: Payment failure rate 3.2% > 1% (+1 more)"
    assert message["From"] == SENDER and message["To"] == RECIPIENTS
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Centinela-Idempotency-Key"] == key
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]

    text = mail.part("plain")
    for fact in ("Payment failure rate 3.2% > 1%", "Checkout p95 2400 ms > 2000 ms",
                 "Severity:        Critical", "Severity:        High", "Service:         payments",
                 "Status:          Firing", "Value:           0.032", "Since:           2026-01-01T00:00:00.000Z",
                 "Labels:          route=/checkout, zone=<b>eu</b>", "Runbook:         https://runbooks.example/payments",
                 f"Acknowledge: POST {EXTERNAL}/api/monitoring/alerts with "
                 '{"action": "acknowledge", "fingerprint": "a1b2c3d4e5f60718"} and the admin key',
                 f"Dashboard: {EXTERNAL}/api/monitoring/dashboard",
                 'Centinela · group {}:{service="payments"} · notification grp:firing:1/email'):
        assert fact in text, fact
    page = mail.part("html")
    assert '<a href="https://runbooks.example/payments">' in page
    assert f'<a href="{EXTERNAL}/api/monitoring/dashboard">Open the dashboard</a>' in page
    assert "Payment failure rate 3.2% &gt; 1%" in page and "zone=&lt;b&gt;eu&lt;/b&gt;" in page
    assert "<b>eu</b>" not in page  # alert text never becomes markup
    assert "color:#b00020" in page  # critical

    listed = only(outbox, key).to_json()
    assert listed["channel"] == "email" and listed["status"] == DELIVERED
    assert listed["lastStatus"]["smtpCode"] == 250 and listed["lastStatus"]["httpStatus"] is None
    assert listed["lastStatus"]["answer"] == "250 2.0.0 OK: queued as C3N71N3LA"


def test_pii_in_the_alert_text_is_scrubbed_in_both_parts(
    smtp: RecordingSMTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox(relay(smtp))
    alert = payment_alert(description="Refunds failing for ana.garcia@example.org, card 4242 4242 4242 4242, "
                                      "phone +34 612 345 678, from 203.0.113.77")
    alert = replace(alert, labels={**alert.labels, "customer": "bob@example.net"})
    enqueue(outbox, make_notification("pii:firing:1", FIRING, alert))
    outbox.deliver_due()
    (mail,) = smtp.wait_for(1)
    for body in (mail.part("plain"), mail.part("html")):
        for secret in ("ana.garcia@example.org", "bob@example.net", "4242 4242 4242 4242", "612 345 678",
                       "203.0.113.77"):
            assert secret not in body
        assert "Refunds failing for [email], card [card ****4242], phone [phone], from 203.0.113.0" in body
        assert "customer=[email]" in body


def test_the_notices_of_one_alert_thread_together(
    smtp: RecordingSMTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    # Escalations go to e-mail too here, so all four notices of the alert arrive by mail.
    outbox = make_sqlite_outbox(relay(smtp, NOTIFY_ESCALATION_CHANNEL="email"))
    acked = payment_alert(acknowledged_by="admin:ab12cd", acknowledge_comment="on it")
    resolved = make_alert(summary="Resolved after 10 m: payment failure rate 0.4 %", status=RESOLVED)
    notices = [
        make_notification("a1:firing:1", FIRING, payment_alert()),
        make_notification("a1:escalated:1", ESCALATED, payment_alert()),
        make_notification("a1:acknowledged:1", ACKNOWLEDGED, acked, escalated=True),
        make_notification("a1:resolved:1", RESOLVED, resolved, escalated=True),
        make_notification("b2:firing:1", FIRING, make_alert("0f1e2d3c4b5a6978", "critical", "DatabaseDown",
                                                           summary="Database unavailable")),
    ]
    keys = [k for n in notices for k in enqueue(outbox, n)]
    assert keys == [f"{n.id}/email" for n in notices]  # one delivery each: escalation and routes are one channel
    assert outbox.deliver_due().delivered == 5
    mails = {m.message["X-Centinela-Idempotency-Key"]: m.message for m in smtp.wait_for(5)}
    thread = thread_id("a1b2c3d4e5f60718", DOMAIN)
    assert thread == "<centinela.alert.a1b2c3d4e5f60718@festival.example>"
    of_a = [mails[k] for k in keys[:4]]
    assert [m["Subject"] for m in of_a] == [
        "[CRITICAL] Firing: Payment failure rate 3.2% > 1%",
        "[CRITICAL] Escalated: Payment failure rate 3.2% > 1%",
        "[CRITICAL] Acknowledged: Payment failure rate 3.2% > 1%",
        "[CRITICAL] Resolved after 10 m: payment failure rate 0.4 %",
    ]
    assert {m["In-Reply-To"] for m in of_a} == {thread} and {m["References"] for m in of_a} == {thread}
    assert [m["Message-ID"] for m in of_a] == [message_id(k, DOMAIN) for k in keys[:4]]
    assert len({m["Message-ID"] for m in mails.values()}) == 5 and thread not in {m["Message-ID"] for m in of_a}
    other = mails[keys[4]]
    assert other["In-Reply-To"] == thread_id("0f1e2d3c4b5a6978", DOMAIN) != thread
    acknowledged = smtp.accepted[2].part("plain")
    assert "Acknowledged by admin:ab12cd: on it" in acknowledged and "Acknowledge: POST" not in acknowledged
    assert "Ended:           2026-01-01T00:10:00.000Z" in smtp.accepted[3].part("plain")

    # A group refers to the thread of each of its alerts.
    enqueue(outbox, make_notification("grp:firing:2", FIRING, payment_alert(),
                                      make_alert("0f1e2d3c4b5a6978", "high", "DatabaseDown")))
    outbox.deliver_due()
    grouped = smtp.wait_for(6)[5].message
    assert grouped["In-Reply-To"] == thread
    assert grouped["References"].split() == [thread, thread_id("0f1e2d3c4b5a6978", DOMAIN)]


# --- outcomes: 4xx retried, 5xx failed, no reply retried -----------------------------------------


def test_a_451_reply_is_retried_with_backoff_then_delivered_with_the_same_message_id(
    smtp: RecordingSMTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(relay(smtp))
    smtp.respond_sequence(["451 4.3.0 Mailbox busy, try again later"])
    (key,) = enqueue(outbox, make_notification())
    run = outbox.deliver_due()
    assert (run.retried, run.delivered, run.failed) == (1, 0, 0)
    delivery = only(outbox, key)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (PENDING, 1, 451)
    assert delivery.last_error == "SMTP 451" and delivery.last_answer == "451 4.3.0 Mailbox busy, try again later"
    assert delivery.next_attempt_at == clock.now() + 0.5 * 4  # full jitter (the steady 0.5) of the 4 s base
    assert delivery.to_json()["lastStatus"] == {"httpStatus": None, "smtpCode": 451, "error": "SMTP 451",
                                                "answer": "451 4.3.0 Mailbox busy, try again later",
                                                "latencyMs": delivery.last_latency_ms}
    assert outbox.deliver_due().retried == 0 and len(smtp.received) == 1  # not due yet
    clock.advance(2)
    assert outbox.deliver_due().delivered == 1
    refused, accepted = smtp.received
    assert (refused.accepted, accepted.accepted) == (False, True) and smtp.accepted == [accepted]
    assert refused.message["Message-ID"] == accepted.message["Message-ID"] == message_id(key, DOMAIN)
    assert refused.part("plain") == accepted.part("plain")
    delivery = only(outbox, key)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (DELIVERED, 2, 250, "")


def test_a_550_reply_fails_at_once_with_the_servers_answer_and_tells_the_fallback_channel(
    smtp: RecordingSMTPServer, receiver: RecordingHTTPServer, make_outbox: Callable[..., Outbox], clock: ManualClock
) -> None:
    outbox = make_outbox(relay(smtp, ALERT_WEBHOOK_URL=receiver.url + "/hook", NOTIFY_FALLBACK_CHANNEL="webhook",
                               NOTIFY_ROUTES='{"critical": ["email"]}'))
    smtp.respond_sequence(["550 5.7.1 Relaying denied for alerts@festival.example"])
    (key,) = enqueue(outbox, make_notification())
    run = outbox.deliver_due()
    assert (run.failed, run.retried) == (1, 0)
    delivery = only(outbox, key)
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (FAILED, 550, "SMTP 550")
    assert delivery.last_answer == "550 5.7.1 Relaying denied for [email]"  # the server's words, scrubbed
    assert delivery.finished_at == clock.now() and delivery.next_attempt_at is None
    # Visibly: the fallback channel hears of it ...
    outbox.deliver_due()
    (notice,) = receiver.wait_for(1)
    alert = notice.json()["alerts"][0]
    assert alert["labels"]["alertname"] == "NotificationUndeliverable" and alert["labels"]["channel"] == "email"
    assert "Delivery failed after 1 attempt(s): SMTP 550" in alert["annotations"]["description"]
    # ... the delivery figures count it, and it is never sent again.
    clock.advance(3600)
    assert outbox.deliver_due().failed == 0 and len(smtp.received) == 1
    report = delivery_report(outbox, TimeWindow(START - 60, clock.now() + 1, "2h"))
    assert report.json["notifications"]["byStatus"]["failed"] == 1
    assert report.json["notifications"]["finishedInWindow"]["failed"] == 1


def test_refused_recipients(smtp: RecordingSMTPServer, make_sqlite_outbox: Callable[..., Outbox],
                            clock: ManualClock) -> None:
    outbox = make_sqlite_outbox(relay(smtp))
    # One of two refused for good: the other has it, so it is delivered (a retry would send it twice).
    smtp.refuse_recipient("ops@festival.example", "550 5.1.1 <ops@festival.example>: Recipient address rejected")
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().delivered == 1
    assert smtp.wait_for(1)[0].rcpt_tos == ("oncall@festival.example",)
    assert only(outbox, key).last_answer == ("250 2.0.0 OK: queued as C3N71N3LA; recipient 2 of 2 refused: "
                                            "550 5.1.1 <[email]>: Recipient address rejected")
    # All refused for now: worth another try.
    smtp.refuse_recipient("oncall@festival.example", "450 4.2.1 Mailbox temporarily unavailable")
    smtp.refuse_recipient("ops@festival.example", "550 5.1.1 Recipient address rejected")
    (second,) = enqueue(outbox, make_notification("a1b2c3d4e5f60718:firing:2"))
    assert outbox.deliver_due().retried == 1
    delivery = only(outbox, second)
    assert (delivery.status, delivery.last_status_code) == (PENDING, 450)
    assert delivery.last_answer == ("recipient 1 of 2 refused: 450 4.2.1 Mailbox temporarily unavailable; "
                                    "recipient 2 of 2 refused: 550 5.1.1 Recipient address rejected")


def test_no_server_listening_is_retried(make_sqlite_outbox: Callable[..., Outbox]) -> None:
    outbox = make_sqlite_outbox(email_env(f"smtp://127.0.0.1:{free_port()}?starttls=no"))
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().retried == 1
    delivery = only(outbox, key)
    assert delivery.status == PENDING and delivery.last_status_code is None
    assert delivery.last_error.startswith("connection failed: [Errno 111]")
    assert delivery.to_json()["lastStatus"]["smtpCode"] is None


def test_a_server_that_never_greets_is_a_timeout_and_retried(make_sqlite_outbox: Callable[..., Outbox]) -> None:
    with SwitchableTCPServer() as silent:
        silent.hang()  # the connection is taken, no greeting ever comes
        outbox = make_sqlite_outbox(email_env(f"smtp://127.0.0.1:{silent.port}?starttls=no", NOTIFY_TIMEOUT="0.3"))
        (key,) = enqueue(outbox, make_notification())
        assert outbox.deliver_due().retried == 1
        delivery = only(outbox, key)
        assert (delivery.status, delivery.last_error) == (PENDING, "timeout after 0.3s")
        assert delivery.last_latency_ms is not None and delivery.last_latency_ms < 2000


def test_concurrent_delivery_jobs_send_each_message_once(
    smtp: RecordingSMTPServer, make_outbox: Callable[..., Outbox]
) -> None:
    processes = [make_outbox(relay(smtp)) for _ in range(4)]
    keys = [k for i in range(20) for k in enqueue(processes[0], make_notification(f"fp-{i}:firing:1"))]
    start = threading.Barrier(len(processes))

    def job(outbox: Outbox) -> None:
        start.wait()
        outbox.deliver_due()

    threads = [threading.Thread(target=job, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    mails = smtp.wait_for(20)
    assert len(smtp.received) == 20  # the claim: no row sent by two processes
    assert sorted(m.message["Message-ID"] for m in mails) == sorted(message_id(k, DOMAIN) for k in keys)
    assert {only(processes[0], k).status for k in keys} == {DELIVERED}


# --- TLS and the login -------------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Any) -> TestCA:
    return TestCA(tmp_path)



def test_starttls_with_a_login_verifies_the_certificate(
    ca: TestCA, monkeypatch: pytest.MonkeyPatch, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    ca.trust(monkeypatch)
    with RecordingSMTPServer(tls="starttls", ca=ca, logins={LOGIN: PASSWORD}) as server:
        outbox = make_sqlite_outbox(email_env(server.url(login=ENCODED)))
        (key,) = enqueue(outbox, make_notification())
        assert outbox.deliver_due().delivered == 1
        (mail,) = server.wait_for(1)
        assert mail.tls is True and mail.login == LOGIN
        assert only(outbox, key).last_status_code == 250


def test_smtps_is_tls_from_the_first_byte(
    ca: TestCA, monkeypatch: pytest.MonkeyPatch, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    ca.trust(monkeypatch)
    with RecordingSMTPServer(tls="implicit", ca=ca, logins={LOGIN: PASSWORD}) as server:
        outbox = make_sqlite_outbox(email_env(server.url("smtps", login=ENCODED)))
        enqueue(outbox, make_notification())
        assert outbox.deliver_due().delivered == 1
        assert server.wait_for(1)[0].tls is True


def test_a_certificate_that_does_not_verify_is_not_sent_to(
    ca: TestCA, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    with RecordingSMTPServer(tls="starttls", ca=ca) as server:  # its CA is not trusted here
        outbox = make_sqlite_outbox(email_env(server.url()))
        (key,) = enqueue(outbox, make_notification())
        assert outbox.deliver_due().retried == 1
        assert only(outbox, key).last_error.startswith("TLS certificate not accepted: ")
        assert server.received == []


def test_smtp_without_starttls_on_offer_is_not_sent_in_clear(
    smtp: RecordingSMTPServer, make_sqlite_outbox: Callable[..., Outbox]
) -> None:
    outbox = make_sqlite_outbox(email_env(smtp.url()))  # smtp:// without starttls=no: STARTTLS required
    (key,) = enqueue(outbox, make_notification())
    assert outbox.deliver_due().retried == 1
    assert only(outbox, key).last_error.startswith("the server does not offer STARTTLS, which smtp:// requires")
    assert smtp.received == []


def test_a_wrong_password_fails_with_the_servers_reply(
    ca: TestCA, monkeypatch: pytest.MonkeyPatch, make_sqlite_outbox: Callable[..., Outbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ca.trust(monkeypatch)
    caplog.set_level(logging.DEBUG)
    with RecordingSMTPServer(tls="starttls", ca=ca, logins={LOGIN: "another password"}) as server:
        outbox = make_sqlite_outbox(email_env(server.url(login=ENCODED)))
        (key,) = enqueue(outbox, make_notification())
        assert outbox.deliver_due().failed == 1
        delivery = only(outbox, key)
        assert (delivery.last_status_code, delivery.last_error) == (535, "SMTP 535")
        assert delivery.last_answer == "535 5.7.8 Authentication credentials invalid"
    logged = caplog.text
    assert "delivery a1b2c3d4e5f60718:firing:1/email to email failed: SMTP 535" in logged
    for secret in (PASSWORD, "s3cret", ENCODED, "oncall@festival.example", "ops@festival.example"):
        assert secret not in logged


def test_a_relay_on_this_machine_may_take_a_password_without_tls(make_sqlite_outbox: Callable[..., Outbox]) -> None:
    with RecordingSMTPServer(logins={LOGIN: PASSWORD}, auth_without_tls=True) as server:
        outbox = make_sqlite_outbox(email_env(server.url(login=ENCODED, query="starttls=no")))
        enqueue(outbox, make_notification())
        assert outbox.deliver_due().delivered == 1
        mail = server.wait_for(1)[0]
        assert (mail.tls, mail.login) == (False, LOGIN)


# --- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("SMTP_URL", "http://mail.festival.example", "expected smtp://user:password@host:587"),
        ("SMTP_URL", "smtp://", "expected smtp://user:password@host:587"),
        ("SMTP_URL", "smtp://mail.festival.example:99999", "the port must be a number from 1 to 65535"),
        ("SMTP_URL", f"smtp://u:{ENCODED_PASSWORD}@mail.festival.example:25?starttls=no",
         "a password is never sent without TLS"),
        ("SMTP_URL", "smtps://mail.festival.example?starttls=no", "starttls=no applies to smtp:// only"),
        ("SMTP_URL", "smtp://mail.festival.example?tls=off", "unknown parameter 'tls'"),
        ("SMTP_URL", "smtp://mail.festival.example?starttls=yes", "starttls takes one value, no"),
        ("SMTP_URL", f"smtp://:{ENCODED_PASSWORD}@mail.festival.example", "a password needs a user"),
        ("SMTP_URL", "smtp://mail.festival.example/inbox", "an SMTP URL has no path"),
        ("ALERT_EMAIL_FROM", "alerts", "the address is not an e-mail address"),
        ("ALERT_EMAIL_FROM", "a@festival.example, b@festival.example", "expected one address"),
        ("ALERT_EMAIL_TO", "oncall@festival.example, nobody", "entry 2 is not an e-mail address"),
        ("ALERT_EMAIL_TO", "oncall@festival", "entry 1 has no usable domain"),
        ("ALERT_EMAIL_TO", "ñandú@festival.example", "entry 1 is not an e-mail address"),
        ("ALERT_EMAIL_TO", ",", "expected comma-separated addresses"),
    ],
)
def test_bad_email_settings_stop_start_up_without_echoing_them(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}=(hidden): ") and expected in message
    assert "festival" not in message and ENCODED_PASSWORD not in message


def test_email_settings_that_are_allowed() -> None:
    def target(url: str) -> Any:
        return build_channels(Settings.from_env({"SMTP_URL": url, "ALERT_EMAIL_FROM": SENDER,
                                                 "ALERT_EMAIL_TO": RECIPIENTS})).channels["email"].smtp

    smtps = target(f"smtps://u:{ENCODED_PASSWORD}@smtp.festival.example")
    assert (smtps.port, smtps.security, smtps.password) == (465, "tls", PASSWORD)
    brevo = target(f"smtp://{ENCODED}@smtp-relay.brevo.com")
    assert (brevo.port, brevo.security, brevo.username, brevo.password) == (587, "starttls", LOGIN, PASSWORD)
    assert target("smtp://relay.internal:25?starttls=no").security == "none"  # no password: a relay you run
    assert target(f"smtp://u:{ENCODED_PASSWORD}@localhost:25?starttls=no").password == PASSWORD  # nothing leaves the host
    settings = Settings.from_env({"SMTP_URL": f"smtps://u:{ENCODED_PASSWORD}@h.example"})
    assert ENCODED_PASSWORD not in repr(settings) and PASSWORD not in repr(smtps)


def test_half_an_email_configuration_says_what_is_missing() -> None:
    channels = build_channels(Settings.from_env({"SMTP_URL": "smtps://smtp.festival.example"}))
    assert channels.missing["email"] == "SMTP_URL set: also set ALERT_EMAIL_FROM and ALERT_EMAIL_TO"
    assert build_channels(Settings.from_env({})).missing["email"] == "set SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO"


def test_the_configuration_view_shows_the_server_never_the_password_nor_whole_addresses(
    make_app: Callable[..., Flask]
) -> None:
    app = make_app(email_env(f"smtps://{ENCODED}@smtp.festival.example:465"))
    response = app.test_client().get(f"{ALERTS}?action=configuration", headers=METRICS_HEADERS)
    text = response.get_data(as_text=True)
    for secret in (PASSWORD, "s3cret", LOGIN, "8a1b2c001", "oncall@festival.example", "ops@festival.example"):
        assert secret not in text
    (email,) = [c for c in response.get_json()["channels"] if c["name"] == "email"]
    assert email == {"name": "email", "kind": "email", "configured": True,
                     "source": "SMTP_URL, ALERT_EMAIL_FROM, ALERT_EMAIL_TO",
                     "target": "smtps://smtp.festival.example:465", "security": "tls", "login": True,
                     "from": "a***@festival.example", "to": ["o***@festival.example", "o***@festival.example"]}
    assert "email" in response.get_json()["routing"]["bySeverity"]["info"]  # where Slack goes, by default


# --- the test action and the listing -----------------------------------------------------------------


def test_the_test_action_answers_with_the_smtp_servers_reply(
    smtp: RecordingSMTPServer, make_app: Callable[..., Flask]
) -> None:
    app = make_app(relay(smtp))
    client = app.test_client()
    body = client.post(ALERTS, json={"action": "test", "channel": "email"}, headers=ADMIN_HEADERS).get_json()
    (result,) = body["results"]
    assert body["ok"] is True and result["kind"] == "email" and result["target"] == smtp.url(query="starttls=no")
    assert (result["status"], result["smtpCode"], result["error"]) == (None, 250, "")
    assert result["body"] == "250 2.0.0 OK: queued as C3N71N3LA"
    (mail,) = smtp.wait_for(1)
    assert mail.message["Subject"] == "[INFO] Firing: Test notification from Centinela"
    assert "Acknowledge:" not in mail.part("plain")  # a test needs no acknowledging

    smtp.respond_sequence(["554 5.7.1 Message rejected as spam"])
    body = client.post(ALERTS, json={"action": "test", "channel": "email"}, headers=ADMIN_HEADERS).get_json()
    (result,) = body["results"]
    assert body["ok"] is False and (result["smtpCode"], result["error"]) == (554, "SMTP 554")
    assert result["body"] == "554 5.7.1 Message rejected as spam"
    assert app.extensions["centinela"].outbox.page() == []  # synchronous: nothing went through the outbox


def test_the_deliveries_listing_filters_email(smtp: RecordingSMTPServer, receiver: RecordingHTTPServer,
                                              make_app: Callable[..., Flask]) -> None:
    app = make_app(relay(smtp, ALERT_WEBHOOK_URL=receiver.url + "/hook"))
    enqueue(app.extensions["centinela"].outbox, make_notification())
    listed = app.test_client().get(f"{ALERTS}?action=deliveries&channel=email", headers=ADMIN_HEADERS).get_json()
    assert [d["channel"] for d in listed["deliveries"]] == ["email"]
    assert json.dumps(listed).count("a1b2c3d4e5f60718:firing:1/email") == 1
