"""How much of a window the availability figures rest on, and whether that is enough for a verdict.

An availability "over 30 days" taken from the two minutes the health rounds have seen so far
is a figure about two minutes: 70 % over two minutes with an outage in them says nothing about
the month's SLA. Every availability and SLA figure therefore carries its coverage (the known
time over the window's time outside maintenance), and below ``minimum`` (UPTIME_MIN_COVERAGE,
in % of the window) no verdict is given: compliance is ``None`` ("not enough data") rather
than "missed", and the dashboard shows the figure greyed with what was measured
("measured for 2 min of 30 d").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitoring.uptime.durations import format_span

DEFAULT_MIN_COVERAGE = 1.0  # % of the window


@dataclass(frozen=True)
class Coverage:
    known_seconds: float  # time a health round vouches for, outside maintenance
    of_seconds: float  # the measured window outside maintenance (known plus unknown time)
    minimum: float  # % of the window the figures must rest on before a verdict

    @property
    def share(self) -> float | None:
        """Known time in % of the window; None for an empty window."""
        return 100.0 * self.known_seconds / self.of_seconds if self.of_seconds > 0 else None

    @property
    def enough(self) -> bool:
        share = self.share
        return share is not None and self.known_seconds > 0 and share >= self.minimum

    @property
    def summary(self) -> str:
        return f"measured for {format_span(self.known_seconds)} of {format_span(self.of_seconds)}"

    def to_json(self) -> dict[str, Any]:
        share = self.share
        return {
            "known": None if share is None else round(share, 4),
            "enough": self.enough,
            "minimum": self.minimum,
            "summary": self.summary,
        }


def judged(verdict: bool | None, coverage: Coverage) -> bool | None:
    """The verdict when the figures rest on enough of the window, else None ("not enough data")."""
    return verdict if coverage.enough else None
