"""Check results in the store: saving a round (with the events it causes) and reading the latest.

Saving locks the status rows it replaces (``SELECT ... FOR UPDATE`` on PostgreSQL, the write
lock on SQLite), so a round run by the leader and an admin's ``?refresh=true`` in another
worker never both record the same change, and an older result never overwrites a newer one.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update

from monitoring.health.circuit import CLOSED, BreakerState
from monitoring.health.events import record_event, status_change_kind
from monitoring.health.status import DEGRADED, HEALTHY, UNHEALTHY, UNKNOWN, Weighed, health_score, overall_status
from monitoring.security.pii import sanitise_text
from monitoring.store.database import Store
from monitoring.store.health_tables import health_results, health_status

MAX_ERROR_LENGTH = 200


@dataclass(frozen=True)
class CheckResult:
    """One dependency's result in one round."""

    service: str
    status: str
    critical: bool
    component_type: str
    response_time_ms: float | None
    error: str
    checked_at: float


@dataclass(frozen=True)
class ServiceHealth:
    """A dependency as /api/health/check shows it: the latest result and its breaker."""

    name: str
    status: str
    critical: bool
    component_type: str
    response_time_ms: float | None
    checked_at: float | None
    error: str
    circuit: BreakerState | None  # None for the database: its breaker would live in itself

    @property
    def weighed(self) -> Weighed:
        return Weighed(self.status, self.critical)


@dataclass(frozen=True)
class HealthSnapshot:
    """Every configured dependency at one moment, and what they add up to."""

    services: dict[str, ServiceHealth]
    taken_at: float

    @property
    def status(self) -> str:
        return overall_status(s.weighed for s in self.services.values())

    @property
    def score(self) -> int | None:
        return health_score(s.weighed for s in self.services.values())

    @property
    def checked_at(self) -> float | None:
        """When the latest result was taken."""
        times = [s.checked_at for s in self.services.values() if s.checked_at is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class ExpectedService:
    """A dependency the snapshot must list, whether or not it has a result yet."""

    name: str
    critical: bool
    component_type: str
    has_breaker: bool


@dataclass(frozen=True)
class WindowStats:
    """One dependency's results within a time window."""

    checks: int
    healthy: int
    degraded: int
    unhealthy: int
    mean_response_ms: float | None

    @property
    def availability(self) -> float | None:
        """Share of checks in which the dependency answered (healthy or degraded)."""
        return (self.healthy + self.degraded) / self.checks if self.checks else None


def save_results(store: Store, results: Iterable[CheckResult]) -> list[str]:
    """Store a round: latest status, history and one event per status change; the kinds written."""
    results = list(results)
    if not results:
        return []
    written: list[str] = []
    names = [r.service for r in results]
    with store.write() as conn:
        # Placeholder rows first, so that the FOR UPDATE below has a row to lock even the first time.
        for result in results:
            conn.execute(
                store.insert(health_status)
                .values(
                    service=result.service,
                    status=UNKNOWN,
                    critical=int(result.critical),
                    component_type=result.component_type,
                    error="",
                )
                .on_conflict_do_nothing(index_elements=["service"])
            )
        previous = {
            row["service"]: row
            for row in conn.execute(
                select(health_status).where(health_status.c.service.in_(names)).with_for_update()
            ).mappings()
        }
        for result in results:
            before = previous[result.service]
            if before["checked_at"] is not None and before["checked_at"] > result.checked_at:
                continue  # a newer round got here first
            error = sanitise_text(result.error)[:MAX_ERROR_LENGTH]
            conn.execute(
                update(health_status)
                .where(health_status.c.service == result.service)
                .values(
                    status=result.status,
                    critical=int(result.critical),
                    component_type=result.component_type,
                    response_time_ms=result.response_time_ms,
                    error=error,
                    checked_at=result.checked_at,
                )
            )
            conn.execute(
                health_results.insert().values(
                    service=result.service,
                    status=result.status,
                    response_time_ms=result.response_time_ms,
                    error=error,
                    checked_at=result.checked_at,
                )
            )
            kind = status_change_kind(before["status"], result.status)
            if kind is not None:
                detail: dict[str, Any] = {"error": error, "responseTime": _rounded(result.response_time_ms)}
                record_event(conn, result.service, kind, before["status"], result.status, result.checked_at, detail)
                written.append(kind)
    return written


def read_snapshot(
    conn: Any,
    expected: list[ExpectedService],
    breakers: dict[str, BreakerState],
    now: float,
    stale_after: float,
) -> HealthSnapshot:
    """The latest result of each expected dependency, read in the caller's transaction.

    A dependency with no result is ``unknown`` (never assumed healthy); so is one whose last
    result is older than ``stale_after`` seconds (the job stopped: we can no longer vouch).
    """
    rows = {row["service"]: row for row in conn.execute(select(health_status)).mappings()}
    services: dict[str, ServiceHealth] = {}
    for spec in expected:
        row = rows.get(spec.name)
        # A breaker no call has used yet has no row: it is closed (the row is made closed at first use).
        circuit = (breakers.get(spec.name) or BreakerState(spec.name, CLOSED, 0, 0, None, None, False)) \
            if spec.has_breaker else None
        if row is None or row["checked_at"] is None:
            services[spec.name] = ServiceHealth(
                spec.name, UNKNOWN, spec.critical, spec.component_type, None, None, "not checked yet", circuit
            )
            continue
        status, error = row["status"], row["error"]
        age = now - row["checked_at"]
        if age > stale_after:
            status, error = UNKNOWN, f"no result for {age:.0f}s"
        services[spec.name] = ServiceHealth(
            name=spec.name,
            status=status,
            critical=spec.critical,
            component_type=spec.component_type,
            response_time_ms=row["response_time_ms"],
            checked_at=row["checked_at"],
            error=error,
            circuit=circuit,
        )
    return HealthSnapshot(services, now)


def window_stats(store: Store, start: float, end: float) -> dict[str, WindowStats]:
    """Per dependency: how many checks in [start, end), by outcome, and the mean response time."""
    table = health_results.c

    def count(status: str) -> Any:
        return func.sum(case((table.status == status, 1), else_=0))

    query = (
        select(
            table.service,
            func.count().label("checks"),
            count(HEALTHY).label("healthy"),
            count(DEGRADED).label("degraded"),
            count(UNHEALTHY).label("unhealthy"),
            func.avg(table.response_time_ms).label("mean_response_ms"),
        )
        .where(table.checked_at >= start, table.checked_at < end)
        .group_by(table.service)
    )
    with store.read() as conn:
        return {
            row.service: WindowStats(
                checks=int(row.checks),
                healthy=int(row.healthy or 0),
                degraded=int(row.degraded or 0),
                unhealthy=int(row.unhealthy or 0),
                mean_response_ms=float(row.mean_response_ms) if row.mean_response_ms is not None else None,
            )
            for row in conn.execute(query)
        }


def latest_round_at(store: Store) -> float | None:
    with store.read() as conn:
        latest: float | None = conn.execute(select(func.max(health_status.c.checked_at))).scalar_one()
        return latest


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
