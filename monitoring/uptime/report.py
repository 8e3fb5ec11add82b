"""The uptime report as JSON (GET /api/monitoring/uptime) and as the ``uptime`` metric category."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from monitoring.clock import isoformat
from monitoring.durations import format_duration
from monitoring.metrics.categories import CategoryReport, DatadogPoint
from monitoring.uptime.intervals import Span

if TYPE_CHECKING:
    from monitoring.uptime.service import UptimeReport

INCIDENT_HISTORY_PATH = "/api/monitoring/uptime/incidents"
RECENT_INCIDENTS = 10
LISTED_GAPS = 20

PERCENTAGE_DEFINITION = (
    "100 x up time / (up + down time): the share of the known time outside maintenance windows in which the "
    "service was healthy or degraded (no critical dependency down); unknown time (no health round vouches "
    "for it) is left out and reported under coverage"
)
MTBF_DEFINITION = "mean time between failures = total up time in the window / number of incidents in the window"
MTTR_DEFINITION = "mean time to recovery = total down time in the window / number of incidents in the window"
BUDGET_DEFINITION = (
    "allowed = (1 - target / 100) x the window's time outside maintenance; consumed = down time outside maintenance"
)
BURN_RATE_DEFINITION = (
    "(down time / known time in the trailing window, maintenance left out) / (1 - target / 100): "
    "1 spends the budget exactly over the SLA period; null without known time in the window"
)
COVERAGE_DEFINITION = (
    "each health round vouches for the time until the next one, for at most 2.5 x HEALTH_CHECK_INTERVAL "
    "(graceSeconds); time no round vouches for is unknown: the monitor itself was not running. Below "
    "UPTIME_MIN_COVERAGE % of the window known (enough: false) no SLA verdict is given"
)
UP = "up"
DOWN = "down"
UNKNOWN = "unknown"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _ratio(percent: float | None) -> float:
    """A percentage as a Prometheus ratio; NaN without one."""
    return math.nan if percent is None else percent / 100.0


def _percent_of(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 4) if whole > 0 else None


def _duration_json(seconds: float | None, definition: str) -> dict[str, Any]:
    return {
        "seconds": _round(seconds, 3),
        "formatted": None if seconds is None else format_duration(int(seconds)),  # whole seconds, for people
        "definition": definition,
    }


def _span_json(span: Span) -> dict[str, Any]:
    return {"from": isoformat(span.start), "to": isoformat(span.end), "seconds": round(span.seconds, 3)}


def render_uptime(report: UptimeReport) -> dict[str, Any]:
    """The document GET /api/monitoring/uptime answers with."""
    availability = report.availability
    budget = report.budget
    error_rate = report.error_rate
    period = report.period
    up_for = None if report.up_since is None else max(0.0, report.now - report.up_since)
    eligible = availability.eligible_seconds
    recent = sorted(report.incidents, key=lambda i: (i.started_at, i.id), reverse=True)[:RECENT_INCIDENTS]
    coverage = report.coverage.to_json()
    return {
        "status": report.status,
        "uptime": {
            # up: "formatted" is how long it has been up; down: the round that vouches for now found it
            # down (the open incident says since when); unknown: no round vouches for now. The page never
            # says "Up for 0s" of a service that is down.
            "state": current_state(report),
            "formatted": format_duration(int(up_for or 0)),
            "seconds": _round(up_for, 3) if up_for is not None else 0.0,
            "since": isoformat(report.up_since),
            "percentage": _round(availability.percentage),
            "upSeconds": round(availability.up_seconds, 3),
            "degradedSeconds": round(availability.degraded_seconds, 3),
            "downSeconds": round(availability.down_seconds, 3),
            "coverage": coverage,
            "definition": PERCENTAGE_DEFINITION,
        },
        "sla": {
            "target": report.target,
            "coverage": coverage,
            "compliance": {
                "overall": report.compliant,
                "uptime": report.uptime_compliant,
                "errorRate": error_rate.compliant,
            },
            "errorRate": {
                "share": _round(error_rate.share, 6),
                "threshold": error_rate.threshold,
                "requests": error_rate.requests,
                "errors": error_rate.errors,
                "coveredFrom": isoformat(error_rate.covered_from),
                "note": "5xx responses of the monitored app over the window; requests to the monitoring "
                "endpoints are left out; null without requests",
            },
            "errorBudget": {
                "allowedSeconds": round(budget.allowed_seconds, 3),
                "allowedMinutes": round(budget.allowed_seconds / 60.0, 4),
                "consumedSeconds": round(budget.consumed_seconds, 3),
                "consumedMinutes": round(budget.consumed_seconds / 60.0, 4),
                "remainingSeconds": round(budget.remaining_seconds, 3),
                "remainingMinutes": round(budget.remaining_seconds / 60.0, 4),
                "consumedPercentage": _round(budget.consumed_percentage),
                "remainingPercentage": _round(budget.remaining_percentage),
                "exhausted": budget.exhausted,
                "definition": BUDGET_DEFINITION,
            },
            "burnRates": {
                "windows": {label: _round(rate) for label, rate in report.burn_rates.items()},
                "coverage": dict(report.burn_coverage),
                "alerts": [
                    {
                        "severity": state.alert.severity,
                        "longWindow": state.alert.long_window,
                        "shortWindow": state.alert.short_window,
                        "threshold": state.alert.threshold,
                        "budgetSpent": state.alert.budget_spent,
                        "firing": state.firing,
                    }
                    for state in report.burn_alerts
                ],
                "definition": BURN_RATE_DEFINITION,
            },
        },
        "zones": [zone.to_json() for zone in report.zones],
        "incidents": {
            "count": report.reliability.incidents,
            "open": None if report.open_incident is None else report.open_incident.to_json(report.now),
            "recent": [incident.to_json(report.now) for incident in recent],
            "history": INCIDENT_HISTORY_PATH,
        },
        "mtbf": _duration_json(report.reliability.mtbf_seconds, MTBF_DEFINITION),
        "mttr": _duration_json(report.reliability.mttr_seconds, MTTR_DEFINITION),
        "coverage": {
            "known": _percent_of(availability.known_seconds, eligible),
            "unknown": _percent_of(availability.unknown_seconds, eligible),
            "knownSeconds": round(availability.known_seconds, 3),
            "unknownSeconds": round(availability.unknown_seconds, 3),
            "maintenanceSeconds": round(availability.maintenance_seconds, 3),
            "graceSeconds": report.grace,
            "minimum": report.coverage.minimum,
            "enough": report.coverage.enough,
            "summary": report.coverage.summary,
            "gaps": [_span_json(gap) for gap in availability.unknown_spans[-LISTED_GAPS:]],
            "definition": COVERAGE_DEFINITION,
        },
        "maintenance": {
            "active": [o.to_json() for o in report.maintenance_active],
            "windows": [o.to_json() for o in report.maintenance],
        },
        "window": {
            "label": period.label,
            "from": isoformat(period.start),
            "to": isoformat(period.end),
            "seconds": period.seconds,
            "measuredTo": isoformat(availability.end),
            "complete": report.now >= period.end,
        },
    }


def current_state(report: UptimeReport) -> str:
    """``up`` or ``down`` as the round that vouches for now found it; ``unknown`` when none does."""
    if report.up_since is not None:
        return UP
    return DOWN if report.measured_now else UNKNOWN


def build_category_report(report: UptimeReport) -> CategoryReport:
    """The same figures for the metrics export: dotted JSON names, Prometheus gauges, Datadog points."""
    from prometheus_client.metrics_core import GaugeMetricFamily

    availability = report.availability
    budget = report.budget
    label = report.period.label
    percentage = availability.percentage
    coverage = _percent_of(availability.known_seconds, availability.eligible_seconds)
    reliability = report.reliability
    compliance = {
        "uptime": report.uptime_compliant,
        "error_rate": report.error_rate.compliant,
        "overall": report.compliant,
    }
    figures: dict[str, Any] = {
        "uptime.percentage": _round(percentage),
        "uptime.coverage": coverage,
        "uptime.coverage.enough": report.coverage.enough,
        "uptime.up_seconds": round(availability.up_seconds, 3),
        "uptime.down_seconds": round(availability.down_seconds, 3),
        "uptime.unknown_seconds": round(availability.unknown_seconds, 3),
        "uptime.maintenance_seconds": round(availability.maintenance_seconds, 3),
        "uptime.since": isoformat(report.up_since),
        "sla.target": report.target,
        "sla.compliance.uptime": compliance["uptime"],
        "sla.compliance.error_rate": compliance["error_rate"],
        "sla.compliance.overall": compliance["overall"],
        "sla.error_rate": _round(report.error_rate.share, 6),
        "error_budget.allowed_seconds": round(budget.allowed_seconds, 3),
        "error_budget.consumed_seconds": round(budget.consumed_seconds, 3),
        "error_budget.remaining_percentage": _round(budget.remaining_percentage),
        **{f"error_budget.burn_rate.{w}": _round(rate) for w, rate in report.burn_rates.items()},
        "incidents.count": reliability.incidents,
        "incidents.open": int(report.open_incident is not None),
        "mtbf.seconds": _round(reliability.mtbf_seconds, 3),
        "mttr.seconds": _round(reliability.mttr_seconds, 3),
        "zones": {zone.name: "up" if zone.up else "down" for zone in report.zones},
    }

    window_label = ["window"]
    uptime_ratio = GaugeMetricFamily("centinela_uptime_ratio", "Up share of the known time outside maintenance, 0-1.",
                                     labels=window_label)
    coverage_ratio = GaugeMetricFamily("centinela_uptime_coverage_ratio",
                                       "Share of the time outside maintenance that health rounds vouch for, 0-1.",
                                       labels=window_label)
    downtime = GaugeMetricFamily("centinela_downtime_seconds", "Down time outside maintenance in the window.",
                                 labels=window_label)
    target = GaugeMetricFamily("centinela_sla_target_ratio", "SLA_TARGET as a ratio, 0-1.")
    compliant = GaugeMetricFamily("centinela_sla_compliant", "1 when the SLI meets its objective, 0 when not.",
                                  labels=["window", "sli"])
    remaining = GaugeMetricFamily("centinela_error_budget_remaining_ratio",
                                  "Share of the window's error budget left (below 0 when overspent).",
                                  labels=window_label)
    burn = GaugeMetricFamily("centinela_error_budget_burn_rate",
                             "Down share of the known time in a trailing window / (1 - SLA target).",
                             labels=window_label)
    open_incidents = GaugeMetricFamily("centinela_incidents_open", "1 while an incident is open.")
    incident_count = GaugeMetricFamily("centinela_incidents", "Incidents with down time in the window.",
                                       labels=window_label)
    mtbf = GaugeMetricFamily("centinela_mtbf_seconds", "Up time / incidents in the window.", labels=window_label)
    mttr = GaugeMetricFamily("centinela_mttr_seconds", "Down time / incidents in the window.", labels=window_label)
    zone_up = GaugeMetricFamily("centinela_zone_up", "1 while an instance of the zone heartbeats.", labels=["zone"])

    points: list[DatadogPoint] = []
    window_tag = (f"window:{label}",)

    def point(name: str, value: float | None, tags: tuple[str, ...] = window_tag) -> None:
        if value is not None:
            points.append(DatadogPoint(name, float(value), tags=tags))

    # Every series from the first scrape: NaN (Prometheus' "no value") until there is a figure, never
    # absent and never a made-up 0. Datadog takes no NaN: ``point`` leaves those out.
    uptime_ratio.add_metric([label], _ratio(percentage))
    point("uptime.percentage", percentage)
    coverage_ratio.add_metric([label], _ratio(coverage))
    point("uptime.coverage", coverage)
    downtime.add_metric([label], availability.down_seconds)
    point("uptime.downtime", availability.down_seconds)
    target.add_metric([], round(report.target / 100.0, 9))
    point("sla.target", report.target, ())
    for sli, value in compliance.items():
        compliant.add_metric([label, sli], math.nan if value is None else int(value))  # NaN: not enough data
        if value is not None:
            point("sla.compliance", int(value), (*window_tag, f"sli:{sli}"))
    remaining.add_metric([label], _ratio(budget.remaining_percentage))
    point("error_budget.remaining", budget.remaining_percentage)
    for window, rate in report.burn_rates.items():
        burn.add_metric([window], math.nan if rate is None else rate)
        point("error_budget.burn_rate", rate, (f"window:{window}",))
    open_incidents.add_metric([], int(report.open_incident is not None))
    point("incidents.open", int(report.open_incident is not None), ())
    incident_count.add_metric([label], reliability.incidents)
    point("incidents.count", reliability.incidents)
    mtbf.add_metric([label], math.nan if reliability.mtbf_seconds is None else reliability.mtbf_seconds)
    mttr.add_metric([label], math.nan if reliability.mttr_seconds is None else reliability.mttr_seconds)
    point("uptime.mtbf", reliability.mtbf_seconds)
    point("uptime.mttr", reliability.mttr_seconds)
    for zone in report.zones:
        zone_up.add_metric([zone.name], int(zone.up))
        point("zone.up", int(zone.up), (f"zone:{zone.name}",))
    return CategoryReport(
        json=figures,
        prometheus=[uptime_ratio, coverage_ratio, downtime, target, compliant, remaining, burn, open_incidents,
                    incident_count, mtbf, mttr, zone_up],
        datadog=points,
    )
