"""/api/monitoring/uptime: availability, SLA and error budget, incidents, MTBF / MTTR, zones.

Public, like the system description's example (it reveals no secret: the causes are the same
generic texts /api/health/check shows), under the default per-address rate limit.
"""
from __future__ import annotations

from typing import Annotated, Literal

from flask import Response, jsonify, url_for
from pydantic import Field, WithJsonSchema

from monitoring.api.contract import (
    PUBLIC_UNLESS_PRIVATE,
    Document,
    QueryModel,
    Timestamp,
    endpoint,
)
from monitoring.api.errors import ApiError
from monitoring.api.paging import Before, NextPage, next_page, page_size
from monitoring.extension import current_services
from monitoring.uptime.periods import DEFAULT_WINDOW, ROLLING_WINDOWS, VALID_FORMS, parse_period
from monitoring.uptime.report import render_uptime

MAX_PAGE = 200
DEFAULT_PAGE = 50


# --- the contract ---------------------------------------------------------------------------

# The period is checked against the clock (a month not begun yet is refused), so it is parsed in
# the view by monitoring.uptime.periods, whose messages list the valid forms; the models document it.
WindowName = Annotated[str | None, WithJsonSchema({"type": "string", "enum": list(ROLLING_WINDOWS)})]
MonthName = Annotated[str | None, WithJsonSchema({"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"})]


class UptimeQuery(QueryModel):
    window: WindowName = Field(None, description="A trailing window; not with month.",
                               json_schema_extra={"default": DEFAULT_WINDOW})
    month: MonthName = Field(None, description="A calendar month in UTC, e.g. 2026-02; not in the future; "
                                               "not with window.")


class IncidentsQuery(QueryModel):
    before: Before = Field(None, description="Only incidents with a smaller id.")
    limit: Annotated[int, page_size(MAX_PAGE)] = DEFAULT_PAGE


class Incident(Document):
    id: int
    status: Literal["open", "resolved"]
    start: Timestamp = Field(description="The first health round that found the service unhealthy.")
    end: Timestamp | None = Field(description="The first round that found it up again; null while open.")
    duration_seconds: float = Field(alias="durationSeconds", description="Up to now while open.")
    duration: str = Field(examples=["0d 0h 12m 30s"])
    services: list[str] = Field(description="Every dependency seen unhealthy during the incident.")
    cause: str = Field(examples=["critical dependency down: stripe (HTTP 500)"])


class ReliabilityFigure(Document):
    seconds: float | None = Field(description="Null without incidents in the window.")
    formatted: str | None = Field(examples=["5d 14h 23m 45s"])
    definition: str


class MaintenanceOccurrence(Document):
    window: int
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    services: list[str] | None = Field(description="Null: the whole service.")
    reason: str


class Instance(Document):
    id: str
    status: Literal["up", "down"] = Field(description="down: its heartbeat is older than LEASE_TTL and it did not "
                                          "stop cleanly (an instance that stopped cleanly is not listed).")
    started_at: Timestamp = Field(alias="startedAt")
    last_seen: Timestamp = Field(alias="lastSeen")


class Zone(Document):
    zone: str
    status: Literal["up", "down"] = Field(description="Up while one of its instances heartbeats (within LEASE_TTL).")
    instances_up: int = Field(alias="instancesUp")
    last_seen: Timestamp = Field(alias="lastSeen")
    instances: list[Instance]


class Coverage(Document):
    """What the figure rests on: below UPTIME_MIN_COVERAGE no SLA verdict is given."""

    known: float | None = Field(description="% of the window outside maintenance that rounds vouch for.")
    enough: bool = Field(description="known >= minimum: the figure can be judged against the SLA.")
    minimum: float = Field(description="UPTIME_MIN_COVERAGE, %.")
    summary: str = Field(examples=["measured for 2 min of 30 d"])


class CurrentUptime(Document):
    state: Literal["up", "down", "unknown"] = Field(
        description="down: an incident is open; unknown: no round vouches for now.")
    formatted: str = Field(description="How long the current up period has lasted ('0s' when not up).")
    seconds: float
    since: Timestamp | None = Field(description="When the current up period began; null when not up.")
    percentage: float | None = Field(description="Up share of the known time outside maintenance, %.")
    up_seconds: float = Field(alias="upSeconds")
    degraded_seconds: float = Field(alias="degradedSeconds", description="Part of upSeconds.")
    down_seconds: float = Field(alias="downSeconds")
    coverage: Coverage
    definition: str


class Compliance(Document):
    overall: bool | None
    uptime: bool | None = Field(description="Null (not enough data) below UPTIME_MIN_COVERAGE of the window.")
    error_rate: bool | None = Field(alias="errorRate", description="Null without requests.")


class ErrorRate(Document):
    share: float | None
    threshold: float
    requests: int
    errors: int
    covered_from: Timestamp | None = Field(alias="coveredFrom")
    note: str


class ErrorBudget(Document):
    allowed_seconds: float = Field(alias="allowedSeconds")
    allowed_minutes: float = Field(alias="allowedMinutes", description="43.2 for 99.9 % over 30 days.")
    consumed_seconds: float = Field(alias="consumedSeconds")
    consumed_minutes: float = Field(alias="consumedMinutes")
    remaining_seconds: float = Field(alias="remainingSeconds")
    remaining_minutes: float = Field(alias="remainingMinutes")
    consumed_percentage: float | None = Field(alias="consumedPercentage")
    remaining_percentage: float | None = Field(alias="remainingPercentage", description="Below 0 when overspent.")
    exhausted: bool
    definition: str


class BurnRateAlert(Document):
    severity: Literal["page", "ticket"]
    long_window: str = Field(alias="longWindow")
    short_window: str = Field(alias="shortWindow")
    threshold: float
    budget_spent: str = Field(alias="budgetSpent")
    firing: bool


class BurnRates(Document):
    windows: dict[str, float | None] = Field(description="Burn rate over the trailing 5m, 30m, 1h, 2h, 6h, 1d and 3d.")
    coverage: dict[str, float | None] = Field(description="Known time in % of each of those windows.")
    alerts: list[BurnRateAlert] = Field(description="Multiwindow burn-rate alerts: 14.4x (1h and 5m), 6x (6h and "
                                        "30m), 3x (1d and 2h), 1x (3d and 6h).")
    definition: str


class Sla(Document):
    target: float = Field(description="SLA_TARGET, %.")
    coverage: Coverage
    compliance: Compliance
    error_rate: ErrorRate = Field(alias="errorRate")
    error_budget: ErrorBudget = Field(alias="errorBudget")
    burn_rates: BurnRates = Field(alias="burnRates")


class IncidentSummary(Document):
    count: int = Field(description="Incidents with down time in the window.")
    open: Incident | None
    recent: list[Incident] = Field(description="Up to 10, newest first.")
    history: str = Field(description="The paged history.")


class Gap(Document):
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    seconds: float


class WindowCoverage(Document):
    known: float | None = Field(description="% of the window outside maintenance that rounds vouch for.")
    unknown: float | None = Field(description="% no round vouches for (the monitor was not running).")
    known_seconds: float = Field(alias="knownSeconds")
    unknown_seconds: float = Field(alias="unknownSeconds")
    maintenance_seconds: float = Field(alias="maintenanceSeconds")
    grace_seconds: float = Field(alias="graceSeconds")
    minimum: float = Field(description="UPTIME_MIN_COVERAGE, %.")
    enough: bool
    summary: str = Field(examples=["measured for 2 min of 30 d"])
    gaps: list[Gap] = Field(description="The latest 20 unknown stretches.")
    definition: str


class MaintenanceSummary(Document):
    active: list[MaintenanceOccurrence]
    windows: list[MaintenanceOccurrence]


class ReportWindow(Document):
    label: str = Field(examples=["30d", "2026-02"])
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    seconds: float
    measured_to: Timestamp = Field(alias="measuredTo", description="The end, or now for a month not over yet.")
    complete: bool


class UptimeDocument(Document):
    status: Literal["healthy", "degraded", "unhealthy", "unknown"] = Field(
        description="The health status now, as /api/health/check reports it.")
    uptime: CurrentUptime
    sla: Sla
    zones: list[Zone]
    incidents: IncidentSummary
    mtbf: ReliabilityFigure
    mttr: ReliabilityFigure
    coverage: WindowCoverage
    maintenance: MaintenanceSummary
    window: ReportWindow


class IncidentPage(Document):
    incidents: list[Incident]
    next: NextPage | None


# --- the endpoints ------------------------------------------------------------------------


@endpoint(key=PUBLIC_UNLESS_PRIVATE, query=UptimeQuery, responses={200: UptimeDocument}, tags=["uptime"],
          descriptions={400: f"A bad window or month; the message lists the valid forms: {VALID_FORMS}."})
def uptime(query: UptimeQuery) -> Response:
    """Uptime, SLA, error budget, incidents and zones

    Availability by time from the stored health rounds over a trailing window or a calendar
    month (UTC): maintenance windows are left out, time no round vouches for is unknown. Public.
    """
    service = current_services().uptime
    now = service.clock.now()
    try:
        period = parse_period(query.window or None, query.month or None, now)
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    return jsonify(render_uptime(service.report(period, now)))


@endpoint(key=PUBLIC_UNLESS_PRIVATE, query=IncidentsQuery, responses={200: IncidentPage}, tags=["uptime"])
def incident_history(query: IncidentsQuery) -> Response:
    """Incident history

    Every incident kept (INCIDENT_RETENTION_DAYS), newest first; page on with `before=` the
    `next.before` of the previous page. Public.
    """
    service = current_services().uptime
    page = service.incidents.page(before=query.before, limit=query.limit)
    now = service.clock.now()
    return jsonify({
        "incidents": [incident.to_json(now) for incident in page],
        "next": next_page(page, query.limit, lambda before: url_for("centinela_uptime.incident_history",
                                                                    before=before, limit=query.limit)),
    })
