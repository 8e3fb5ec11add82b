"""SLA compliance, the error budget and its burn rates.

* **Uptime compliance**: the availability percentage is at least SLA_TARGET.
* **Error-rate compliance**: the share of 5xx responses of the monitored app over the period
  (requests to the monitoring endpoints left out) is at most ERROR_RATE_THRESHOLD.
* **Error budget**: ``allowed = (1 - SLA_TARGET / 100) x the period's time outside
  maintenance`` (43.2 minutes for 99.9 % over 30 days); ``consumed`` = the down time.
* **Burn rate** over a trailing window: ``(down / known time in the window) / (1 - SLA_TARGET / 100)``.
  1 spends the budget exactly over the SLA period; the multiwindow alerts of SRE practice fire
  when both a long and a short window burn faster than a threshold (14.4x over 1h and 5m
  spends 2 % of a 30-day budget in an hour).
"""
from __future__ import annotations

from dataclasses import dataclass

from monitoring.clock import Clock
from monitoring.durations import DAY, HOUR, MINUTE
from monitoring.metrics.categories import TimeWindow
from monitoring.metrics.rollups import RequestRollups
from monitoring.store.database import Store

# Trailing windows whose burn rate is reported: the five of the SLA alerts, and their short partners.
BURN_RATE_WINDOWS: dict[str, float] = {
    "5m": 5 * MINUTE,
    "30m": 30 * MINUTE,
    "1h": HOUR,
    "2h": 2 * HOUR,
    "6h": 6 * HOUR,
    "1d": DAY,
    "3d": 3 * DAY,
}


@dataclass(frozen=True)
class BurnRateAlert:
    """Fires when both windows burn at ``threshold`` or faster."""

    severity: str
    long_window: str
    short_window: str
    threshold: float
    budget_spent: str  # what a burn at the threshold over the long window costs, for people


BURN_RATE_ALERTS = (
    BurnRateAlert("page", "1h", "5m", 14.4, "2% of a 30-day budget in 1 hour"),
    BurnRateAlert("page", "6h", "30m", 6.0, "5% of a 30-day budget in 6 hours"),
    BurnRateAlert("ticket", "1d", "2h", 3.0, "10% of a 30-day budget in 1 day"),
    BurnRateAlert("ticket", "3d", "6h", 1.0, "10% of a 30-day budget in 3 days"),
)


@dataclass(frozen=True)
class ErrorBudget:
    allowed_seconds: float
    consumed_seconds: float

    @property
    def remaining_seconds(self) -> float:
        return self.allowed_seconds - self.consumed_seconds

    @property
    def consumed_percentage(self) -> float | None:
        return 100.0 * self.consumed_seconds / self.allowed_seconds if self.allowed_seconds > 0 else None

    @property
    def remaining_percentage(self) -> float | None:
        """May go below 0 when the budget is overspent; None when nothing is allowed."""
        return 100.0 * self.remaining_seconds / self.allowed_seconds if self.allowed_seconds > 0 else None

    @property
    def exhausted(self) -> bool:
        return self.consumed_seconds > 0 and self.consumed_seconds >= self.allowed_seconds


@dataclass(frozen=True)
class ErrorRate:
    """5xx share of the monitored app's responses over a period."""

    requests: int
    errors: int
    threshold: float
    covered_from: float  # the rollups read begin here (whole minutes, or hours beyond 48 h)

    @property
    def share(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def compliant(self) -> bool | None:
        """None without requests: no share to judge."""
        share = self.share
        return None if share is None else share <= self.threshold


def allowed_fraction(target_percent: float) -> float:
    return max(0.0, 1.0 - target_percent / 100.0)


def error_budget(target_percent: float, eligible_seconds: float, down_seconds: float) -> ErrorBudget:
    return ErrorBudget(allowed_fraction(target_percent) * max(0.0, eligible_seconds), down_seconds)


def burn_rate(target_percent: float, down_ratio: float | None) -> float | None:
    """How many times faster than sustainable the budget burns; None without known time (or budget)."""
    allowed = allowed_fraction(target_percent)
    if down_ratio is None or allowed <= 0:
        return None
    return down_ratio / allowed


def uptime_compliant(target_percent: float, percentage: float | None) -> bool | None:
    return None if percentage is None else percentage >= target_percent


def overall_compliance(*parts: bool | None) -> bool | None:
    """False if any part fails; True if every part that can be judged passes; None if none can."""
    judged = [p for p in parts if p is not None]
    if not judged:
        return None
    return all(judged)


def request_error_rate(store: Store, clock: Clock, start: float, end: float, threshold: float) -> ErrorRate:
    """The one place uptime reads the request metrics: 5xx and all responses over ``[start, end)``.

    Requests count as in every category (monitoring.metrics.scope). Counts are summed in SQL: no latency
    histogram is decoded, so a 30-day window costs one aggregate query.
    """
    counts = RequestRollups(store, clock).counts(TimeWindow(start, end, "sla"))
    return ErrorRate(requests=counts.count, errors=counts.errors, threshold=threshold,
                     covered_from=counts.covered_from)
