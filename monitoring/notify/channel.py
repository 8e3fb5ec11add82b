"""What every channel is: a name, a kind (its wire format), ``render`` from a Notification to
the message that delivers it, and ``transmit`` of that message. HTTP channels render one
request and transmit it through the outbox's HTTP sender; the e-mail channel renders a MIME
message for SMTP, each Apprise channel a title and body for its one Apprise URL. Also how a
target is shown (masked) in the configuration view, the test action's answer and the logs."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from monitoring.notify.model import EVENTS, Notification, OutboundRequest

if TYPE_CHECKING:  # the settings' parsers import this module: keep requests out of their imports
    from monitoring.notify.transport import Sender, SendResult

# Channel names: where the target comes from. Kinds: what the receiver speaks.
WEBHOOK = "webhook"  # ALERT_WEBHOOK_URL
ESCALATION = "escalation"  # ESCALATION_WEBHOOK_URL
SLACK = "slack"  # SLACK_WEBHOOK_URL (and a kind)
PAGERDUTY = "pagerduty"  # PAGERDUTY_ROUTING_KEY alone (and a kind)
SENTRY = "sentry"  # SENTRY_DSN (and a kind)
EMAIL = "email"  # SMTP_URL, ALERT_EMAIL_FROM, ALERT_EMAIL_TO (and a kind)
# APPRISE_URLS: one channel per URL, ``apprise-<name>`` (named in the variable, else its
# position), each with its own outbox rows and retries. ``apprise`` itself is a routing name
# that means all of them, wherever a channel name is accepted (routes, escalation, fallback,
# the test action, the deliveries filter).
APPRISE = "apprise"
APPRISE_PREFIX = APPRISE + "-"
CHANNEL_NAMES: tuple[str, ...] = (WEBHOOK, ESCALATION, SLACK, PAGERDUTY, SENTRY, EMAIL, APPRISE)
URL_KINDS: tuple[str, ...] = (WEBHOOK, SLACK, PAGERDUTY)  # what a webhook URL variable may speak
# The store keeps channel names in 32 characters: "apprise-" and a name of at most 24.
APPRISE_TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,23}")
CHANNEL_NAMES_SHOWN = ", ".join(CHANNEL_NAMES) + ", apprise-<name>"  # for error messages

# What a delivery's status code means: an HTTP status, an SMTP reply code, or (Apprise) none.
HTTP = "http"
SMTP = "smtp"
APPRISE_PROTOCOL = "apprise"

IDEMPOTENCY_HEADER = "Idempotency-Key"


def is_apprise_target(name: str) -> bool:
    """``apprise-telegram``, ``apprise-2``: one Apprise URL's channel."""
    return name.startswith(APPRISE_PREFIX) and bool(APPRISE_TARGET_NAME.fullmatch(name[len(APPRISE_PREFIX):]))


def is_channel_name(name: object) -> bool:
    """A name a route, the test action or the deliveries filter may use (configured or not)."""
    return isinstance(name, str) and (name in CHANNEL_NAMES or is_apprise_target(name))


def expand_names(names: Iterable[str], configured: Iterable[str]) -> list[str]:
    """Routing names as channel names: ``apprise`` becomes every configured Apprise channel, in
    their order; any other name stays itself. Each name once, in the order given."""
    present = list(configured)
    expanded: list[str] = []
    for name in names:
        for channel in ([n for n in present if is_apprise_target(n)] if name == APPRISE else [name]):
            if channel not in expanded:
                expanded.append(channel)
    return expanded


def protocol_of(channel_name: str) -> str:
    """What the status code of this channel's deliveries means."""
    if channel_name == EMAIL:
        return SMTP
    if is_apprise_target(channel_name):
        return APPRISE_PROTOCOL
    return HTTP


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
    """One configured destination. Subclasses set ``kind`` and implement ``render``; channels
    that do not speak HTTP also implement ``transmit``."""

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

    def render(self, notification: Notification, idempotency_key: str, now: float) -> Any:
        """The message that delivers ``notification``: an OutboundRequest for HTTP channels."""
        raise NotImplementedError

    def transmit(self, message: Any, http: Sender) -> SendResult:
        """Send what ``render`` made and say what came back (never raises for a failed send)."""
        return http.send(message)

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
