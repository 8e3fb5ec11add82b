"""Slack incoming webhooks: a Block Kit message (header, one section per alert with its
severity, service, start time and runbook button, a context footer) and a plain ``text``
fallback for notifications and clients that do not render blocks.

Block Kit limits kept here: 50 blocks, header text 150 characters, section text 3000,
at most 10 section fields of 2000 characters each, button text 75, URLs 3000.
"""
from __future__ import annotations

from typing import Any

from monitoring.clock import isoformat
from monitoring.notify.channel import SLACK, Channel, clip, json_bytes
from monitoring.notify.model import (
    ACKNOWLEDGE_COMMENT_ANNOTATION,
    ACKNOWLEDGED_BY_ANNOTATION,
    EVENT_WORDS,
    RESOLVED,
    AlertSnapshot,
    Notification,
    OutboundRequest,
)

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_URL = 3000
# Header + alerts + one "and N more" context + the footer context stays within MAX_BLOCKS.
MAX_ALERT_SECTIONS = MAX_BLOCKS - 3

SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "info": "⚪"}
EVENT_WORD = EVENT_WORDS


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_date(epoch: float) -> str:
    """Shown in each reader's time zone by Slack, with the UTC time as fallback."""
    return f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{isoformat(epoch)}>"


def _alert_section(alert: AlertSnapshot) -> dict[str, Any]:
    text = f"*{escape(alert.summary)}*"
    if alert.description:
        text += "\n" + escape(alert.description)
    who = alert.annotations.get(ACKNOWLEDGED_BY_ANNOTATION)
    if who:
        comment = alert.annotations.get(ACKNOWLEDGE_COMMENT_ANNOTATION)
        text += f"\n:raised_hand: Acknowledged by *{escape(who)}*" + (f": {escape(comment)}" if comment else "")
    status = "Resolved" if alert.status == RESOLVED else "Firing"
    fields = [
        f"*Severity*\n{SEVERITY_MARK[alert.severity]} {alert.severity.capitalize()}",
        f"*Service*\n{escape(alert.service)}",
        f"*Started*\n{_slack_date(alert.starts_at)}",
        f"*Status*\n{status}",
    ]
    section: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)},
        "fields": [{"type": "mrkdwn", "text": clip(f, MAX_FIELD_TEXT)} for f in fields],
    }
    runbook = alert.runbook_url
    if runbook.startswith(("http://", "https://")) and len(runbook) <= MAX_URL:
        section["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Runbook"},
            "url": runbook,
        }
    return section


def fallback_text(notification: Notification) -> str:
    """The ``text`` Slack shows in notifications and where blocks cannot render."""
    first = notification.alerts[0]
    text = (
        f"[{notification.severity.upper()}] {notification.headline}"
        f" (service {first.service}, started {isoformat(first.starts_at)})"
    )
    if notification.acknowledgement:
        text += f" {notification.acknowledgement}."
    if first.runbook_url:
        text += f" Runbook: {first.runbook_url}"
    return clip(escape(text), MAX_SECTION_TEXT)


def slack_message(notification: Notification, idempotency_key: str) -> dict[str, Any]:
    """The Block Kit message for one notification."""
    severity = notification.severity
    mark = "✅" if notification.event == RESOLVED else SEVERITY_MARK[severity]
    header = f"{mark} {severity.upper()} · {notification.headline}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, MAX_HEADER), "emoji": True}}
    ]
    shown = notification.alerts[:MAX_ALERT_SECTIONS]
    blocks += [_alert_section(alert) for alert in shown]
    hidden = len(notification.alerts) - len(shown)
    if hidden:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {hidden} more alerts"}]})
    footer = f"Centinela · {escape(notification.group_key)} · notification `{escape(idempotency_key)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(footer, MAX_FIELD_TEXT)}]})
    return {"text": fallback_text(notification), "blocks": blocks}


class SlackChannel(Channel):
    kind = SLACK

    def render(self, notification: Notification, idempotency_key: str, now: float) -> OutboundRequest:
        return self._request(json_bytes(slack_message(notification, idempotency_key)), idempotency_key)
