"""Alerts as Sentry messages: one event per alert, with a level and tags, posted to the
project's envelope endpoint.

We post the envelope ourselves instead of calling ``sentry_sdk.capture_message``: the SDK's
transport sends from a background thread and never tells the caller what Sentry answered,
and the outbox needs that answer (2xx, 429 with Retry-After, 4xx) to retry or stop. This also
leaves the process-wide SDK that error tracking initialises untouched. The event id is
derived from the idempotency key, so a retried event is the same event to Sentry.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitoring.clock import isoformat
from monitoring.notify.channel import SENTRY, Channel, clip
from monitoring.notify.model import ESCALATED, FIRING, Notification, OutboundRequest

LEVEL = {"critical": "fatal", "high": "error", "medium": "warning", "low": "info", "info": "info"}
MAX_TAG_VALUE = 200
_EVENT_NAMESPACE = uuid.UUID("6f1c1f4e-3c55-4a7e-9a43-0c9b5f1d2e71")


@dataclass(frozen=True)
class SentryDsn:
    """The parts of ``https://<public key>@<host>/<project id>`` that sending needs."""

    public_key: str = field(repr=False)
    envelope_url: str
    project_id: str

    @classmethod
    def parse(cls, dsn: str) -> SentryDsn:
        parts = urlsplit(dsn.strip())
        path = parts.path.rstrip("/")
        prefix, _, project_id = path.rpartition("/")
        if parts.scheme not in ("http", "https") or not parts.username or not parts.hostname or not project_id:
            raise ValueError("expected a Sentry DSN such as https://<key>@o1.ingest.sentry.io/<project>")
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        return cls(parts.username, f"{parts.scheme}://{host}{prefix}/api/{project_id}/envelope/", project_id)


def event_id(idempotency_key: str) -> str:
    """Stable per delivery: Sentry keeps one event per id, so a retry is not a second event."""
    return uuid.uuid5(_EVENT_NAMESPACE, idempotency_key).hex


def sentry_event(notification: Notification, idempotency_key: str, environment: str, now: float) -> dict[str, Any]:
    """The event for the notification's (single) alert."""
    alert = notification.alerts[0]
    tags = {
        "alert.name": alert.name,
        "alert.severity": alert.severity,
        "alert.event": notification.event,
        "alert.fingerprint": alert.fingerprint,
        "service": alert.service,
    }
    return {
        "event_id": event_id(idempotency_key),
        "timestamp": isoformat(now),
        "platform": "other",
        "level": LEVEL[alert.severity],
        "logger": "centinela.alerts",
        "environment": environment,
        "message": {"formatted": f"[{alert.severity.upper()}] {alert.summary}"},
        "tags": {k: clip(v, MAX_TAG_VALUE) for k, v in tags.items()},
        # One Sentry issue per alert, however its summary text changes.
        "fingerprint": ["centinela-alert", alert.fingerprint],
        "extra": {
            "description": alert.description,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "startsAt": isoformat(alert.starts_at),
            "runbook": alert.runbook_url,
            "idempotencyKey": idempotency_key,
        },
    }


def envelope(event: dict[str, Any], now: float) -> bytes:
    """Sentry's envelope format: a header line, an item header line, the event."""
    payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header = json.dumps({"event_id": event["event_id"], "sent_at": isoformat(now)}).encode("utf-8")
    item = json.dumps({"type": "event", "content_type": "application/json", "length": len(payload)}).encode("utf-8")
    return header + b"\n" + item + b"\n" + payload + b"\n"


class SentryChannel(Channel):
    kind = SENTRY
    per_alert = True
    # A Sentry message says something fired; acknowledgements and resolutions are not new issues.
    events = (FIRING, ESCALATED)

    def __init__(self, name: str, dsn: str, source: str, environment: str) -> None:
        self.dsn = SentryDsn.parse(dsn)
        super().__init__(name, self.dsn.envelope_url, source)
        self.environment = environment

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://***@{parts.netloc}/{self.dsn.project_id}"

    def render(self, notification: Notification, idempotency_key: str, now: float) -> OutboundRequest:
        body = envelope(sentry_event(notification, idempotency_key, self.environment, now), now)
        auth = f"Sentry sentry_version=7, sentry_client=centinela-notify/1.0, sentry_key={self.dsn.public_key}"
        return self._request(body, idempotency_key, {"X-Sentry-Auth": auth}, "application/x-sentry-envelope")
