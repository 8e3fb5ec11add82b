"""Availability over a period, by time: up, down, unknown and maintenance seconds, and MTBF / MTTR.

* **up**: the rounds found the service healthy or degraded (it served);
* **down**: they found it unhealthy (a critical dependency down);
* **unknown**: no round vouches for the time (the monitor itself was not running);
* **maintenance**: inside a maintenance window for the whole service, or, for a window
  scoped to some dependencies, down time whose cause (the critical dependencies down) lies
  wholly within that scope. Maintenance time is left out of everything else.

``percentage = 100 x up / (up + down)``: the share of the known time outside maintenance.
MTTR = down time / incidents, MTBF = up time / incidents, counting the incidents that
contributed down time to the period.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitoring.health.status import DEGRADED, UNHEALTHY
from monitoring.uptime.incidents import Incident
from monitoring.uptime.intervals import Span, merge, overlap_seconds, subtract, total_seconds
from monitoring.uptime.maintenance import MaintenanceOccurrence
from monitoring.uptime.timeline import CoveredSpan


@dataclass(frozen=True)
class Availability:
    start: float
    end: float  # measured up to here: the period's end, or now when the period is not over
    up_seconds: float
    degraded_seconds: float  # part of up_seconds
    down_seconds: float
    unknown_seconds: float
    maintenance_seconds: float
    down_spans: tuple[Span, ...]
    unknown_spans: tuple[Span, ...]

    @property
    def known_seconds(self) -> float:
        return self.up_seconds + self.down_seconds

    @property
    def eligible_seconds(self) -> float:
        """The measured time outside maintenance: known plus unknown."""
        return self.known_seconds + self.unknown_seconds

    @property
    def percentage(self) -> float | None:
        """Up share of the known time, in %; None when nothing is known."""
        return 100.0 * self.up_seconds / self.known_seconds if self.known_seconds > 0 else None

    @property
    def down_ratio(self) -> float | None:
        return self.down_seconds / self.known_seconds if self.known_seconds > 0 else None


@dataclass(frozen=True)
class Reliability:
    incidents: int
    mtbf_seconds: float | None
    mttr_seconds: float | None


def measure(
    spans: Iterable[CoveredSpan], maintenance: Iterable[MaintenanceOccurrence], start: float, end: float
) -> Availability:
    """Split ``[start, end)`` into up, down, unknown and maintenance time."""
    if end <= start:
        return Availability(start, start, 0.0, 0.0, 0.0, 0.0, 0.0, (), ())
    occurrences = list(maintenance)
    whole = merge(c for o in occurrences if not o.services and (c := o.span.clip(start, end)) is not None)
    scoped = [o for o in occurrences if o.services]
    maintenance_seconds = total_seconds(whole)
    up = degraded = odd = 0.0
    down_spans: list[Span] = []
    covered: list[Span] = []
    for span in spans:
        clipped = Span(span.start, span.end).clip(start, end)
        if clipped is None:
            continue
        covered.append(clipped)
        pieces = subtract(clipped, whole)
        if span.status == UNHEALTHY:
            cause = set(span.down_services)
            planned = merge(o.span for o in scoped if cause and cause <= set(o.services))
            for piece in pieces:
                counted = subtract(piece, planned)
                maintenance_seconds += piece.seconds - total_seconds(counted)
                down_spans += counted
        elif span.is_up:
            up += total_seconds(pieces)
            if span.status == DEGRADED:
                degraded += total_seconds(pieces)
        else:  # neither up nor unhealthy (no round writes such a status today): not known
            odd += total_seconds(pieces)
    unknown_spans: list[Span] = []
    for gap in subtract(Span(start, end), merge(covered)):
        unknown_spans += subtract(gap, whole)
    return Availability(
        start=start,
        end=end,
        up_seconds=up,
        degraded_seconds=degraded,
        down_seconds=total_seconds(down_spans),
        unknown_seconds=total_seconds(unknown_spans) + odd,
        maintenance_seconds=maintenance_seconds,
        down_spans=tuple(down_spans),
        unknown_spans=tuple(unknown_spans),
    )


def reliability(availability: Availability, incidents: Iterable[Incident], now: float) -> Reliability:
    """MTBF and MTTR over the period: up and down time divided by the incidents that had counted down time."""
    down = merge(availability.down_spans)
    counted = sum(
        1 for incident in incidents
        if overlap_seconds(Span(incident.started_at, incident.ended_at if incident.ended_at is not None else now), down) > 0
    )
    if counted == 0:
        return Reliability(0, None, None)
    return Reliability(counted, availability.up_seconds / counted, availability.down_seconds / counted)
