"""Routing: which channels a notification goes to.

* firing: the channels of its severity (``NOTIFY_ROUTES``, defaults below);
* escalated: the escalation channel only (``NOTIFY_ESCALATION_CHANNEL``; by default
  ``escalation`` when ESCALATION_WEBHOOK_URL is set, else ``pagerduty`` when configured);
* acknowledged / resolved: the channels of its severity, plus the escalation channel when
  the alerts had been escalated (so PagerDuty hears the acknowledge/resolve of what it paged);
* a notification that names its channels (tests, fallback notices) goes to those.

Channels that are not configured are skipped, and not shown: the configuration view lists
only the channels a notification can really reach. A delivery that fails or is given up on is
reported to the fallback channel (``NOTIFY_FALLBACK_CHANNEL``), if one is set.

``route`` is the one routing decision; a new channel kind only has to be a configured name in
``by_severity``. ``apprise`` is a routing name for every Apprise channel (``apprise-<name>``,
one per URL): wherever it is routed, each of them gets its own delivery.

The parsers at the bottom are used by monitoring/settings.py, so a bad value stops start-up.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.notify.channel import (
    APPRISE,
    CHANNEL_NAMES_SHOWN,
    EMAIL,
    ESCALATION,
    PAGERDUTY,
    SENTRY,
    SLACK,
    URL_KINDS,
    WEBHOOK,
    expand_names,
    is_channel_name,
)
from monitoring.notify.model import ACKNOWLEDGED, ESCALATED, RESOLVED, SEVERITIES, Notification

# E-mail and Apprise go where Slack goes: configuring them says they are wanted, as for Slack.
DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {
    "critical": (WEBHOOK, SLACK, EMAIL, APPRISE, PAGERDUTY, SENTRY),
    "high": (WEBHOOK, SLACK, EMAIL, APPRISE, PAGERDUTY, SENTRY),
    "medium": (WEBHOOK, SLACK, EMAIL, APPRISE, SENTRY),
    "low": (WEBHOOK, SLACK, EMAIL, APPRISE),
    "info": (WEBHOOK, SLACK, EMAIL, APPRISE),
}
NONE = "none"  # NOTIFY_ESCALATION_CHANNEL=none turns escalation delivery off


@dataclass(frozen=True)
class Routes:
    """Severity → channel names, the escalation channel and the fallback channel, and which
    channel names are configured (None: not known, nothing is filtered out of the view)."""

    by_severity: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    escalation: str | None = None
    fallback: str | None = None
    configured: tuple[str, ...] | None = None

    @classmethod
    def from_settings(cls, overrides: Mapping[str, Iterable[str]], escalation: str, fallback: str,
                      configured: Iterable[str]) -> Routes:
        """Defaults with NOTIFY_ROUTES laid over them; the escalation default depends on what is configured."""
        by_severity = {**DEFAULT_ROUTES, **{k: tuple(v) for k, v in overrides.items()}}
        present = tuple(configured)
        if not escalation:
            escalation = ESCALATION if ESCALATION in present else (PAGERDUTY if PAGERDUTY in present else NONE)
        return cls(
            by_severity=by_severity,
            escalation=None if escalation == NONE else escalation,
            fallback=None if fallback in ("", NONE) else fallback,
            configured=present,
        )

    def targets(self, notification: Notification, configured: Iterable[str]) -> list[str]:
        """The configured channels this notification goes to, in routing order, each once."""
        return route(notification, self, configured)

    def _shown(self, names: Iterable[str]) -> list[str]:
        if self.configured is None:
            return list(names)
        return [n for n in expand_names(names, self.configured) if n in self.configured]

    def _reaching(self, name: str | None) -> list[str]:
        """``[name]`` when it reaches a configured channel (``apprise``: any Apprise channel), else []."""
        return [name] if name and self._shown([name]) else []

    def to_json(self) -> dict[str, Any]:
        """The routing in force: only configured channels (a routed but unconfigured one reaches nobody).
        Per severity ``apprise`` is shown as the Apprise channels it reaches; the escalation and
        fallback channels as named."""
        escalation = self._reaching(self.escalation)
        fallback = self._reaching(self.fallback)
        return {
            "bySeverity": {s: self._shown(self.by_severity.get(s, ())) for s in SEVERITIES},
            "escalation": escalation[0] if escalation else None,
            "fallback": fallback[0] if fallback else None,
        }


def route(notification: Notification, routes: Routes, configured: Iterable[str]) -> list[str]:
    """Which configured channels ``notification`` goes to, in routing order, each once.

    * named channels (tests, fallback notices): those;
    * escalated: the escalation channel only;
    * firing: the channels of its severity;
    * acknowledged / resolved: the channels of its severity, plus the escalation channel when
      the alerts had been escalated (PagerDuty hears the acknowledge/resolve of what it paged).
    """
    if notification.channels is not None:
        wanted: list[str] = list(notification.channels)
    elif notification.event == ESCALATED:
        wanted = [routes.escalation] if routes.escalation else []
    else:
        wanted = list(routes.by_severity.get(notification.severity, ()))
        if notification.event in (ACKNOWLEDGED, RESOLVED) and notification.escalated and routes.escalation:
            wanted.append(routes.escalation)
    present = list(configured)
    return [name for name in expand_names(wanted, present) if name in present]


# --- parsers for monitoring/settings.py: each raises ValueError saying what is expected ---------------------


def parse_severity_object(raw: str, expected: str) -> dict[str, Any]:
    """A JSON object keyed by severity (NOTIFY_ROUTES, ALERT_ESCALATION_AFTER); ValueError(expected) otherwise."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(expected) from None
    if not isinstance(value, dict):
        raise ValueError(expected)
    for severity in value:
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}; {expected}")
    return value


def parse_routes(raw: str) -> dict[str, tuple[str, ...]]:
    """NOTIFY_ROUTES: a JSON object from severity to a list of channel names, e.g.
    ``{"critical": ["pagerduty", "slack"], "info": []}``; severities left out keep their defaults."""
    expected = (
        'expected a JSON object such as {"critical": ["pagerduty", "slack"]} '
        f"(severities: {', '.join(SEVERITIES)}; channels: {CHANNEL_NAMES_SHOWN})"
    )
    routes: dict[str, tuple[str, ...]] = {}
    for severity, channels in parse_severity_object(raw, expected).items():
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise ValueError(f"{severity}: expected a list of channel names; {expected}")
        unknown = [c for c in channels if not is_channel_name(c)]
        if unknown:
            raise ValueError(f"{severity}: unknown channel {unknown[0]!r}; {expected}")
        routes[severity] = tuple(channels)
    return routes


def parse_channel_name(raw: str) -> str:
    """NOTIFY_ESCALATION_CHANNEL / NOTIFY_FALLBACK_CHANNEL: one channel name (``apprise``: every
    Apprise channel), or none."""
    name = raw.strip().lower()
    if name != NONE and not is_channel_name(name):
        raise ValueError(f"expected one of: {CHANNEL_NAMES_SHOWN}, {NONE}")
    return name


def parse_url_kind(raw: str) -> str:
    """ALERT_WEBHOOK_KIND / ESCALATION_WEBHOOK_KIND: what the URL speaks, when the host does not say."""
    kind = raw.strip().lower()
    if kind not in URL_KINDS:
        raise ValueError(f"expected one of: {', '.join(URL_KINDS)}")
    return kind
