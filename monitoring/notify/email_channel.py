"""The e-mail channel: one message per notification (a group of alerts is one message), plain
text and HTML alternatives built with the standard library's ``email`` package and sent over
SMTP (monitoring.notify.smtp).

Subject ``[CRITICAL] Firing: <summary>``; the body tells the facts of monitoring.notify.notice.

Threading: every notice about an alert refers to one thread id made from the alert's
fingerprint (``In-Reply-To`` and ``References``; a group refers to each of its alerts), so the
firing, acknowledged, escalated and resolved notices of an alert are one thread in clients that
thread by references (Thunderbird, Apple Mail, Outlook, mutt). The thread id is never itself a
message: a repeat of a firing alert is a new message in the same thread. ``Message-ID`` is made
from the idempotency key, the same on every attempt, so a message that was sent twice (a
process killed after the server took it) is one message to clients and servers that drop
duplicates by Message-ID.
"""
from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from monitoring.notify.channel import EMAIL, Channel
from monitoring.notify.email_settings import SmtpTarget, address_of, mask_address
from monitoring.notify.model import RESOLVED, Notification
from monitoring.notify.notice import AlertFacts, NoticeFacts, notice_facts
from monitoring.notify.smtp import SmtpSender
from monitoring.notify.transport import Sender, SendResult

MAX_ALERTS_SHOWN = 50
MAX_REFERENCES = 20  # thread ids in References: a big group refers to its first alerts
_READABLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

SEVERITY_COLOUR = {"critical": "#b00020", "high": "#c0392b", "medium": "#b9770e", "low": "#1f618d",
                   "info": "#566573"}
RESOLVED_COLOUR = "#1e8449"


def _id_part(text: str, kind: str) -> str:
    """A Message-ID local part: the text itself when it is plain, else its SHA-256."""
    if _READABLE_ID.fullmatch(text):
        return f"{kind}.{text}"
    return f"{kind}.{hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]}"


def message_id(idempotency_key: str, domain: str) -> str:
    """The same on every attempt of one delivery."""
    return f"<centinela.{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:32]}@{domain}>"


def thread_id(fingerprint: str, domain: str) -> str:
    """What every notice about the alert refers to."""
    return f"<centinela.{_id_part(fingerprint, 'alert')}@{domain}>"


def _fact_rows(alert: AlertFacts) -> list[tuple[str, str, str]]:
    """(label, text, link) for each fact the alert has; link is "" for plain text."""
    rows = [("Severity", alert.severity.capitalize(), ""), ("Service", alert.service, ""),
            ("Status", alert.status, "")]
    if alert.value:
        rows.append(("Value", alert.value, ""))
    rows.append(("Since", alert.since, ""))
    if alert.ended:
        rows.append(("Ended", alert.ended, ""))
    if alert.labels:
        rows.append(("Labels", alert.labels_text, ""))
    if alert.acknowledgement:
        rows.append(("Acknowledged by", alert.acknowledgement, ""))
    if alert.runbook_url:
        rows.append(("Runbook", alert.runbook_url, alert.runbook_url))
    if alert.history_url:
        rows.append(("History", alert.history_url, alert.history_url))
    return rows


def plain_text(facts: NoticeFacts) -> str:
    lines = [facts.subject, ""]
    if facts.acknowledgement:
        lines += [facts.acknowledgement, ""]
    shown = facts.alerts[:MAX_ALERTS_SHOWN]
    for alert in shown:
        lines.append(alert.summary)
        if alert.description:
            lines.append(f"  {alert.description}")
        lines += [f"  {label + ':':<16} {text}" for label, text, _ in _fact_rows(alert)]
        lines.append("")
    if len(facts.alerts) > len(shown):
        lines += [f"…and {len(facts.alerts) - len(shown)} more alerts", ""]
    if facts.acknowledge_hint:
        lines += [f"Acknowledge: {facts.acknowledge_hint.text}", ""]
    if facts.dashboard_url:
        lines += [f"Dashboard: {facts.dashboard_url}", ""]
    lines += ["-- ", facts.footer]
    return "\n".join(lines) + "\n"


def _link(text: str, url: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{html.escape(text)}</a>'


def html_text(facts: NoticeFacts) -> str:
    """A small self-contained page: inline styles only, nothing loaded from elsewhere."""
    colour = RESOLVED_COLOUR if facts.event == RESOLVED else SEVERITY_COLOUR[facts.severity]
    esc = html.escape
    parts = [
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>',
        '<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#1c2833;">',
        f'<h2 style="margin:0 0 12px;color:{colour};">{esc(facts.subject)}</h2>',
    ]
    if facts.acknowledgement:
        parts.append(f"<p>{esc(facts.acknowledgement)}</p>")
    shown = facts.alerts[:MAX_ALERTS_SHOWN]
    for alert in shown:
        parts.append(f'<h3 style="margin:16px 0 4px;">{esc(alert.summary)}</h3>')
        if alert.description:
            parts.append(f'<p style="margin:0 0 6px;">{esc(alert.description)}</p>')
        parts.append('<table style="border-collapse:collapse;font-size:14px;">')
        for label, text, link in _fact_rows(alert):
            value = _link(text, link) if link else esc(text)
            parts.append(f'<tr><td style="padding:2px 12px 2px 0;color:#566573;">{esc(label)}</td>'
                         f"<td>{value}</td></tr>")
        parts.append("</table>")
    if len(facts.alerts) > len(shown):
        parts.append(f"<p>…and {len(facts.alerts) - len(shown)} more alerts</p>")
    hint = facts.acknowledge_hint
    if hint:
        parts.append(f"<p>Acknowledge: <code>POST {esc(hint.url)}</code> with <code>{esc(hint.body)}</code> "
                     "and the admin key (header <code>X-Admin-Key</code>)</p>")
    if facts.dashboard_url:
        parts.append(f"<p>{_link('Open the dashboard', facts.dashboard_url)}</p>")
    parts.append(f'<p style="color:#808b96;font-size:12px;">{esc(facts.footer)}</p></body></html>')
    return "\n".join(parts) + "\n"


def email_message(notification: Notification, idempotency_key: str, now: float, sender: str,
                  recipients: Sequence[str], external_url: str = "") -> EmailMessage:
    facts = notice_facts(notification, idempotency_key, external_url)
    domain = address_of(sender).rpartition("@")[2].lower()
    message = EmailMessage()
    message["Subject"] = facts.subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(datetime.fromtimestamp(now, tz=UTC))
    message["Message-ID"] = message_id(idempotency_key, domain)
    threads = [thread_id(a.fingerprint, domain) for a in facts.alerts[:MAX_REFERENCES]]
    message["In-Reply-To"] = threads[0]
    message["References"] = " ".join(threads)
    # RFC 3834: a machine wrote this; vacation responders and Outlook's out-of-office stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Centinela-Event"] = facts.event
    message["X-Centinela-Severity"] = facts.severity
    message["X-Centinela-Idempotency-Key"] = idempotency_key
    # Quoted-printable keeps both parts 7-bit: any server takes them, 8BITMIME or not.
    message.set_content(plain_text(facts), cte="quoted-printable")
    message.add_alternative(html_text(facts), subtype="html", cte="quoted-printable")
    return message


class EmailChannel(Channel):
    kind = EMAIL

    def __init__(self, name: str, smtp_url: str, source: str, sender: str, recipients: Sequence[str],
                 timeout: float, external_url: str = "") -> None:
        self.smtp = SmtpTarget.parse(smtp_url)
        super().__init__(name, "", source)  # the URL holds the password: kept only inside self.smtp
        self.sender = sender
        self.recipients = tuple(recipients)
        self.external_url = external_url
        self.transport = SmtpSender(self.smtp, timeout, helo_name=address_of(sender).rpartition("@")[2])

    @property
    def target(self) -> str:
        return self.smtp.shown

    def render(self, notification: Notification, idempotency_key: str, now: float) -> EmailMessage:
        return email_message(notification, idempotency_key, now, self.sender, self.recipients, self.external_url)

    def transmit(self, message: EmailMessage, http: Sender) -> SendResult:
        return self.transport.send(message, address_of(self.sender), [address_of(r) for r in self.recipients])

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "security": self.smtp.security,
            "login": bool(self.smtp.username),
            "from": mask_address(self.sender),
            "to": [mask_address(r) for r in self.recipients],
        }
