"""The ``window=`` parameter: ``1m``, ``5m``, ``1h``, ``24h``, ``30d`` ... into a TimeWindow."""
from __future__ import annotations

import re

from monitoring.durations import DAY, HOUR, MINUTE
from monitoring.metrics.categories import TimeWindow

UNIT_SECONDS = {"m": MINUTE, "h": HOUR, "d": DAY}
DEFAULT_WINDOW = "5m"
EXAMPLES = ("1m", "5m", "15m", "1h", "6h", "24h", "7d", "30d")

_WINDOW = re.compile(r"([1-9][0-9]{0,5})([mhd])")


def describe_valid_windows(longest_seconds: float) -> str:
    """The sentence every bad window gets: what the valid forms are."""
    return (
        "window must be a whole number followed by m (minutes), h (hours) or d (days), "
        f"from 1m to {format_window(longest_seconds)}, for example {', '.join(_examples(longest_seconds))}"
    )


def parse_window(text: str, now: float, longest_seconds: float = 30 * DAY) -> TimeWindow:
    """``[now - length, now)`` for a window written like ``5m``; ValueError (listing the valid forms) otherwise.

    ``longest_seconds`` is the retention: a window reaching further back would ask for data
    that no longer exists, so it is refused rather than silently answered with less.
    """
    match = _WINDOW.fullmatch(text.strip())
    if match is None:
        raise ValueError(describe_valid_windows(longest_seconds))
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds > longest_seconds:
        raise ValueError(describe_valid_windows(longest_seconds))
    return TimeWindow(start=now - seconds, end=now, label=f"{match.group(1)}{match.group(2)}")


def format_window(seconds: float) -> str:
    """The shortest window label for a length: 2592000 -> ``30d``, 5400 -> ``90m``."""
    whole = int(seconds)
    for unit in ("d", "h", "m"):
        if whole % UNIT_SECONDS[unit] == 0 and whole >= UNIT_SECONDS[unit]:
            return f"{whole // UNIT_SECONDS[unit]}{unit}"
    return f"{max(1, whole // MINUTE)}m"


def _examples(longest_seconds: float) -> list[str]:
    fitting = [e for e in EXAMPLES if int(e[:-1]) * UNIT_SECONDS[e[-1]] <= longest_seconds]
    return fitting or ["1m"]
