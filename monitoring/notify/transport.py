"""Sending one outbound request with a timeout, and reading what the receiver answered.

The answer is reduced to a ``SendResult`` (status, latency, a truncated body, Retry-After)
that the outbox classifies; a network error or timeout is a result too, never an exception.
The e-mail and Apprise channels send otherwise (monitoring.notify.smtp, .apprise_channel)
and give the same ``SendResult``, whose ``protocol`` says what its status code means.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from monitoring.notify.channel import HTTP, SMTP
from monitoring.notify.model import OutboundRequest
from monitoring.security.pii import sanitise_text

# Enough of a receiver's answer to say why it refused; never the whole of a huge page.
MAX_ANSWER_BYTES = 2048
USER_AGENT = "Centinela-Notify/1.0"


def is_retryable(status: int | None) -> bool:
    """HTTP: no answer, 5xx, 408 and 429 are worth another try; other statuses will not change."""
    return status is None or status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class SendResult:
    """What came back: a status code, or ``error`` when no answer arrived (refused, timeout).

    ``protocol`` says what ``status`` is: an HTTP status, or an SMTP reply code (2xx sent, 4xx
    "try again later", 5xx refused for good). Apprise gives no code: ``success`` carries what
    its notify() returned, and every failure is worth another try.
    """

    status: int | None
    latency_ms: float
    body: str = ""  # truncated and sanitised
    retry_after: str | None = None  # the raw header; parse with retry_after_seconds()
    error: str = ""
    protocol: str = HTTP
    success: bool | None = None  # set when there is no status code to decide by (Apprise)

    @property
    def ok(self) -> bool:
        if self.success is not None:
            return self.success
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed where this one did not."""
        if self.ok:
            return False
        if self.status is None:  # no answer, or Apprise's failure
            return True
        if self.protocol == SMTP:
            return 400 <= self.status < 500
        return is_retryable(self.status)

    @property
    def problem(self) -> str:
        """Why it failed, in a few words ("HTTP 503", "SMTP 550", the error); "" when it did not."""
        if self.ok:
            return ""
        return self.error or f"{'SMTP' if self.protocol == SMTP else 'HTTP'} {self.status}"


class Sender(Protocol):
    def send(self, request: OutboundRequest) -> SendResult: ...


class HttpSender:
    """POSTs with requests; ``timeout`` bounds the connect and each read (no redirects followed)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    def send(self, request: OutboundRequest) -> SendResult:
        # Imported on first send: a worker that never sends a notification never loads them (~5 MB).
        import requests
        import urllib3

        headers = {"User-Agent": USER_AGENT, **request.headers}
        started = time.perf_counter()
        try:
            with requests.post(
                request.url,
                data=request.body,
                headers=headers,
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                raw = response.raw.read(MAX_ANSWER_BYTES, decode_content=True) or b""
                latency = (time.perf_counter() - started) * 1000
                return SendResult(
                    status=response.status_code,
                    latency_ms=round(latency, 1),
                    body=sanitise_text(raw.decode("utf-8", "replace")),
                    retry_after=response.headers.get("Retry-After"),
                )
        except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError):
            error = f"timeout after {self.timeout:g}s"
        except (requests.ConnectionError, urllib3.exceptions.HTTPError, OSError) as exc:
            error = f"connection failed: {_root_cause(exc)}"
        except requests.RequestException as exc:
            error = f"request failed: {type(exc).__name__}"
        latency = (time.perf_counter() - started) * 1000
        return SendResult(status=None, latency_ms=round(latency, 1), error=sanitise_text(error))


def _root_cause(exc: BaseException) -> str:
    """The innermost reason (``[Errno 111] Connection refused``), without the URL (it may hold a token)."""
    inner = exc.__cause__ or exc.__context__
    while inner is not None:
        exc, inner = inner, inner.__cause__ or inner.__context__
    text = str(exc)
    if "://" in text or "host=" in text:
        return type(exc).__name__
    return text[:200] or type(exc).__name__


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from ``now``: delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)
