"""Time, injected: domain code asks a Clock, tests drive a ManualClock instead of sleeping."""
from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch, UTC."""


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when a test says so."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, epoch_seconds: float) -> None:
        with self._lock:
            self._now = float(epoch_seconds)


def isoformat(epoch_seconds: float | None) -> str | None:
    """RFC 3339 UTC with a Z, the one timestamp format of every response."""
    if epoch_seconds is None:
        return None
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_YEAR_10000 = 253402300800.0


def parse_timestamp(text: str) -> float:
    """Parse an RFC 3339 / ISO 8601 timestamp (naive means UTC) or epoch seconds; ValueError if neither."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # nan, inf and 1e400 parse as floats but are no moment in time.
        if not 0 <= seconds < _YEAR_10000:
            raise ValueError(f"{text!r} is not a time between 1970 and 9999")
        return seconds
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError):  # year 1 at +05:00: before the calendar's first moment
        raise ValueError(f"{text!r} is not a time between 1970 and 9999") from None
    if not 0 <= seconds < _YEAR_10000:
        raise ValueError(f"{text!r} is not a time between 1970 and 9999")
    return seconds
