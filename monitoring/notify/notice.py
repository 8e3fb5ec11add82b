"""The facts a written notice tells (the e-mail and Apprise channels): for each alert its summary,
description, severity, service, status, value, since when, labels, runbook, who acknowledged and
why, and its history link; for the notice its subject line, how to acknowledge, the dashboard
link, the group and the idempotency key. Slack's message shows the same alert facts in Block
Kit; these renderers take them from here so that every written channel says the same.

Built from the notification after it has passed the PII sanitiser once more (idempotent), so a
notice that did not come through the outbox (the test action) is scrubbed as well.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from monitoring.clock import isoformat
from monitoring.notify.model import (
    ACKNOWLEDGE_COMMENT_ANNOTATION,
    ACKNOWLEDGED_BY_ANNOTATION,
    ALERT,
    ESCALATED,
    FIRING,
    RESOLVED,
    AlertSnapshot,
    Notification,
)

MAX_SUBJECT = 200
ALERTS_PATH = "/api/monitoring/alerts"
DASHBOARD_PATH = "/api/monitoring/dashboard"
# Shown as their own facts: not repeated among the labels.
_LABELS_SHOWN_ELSEWHERE = ("alertname", "severity", "service")


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed to single spaces: for headers and titles."""
    return " ".join(text.split())


def web_link(url: str) -> str:
    """``url`` when it is an http(s) link, else "" (a notice never links anything else)."""
    return url if url.startswith(("http://", "https://")) and one_line(url) == url else ""


@dataclass(frozen=True)
class AlertFacts:
    fingerprint: str
    summary: str
    description: str
    severity: str
    service: str
    status: str  # "Firing" | "Resolved"
    value: str  # "" when the alert carries none (manual alerts)
    since: str  # ISO 8601 UTC
    ended: str  # ISO 8601 UTC, "" while firing
    labels: tuple[tuple[str, str], ...]  # besides alertname, severity and service
    runbook_url: str
    acknowledged_by: str
    acknowledge_comment: str
    history_url: str

    @classmethod
    def of(cls, alert: AlertSnapshot) -> AlertFacts:
        resolved = alert.status == RESOLVED
        return cls(
            fingerprint=alert.fingerprint,
            summary=alert.summary,
            description=alert.description,
            severity=alert.severity,
            service=alert.service,
            status="Resolved" if resolved else "Firing",
            value=alert.annotations.get("value", ""),
            since=isoformat(alert.starts_at) or "",
            ended=(isoformat(alert.ends_at) or "") if resolved and alert.ends_at is not None else "",
            labels=tuple(sorted((k, v) for k, v in alert.labels.items() if k not in _LABELS_SHOWN_ELSEWHERE)),
            runbook_url=web_link(alert.runbook_url),
            acknowledged_by=alert.annotations.get(ACKNOWLEDGED_BY_ANNOTATION, ""),
            acknowledge_comment=alert.annotations.get(ACKNOWLEDGE_COMMENT_ANNOTATION, ""),
            history_url=web_link(alert.generator_url),
        )

    @property
    def labels_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels)

    @property
    def acknowledgement(self) -> str:
        if not self.acknowledged_by:
            return ""
        return self.acknowledged_by + (f": {self.acknowledge_comment}" if self.acknowledge_comment else "")


@dataclass(frozen=True)
class AcknowledgeHint:
    """How to acknowledge the alerts of a firing or escalated notice."""

    url: str  # the alerts endpoint, absolute when NOTIFY_EXTERNAL_URL is set
    body: str  # the JSON body for the first alert; the others differ only in fingerprint

    @property
    def text(self) -> str:
        return f"POST {self.url} with {self.body} and the admin key (header X-Admin-Key)"


@dataclass(frozen=True)
class NoticeFacts:
    subject: str  # "[CRITICAL] Firing: <summary>"
    severity: str
    event: str
    alerts: tuple[AlertFacts, ...]
    acknowledgement: str  # "Acknowledged by <key id>: <comment>" on an acknowledged notice
    acknowledge_hint: AcknowledgeHint | None
    dashboard_url: str  # "" without NOTIFY_EXTERNAL_URL
    group_key: str
    idempotency_key: str

    @property
    def footer(self) -> str:
        return f"Centinela · group {self.group_key} · notification {self.idempotency_key}"


def subject_line(notification: Notification) -> str:
    """``[CRITICAL] Firing: <summary>`` on one line, at most MAX_SUBJECT characters."""
    subject = one_line(f"[{notification.severity.upper()}] {notification.headline}")
    return subject if len(subject) <= MAX_SUBJECT else subject[: MAX_SUBJECT - 1] + "…"


def notice_facts(notification: Notification, idempotency_key: str, external_url: str = "") -> NoticeFacts:
    clean = notification.sanitised()
    base = external_url.rstrip("/")
    hint = None
    waiting = [a for a in clean.alerts if a.status == FIRING and not a.annotations.get(ACKNOWLEDGED_BY_ANNOTATION)]
    if clean.kind == ALERT and clean.event in (FIRING, ESCALATED) and waiting:
        body = json.dumps({"action": "acknowledge", "fingerprint": waiting[0].fingerprint})
        hint = AcknowledgeHint(url=f"{base}{ALERTS_PATH}", body=body)
    return NoticeFacts(
        subject=subject_line(clean),
        severity=clean.severity,
        event=clean.event,
        alerts=tuple(AlertFacts.of(a) for a in clean.alerts),
        acknowledgement=clean.acknowledgement,
        acknowledge_hint=hint,
        dashboard_url=f"{base}{DASHBOARD_PATH}" if web_link(base) else "",
        group_key=clean.group_key,
        idempotency_key=idempotency_key,
    )
