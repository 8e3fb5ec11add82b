"""What every channel is: a name, a kind (its wire format), and ``render`` from a
Notification to the one HTTP request that delivers it. Also how its target is shown
(masked) in the configuration view, the test action's answer and the logs."""
from __future__ import annotations

import json
from typing import Any, ClassVar
from urllib.parse import urlsplit

from monitoring.notify.model import EVENTS, Notification, OutboundRequest

# Channel names: where the target comes from. Kinds: what the receiver speaks.
WEBHOOK = "webhook"  # ALERT_WEBHOOK_URL
ESCALATION = "escalation"  # ESCALATION_WEBHOOK_URL
SLACK = "slack"  # SLACK_WEBHOOK_URL (and a kind)
PAGERDUTY = "pagerduty"  # PAGERDUTY_ROUTING_KEY alone (and a kind)
SENTRY = "sentry"  # SENTRY_DSN (and a kind)
CHANNEL_NAMES: tuple[str, ...] = (WEBHOOK, ESCALATION, SLACK, PAGERDUTY, SENTRY)
URL_KINDS: tuple[str, ...] = (WEBHOOK, SLACK, PAGERDUTY)  # what a webhook URL variable may speak

IDEMPOTENCY_HEADER = "Idempotency-Key"


def mask_url(url: str) -> str:
    """Scheme, host and (of a longer path) the first segment; the rest is hidden: Slack's token,
    a webhook's secret path, any query string."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    # A lone segment may itself be the secret (https://hooks.example/3f9a...): hide it too.
    shown = f"/{segments[0]}" if len(segments) > 1 else ""
    hidden = "/***" if segments or parts.query else ""
    return f"{parts.scheme}://{host}{shown}{hidden}"


def mask_secret(secret: str) -> str:
    """The last four characters of a long secret, so an operator can tell which one is set."""
    if not secret:
        return ""
    return "****" + secret[-4:] if len(secret) >= 16 else "****"


def json_bytes(document: Any) -> bytes:
    """The exact bytes sent (and signed): compact JSON in the document's own key order."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Channel:
    """One configured destination. Subclasses set ``kind`` and implement ``render``."""

    kind: ClassVar[str]
    # PagerDuty and Sentry take one alert per event, so a grouped notification becomes one
    # delivery per alert; the others send the group as one message.
    per_alert: ClassVar[bool] = False
    events: ClassVar[tuple[str, ...]] = EVENTS  # the events this kind is sent

    def __init__(self, name: str, url: str, source: str) -> None:
        self.name = name
        self.url = url
        self.source = source  # the variable(s) that configure it, for the configuration view

    @property
    def target(self) -> str:
        return mask_url(self.url)

    def render(self, notification: Notification, idempotency_key: str, now: float) -> OutboundRequest:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The channel as the configuration view shows it: never a secret."""
        return {"name": self.name, "kind": self.kind, "configured": True, "source": self.source,
                "target": self.target}

    def _request(
        self,
        body: bytes,
        idempotency_key: str,
        extra: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> OutboundRequest:
        headers = {"Content-Type": content_type, IDEMPOTENCY_HEADER: idempotency_key, **(extra or {})}
        return OutboundRequest(url=self.url, body=body, headers=headers, target=self.target)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.target}>"
