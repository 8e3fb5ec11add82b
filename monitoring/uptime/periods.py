"""The period an uptime report covers: a trailing ``window=`` (24h, 7d, 30d, 90d) or a calendar ``month=YYYY-MM`` (UTC)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from monitoring.durations import DAY

ROLLING_WINDOWS: dict[str, float] = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY}
DEFAULT_WINDOW = "30d"
VALID_FORMS = "window=24h, 7d, 30d or 90d, or month=YYYY-MM (a calendar month in UTC, not in the future)"

_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class ReportPeriod:
    """``[start, end)``; a calendar month may not be over yet (``end`` after now)."""

    start: float
    end: float
    label: str
    calendar: bool = False

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def measured_until(self, now: float) -> float:
        return max(self.start, min(self.end, now))


def parse_period(window: str | None, month: str | None, now: float) -> ReportPeriod:
    """The period the parameters name; ValueError listing the valid forms otherwise."""
    if window and month:
        raise ValueError(f"give window= or month=, not both: {VALID_FORMS}")
    if month:
        return month_period(month, now)
    label = window or DEFAULT_WINDOW
    if label not in ROLLING_WINDOWS:
        raise ValueError(f"unknown window {label[:40]!r}; valid: {VALID_FORMS}")
    return ReportPeriod(now - ROLLING_WINDOWS[label], now, label)


def month_period(text: str, now: float) -> ReportPeriod:
    match = _MONTH.fullmatch(text)
    if match is None or int(match.group(1)) < 1970:
        raise ValueError(f"month must be YYYY-MM, such as 2026-02 (got {text[:40]!r}); valid: {VALID_FORMS}")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC).timestamp()
    if start > now:
        raise ValueError(f"month {text} has not begun yet; valid: {VALID_FORMS}")
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp()
    return ReportPeriod(start, following, text, calendar=True)
