"""The channels configured by the environment, and why the others are not.

* ``webhook``: ALERT_WEBHOOK_URL; ``escalation``: ESCALATION_WEBHOOK_URL. Each speaks what
  its host says (a hooks.slack.com URL: Slack; an events.pagerduty.com URL: PagerDuty, with
  PAGERDUTY_ROUTING_KEY; anything else: the generic webhook) unless ALERT_WEBHOOK_KIND /
  ESCALATION_WEBHOOK_KIND says otherwise.
* ``slack``: SLACK_WEBHOOK_URL.
* ``pagerduty``: PAGERDUTY_ROUTING_KEY, to PAGERDUTY_EVENTS_URL (events.pagerduty.com; EU
  accounts use events.eu.pagerduty.com), when neither URL above already is PagerDuty (one
  PagerDuty service, one channel).
* ``sentry``: SENTRY_DSN.
* ``email``: SMTP_URL with ALERT_EMAIL_FROM and ALERT_EMAIL_TO.
* ``apprise-<name>``: one per APPRISE_URLS entry (monitoring.notify.apprise_urls); Apprise is
  imported only when that variable is set.

Each channel's module is imported when its variables configure it: a worker with no channel
(or only a webhook) does not load the email stack, smtplib, Sentry's or PagerDuty's renderers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from monitoring.notify.channel import (
    APPRISE,
    CHANNEL_NAMES,
    EMAIL,
    ESCALATION,
    PAGERDUTY,
    SENTRY,
    SLACK,
    WEBHOOK,
    Channel,
    expand_names,
    is_apprise_target,
)


class NotifySettings(Protocol):
    """The part of config.Settings the channels read (read-only: Settings is frozen)."""

    @property
    def alert_webhook_url(self) -> str: ...
    @property
    def alert_webhook_kind(self) -> str: ...
    @property
    def alert_webhook_secret(self) -> str: ...
    @property
    def escalation_webhook_url(self) -> str: ...
    @property
    def escalation_webhook_kind(self) -> str: ...
    @property
    def slack_webhook_url(self) -> str: ...
    @property
    def pagerduty_routing_key(self) -> str: ...
    @property
    def pagerduty_events_url(self) -> str: ...
    @property
    def sentry_dsn(self) -> str: ...
    @property
    def sentry_environment(self) -> str: ...
    @property
    def notify_external_url(self) -> str: ...
    @property
    def notify_timeout(self) -> float: ...
    @property
    def smtp_url(self) -> str: ...
    @property
    def alert_email_from(self) -> str: ...
    @property
    def alert_email_to(self) -> tuple[str, ...]: ...
    @property
    def apprise_urls(self) -> tuple[Any, ...]: ...  # monitoring.notify.apprise_urls.AppriseTarget


def detect_kind(url: str, override: str = "") -> str:
    """The wire format of a webhook URL: the override, else what its host says."""
    if override:
        return override
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com":
        return SLACK
    if host in ("events.pagerduty.com", "events.eu.pagerduty.com") or host.endswith(".events.pagerduty.com"):
        return PAGERDUTY
    return WEBHOOK


@dataclass(frozen=True)
class ChannelSet:
    """The configured channels by name, and for every other name why it is not configured."""

    channels: dict[str, Channel]
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.channels)

    def get(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def select(self, name: str) -> list[Channel]:
        """The configured channels a name means (``apprise``: every Apprise channel)."""
        return [self.channels[n] for n in expand_names([name], self.names) if n in self.channels]

    def why_missing(self, name: str) -> str:
        """Why ``name`` reaches no configured channel."""
        if name in self.missing:
            return self.missing[name]
        if name == APPRISE or is_apprise_target(name):
            named = [n for n in self.names if is_apprise_target(n)]
            if named:
                return f"APPRISE_URLS names {', '.join(named)}"
            unusable = [reason for n, reason in self.missing.items() if is_apprise_target(n)]
            return "; ".join(unusable) or "set APPRISE_URLS"
        return "not a channel"

    def describe(self) -> list[dict[str, Any]]:
        """Every channel name in a fixed order, configured or not, secrets masked; ``apprise`` as
        each Apprise channel (and each entry that could not be used), or why there is none."""
        shown = []
        for name in CHANNEL_NAMES:
            if name == APPRISE:
                targets = [n for n in list(self.channels) + list(self.missing) if is_apprise_target(n)]
                for target in sorted(targets, key=self._position):
                    channel = self.channels.get(target)
                    shown.append(channel.describe() if channel is not None else
                                 {"name": target, "configured": False, "reason": self.missing[target]})
                if targets:
                    continue
            channel = self.channels.get(name)
            if channel is not None:
                shown.append(channel.describe())
            else:
                shown.append({"name": name, "configured": False, "reason": self.missing[name]})
        return shown

    def _position(self, name: str) -> int:
        channel = self.channels.get(name)
        return int(getattr(channel, "position", 0)) if channel is not None else 10_000


def _url_channel(name: str, url: str, kind: str, source: str, settings: NotifySettings) -> Channel | str:
    """The channel a webhook URL variable configures, or why it cannot."""
    if kind == SLACK:
        from monitoring.notify.slack import SlackChannel

        return SlackChannel(name, url, source)
    if kind == PAGERDUTY:
        if not settings.pagerduty_routing_key:
            return f"{source} is a PagerDuty URL: set PAGERDUTY_ROUTING_KEY"
        from monitoring.notify.pagerduty import PagerDutyChannel

        return PagerDutyChannel(name, url, source, settings.pagerduty_routing_key, settings.notify_external_url)
    from monitoring.notify.webhook import WebhookChannel

    return WebhookChannel(name, url, source, settings.alert_webhook_secret, settings.notify_external_url)


def build_channels(settings: NotifySettings) -> ChannelSet:
    found: dict[str, Channel | str] = {}
    url_vars = (
        (WEBHOOK, settings.alert_webhook_url, settings.alert_webhook_kind, "ALERT_WEBHOOK_URL"),
        (ESCALATION, settings.escalation_webhook_url, settings.escalation_webhook_kind, "ESCALATION_WEBHOOK_URL"),
    )
    for name, url, override, source in url_vars:
        found[name] = (
            _url_channel(name, url, detect_kind(url, override), source, settings) if url else f"set {source}"
        )
    if settings.slack_webhook_url:
        from monitoring.notify.slack import SlackChannel

        found[SLACK] = SlackChannel(SLACK, settings.slack_webhook_url, "SLACK_WEBHOOK_URL")
    else:
        found[SLACK] = "set SLACK_WEBHOOK_URL"
    pagerduty_elsewhere = [n for n in (WEBHOOK, ESCALATION) if getattr(found[n], "kind", None) == PAGERDUTY]
    if pagerduty_elsewhere:
        found[PAGERDUTY] = f"PagerDuty is configured as channel {pagerduty_elsewhere[0]}"
    elif settings.pagerduty_routing_key:
        from monitoring.notify.pagerduty import EVENTS_URL, PagerDutyChannel

        found[PAGERDUTY] = PagerDutyChannel(
            PAGERDUTY, settings.pagerduty_events_url or EVENTS_URL, "PAGERDUTY_ROUTING_KEY", settings.pagerduty_routing_key,
            settings.notify_external_url,
        )
    else:
        found[PAGERDUTY] = "set PAGERDUTY_ROUTING_KEY"
    if settings.sentry_dsn:
        from monitoring.notify.sentry_channel import SentryChannel

        try:
            found[SENTRY] = SentryChannel(SENTRY, settings.sentry_dsn, "SENTRY_DSN", settings.sentry_environment)
        except ValueError as exc:
            found[SENTRY] = f"SENTRY_DSN is not usable: {exc}"
    else:
        found[SENTRY] = "set SENTRY_DSN"
    found[EMAIL] = _email_channel(settings)
    found.update(_apprise_channels(settings))
    return ChannelSet(
        channels={n: c for n, c in found.items() if isinstance(c, Channel)},
        missing={n: c for n, c in found.items() if isinstance(c, str)},
    )


EMAIL_VARIABLES = ("SMTP_URL", "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO")


def _email_channel(settings: NotifySettings) -> Channel | str:
    values = (settings.smtp_url, settings.alert_email_from, settings.alert_email_to)
    lacking = [name for name, value in zip(EMAIL_VARIABLES, values, strict=True) if not value]
    if len(lacking) == len(EMAIL_VARIABLES):
        return "set SMTP_URL, ALERT_EMAIL_FROM and ALERT_EMAIL_TO"
    if lacking:
        return f"{', '.join(n for n in EMAIL_VARIABLES if n not in lacking)} set: also set {' and '.join(lacking)}"
    from monitoring.notify.email_channel import EmailChannel  # the email package and smtplib

    return EmailChannel(EMAIL, settings.smtp_url, ", ".join(EMAIL_VARIABLES), settings.alert_email_from,
                        settings.alert_email_to, settings.notify_timeout, settings.notify_external_url)


def _apprise_channels(settings: NotifySettings) -> dict[str, Channel | str]:
    if not settings.apprise_urls:
        return {APPRISE: "set APPRISE_URLS"}
    from monitoring.notify.apprise_channel import AppriseChannel  # Apprise is loaded only when used

    found: dict[str, Channel | str] = {}
    for target in settings.apprise_urls:
        try:
            found[target.channel] = AppriseChannel(target, "APPRISE_URLS", settings.notify_timeout,
                                                   settings.notify_external_url)
        except ValueError as exc:  # validated at start-up; a plugin Apprise disabled since says so here
            found[target.channel] = f"APPRISE_URLS {exc}"
    return found
