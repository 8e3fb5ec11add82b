"""Health events: every change of a dependency's status or of its circuit breaker, with its time.

The uptime feature computes availability and incidents from these rows, and the alerting
feature reacts to them, so the schema is deliberately plain: ``service``, ``kind``,
``from_status``, ``to_status``, ``at`` (epoch seconds) and a sanitised JSON ``detail``.
For ``breaker_*`` kinds the two statuses are breaker states (closed / open / half_open).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from monitoring.clock import isoformat
from monitoring.health.status import DEGRADED, HEALTHY, UNHEALTHY
from monitoring.security.pii import sanitise
from monitoring.store.database import Store
from monitoring.store.health_tables import health_events

DOWN = "down"
DEGRADED_EVENT = "degraded"
RECOVERED = "recovered"
BREAKER_OPENED = "breaker_opened"
BREAKER_HALF_OPEN = "breaker_half_open"
BREAKER_CLOSED = "breaker_closed"
EVENT_KINDS = (DOWN, DEGRADED_EVENT, RECOVERED, BREAKER_OPENED, BREAKER_HALF_OPEN, BREAKER_CLOSED)


@dataclass(frozen=True)
class HealthEvent:
    id: int
    service: str
    kind: str
    from_status: str
    to_status: str
    at: float
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "kind": self.kind,
            "from": self.from_status,
            "to": self.to_status,
            "at": isoformat(self.at),
            "detail": self.detail,
        }


def status_change_kind(previous: str | None, current: str) -> str | None:
    """The event a status change is, or None when nothing worth recording changed.

    ``previous`` is None (or ``unknown``) before the first result: a first result that is
    healthy is no event, a first result that is down or degraded is one.
    """
    if previous == current:
        return None
    if current == UNHEALTHY:
        return DOWN
    if current == DEGRADED:
        return DEGRADED_EVENT
    if current == HEALTHY and previous in (UNHEALTHY, DEGRADED):
        return RECOVERED
    return None


def record_event(
    conn: Connection,
    service: str,
    kind: str,
    from_status: str,
    to_status: str,
    at: float,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write one event in the caller's transaction, beside the state change it describes."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown health event kind {kind!r}")
    conn.execute(
        health_events.insert().values(
            service=service,
            kind=kind,
            from_status=from_status,
            to_status=to_status,
            at=at,
            detail=sanitise(detail or {}),
        )
    )


def list_events(
    store: Store,
    since: float | None = None,
    until: float | None = None,
    *,
    service: str | None = None,
    kinds: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[HealthEvent]:
    """Events with ``since <= at < until``, oldest first (ties in the order they were written)."""
    query = select(health_events)
    if since is not None:
        query = query.where(health_events.c.at >= since)
    if until is not None:
        query = query.where(health_events.c.at < until)
    if service is not None:
        query = query.where(health_events.c.service == service)
    if kinds is not None:
        query = query.where(health_events.c.kind.in_(list(kinds)))
    query = query.order_by(health_events.c.at, health_events.c.id)
    if limit is not None:
        query = query.limit(limit)
    with store.read() as conn:
        return [
            HealthEvent(
                id=row["id"],
                service=row["service"],
                kind=row["kind"],
                from_status=row["from_status"],
                to_status=row["to_status"],
                at=row["at"],
                detail=row["detail"] or {},
            )
            for row in conn.execute(query).mappings()
        ]


def opening_error(store: Store, service: str) -> str | None:
    """The error recorded when the service's breaker last opened (None before it ever opened)."""
    t = health_events.c
    with store.read() as conn:
        detail = conn.execute(
            select(t.detail).where(t.service == service, t.kind == BREAKER_OPENED).order_by(t.at.desc(), t.id.desc())
            .limit(1)
        ).scalar()
    error = (detail or {}).get("error")
    return str(error) if error else None
