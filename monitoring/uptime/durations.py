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
