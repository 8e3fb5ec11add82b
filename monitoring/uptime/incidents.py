"""Incidents: one opens when the overall health becomes unhealthy (a critical dependency is down)
and closes at the first round that finds the service up again.

The timeline (monitoring.uptime.timeline) opens, extends and closes them inside the same
transaction that folds the round into the availability segments. At most one incident is
open at any time, whoever writes: the open one carries ``open_marker = "open"`` under a unique
index, so a second open in another worker or host is a no-op that finds the first.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.engine import Connection, RowMapping

from monitoring.clock import Clock, isoformat
from monitoring.durations import format_duration
from monitoring.security.pii import sanitise_text
from monitoring.store.database import Store
from monitoring.store.uptime_tables import incidents

OPEN = "open"
RESOLVED = "resolved"
MAX_CAUSE_LENGTH = 500


@dataclass(frozen=True)
class Incident:
    id: int
    started_at: float
    ended_at: float | None
    cause: str
    services: tuple[str, ...]

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def duration(self, now: float) -> float:
        """Seconds from start to end (to ``now`` while open)."""
        return max(0.0, (self.ended_at if self.ended_at is not None else now) - self.started_at)

    def to_json(self, now: float) -> dict[str, Any]:
        seconds = self.duration(now)
        return {
            "id": self.id,
            "status": OPEN if self.is_open else RESOLVED,
            "start": isoformat(self.started_at),
            "end": isoformat(self.ended_at),
            "durationSeconds": round(seconds, 3),
            "duration": format_duration(int(seconds)),  # whole seconds, for people
            "services": list(self.services),
            "cause": self.cause,
        }


def describe_cause(down: Mapping[str, str]) -> str:
    """``critical dependency down: stripe (HTTP 500)``: which critical dependencies, and their public error."""
    parts = [f"{name} ({error})" if error else name for name, error in sorted(down.items())]
    noun = "dependency" if len(parts) == 1 else "dependencies"
    return sanitise_text(f"critical {noun} down: {', '.join(parts)}")[:MAX_CAUSE_LENGTH]


# --- writing, in the timeline's transaction -------------------------------------------------------


def open_incident(store: Store, conn: Connection, at: float, cause: str, services: Iterable[str], now: float) -> Incident:
    """Open an incident, or return the one already open (another writer got there first)."""
    names = tuple(sorted(set(services)))
    conn.execute(
        store.insert(incidents)
        .values(started_at=at, ended_at=None, cause=cause, services=list(names), open_marker=OPEN,
                updated_at=now)
        .on_conflict_do_nothing(index_elements=["open_marker"])
    )
    found = find_open(conn)
    assert found is not None  # we just inserted it, or it was already there
    return found


def find_open(conn: Connection) -> Incident | None:
    row = conn.execute(select(incidents).where(incidents.c.open_marker == OPEN)).mappings().first()
    return _incident(row) if row else None


def add_services(conn: Connection, incident: Incident, services: Iterable[str], now: float) -> Incident:
    """Record further dependencies seen unhealthy during the incident."""
    names = tuple(sorted(set(incident.services) | set(services)))
    if names == incident.services:
        return incident
    conn.execute(
        update(incidents).where(incidents.c.id == incident.id).values(services=list(names), updated_at=now)
    )
    return Incident(incident.id, incident.started_at, incident.ended_at, incident.cause, names)


def close_incident(conn: Connection, incident: Incident, at: float, now: float) -> None:
    conn.execute(
        update(incidents)
        .where(incidents.c.id == incident.id, incidents.c.open_marker == OPEN)
        .values(ended_at=at, open_marker=None, updated_at=now)
    )


# --- reading ----------------------------------------------------------------------------------------


class IncidentLog:
    """Incidents as the API shows them: overlapping a period, or a page of the history."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def overlapping(self, start: float, end: float) -> list[Incident]:
        """Incidents that were open at some moment of ``[start, end)``, oldest first."""
        query = (
            select(incidents)
            .where(incidents.c.started_at < end, or_(incidents.c.ended_at.is_(None), incidents.c.ended_at > start))
            .order_by(incidents.c.started_at, incidents.c.id)
        )
        with self.store.read() as conn:
            return [_incident(row) for row in conn.execute(query).mappings()]

    def page(self, before: int | None = None, limit: int = 50) -> list[Incident]:
        """Newest first; ``before`` is the id the previous page ended with."""
        query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(incidents.c.id < before)
        with self.store.read() as conn:
            return [_incident(row) for row in conn.execute(query).mappings()]

    def get(self, incident_id: int) -> Incident | None:
        with self.store.read() as conn:
            row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).mappings().first()
        return _incident(row) if row else None

    def count(self) -> int:
        with self.store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(incidents)).scalar_one())

    def open_incident(self) -> Incident | None:
        with self.store.read() as conn:
            return find_open(conn)


def _incident(row: Mapping[str, Any] | RowMapping) -> Incident:
    return Incident(
        id=int(row["id"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        cause=row["cause"],
        services=tuple(row["services"] or ()),
    )
