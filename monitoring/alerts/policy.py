"""How firing alerts are told, per severity: group wait, group interval, repeat interval and
escalation delay (ALERT_GROUP_WAIT, ALERT_GROUP_INTERVAL, ALERT_REPEAT_INTERVAL,
ALERT_ESCALATION_AFTER), and a rule's own overrides of them.

* group wait: how long a new alert waits for others of its group before the group's first
  notification;
* group interval: how long an alert that joins a group already told waits after the group's
  last notification (so a flapping group is not a stream of messages);
* repeat interval: how often a firing, unacknowledged alert is sent again;
* escalation delay: how long after its first notification an unacknowledged alert escalates
  (None: never).

The defaults follow the system description's severity matrix: a critical alert goes out at
once and escalates with its first notification; a high one within 10 s, escalating after
30 min; medium and low ones wait to be grouped.

The parsers at the bottom are used by monitoring/settings.py, so a bad value stops start-up;
this module imports nothing heavy for that reason. Durations are read and written by
monitoring/durations.py, as everywhere.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from monitoring.durations import DAY, HOUR, MINUTE, parse_duration
from monitoring.notify.model import SEVERITIES, SEVERITY_MATRIX
from monitoring.notify.routing import parse_severity_object

if TYPE_CHECKING:  # the settings parse their values with this module's parsers
    from monitoring.settings import AlertSettings

NEVER = "none"
GROUP_WAIT = "group_wait"
GROUP_INTERVAL = "group_interval"
REPEAT_INTERVAL = "repeat_interval"
ESCALATE_AFTER = "escalate_after"
TIMING_FIELDS = (GROUP_WAIT, GROUP_INTERVAL, REPEAT_INTERVAL, ESCALATE_AFTER)


def describe_delay(seconds: float | None) -> str:
    """``Immediate``, ``30 min``, ``2 h``, ``None``: the matrix's words for a delay."""
    if seconds is None:
        return "None"
    if seconds == 0:
        return "Immediate"
    for unit, size in (("d", DAY), ("h", HOUR), ("min", MINUTE)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class Timing:
    """When one alert is told: seconds (``escalate_after`` None: never escalates)."""

    group_wait: float
    group_interval: float
    repeat_interval: float
    escalate_after: float | None

    def with_overrides(self, overrides: Mapping[str, float | None]) -> Timing:
        # The field names are only known at run time (filtered by TIMING_FIELDS), so mypy cannot
        # match each value to its field; None is only ever given for escalate_after (the parsers' rule).
        return replace(self, **{k: v for k, v in overrides.items() if k in TIMING_FIELDS})  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {
            "groupWaitSeconds": self.group_wait,
            "groupIntervalSeconds": self.group_interval,
            "repeatIntervalSeconds": self.repeat_interval,
            "escalateAfterSeconds": self.escalate_after,
        }


# The matrix's escalation column (critical at once, high 30 min, medium 2 h, low next day read
# as 24 h, info never), and waits that let a critical page go at once and a high one within
# seconds, while medium and low alerts gather their group.
DEFAULT_ESCALATION: dict[str, float | None] = {p.severity: p.escalate_after_seconds for p in SEVERITY_MATRIX}
DEFAULT_TIMINGS: dict[str, Timing] = {
    "critical": Timing(group_wait=0.0, group_interval=0.0, repeat_interval=4 * HOUR,
                       escalate_after=DEFAULT_ESCALATION["critical"]),
    "high": Timing(group_wait=10.0, group_interval=30.0, repeat_interval=4 * HOUR,
                   escalate_after=DEFAULT_ESCALATION["high"]),
    "medium": Timing(group_wait=60.0, group_interval=300.0, repeat_interval=4 * HOUR,
                     escalate_after=DEFAULT_ESCALATION["medium"]),
    "low": Timing(group_wait=300.0, group_interval=300.0, repeat_interval=4 * HOUR,
                  escalate_after=DEFAULT_ESCALATION["low"]),
    "info": Timing(group_wait=300.0, group_interval=300.0, repeat_interval=4 * HOUR,
                   escalate_after=DEFAULT_ESCALATION["info"]),
}


def _timings_from(settings: AlertSettings) -> dict[str, Timing]:
    variables = {
        GROUP_WAIT: settings.alert_group_wait,
        GROUP_INTERVAL: settings.alert_group_interval,
        REPEAT_INTERVAL: settings.alert_repeat_interval,
        ESCALATE_AFTER: settings.alert_escalation_after,
    }
    return {
        severity: timing.with_overrides({name: by_severity[severity] for name, by_severity in variables.items()
                                         if severity in by_severity})
        for severity, timing in DEFAULT_TIMINGS.items()
    }


@dataclass(frozen=True)
class AlertPolicy:
    timings: Mapping[str, Timing] = field(default_factory=lambda: dict(DEFAULT_TIMINGS))
    evaluation_interval: float = 15.0

    @classmethod
    def from_settings(cls, settings: AlertSettings) -> AlertPolicy:
        """From the alerts section: ALERT_GROUP_WAIT, ..., ALERT_EVALUATION_INTERVAL."""
        return cls(timings=_timings_from(settings), evaluation_interval=settings.alert_evaluation_interval)

    def timing(self, severity: str, overrides: Mapping[str, float | None] | None = None) -> Timing:
        """The severity's timing with a rule's overrides laid over it."""
        base = self.timings.get(severity, DEFAULT_TIMINGS["info"])
        return base.with_overrides(overrides) if overrides else base

    def escalation_delay(self, severity: str) -> float | None:
        """Seconds after its first notification that an unacknowledged alert escalates; None: never."""
        return self.timing(severity).escalate_after

    def matrix_json(self) -> list[dict[str, Any]]:
        """The severity matrix as configured: response times, and the timings in force."""
        rows = []
        for row in SEVERITY_MATRIX:
            timing = self.timing(row.severity)
            delay = timing.escalate_after
            words = row.escalation if delay == row.escalate_after_seconds else describe_delay(delay)
            rows.append({**row.to_json(), "escalation": words, **timing.to_json()})
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluationIntervalSeconds": self.evaluation_interval,
            "bySeverity": {severity: self.timing(severity).to_json() for severity in SEVERITIES},
        }


# --- parsers for config.py ---------------------------------------------------------------------

def describe_span(seconds: float) -> str:
    """How long something lasted, for people: ``4 s``, ``5 m 4 s``, ``2 h 3 m``, ``1 d 2 h``."""
    whole = max(0, int(round(seconds)))
    parts: list[str] = []
    for unit, size in (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            parts.append(f"{whole // size} {unit}")
            whole %= size
    return " ".join(parts[:2])


# Bounds of each timing (seconds), for the environment and for rules.
TIMING_BOUNDS: dict[str, tuple[float, float]] = {
    GROUP_WAIT: (0.0, HOUR),
    GROUP_INTERVAL: (0.0, DAY),
    REPEAT_INTERVAL: (MINUTE, 30 * DAY),
    ESCALATE_AFTER: (0.0, 7 * DAY),
}


def parse_timing_value(name: str, raw: Any) -> float | None:
    """One timing's value: a duration within its bounds; ``none`` (escalation only) is never."""
    if name == ESCALATE_AFTER and (raw is None or (isinstance(raw, str) and raw.strip().lower() == NEVER)):
        return None
    low, high = TIMING_BOUNDS[name]
    return parse_duration(raw, low, high)


def _per_severity(name: str, raw: str) -> dict[str, float | None]:
    """A single duration (every severity) or a JSON object from severity to duration."""
    never = ' (or "none")' if name == ESCALATE_AFTER else ""
    expected = (f'expected a duration such as 30s, or a JSON object such as {{"critical": "0", "high": "30s"}}{never} '
                f"(severities: {', '.join(SEVERITIES)})")
    text = raw.strip()
    if not text.startswith("{"):
        try:
            value = parse_timing_value(name, text)
        except ValueError as exc:
            raise ValueError(f"{exc}; or a JSON object from severity to duration") from None
        return dict.fromkeys(SEVERITIES, value)
    try:
        json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(expected) from None
    parsed: dict[str, float | None] = {}
    for severity, value in parse_severity_object(text, expected).items():
        try:
            parsed[severity] = parse_timing_value(name, value)
        except ValueError as exc:
            raise ValueError(f"{severity}: {exc}") from None
    return parsed


def parse_group_wait(raw: str) -> dict[str, float | None]:
    """ALERT_GROUP_WAIT: ``30s`` for every severity, or ``{"critical": "0", "medium": "2m"}``."""
    return _per_severity(GROUP_WAIT, raw)


def parse_group_interval(raw: str) -> dict[str, float | None]:
    """ALERT_GROUP_INTERVAL: like ALERT_GROUP_WAIT."""
    return _per_severity(GROUP_INTERVAL, raw)


def parse_repeat_interval(raw: str) -> dict[str, float | None]:
    """ALERT_REPEAT_INTERVAL: ``4h`` for every severity, or a JSON object by severity."""
    return _per_severity(REPEAT_INTERVAL, raw)


def parse_escalation_after(raw: str) -> dict[str, float | None]:
    """ALERT_ESCALATION_AFTER: ``{"high": "15m", "low": "none"}`` (severities left out keep the
    matrix's delay), or one duration (or ``none``) for every severity."""
    return _per_severity(ESCALATE_AFTER, raw)


_CHECK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the health checks' own name rule


def parse_check_names(raw: str) -> tuple[str, ...]:
    """ALERT_DATABASE_CHECKS: comma-separated health check names."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names or not all(_CHECK_NAME.fullmatch(n) for n in names):
        raise ValueError("expected comma-separated health check names such as database,orders-db")
    return names
