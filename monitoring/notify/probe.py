"""The test action: send a test notification to channels now, bypassing the outbox, and
report what each receiver answered. Channels are tried in parallel so that a hanging
receiver costs one NOTIFY_TIMEOUT, not one per channel."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from monitoring.notify.channel import Channel
from monitoring.notify.model import FIRING, TEST, AlertSnapshot, Notification
from monitoring.notify.transport import Sender

# One fingerprint for every test: PagerDuty folds repeated tests into one incident.
TEST_FINGERPRINT = "centinela-test-notification"


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

    def to_json(self) -> dict[str, Any]:
        return {
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


def build_test_notification(now: float) -> Notification:
    """An info alert that says what it is."""
    alert = AlertSnapshot(
        fingerprint=TEST_FINGERPRINT,
        labels={"alertname": "CentinelaTestNotification", "severity": "info", "service": "centinela"},
        annotations={
            "summary": "Test notification from Centinela",
            "description": "Sent by POST /api/monitoring/alerts with action=test. No action is needed.",
        },
        starts_at=now,
    )
    return Notification(id=f"test-{uuid.uuid4().hex}", event=FIRING, alerts=(alert,), kind=TEST,
                        group_labels={"service": "centinela"})


def probe_channels(channels: list[Channel], sender: Sender, now: float, answer_chars: int = 500) -> list[ProbeResult]:
    """Send one test notification to each channel; results in the order given."""
    notification = build_test_notification(now)

    def probe(channel: Channel) -> ProbeResult:
        key = f"{notification.id}/{channel.name}"
        result = sender.send(channel.render(notification, key, now))
        return ProbeResult(
            channel=channel.name,
            kind=channel.kind,
            target=channel.target,
            ok=result.ok,
            status=result.status,
            latency_ms=result.latency_ms,
            body=result.body[:answer_chars],
            error=result.error or ("" if result.ok else f"HTTP {result.status}"),
            idempotency_key=key,
        )

    if not channels:
        return []
    with ThreadPoolExecutor(max_workers=len(channels)) as pool:
        return list(pool.map(probe, channels))
