"""The test action: send a test notification to channels now, bypassing the outbox, and
report what each receiver answered (an HTTP status and body, an SMTP server's reply code and
words, what Apprise logged). Channels are tried in parallel so that a hanging receiver costs
one NOTIFY_TIMEOUT, not one per channel.

A PagerDuty channel opens an incident for a trigger: each test uses its own ``dedup_key``
and is followed at once by a ``resolve`` on it, so a test leaves no incident open.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from monitoring.notify.channel import EMAIL, PAGERDUTY, SMTP, Channel
from monitoring.notify.model import FIRING, RESOLVED, TEST, AlertSnapshot, Notification
from monitoring.notify.transport import Sender

# Each test's fingerprint (PagerDuty's dedup_key) starts so: its own incident, resolved at once.
TEST_FINGERPRINT_PREFIX = "centinela-test-"


@dataclass(frozen=True)
class ProbeResult:
    channel: str
    kind: str
    target: str
    ok: bool
    status: int | None
    latency_ms: float
    body: str
    error: str
    idempotency_key: str
    resolve: ProbeResult | None = None  # PagerDuty: the resolve that closes the test incident
    smtp_code: int | None = None  # e-mail: the server's reply code (``status`` is HTTP's only)
    service: str = ""  # Apprise: the service its URL names ("Telegram")

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "channel": self.channel,
            "kind": self.kind,
            "target": self.target,
            "ok": self.ok,
            "status": self.status,
            "latencyMs": self.latency_ms,
            "body": self.body,
            "error": self.error,
            "idempotencyKey": self.idempotency_key,
        }
        if self.kind == EMAIL:
            shown["smtpCode"] = self.smtp_code
        if self.service:
            shown["service"] = self.service
        if self.resolve is not None:
            shown["resolve"] = {k: v for k, v in self.resolve.to_json().items()
                                if k in ("ok", "status", "latencyMs", "error", "idempotencyKey")}
        return shown


def build_test_notification(now: float) -> Notification:
    """An info alert that says what it is, with a fingerprint of its own."""
    test_id = uuid.uuid4().hex
    alert = AlertSnapshot(
        fingerprint=f"{TEST_FINGERPRINT_PREFIX}{test_id}",
        labels={"alertname": "CentinelaTestNotification", "severity": "info", "service": "centinela"},
        annotations={
            "summary": "Test notification from Centinela",
            "description": "Sent by POST /api/monitoring/alerts with action=test. No action is needed.",
        },
        starts_at=now,
    )
    return Notification(id=f"test-{test_id}", event=FIRING, alerts=(alert,), kind=TEST,
                        group_labels={"service": "centinela"})


def resolved_test_notification(notification: Notification, now: float) -> Notification:
    """The resolve of a test notification: same alert (same dedup_key), status resolved."""
    alerts = tuple(replace(a, status=RESOLVED, ends_at=now) for a in notification.alerts)
    return replace(notification, id=f"{notification.id}-resolve", event=RESOLVED, alerts=alerts)


def probe_channels(channels: list[Channel], sender: Sender, now: float, answer_chars: int = 500) -> list[ProbeResult]:
    """Send one test notification to each channel; results in the order given."""
    notification = build_test_notification(now)

    def send(channel: Channel, sent: Notification) -> ProbeResult:
        key = f"{sent.id}/{channel.name}"
        result = channel.transmit(channel.render(sent, key, now), sender)
        smtp = result.protocol == SMTP
        return ProbeResult(
            channel=channel.name,
            kind=channel.kind,
            target=channel.target,
            ok=result.ok,
            status=None if smtp else result.status,
            latency_ms=result.latency_ms,
            body=result.body[:answer_chars],
            error=result.problem,
            idempotency_key=key,
            smtp_code=result.status if smtp else None,
            service=str(getattr(channel, "service", "")),
        )

    def probe(channel: Channel) -> ProbeResult:
        triggered = send(channel, notification)
        if channel.kind != PAGERDUTY:
            return triggered
        # Resolve even when the trigger seemed to fail: a timeout may still have opened it.
        resolved = send(channel, resolved_test_notification(notification, now))
        return replace(triggered, ok=triggered.ok and resolved.ok, resolve=resolved,
                       error=triggered.error or (f"resolve: {resolved.error}" if resolved.error else ""))

    if not channels:
        return []
    with ThreadPoolExecutor(max_workers=len(channels)) as pool:
        return list(pool.map(probe, channels))
