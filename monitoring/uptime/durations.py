"""A length at a glance, for the uptime sentences (durations themselves: monitoring/durations.py)."""
from __future__ import annotations

from monitoring.durations import DAY, HOUR, MINUTE


def format_span(seconds: float) -> str:
    """A length at a glance, in its two largest units, rounded down: ``2 min``, ``7 h 12 min``, ``30 d``.

    For sentences such as "measured for 2 min of 30 d", where seconds would be noise.
    """
    whole = max(0, int(seconds))
    if whole < MINUTE:
        return f"{whole} s"
    if whole < HOUR:
        return f"{whole // MINUTE} min"
    if whole < DAY:
        hours, minutes = divmod(whole // MINUTE, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(whole // HOUR, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")
