"""PagerDuty Events API v2: one event per alert, ``dedup_key`` = the alert's fingerprint, so
a retried or repeated trigger joins the same incident, and acknowledging or resolving in
Centinela acknowledges or resolves it in PagerDuty.

Trigger events carry the full payload (summary ≤ 1024 characters, source, severity,
timestamp, component, group, class, custom_details) and links; resolve events need only the
routing key, the action and the dedup key. Acknowledge events carry a payload too, whose
summary and custom_details say who acknowledged (the key id) and why: the same words every
other channel gets.
"""
from __future__ import annotations

from typing import Any

from monitoring.clock import isoformat
from monitoring.notify.channel import PAGERDUTY, Channel, clip, json_bytes, mask_secret
from monitoring.notify.model import (
    ACKNOWLEDGE_COMMENT_ANNOTATION,
    ACKNOWLEDGED,
    ACKNOWLEDGED_BY_ANNOTATION,
    ESCALATED,
    FIRING,
    RESOLVED,
    Notification,
    OutboundRequest,
)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "info": "info"}
ACTION = {FIRING: "trigger", ESCALATED: "trigger", ACKNOWLEDGED: "acknowledge", RESOLVED: "resolve"}
MAX_SUMMARY = 1024
MAX_FIELD = 255  # source, dedup_key


def pagerduty_event(
    notification: Notification, routing_key: str, idempotency_key: str, external_url: str = ""
) -> dict[str, Any]:
    """The Events v2 body for the notification's (single) alert."""
    alert = notification.alerts[0]
    action = ACTION[notification.event]
    event: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": alert.fingerprint}
    if action == "resolve":
        return event
    if action == "acknowledge":
        acknowledgement = notification.acknowledgement
        if not acknowledgement:
            return event
        event["payload"] = {
            "summary": clip(f"{acknowledgement} ({alert.summary})", MAX_SUMMARY),
            "source": clip(alert.labels.get("instance") or alert.service, MAX_FIELD),
            "severity": SEVERITY[alert.severity],
            "custom_details": {
                "acknowledged_by": alert.annotations.get(ACKNOWLEDGED_BY_ANNOTATION, ""),
                "comment": alert.annotations.get(ACKNOWLEDGE_COMMENT_ANNOTATION, ""),
                "idempotency_key": idempotency_key,
            },
        }
        return event
    event["payload"] = {
        "summary": clip(f"[{alert.severity.upper()}] {alert.summary}", MAX_SUMMARY),
        "source": clip(alert.labels.get("instance") or alert.service, MAX_FIELD),
        "severity": SEVERITY[alert.severity],
        "timestamp": isoformat(alert.starts_at),
        "component": alert.service,
        "group": alert.labels.get("group") or alert.labels.get("category") or alert.service,
        "class": alert.name,
        "custom_details": {
            "event": notification.event,
            "severity": alert.severity,
            "description": alert.description,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "group_key": notification.group_key,
            "idempotency_key": idempotency_key,
        },
    }
    links = []
    if alert.runbook_url.startswith(("http://", "https://")):
        links.append({"href": alert.runbook_url, "text": "Runbook"})
    if alert.generator_url.startswith(("http://", "https://")):
        links.append({"href": alert.generator_url, "text": "Source"})
    event["links"] = links
    event["client"] = "Centinela"
    if external_url:
        event["client_url"] = external_url
    return event


class PagerDutyChannel(Channel):
    kind = PAGERDUTY
    per_alert = True

    def __init__(self, name: str, url: str, source: str, routing_key: str, external_url: str = "") -> None:
        super().__init__(name, url, source)
        self.routing_key = routing_key
        self.external_url = external_url

    @property
    def target(self) -> str:
        return self.url if self.url == EVENTS_URL else super().target

    def render(self, notification: Notification, idempotency_key: str, now: float) -> OutboundRequest:
        event = pagerduty_event(notification, self.routing_key, idempotency_key, self.external_url)
        return self._request(json_bytes(event), idempotency_key)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "routingKey": mask_secret(self.routing_key)}
