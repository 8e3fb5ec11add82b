"""Durations: the one way Centinela reads and writes a length of time.

Read: a number of seconds (``90``, ``1.5``, or a JSON number), or one or more amounts with a
unit, largest first, each unit at most once: ``90s``, ``5m``, ``4h``, ``1d``, ``1.5h``,
``1h30m``, ``5d 14h 23m 45s`` (case and spaces do not matter). Every setting, alert rule and
timing, silence and maintenance window takes this one grammar. (The ``window=`` query
parameter of the figures keeps its narrower label grammar, ``5m``/``24h``/``30d``: see
monitoring/metrics/windows.py.) ISO 8601 durations (``PT5M``) were accepted nowhere, and still
are not.

Written: ``format_duration`` gives the non-zero units, largest first, separated by spaces:
``0s``, ``45s``, ``5m``, ``1h 30m``, ``5d 14h 23m 45s``: what a person reads on the dashboard and
what they would type into a rule, and it reads back to the same number
(``parse_duration(format_duration(s)) == s``).

Only the standard library: settings validation imports this at start-up.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR

UNITS = (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1))
_UNIT_SECONDS = dict(UNITS)
_ORDER = {unit: position for position, (unit, _) in enumerate(UNITS)}

_AMOUNT = r"[0-9]+(?:\.[0-9]+)?"
_NUMBER = re.compile(_AMOUNT)
_WITH_UNITS = re.compile(rf"(?:{_AMOUNT}\s*[dhms]\s*)+")
_PART = re.compile(rf"({_AMOUNT})\s*([dhms])\s*")

DURATION_HELP = "a duration such as 0, 30s, 5m, 4h or 1d"


def parse_duration(raw: Any, low: float = 0.0, high: float = math.inf) -> float:
    """Seconds from a number or a text such as ``90``, ``30s``, ``1h30m``, within [low, high].

    ValueError otherwise, saying what is expected (and the bounds, when they are the problem);
    callers with their own wording catch it and say theirs.
    """
    seconds = _seconds(raw)
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"expected {DURATION_HELP}")
    if not low <= seconds <= high:
        shown_high = "" if high == math.inf else f" to {_bound(high)}"
        raise ValueError(f"expected {DURATION_HELP}, from {_bound(low)}{shown_high}")
    return seconds


def _bound(seconds: float) -> str:
    """A bound in a sentence: "from 0 to 1h" (as DURATION_HELP writes zero)."""
    return "0" if seconds == 0 else format_duration(seconds)


def _seconds(raw: Any) -> float | None:
    if isinstance(raw, bool):  # a JSON true is not one second
        return None
    if isinstance(raw, (int, float)):
        return float(raw)
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower()
    if _NUMBER.fullmatch(text):
        return float(text)
    if not _WITH_UNITS.fullmatch(text):
        return None
    total, last = 0.0, -1
    for amount, unit in _PART.findall(text):
        if _ORDER[unit] <= last:  # "30m 1h", "5m 5m": a typo, not a duration
            return None
        last = _ORDER[unit]
        total += float(amount) * _UNIT_SECONDS[unit]
    return total


def format_duration(seconds: float) -> str:
    """The non-zero units, largest first: 0 -> ``0s``, 5400 -> ``1h 30m``, 90.5 -> ``1m 30.5s``.

    Exact: a fraction of a second is kept (round first for a figure shown to people, as
    ``format_duration(int(s))``); a negative length reads as ``0s``.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"a duration is a finite number of seconds, not {seconds!r}")
    if seconds <= 0:
        return "0s"
    whole = int(seconds)
    fraction = seconds - whole  # exact in binary floating point
    parts = []
    for unit, size in UNITS:
        amount, whole = divmod(whole, size)
        if unit == "s" and fraction:
            parts.append(f"{_decimal(amount + fraction)}s")
        elif amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts)


def _decimal(value: float) -> str:
    """The shortest text that reads back as ``value``, without an exponent (``1e-05`` -> ``0.00001``)."""
    text = repr(value)
    return format(Decimal(text), "f") if "e" in text or "E" in text else text
