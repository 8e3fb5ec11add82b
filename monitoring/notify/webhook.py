"""The generic webhook: Alertmanager's webhook body (version 4), so receivers written for
Alertmanager work unchanged, plus two fields of ours (``event``, ``idempotencyKey``).

When ``ALERT_WEBHOOK_SECRET`` is set every request is signed:

    X-Centinela-Timestamp: <unix seconds when sent>
    X-Centinela-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body bytes)>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body exactly as
received, compares in constant time, and rejects timestamps more than a few minutes old
(replay). A retry is signed afresh (new timestamp); its body and Idempotency-Key are the same.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from monitoring.clock import isoformat
from monitoring.notify.channel import WEBHOOK, Channel, json_bytes
from monitoring.notify.model import FIRING, AlertSnapshot, Notification, OutboundRequest

SIGNATURE_HEADER = "X-Centinela-Signature"
TIMESTAMP_HEADER = "X-Centinela-Timestamp"
# Alertmanager's "not ended yet": Go's zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests do): recompute and compare in constant time."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def _common(mappings: list[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every mapping shares, as Alertmanager's commonLabels/commonAnnotations."""
    first, *rest = mappings
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def _alert_json(alert: AlertSnapshot) -> dict[str, Any]:
    ended = alert.status != FIRING and alert.ends_at is not None
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": isoformat(alert.starts_at),
        "endsAt": isoformat(alert.ends_at) if ended else ZERO_TIME,
        "generatorURL": alert.generator_url,
        "fingerprint": alert.fingerprint,
    }


def alertmanager_body(
    notification: Notification, idempotency_key: str, receiver: str, external_url: str = ""
) -> dict[str, Any]:
    """The webhook body: Alertmanager v4 fields first, then ``event`` and ``idempotencyKey``."""
    alerts = notification.alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": 0,
        "status": notification.status,
        "receiver": receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": [_alert_json(a) for a in alerts],
        "event": notification.event,
        "idempotencyKey": idempotency_key,
    }


class WebhookChannel(Channel):
    kind = WEBHOOK

    def __init__(self, name: str, url: str, source: str, secret: str = "", external_url: str = "") -> None:
        super().__init__(name, url, source)
        self.secret = secret
        self.external_url = external_url

    def render(self, notification: Notification, idempotency_key: str, now: float) -> OutboundRequest:
        body = json_bytes(alertmanager_body(notification, idempotency_key, f"centinela/{self.name}", self.external_url))
        extra: dict[str, str] = {}
        if self.secret:
            timestamp = str(int(now))
            extra = {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(self.secret, timestamp, body)}
        return self._request(body, idempotency_key, extra)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "signed": bool(self.secret)}
