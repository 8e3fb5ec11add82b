"""UptimeService: folds health rounds into the timeline and answers the uptime report from the store.

One per app; the uptime blueprint's install() builds it and hooks ``on_health_round`` into
the health service, so every stored round (the leader's, or an admin's refresh) moves the
timeline and the incidents at once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitoring.clock import Clock
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.settings import Settings
from monitoring.store.database import Store
from monitoring.uptime.availability import Availability, Reliability, measure, reliability
from monitoring.uptime.coverage import Coverage, judged
from monitoring.uptime.incidents import Incident, IncidentLog
from monitoring.uptime.maintenance import MaintenanceCalendar, MaintenanceOccurrence
from monitoring.uptime.periods import ReportPeriod
from monitoring.uptime.report import build_category_report
from monitoring.uptime.sla import (
    BURN_RATE_ALERTS,
    BURN_RATE_WINDOWS,
    BurnRateAlert,
    ErrorBudget,
    ErrorRate,
    burn_rate,
    error_budget,
    overall_compliance,
    request_error_rate,
    uptime_compliant,
)
from monitoring.uptime.timeline import AvailabilityTimeline, grace_for
from monitoring.uptime.zones import ZoneStatus, zone_statuses


@dataclass(frozen=True)
class BurnRateAlertState:
    alert: BurnRateAlert
    long_rate: float | None
    short_rate: float | None
    measured: bool = True  # both windows rest on UPTIME_MIN_COVERAGE of their time

    @property
    def firing(self) -> bool:
        """Both windows burn at the threshold or faster, and both were measured enough to say so: two
        minutes of a fresh install do not make a 3-day burn rate."""
        threshold = self.alert.threshold
        return (
            self.measured and self.long_rate is not None and self.short_rate is not None
            and self.long_rate >= threshold and self.short_rate >= threshold
        )


@dataclass(frozen=True)
class UptimeReport:
    """Every figure of one uptime answer, computed from the store at ``now``."""

    period: ReportPeriod
    now: float
    status: str
    target: float
    grace: float
    availability: Availability
    up_since: float | None
    budget: ErrorBudget
    burn_rates: dict[str, float | None]
    burn_coverage: dict[str, float | None]  # known time in % of each burn-rate window
    burn_alerts: tuple[BurnRateAlertState, ...]
    error_rate: ErrorRate
    reliability: Reliability
    incidents: tuple[Incident, ...]  # overlapping the period, oldest first
    open_incident: Incident | None
    zones: tuple[ZoneStatus, ...]
    maintenance: tuple[MaintenanceOccurrence, ...]  # overlapping the period
    maintenance_active: tuple[MaintenanceOccurrence, ...]
    min_coverage: float = 0.0  # UPTIME_MIN_COVERAGE, % of the window
    measured_now: bool = False  # a health round vouches for this moment

    @property
    def coverage(self) -> Coverage:
        """What the availability figures rest on: the known time of the window outside maintenance."""
        return Coverage(self.availability.known_seconds, self.availability.eligible_seconds, self.min_coverage)

    @property
    def uptime_compliant(self) -> bool | None:
        """None ("not enough data") until the rounds vouch for UPTIME_MIN_COVERAGE of the window."""
        return judged(uptime_compliant(self.target, self.availability.percentage), self.coverage)

    @property
    def compliant(self) -> bool | None:
        """Both SLIs meet their objectives. The uptime SLI is the SLA's own: while it cannot be judged the
        verdict is None ("not enough data") unless the error rate already fails it; an error rate that
        cannot be judged (no requests: a service watched through its health checks only) is left out."""
        if self.uptime_compliant is None:
            return False if self.error_rate.compliant is False else None
        return overall_compliance(self.uptime_compliant, self.error_rate.compliant)


class UptimeService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        settings: Settings,
        current_status: Callable[[], str],
    ) -> None:
        self.store = store
        self.clock = clock
        self.target = settings.sla_target
        self.min_coverage = settings.uptime_min_coverage
        self.error_rate_threshold = settings.error_rate_threshold
        self.zone_alive_within = settings.lease_ttl
        self.grace = grace_for(settings.health_check_interval)
        self.timeline = AvailabilityTimeline(store, clock, self.grace)
        self.calendar = MaintenanceCalendar(store, clock)
        self.incidents = IncidentLog(store, clock)
        self._current_status = current_status

    def on_health_round(self, results: Any = None) -> int:
        """The health round's listener: fold the rounds stored since the last fold (this one included)."""
        return self.timeline.advance()

    def report(self, period: ReportPeriod, now: float | None = None) -> UptimeReport:
        """Every figure as at ``now`` (default: the clock), read once: durations within one answer agree."""
        now = self.clock.now() if now is None else now
        until = period.measured_until(now)
        longest_burn = max(BURN_RATE_WINDOWS.values())
        # One read of the timeline and the calendar serves the period and every burn-rate window.
        read_from = min(period.start, now - longest_burn)
        read_to = max(period.end, now)
        spans = self.timeline.covered_spans(read_from, now, now)
        occurrences = self.calendar.windows_overlapping(read_from, read_to)
        availability = measure(spans, occurrences, period.start, until)
        # A calendar month not over yet: its budget is for the whole month, less maintenance still planned.
        planned_later = measure([], [o for o in occurrences if not o.services], until, period.end).maintenance_seconds
        budget = error_budget(
            self.target, period.seconds - availability.maintenance_seconds - planned_later, availability.down_seconds
        )
        trailing = {label: measure(spans, occurrences, now - seconds, now)
                    for label, seconds in BURN_RATE_WINDOWS.items()}
        rates = {label: burn_rate(self.target, found.down_ratio) for label, found in trailing.items()}
        covered = {label: Coverage(found.known_seconds, found.eligible_seconds, self.min_coverage)
                   for label, found in trailing.items()}
        burn_coverage = {label: None if c.share is None else round(c.share, 4) for label, c in covered.items()}
        alerts = tuple(BurnRateAlertState(a, rates[a.long_window], rates[a.short_window],
                                          covered[a.long_window].enough and covered[a.short_window].enough)
                       for a in BURN_RATE_ALERTS)
        incidents = self.incidents.overlapping(period.start, until)
        return UptimeReport(
            period=period,
            now=now,
            status=self._current_status(),
            target=self.target,
            grace=self.grace,
            availability=availability,
            up_since=self.timeline.up_since(now),
            budget=budget,
            burn_rates=rates,
            burn_coverage=burn_coverage,
            burn_alerts=alerts,
            error_rate=request_error_rate(self.store, self.clock, period.start, until, self.error_rate_threshold),
            reliability=reliability(availability, incidents, now),
            incidents=tuple(incidents),
            open_incident=self.incidents.open_incident(),
            zones=tuple(zone_statuses(self.store, now, self.zone_alive_within)),
            maintenance=tuple(o for o in occurrences if o.start < period.end and o.end > period.start),
            maintenance_active=tuple(o for o in occurrences if o.start <= now < o.end),
            min_coverage=self.min_coverage,
            measured_now=bool(spans) and spans[-1].end >= now,
        )

    def category_report(self, window: TimeWindow) -> CategoryReport:
        """The ``uptime`` category of the metrics export, over the export's window."""
        now = min(window.end, self.clock.now())
        return build_category_report(self.report(ReportPeriod(window.start, window.end, window.label), now))
