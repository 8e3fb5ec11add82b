"""Half-open time spans ``[start, end)`` in epoch seconds, and the set operations availability needs."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Span:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def clip(self, start: float, end: float) -> Span | None:
        """The part of this span inside ``[start, end)``, or None when they do not meet."""
        low, high = max(self.start, start), min(self.end, end)
        return Span(low, high) if high > low else None


def merge(spans: Iterable[Span]) -> list[Span]:
    """The union of ``spans`` as sorted, disjoint spans (touching spans join)."""
    merged: list[Span] = []
    for span in sorted(s for s in spans if s.end > s.start):
        if merged and span.start <= merged[-1].end:
            if span.end > merged[-1].end:
                merged[-1] = Span(merged[-1].start, span.end)
        else:
            merged.append(span)
    return merged


def subtract(span: Span, cuts: list[Span]) -> list[Span]:
    """``span`` minus the sorted, disjoint ``cuts`` (as ``merge`` returns them)."""
    pieces: list[Span] = []
    cursor = span.start
    for cut in cuts:
        if cut.end <= cursor:
            continue
        if cut.start >= span.end:
            break
        if cut.start > cursor:
            pieces.append(Span(cursor, cut.start))
        cursor = max(cursor, cut.end)
        if cursor >= span.end:
            break
    if cursor < span.end:
        pieces.append(Span(cursor, span.end))
    return pieces


def total_seconds(spans: Iterable[Span]) -> float:
    return sum((s.seconds for s in spans), 0.0)


def overlap_seconds(span: Span, sorted_spans: list[Span]) -> float:
    """Seconds of ``span`` covered by the sorted, disjoint ``sorted_spans``."""
    return span.seconds - total_seconds(subtract(span, sorted_spans))
