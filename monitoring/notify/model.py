"""The values that flow through notification delivery: alerts as they were when the
notification was decided, the notification itself, and the outbound HTTP request.

The alerting engine builds a ``Notification`` and hands it to ``Outbox.enqueue`` inside its
own transaction; every channel renders the same value its own way. Nothing here does I/O.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from monitoring.security.pii import sanitise

# Highest first. The alerting engine owns what each severity means; delivery only needs the
# names (routing) and the order (a grouped notification takes its highest severity).
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")

# What happened to the alerts of a notification. PagerDuty maps firing/escalated to
# ``trigger``, acknowledged to ``acknowledge`` and resolved to ``resolve``.
FIRING = "firing"
RESOLVED = "resolved"
ACKNOWLEDGED = "acknowledged"
ESCALATED = "escalated"
EVENTS: tuple[str, ...] = (FIRING, RESOLVED, ACKNOWLEDGED, ESCALATED)
EVENT_WORDS = {FIRING: "Firing", RESOLVED: "Resolved", ACKNOWLEDGED: "Acknowledged", ESCALATED: "Escalated"}
# What the alerting engine puts in an acknowledged alert's annotations: who (key id) and why.
ACKNOWLEDGED_BY_ANNOTATION = "acknowledged_by"
ACKNOWLEDGE_COMMENT_ANNOTATION = "acknowledge_comment"

# Why a notification exists: an alert change, an operator's test, or a delivery that failed
# (sent to the fallback channel, and never itself followed by another fallback).
ALERT = "alert"
TEST = "test"
DELIVERY_FAILURE = "delivery_failure"
KINDS: tuple[str, ...] = (ALERT, TEST, DELIVERY_FAILURE)



@dataclass(frozen=True)
class SeverityPolicy:
    """One row of the system description's severity matrix: how fast to respond, when to escalate."""

    severity: str
    respond_within_seconds: float | None  # None: best effort
    escalate_after_seconds: float | None  # None: never escalates
    response_time: str
    escalation: str
    examples: str

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "responseTime": self.response_time,
            "respondWithinSeconds": self.respond_within_seconds,
            "escalation": self.escalation,
            "escalateAfterSeconds": self.escalate_after_seconds,
            "examples": self.examples,
        }


# The defaults from the system description ("Next day" read as 24 hours). The alerting engine
# decides escalation from these; delivery only routes what it is given.
SEVERITY_MATRIX: tuple[SeverityPolicy, ...] = (
    SeverityPolicy("critical", 300, 0, "< 5 min", "Immediate", "Payment system down"),
    SeverityPolicy("high", 900, 1800, "< 15 min", "30 min", "High error rate"),
    SeverityPolicy("medium", 3600, 7200, "< 1 hour", "2 hours", "Performance degradation"),
    SeverityPolicy("low", 14400, 86400, "< 4 hours", "Next day", "Capacity warnings"),
    SeverityPolicy("info", None, None, "Best effort", "None", "Scheduled maintenance"),
)

MAX_ID_LENGTH = 160
MAX_FINGERPRINT_LENGTH = 255  # PagerDuty's dedup_key limit: the fingerprint is the dedup key


@dataclass(frozen=True)
class AlertSnapshot:
    """One alert as the engine saw it when it decided to notify.

    ``labels`` must carry ``alertname`` and ``severity``; ``service`` names the affected
    service. ``annotations`` may carry ``summary``, ``description`` and ``runbook_url``.
    """

    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    status: str = FIRING  # firing | resolved
    ends_at: float | None = None
    generator_url: str = ""

    def __post_init__(self) -> None:
        if not _is_token(self.fingerprint, MAX_FINGERPRINT_LENGTH):
            raise ValueError(f"fingerprint must be 1 to {MAX_FINGERPRINT_LENGTH} printable ASCII characters")
        if self.status not in (FIRING, RESOLVED):
            raise ValueError("alert status must be firing or resolved")
        if not self.labels.get("alertname"):
            raise ValueError("labels must name the alert (alertname)")
        if self.labels.get("severity") not in SEVERITIES:
            raise ValueError(f"labels.severity must be one of: {', '.join(SEVERITIES)}")
        for mapping in (self.labels, self.annotations):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
                raise ValueError("labels and annotations map strings to strings")

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]

    @property
    def service(self) -> str:
        """The affected service: the ``service`` label, else the ``category``, else centinela."""
        return self.labels.get("service") or self.labels.get("category") or "centinela"

    @property
    def summary(self) -> str:
        return self.annotations.get("summary") or self.name

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def runbook_url(self) -> str:
        return self.annotations.get("runbook_url", "")

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": self.starts_at,
            "status": self.status,
            "endsAt": self.ends_at,
            "generatorURL": self.generator_url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlertSnapshot:
        return cls(
            fingerprint=data["fingerprint"],
            labels=dict(data["labels"]),
            annotations=dict(data.get("annotations") or {}),
            starts_at=float(data.get("startsAt") or 0.0),
            status=data.get("status", FIRING),
            ends_at=data.get("endsAt"),
            generator_url=data.get("generatorURL", ""),
        )


@dataclass(frozen=True)
class Notification:
    """What the engine wants said: one event about one alert or a group of alerts.

    ``id`` is unique per decision (e.g. ``"<fingerprint>:firing:<n>"``) and is the stem of
    every idempotency key: enqueueing the same id twice stores it once. ``escalated`` marks
    the alerts as already escalated, so that their acknowledgement and resolution also reach
    the escalation channel. ``channels`` names explicit targets instead of the routing.
    """

    id: str
    event: str
    alerts: tuple[AlertSnapshot, ...]
    group_labels: Mapping[str, str] = field(default_factory=dict)
    escalated: bool = False
    channels: tuple[str, ...] | None = None
    kind: str = ALERT

    def __post_init__(self) -> None:
        if not _is_token(self.id, MAX_ID_LENGTH):
            raise ValueError(f"notification id must be 1 to {MAX_ID_LENGTH} printable ASCII characters")
        if self.event not in EVENTS:
            raise ValueError(f"event must be one of: {', '.join(EVENTS)}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of: {', '.join(KINDS)}")
        if not self.alerts:
            raise ValueError("a notification carries at least one alert")
        object.__setattr__(self, "alerts", tuple(self.alerts))
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(self.channels))

    @property
    def severity(self) -> str:
        """The highest severity among the alerts."""
        return min((a.severity for a in self.alerts), key=SEVERITIES.index)

    @property
    def status(self) -> str:
        """Alertmanager's group status: firing while any alert fires."""
        return FIRING if any(a.status == FIRING for a in self.alerts) else RESOLVED

    @property
    def group_key(self) -> str:
        """Alertmanager's shape, ``{}:{service="payments"}``: stable for one group."""
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(self.group_labels.items()))
        return "{}:{" + inner + "}"

    @property
    def summary(self) -> str:
        first = self.alerts[0].summary
        return first if len(self.alerts) == 1 else f"{first} (+{len(self.alerts) - 1} more)"

    @property
    def headline(self) -> str:
        """``Firing: <summary>``; a summary that already says what happened (a resolve notice's
        "Resolved after 5 m 4 s: ...") is not prefixed twice."""
        word = EVENT_WORDS[self.event]
        summary = self.summary
        return summary if summary.startswith(word) else f"{word}: {summary}"

    @property
    def acknowledgement(self) -> str:
        """Who acknowledged (the key id) and why, for an acknowledged notification; "" otherwise."""
        first = self.alerts[0]
        who = first.annotations.get(ACKNOWLEDGED_BY_ANNOTATION, "")
        if self.event != ACKNOWLEDGED or not who:
            return ""
        comment = first.annotations.get(ACKNOWLEDGE_COMMENT_ANNOTATION, "")
        return f"Acknowledged by {who}" + (f": {comment}" if comment else " (no comment)")

    def for_alert(self, alert: AlertSnapshot) -> Notification:
        """The same notification about one of its alerts (PagerDuty and Sentry take one alert per event)."""
        return replace(self, alerts=(alert,))

    def sanitised(self) -> Notification:
        """A copy whose human text (labels, annotations) has passed the PII sanitiser; ids are kept."""
        alerts = tuple(
            replace(
                a,
                labels=_clean_mapping(a.labels),
                annotations=_clean_mapping(a.annotations),
                generator_url=str(sanitise(a.generator_url)),
            )
            for a in self.alerts
        )
        return replace(self, alerts=alerts, group_labels=_clean_mapping(self.group_labels))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "kind": self.kind,
            "escalated": self.escalated,
            "channels": list(self.channels) if self.channels is not None else None,
            "groupLabels": dict(self.group_labels),
            "alerts": [a.to_json() for a in self.alerts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Notification:
        channels = data.get("channels")
        return cls(
            id=data["id"],
            event=data["event"],
            kind=data.get("kind", ALERT),
            escalated=bool(data.get("escalated", False)),
            channels=tuple(channels) if channels is not None else None,
            group_labels=dict(data.get("groupLabels") or {}),
            alerts=tuple(AlertSnapshot.from_json(a) for a in data["alerts"]),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))


def _is_token(value: object, max_length: int) -> bool:
    """Ids travel in HTTP headers (Idempotency-Key): printable ASCII, no spaces."""
    return isinstance(value, str) and 0 < len(value) <= max_length and all(33 <= ord(c) < 127 for c in value)


def _clean_mapping(mapping: Mapping[str, str]) -> dict[str, str]:
    cleaned = sanitise(dict(mapping))
    assert isinstance(cleaned, dict)
    return {str(k): str(v) for k, v in cleaned.items()}


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP POST a channel wants made. ``target`` is the masked URL, for logs and answers."""

    url: str = field(repr=False)  # may hold a token (Slack, generic webhooks): never logged
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    target: str = ""
