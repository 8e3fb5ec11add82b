"""How firing alerts are told: group wait, repeat interval, and the severity matrix's
escalation delays (ALERT_GROUP_WAIT, ALERT_REPEAT_INTERVAL, ALERT_ESCALATION_AFTER).

The parsers at the bottom are used by config.py, so a bad value stops start-up; this module
imports nothing heavy for that reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from monitoring.notify.model import SEVERITIES, SEVERITY_MATRIX
from monitoring.notify.routing import parse_severity_object

# The system description's matrix: critical at once, high 30 min, medium 2 h, low next day
# (read as 24 h), info never.
DEFAULT_ESCALATION: dict[str, float | None] = {p.severity: p.escalate_after_seconds for p in SEVERITY_MATRIX}
NEVER = "none"


def describe_delay(seconds: float | None) -> str:
    """``Immediate``, ``30 min``, ``2 h``, ``None``: the matrix's words for a delay."""
    if seconds is None:
        return "None"
    if seconds == 0:
        return "Immediate"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class AlertPolicy:
    group_wait: float = 30.0
    repeat_interval: float = 4 * 3600.0
    escalate_after: Mapping[str, float | None] = field(default_factory=lambda: dict(DEFAULT_ESCALATION))
    evaluation_interval: float = 15.0

    @classmethod
    def from_settings(cls, settings: Any) -> "AlertPolicy":
        return cls(
            group_wait=settings.alert_group_wait,
            repeat_interval=settings.alert_repeat_interval,
            escalate_after={**DEFAULT_ESCALATION, **settings.alert_escalation_after},
            evaluation_interval=settings.alert_evaluation_interval,
        )

    def escalation_delay(self, severity: str) -> float | None:
        """Seconds after its first notification that an unacknowledged alert escalates; None: never."""
        return self.escalate_after.get(severity)

    def matrix_json(self) -> list[dict[str, Any]]:
        """The severity matrix as configured: response times, and the escalation delays in force."""
        rows = []
        for policy in SEVERITY_MATRIX:
            delay = self.escalation_delay(policy.severity)
            words = policy.escalation if delay == policy.escalate_after_seconds else describe_delay(delay)
            rows.append({**policy.to_json(), "escalation": words, "escalateAfterSeconds": delay})
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "evaluationIntervalSeconds": self.evaluation_interval,
            "groupWaitSeconds": self.group_wait,
            "repeatIntervalSeconds": self.repeat_interval,
        }


# --- parsers for config.py ---------------------------------------------------------------------

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HELP = "a duration such as 0, 30s, 5m, 4h or 1d"


def parse_duration(raw: Any, low: float = 0.0, high: float = 30 * 86400.0) -> float:
    """Seconds from a number or ``30s`` / ``5m`` / ``4h`` / ``1d``, within [low, high]; ValueError otherwise."""
    if isinstance(raw, bool):
        raise ValueError(f"expected {DURATION_HELP}")
    if isinstance(raw, (int, float)):
        seconds = float(raw)
    elif isinstance(raw, str) and (match := _DURATION.fullmatch(raw.strip().lower())):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"expected {DURATION_HELP}")
    if not low <= seconds <= high:
        raise ValueError(f"expected {DURATION_HELP}, from {format_duration(low)} to {format_duration(high)}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest way to write a duration: 0, 45s, 5m, 90m, 4h, 1d."""
    if seconds == 0:
        return "0"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_group_wait(raw: str) -> float:
    return parse_duration(raw, 0.0, 3600.0)


def parse_repeat_interval(raw: str) -> float:
    return parse_duration(raw, 60.0, 30 * 86400.0)


def parse_escalation_after(raw: str) -> dict[str, float | None]:
    """ALERT_ESCALATION_AFTER: ``{"high": "15m", "low": "none"}``; severities left out keep the matrix's delay."""
    expected = (
        'expected a JSON object such as {"high": "15m", "low": "none"} '
        f"(severities: {', '.join(SEVERITIES)}; a duration, or none for no escalation)"
    )
    delays: dict[str, float | None] = {}
    for severity, delay in parse_severity_object(raw, expected).items():
        if delay is None or (isinstance(delay, str) and delay.strip().lower() == NEVER):
            delays[severity] = None
            continue
        try:
            delays[severity] = parse_duration(delay, 0.0, 7 * 86400.0)
        except ValueError as exc:
            raise ValueError(f"{severity}: {exc}") from None
    return delays


_CHECK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # the health checks' own name rule


def parse_check_names(raw: str) -> tuple[str, ...]:
    """ALERT_DATABASE_CHECKS: comma-separated health check names."""
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names or not all(_CHECK_NAME.fullmatch(n) for n in names):
        raise ValueError("expected comma-separated health check names such as database,orders-db")
    return names
