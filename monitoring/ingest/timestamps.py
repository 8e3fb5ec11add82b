"""Which sender timestamps are believable: after 2000, at most a day ahead of our clock, sane durations.

Checks take ``now`` from the caller's injected clock, read once per batch."""
from __future__ import annotations

from dataclasses import dataclass

Y2000 = 946_684_800.0  # 2000-01-01T00:00:00Z
NANOS = 1_000_000_000


@dataclass(frozen=True)
class TimestampBounds:
    """Limits on the times a sender reports, relative to our injected clock.

    ``max_duration`` is one hour because the store's histogram clamps longer durations into
    its top bucket: a longer "request" is a long poll or a socket, not a latency.
    """

    earliest: float = Y2000
    max_future_seconds: float = 86_400.0
    max_duration_seconds: float = 3_600.0

    def check_interval(self, start: float, end: float, now: float) -> str | None:
        """Why the interval [start, end] (epoch seconds) is refused at ``now``, or None when it is fine."""
        if end < start:
            return "end before start"
        reason = self.check_instant(end, now)
        if reason is not None:
            return reason
        if start < self.earliest:
            return "start before 2000"
        if end - start > self.max_duration_seconds:
            return f"duration over {self.max_duration_seconds:g} s"
        return None

    def check_instant(self, moment: float, now: float) -> str | None:
        """Why the instant (epoch seconds) is refused at ``now``, or None when it is fine."""
        if moment < self.earliest:
            return "timestamp before 2000"
        if moment > now + self.max_future_seconds:
            return f"timestamp more than {self.max_future_seconds:g} s in the future"
        return None


DEFAULT_BOUNDS = TimestampBounds()


def summarise_rejections(reasons: dict[str, int], noun: str) -> str:
    """One English sentence for OTLP's partial_success.error_message: counts per reason."""
    if not reasons:
        return ""
    total = sum(reasons.values())
    parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items(), key=lambda item: -item[1]))
    return f"{total} {noun}{'' if total == 1 else 's'} rejected: {parts}"
