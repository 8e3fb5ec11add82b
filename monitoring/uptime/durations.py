"""Durations as people read them: ``5d 14h 23m 45s``."""
from __future__ import annotations

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """Whole seconds, from the largest non-zero unit down to seconds: 90061 -> ``1d 1h 1m 1s``, 0 -> ``0s``."""
    remaining = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in _UNITS:
        amount, remaining = divmod(remaining, size)
        if amount or parts or unit == "s":
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def format_span(seconds: float) -> str:
    """A length at a glance, in its two largest units, rounded down: ``2 min``, ``7 h 12 min``, ``30 d``.

    For sentences such as "measured for 2 min of 30 d", where seconds would be noise.
    """
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")
