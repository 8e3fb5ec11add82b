"""Apprise channels: one per APPRISE_URLS entry, each delivered with the Apprise library to its
one service (Telegram, Teams, Discord, ntfy, e-mail, ... about a hundred), each with its own
outbox rows, so one failing service holds back no other and retries on its own.

The notice is Apprise's title (``[CRITICAL] Firing: <summary>``) and a body with the facts of
monitoring.notify.notice, in markdown where the service takes markdown (Telegram, Teams
workflows, Discord, ntfy, JSON and form webhooks...), else in the HTML or text that the e-mail
channel writes (Apprise's mailto://, SMS services): we never let Apprise turn markdown that
holds alert text into HTML, where a label such as ``<img ...>`` would become markup. The body
is cut to the service's own length limit.

Apprise's notify() says only whether the service took it; what went wrong is in Apprise's log.
That log is captured per send (its result's entries) and becomes the delivery's answer, and
any failure is retried (no code tells a lasting refusal from a passing one; the give-up
horizon ends it). Apprise logs through the ``apprise`` logger, sometimes with a URL or a
token in the message: a filter on that logger (installed once per process, before Apprise
parses any URL of ours) masks URLs and token-like strings and applies the PII sanitiser to
every record before any handler, the host's included, sees it.

This module imports Apprise; it is imported only when APPRISE_URLS is set.
"""
from __future__ import annotations

import logging
import re
import time
import traceback
from dataclasses import dataclass
from typing import Any

import apprise

from monitoring.notify.apprise_urls import AppriseTarget, mask_apprise_url, scrub_apprise_text
from monitoring.notify.channel import APPRISE, APPRISE_PROTOCOL, Channel
from monitoring.notify.email_channel import html_text, plain_text
from monitoring.notify.model import RESOLVED, Notification
from monitoring.notify.notice import AlertFacts, NoticeFacts, notice_facts
from monitoring.notify.transport import MAX_ANSWER_BYTES, Sender, SendResult

LOGGER_NAME = "apprise"
MAX_BODY = 4000  # below the smallest limit of the chat services (Telegram 4096), when Apprise knows none
MAX_TITLE = 250
# What Telegram's markdown (Apprise's default there), Discord and Python-Markdown all take escaped.
_MARKDOWN_SPECIAL = re.compile(r"([`*_\[])")
_MARKDOWN_LINE_START = ("#", ">", "+", "-", "=", "|")

NOTIFY_TYPE = {"critical": apprise.NotifyType.FAILURE, "high": apprise.NotifyType.FAILURE,
               "medium": apprise.NotifyType.WARNING, "low": apprise.NotifyType.WARNING,
               "info": apprise.NotifyType.INFO}


class AppriseLogScrubber(logging.Filter):
    """Rewrites each record of the ``apprise`` logger, before its handlers and the host's see it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: its format string alone
            message = str(record.msg)
        if record.exc_info:  # a traceback may quote a URL: scrubbed into the message, then dropped
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg = scrub_apprise_text(message)
        record.args = None
        return True


def scrub_apprise_logs() -> None:
    """Install the scrubber on Apprise's logger, once per process (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, AppriseLogScrubber) for f in logger.filters):
        logger.addFilter(AppriseLogScrubber())


def _asset() -> apprise.AppriseAsset:
    # Memory only: Apprise keeps nothing of ours on disk. Secure logging: its own URL masking.
    return apprise.AppriseAsset(storage_mode="memory", secure_logging=True)


def instantiate(target: AppriseTarget, asset: apprise.AppriseAsset) -> Any:
    """The Apprise plugin for ``target``; ValueError naming the entry (never its URL) otherwise."""
    scrub_apprise_logs()
    plugin = apprise.Apprise.instantiate(target.url, asset=asset)
    if plugin is None:
        raise ValueError(f"entry {target.position} ({target.scheme}://...): Apprise cannot use this URL "
                         "(an unknown service, or a token or part missing or malformed)")
    return plugin


def check_apprise_url(target: AppriseTarget) -> None:
    """For config.py: raise ValueError when Apprise cannot use the entry's URL."""
    instantiate(target, _asset())


def markdown_escape(text: str, line_start: bool = False) -> str:
    """Alert text as literal markdown: on one line, its emphasis, code and link marks escaped (and,
    at the start of a line, a heading, quote or list mark)."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    return "\\" + escaped if line_start and escaped.startswith(_MARKDOWN_LINE_START) else escaped


def _alert_markdown(alert: AlertFacts) -> str:
    lines = [f"**{markdown_escape(alert.summary)}**"]
    if alert.description:
        lines.append(markdown_escape(alert.description, line_start=True))
    facts = [f"Severity: {alert.severity.capitalize()}", f"Service: {markdown_escape(alert.service)}",
             f"Status: {alert.status}"]
    if alert.value:
        facts.append(f"Value: {markdown_escape(alert.value)}")
    facts.append(f"Since: {alert.since}")
    if alert.ended:
        facts.append(f"Ended: {alert.ended}")
    if alert.labels:
        facts.append(f"Labels: {markdown_escape(alert.labels_text)}")
    if alert.acknowledgement:
        facts.append(f"Acknowledged by {markdown_escape(alert.acknowledgement)}")
    if alert.runbook_url:
        facts.append(f"[Runbook]({alert.runbook_url})")
    if alert.history_url:
        facts.append(f"[History]({alert.history_url})")
    return "\n".join(lines + [f"- {fact}" for fact in facts])


def markdown_body(facts: NoticeFacts, limit: int = MAX_BODY) -> str:
    """The body: as many alerts as fit in ``limit`` characters, then "…and N more alerts"."""
    head = [markdown_escape(facts.acknowledgement, line_start=True)] if facts.acknowledgement else []
    tail: list[str] = []
    if facts.acknowledge_hint:
        hint = facts.acknowledge_hint
        tail.append(f"Acknowledge: `POST {hint.url}` with `{hint.body}` and the admin key (header X-Admin-Key)")
    if facts.dashboard_url:
        tail.append(f"[Dashboard]({facts.dashboard_url})")
    tail.append(markdown_escape(facts.footer, line_start=True))
    sections: list[str] = []
    for i, alert in enumerate(facts.alerts):
        section = _alert_markdown(alert)
        more = f"…and {len(facts.alerts) - i} more alerts"
        if len("\n\n".join(head + sections + [section, more] + tail)) > limit and sections:
            sections.append(more)
            break
        sections.append(section)
    body = "\n\n".join(head + sections + tail)
    return body if len(body) <= limit else body[: limit - 1] + "…"


@dataclass(frozen=True)
class AppriseNotice:
    title: str
    body: str
    body_format: Any  # apprise.NotifyFormat
    notify_type: Any


class AppriseChannel(Channel):
    kind = APPRISE

    def __init__(self, target: AppriseTarget, source: str, timeout: float, external_url: str = "") -> None:
        self._asset = _asset()
        plugin = instantiate(target, self._asset)
        super().__init__(target.channel, target.url, source)  # self.url is never shown: see target
        self.position = target.position
        self.service = str(plugin.service_name)
        self._target = mask_apprise_url(plugin.url(privacy=True))
        self.title_limit = min(int(plugin.title_maxlen or 0), MAX_TITLE)  # 0: the service has no title
        self.body_limit = min(int(plugin.body_maxlen or MAX_BODY), MAX_BODY)
        # What the service takes when handed markdown: markdown itself, or HTML, or text.
        self.body_format = plugin.resolve_format(apprise.NotifyFormat.MARKDOWN)
        self.timeout = timeout
        self.external_url = external_url
        self._entry = target

    @property
    def target(self) -> str:
        return self._target

    def render(self, notification: Notification, idempotency_key: str, now: float) -> AppriseNotice:
        facts = notice_facts(notification, idempotency_key, self.external_url)
        title = facts.subject
        if self.title_limit and len(title) > self.title_limit:
            title = title[: self.title_limit - 1] + "…"
        body_limit = max(self.body_limit if self.title_limit else self.body_limit - len(title) - 2, 200)
        notify_type = apprise.NotifyType.SUCCESS if facts.event == RESOLVED else NOTIFY_TYPE[facts.severity]
        body_format = self.body_format
        if body_format == apprise.NotifyFormat.MARKDOWN:
            body = markdown_body(facts, body_limit)
        else:
            body = html_text(facts) if body_format == apprise.NotifyFormat.HTML else ""
            if not body or len(body) > body_limit:  # HTML cut short is broken markup: text instead
                body_format = apprise.NotifyFormat.TEXT
                text = plain_text(facts)
                body = text if len(text) <= body_limit else text[: body_limit - 1] + "…"
        return AppriseNotice(title=title, body=body, body_format=body_format, notify_type=notify_type)

    def transmit(self, notice: AppriseNotice, http: Sender) -> SendResult:
        started = time.perf_counter()
        entries: list[tuple[str, str]] = []
        ok = False
        try:
            # A fresh plugin per send: Apprise's plugins keep per-send state (throttling), and the
            # prompt senders and the delivery job may send to one channel at once.
            sender = apprise.Apprise(asset=self._asset)
            sender.add(instantiate(self._entry, self._asset))
            with sender.notify(body=notice.body, title=notice.title, notify_type=notice.notify_type,
                               body_format=notice.body_format,
                               # the outbox's claim lasts 2 × NOTIFY_TIMEOUT + 5 s: the whole call fits in it
                               timeout=2 * self.timeout, log_level=logging.DEBUG) as result:
                ok = bool(result)
                status = result.status.name
                entries = [(entry.level, entry.message) for entry in result.logs()]
        except Exception as exc:  # Apprise refused the call itself: worth another try, and say why
            status = "FAILURE"
            entries.append(("ERROR", f"{type(exc).__name__}: {exc}"))
        latency = round((time.perf_counter() - started) * 1000, 1)
        answer, error = _answer(entries, ok, status, self.service, self.timeout)
        return SendResult(status=None, latency_ms=latency, body=answer, error=error, protocol=APPRISE_PROTOCOL,
                          success=ok)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "service": self.service, "format": str(self.body_format.value)}


def _answer(entries: list[tuple[str, str]], ok: bool, status: str, service: str, timeout: float) -> tuple[str, str]:
    """(answer, error) out of what Apprise logged: its warnings and errors and the service's own
    reply ("Response Details"), scrubbed again (the filter already did; this is cheap)."""
    kept = [(level, scrub_apprise_text(message)) for level, message in entries
            if level in ("WARNING", "ERROR", "CRITICAL") or message.startswith("Response Details")
            or (level == "INFO" and message.startswith(("Sent ", "Notifying")))]
    answer = " | ".join(" ".join(message.split()) for _, message in kept)
    if not answer:
        answer = f"{service}: sent" if ok else f"{service}: {status.lower()}"
    problems = [message for level, message in kept if level in ("WARNING", "ERROR", "CRITICAL")]
    error = ""
    if not ok:
        if status == "TIMEOUT":
            error = f"timeout after {2 * timeout:g}s (Apprise)"
        else:
            error = " ".join(problems[-1].split()) if problems else f"Apprise: {status.lower()}"
    return answer[:MAX_ANSWER_BYTES], error[:500]
