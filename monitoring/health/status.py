"""Statuses, and how the statuses of several dependencies combine into one status and one score.

Health score weighting (documented in the README):

* each dependency weighs 3 when it is critical, 1 when it is not;
* a healthy dependency counts 100 %, a degraded one 50 %, an unhealthy one 0 %;
* ``health_score = round(100 * sum(weight * value) / sum(weight))`` over the dependencies
  that have a result; dependencies not checked yet (``unknown``) are left out, and the score
  is ``None`` when none has a result.

Overall status: ``unhealthy`` when a critical dependency is unhealthy; ``unknown`` when no
dependency has a result yet; ``degraded`` when any dependency is degraded, a non-critical
one is unhealthy, or one has no (recent) result; otherwise ``healthy``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"  # no result yet, or the last one is too old to vouch for
STATUSES = (HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN)

CRITICAL_WEIGHT = 3
NON_CRITICAL_WEIGHT = 1
STATUS_VALUE = {HEALTHY: 1.0, DEGRADED: 0.5, UNHEALTHY: 0.0}


@dataclass(frozen=True)
class Weighed:
    """The two facts about a dependency that the overall status and the score depend on."""

    status: str
    critical: bool


def weight(critical: bool) -> int:
    return CRITICAL_WEIGHT if critical else NON_CRITICAL_WEIGHT


def health_score(services: Iterable[Weighed]) -> int | None:
    """0-100 by the documented weighting; None when no dependency has a result."""
    total = achieved = 0.0
    for service in services:
        if service.status not in STATUS_VALUE:
            continue
        total += weight(service.critical)
        achieved += weight(service.critical) * STATUS_VALUE[service.status]
    if total == 0:
        return None
    return int(round(100 * achieved / total))


def overall_status(services: Iterable[Weighed]) -> str:
    listed = list(services)
    if any(s.critical and s.status == UNHEALTHY for s in listed):
        return UNHEALTHY
    if not listed or all(s.status == UNKNOWN for s in listed):
        return UNKNOWN
    if all(s.status == HEALTHY for s in listed):
        return HEALTHY
    return DEGRADED


def is_serving(status: str) -> bool:
    """HTTP 200 for healthy and degraded, 503 otherwise: what load balancers act on."""
    return status in (HEALTHY, DEGRADED)
