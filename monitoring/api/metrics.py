"""/api/monitoring/metrics: the metrics export (JSON, Prometheus / OpenMetrics, Datadog)."""
from __future__ import annotations

import logging
import socket
from typing import Annotated, Any, Literal

from flask import Response, jsonify, request
from pydantic import BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from monitoring.api.contract import (
    Content,
    Document,
    Flag,
    QueryModel,
    ServiceFilter,
    Timestamp,
    absent_if_empty,
    choice,
    endpoint,
    sometimes_absent,
)
from monitoring.api.error_tracking import ErrorGroupSummary
from monitoring.api.errors import ApiError
from monitoring.durations import DAY
from monitoring.extension import current_services
from monitoring.metrics.categories import CategoryReport, TimeWindow
from monitoring.metrics.exporters import (
    FORMATS,
    Section,
    Unavailable,
    render_datadog,
    render_json,
    render_prometheus,
)
from monitoring.metrics.scope import ScopedProvider
from monitoring.metrics.windows import DEFAULT_WINDOW, EXAMPLES, parse_window
from monitoring.security.keys import METRICS
from monitoring.services import Services
from monitoring.store.database import is_store_unavailable

log = logging.getLogger(__name__)

# Every category the export knows, in this order.
CATEGORIES = ("system", "performance", "business", "errors", "health", "uptime", "alerts")


# --- the contract ---------------------------------------------------------------------------


# An app may install categories of its own (Monitoring.categories), and the window's longest
# length is METRICS_RETENTION_DAYS: both are checked in the view, against the app; the models
# document the built-in categories and the form of a window.
CategoryName = Annotated[str | None, BeforeValidator(absent_if_empty),
                         WithJsonSchema({"type": "string", "enum": list(CATEGORIES)})]
WindowText = Annotated[str, BeforeValidator(absent_if_empty),
                       WithJsonSchema({"type": "string", "pattern": "^[1-9][0-9]{0,5}[mhd]$"})]


class MetricsQuery(QueryModel):
    category: CategoryName = Field(None, description="One category; all of them when absent.")
    format: Annotated[str, choice(*FORMATS)] = Field(
        "json", description="json, prometheus (text exposition; OpenMetrics by Accept) or datadog (a series body).",
        examples=["prometheus", "datadog"])
    window: WindowText = Field(
        DEFAULT_WINDOW, description="How far back the figures reach: a whole number of m, h or d, from 1m to "
        f"METRICS_RETENTION_DAYS, e.g. {', '.join(EXAMPLES)}. Prometheus counters and buckets are running totals "
        "and do not depend on it.")
    include_internal: Flag = Field(
        False, description="Count requests to the monitoring endpoints themselves in the performance figures.")
    service: ServiceFilter = Field(
        None, description="Only this service's requests and errors (SERVICE_NAME of an embedded app, service.name "
        "of an ingested one); every service combined when absent. A service the store does not know has empty "
        "figures. Narrows the performance and errors categories (and the Prometheus request and error families); "
        "the others have no service.")


class AcceptExposition(QueryModel):
    accept: Annotated[str | None, WithJsonSchema({"type": "string"})] = Field(
        None, alias="Accept",
        description="With format=prometheus, `application/openmetrics-text` selects OpenMetrics 1.0.",
        examples=["application/openmetrics-text", "text/plain"])


Milliseconds = float | None
StatusClasses = dict[str, int]


class UnavailableCategory(Document):
    """A known category whose provider is not installed yet, or failed."""

    available: Literal[False]
    reason: str


class RequestScope(Document):
    internal: Literal["excluded", "included"]
    internal_requests: int = Field(alias="internalRequests",
                                   description="Requests to the monitoring endpoints in the window.")
    note: str | None
    covered_from: Timestamp = Field(alias="coveredFrom", description="The window's start widened to the rollups "
                                    "read: to its minute, or to its hour beyond 48 h. Rates divide by the covered "
                                    "seconds.")
    covered_seconds: float = Field(alias="coveredSeconds")
    percentile_relative_error: float = Field(alias="percentileRelativeError")


class ServiceRequests(Document):
    service: str
    requests_count: int = Field(alias="requests.count")
    requests_per_second: float = Field(alias="requests.per_second")
    errors_count: int = Field(alias="errors.count")
    errors_share: float = Field(alias="errors.share")
    p50: Milliseconds = Field(alias="api.response_time.p50", description="ms")
    p95: Milliseconds = Field(alias="api.response_time.p95", description="ms")
    p99: Milliseconds = Field(alias="api.response_time.p99", description="ms")
    status: StatusClasses


class RouteRequests(Document):
    service: str
    method: str
    route: str = Field(description="URL rule template, or <unmatched>.")
    internal: bool
    count: int
    errors: int
    p50: Milliseconds = Field(description="ms")
    p95: Milliseconds = Field(description="ms")
    p99: Milliseconds = Field(description="ms")
    mean: Milliseconds = Field(description="ms")
    max: Milliseconds = Field(description="ms")
    status: StatusClasses


class PerformanceFigures(Document):
    """Request figures over the window, from the store (every worker answers the same). The newest
    METRICS_FLUSH_INTERVAL seconds are not flushed yet."""

    p50: Milliseconds = Field(alias="api.response_time.p50", description="Median response time, ms (within 1 %).")
    p95: Milliseconds = Field(alias="api.response_time.p95",
                              description="95th percentile response time, ms (within 1 %).")
    p99: Milliseconds = Field(alias="api.response_time.p99",
                              description="99th percentile response time, ms (within 1 %).")
    mean: Milliseconds = Field(alias="api.response_time.mean", description="Mean response time, ms.")
    requests_count: int = Field(alias="requests.count")
    requests_per_second: float = Field(alias="requests.per_second")
    requests_per_minute: float = Field(alias="requests.per_minute")
    errors_count: int = Field(alias="errors.count", description="5xx responses (unhandled exceptions count as 500).")
    errors_rate: float = Field(alias="errors.rate", description="5xx responses per minute.")
    errors_share: float = Field(alias="errors.share", description="5xx responses over all responses, 0-1.")
    status: StatusClasses = Field(description="Responses per status class: 1xx ... 5xx.")
    scope: RequestScope
    service: str | None = Field(description="The service of these figures (the service parameter); null: every "
                                "service.")
    services: list[ServiceRequests] = Field(description="The same figures per service, busiest first.")
    routes: list[RouteRequests]


class ServiceErrors(Document):
    service: str
    errors_count: int = Field(alias="errors.count")


class ErrorFigures(Document):
    """Unhandled exceptions over the window (error tracking and ingested errors)."""

    errors_count: int = Field(alias="errors.count")
    errors_rate: float = Field(alias="errors.rate", description="Errors per minute.")
    errors_share: float | None = Field(alias="errors.share", description="Errors per request, 0-1; null when no "
                                       "requests were counted.")
    errors_total: int = Field(alias="errors.total", description="Since the store began, in the service scope.")
    requests_count: int | None = Field(alias="requests.count")
    service: str | None = Field(description="The service of these figures (the service parameter); null: every "
                                "service.")
    services: list[ServiceErrors] = Field(description="Errors in the window per service, most first.")
    groups: list[ErrorGroupSummary]


class SystemFigures(Document):
    """Resources from each process's latest sample (every SYSTEM_SAMPLE_INTERVAL seconds; samples are
    kept 48 h) and the scheduler: who leads and when each global job last ran."""

    memory: float | None = Field(alias="system.memory.usage",
                                 description="Memory in use, % of the cgroup limit when one applies, else of the host.")
    memory_avg: float | None = Field(alias="system.memory.usage.avg", description="Average over the window, %.")
    memory_max: float | None = Field(alias="system.memory.usage.max", description="Highest in the window, %.")
    cpu: float | None = Field(alias="system.cpu.usage", description="Host CPU, % of all CPUs.")
    process_cpu: float | None = Field(alias="process.cpu.usage", description="All live workers together, % of one CPU.")
    process_rss: int | None = Field(alias="process.memory.rss", description="All live workers' RSS, bytes.")
    process_open_fds: int | None = Field(alias="process.open_fds")
    process_threads: int | None = Field(alias="process.threads")
    store_size: int | None = Field(alias="store.size", description="Disk used by the store, bytes.")
    hosts: list[dict[str, Any]]
    workers: list[dict[str, Any]]
    samples: dict[str, Any]
    scheduler: dict[str, Any]


class MetricsWindow(Document):
    label: str
    from_: Timestamp = Field(alias="from")
    to: Timestamp
    seconds: float


class MetricsDocument(Document):
    """The figures (format=json): the categories asked for, in the order of CATEGORIES, then an app's own."""

    # A category is absent when another one was asked for.
    model_config = ConfigDict(extra="allow", populate_by_name=True,
                              json_schema_extra=sometimes_absent("performance", "errors", "system"))
    __pydantic_extra__: dict[str, dict[str, Any]] = Field(init=False)

    timestamp: Timestamp = Field(description="The answer's one moment: its window's end.")
    window: MetricsWindow
    performance: PerformanceFigures | UnavailableCategory
    errors: ErrorFigures | UnavailableCategory
    system: SystemFigures | UnavailableCategory


class DatadogPoint(Document):
    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_extra=sometimes_absent("interval"))

    metric: str
    points: list[list[float]] = Field(description="[[epoch seconds, value]].")
    type: Literal["gauge", "count", "rate"]
    interval: int = Field(description="Seconds, for count and rate.")
    host: str
    tags: list[str]


class DatadogSeries(Document):
    """format=datadog: the body for Datadog's POST /api/v1/series."""

    series: list[DatadogPoint]


class MetricsAnswer(RootModel[Any]):
    """The figures (format=json) or the Datadog series body (format=datadog): neither has the other's
    required keys."""

    model_config = ConfigDict(defer_build=True)
    root: MetricsDocument | DatadogSeries


_EXPOSITION = (
    Content("text/plain", schema={"type": "string", "description": "Prometheus text exposition 0.0.4."}),
    Content("application/openmetrics-text",
            schema={"type": "string", "description": "OpenMetrics 1.0, ending with `# EOF`."}),
)


# --- the endpoint --------------------------------------------------------------------------


def _window(monitoring: Services, raw: str) -> TimeWindow:
    try:
        return parse_window(raw, monitoring.clock.now(), monitoring.settings.metrics_retention_days * DAY)
    except ValueError as exc:
        raise ApiError(400, f"{exc} (got {raw[:40]!r})", "invalid_parameter") from None


def _categories(monitoring: Services, category: str | None) -> list[str]:
    known = list(CATEGORIES) + sorted(set(monitoring.categories) - set(CATEGORIES))
    if category is None:
        return known
    if category not in known:
        raise ApiError(400, f"unknown category {category[:40]!r}; valid: {', '.join(known)}", "invalid_parameter")
    return [category]


def _section(monitoring: Services, name: str, window: TimeWindow, include_internal: bool,
             service: str | None = None) -> Section:
    provider = monitoring.categories.get(name)
    if provider is None:
        return Unavailable(f"no {name} figures in this service yet: their provider is not installed")
    try:
        if isinstance(provider, ScopedProvider):  # it counts requests: in this answer's one scope
            return provider.report(window, include_internal, service)
        report = provider(window)
    except Exception as error:
        if is_store_unavailable(error):
            raise  # no category can be computed: the export answers 503 store_unavailable
        # One failing category must not take the whole export (and every scraper) down with it.
        log.exception("metrics provider %s failed", name)
        return Unavailable(f"the {name} figures could not be computed; the details are in the server log")
    if not isinstance(report, CategoryReport):
        log.error("metrics provider %s returned %s, not a CategoryReport", name, type(report).__name__)
        return Unavailable(f"the {name} figures could not be computed; the details are in the server log")
    return report


@endpoint(
    key=METRICS, query=MetricsQuery, headers_model=AcceptExposition, responses={200: MetricsAnswer},
    extra_content={200: _EXPOSITION}, tags=["metrics"],
    descriptions={200: "Metrics by category: JSON, Prometheus text exposition 0.0.4 (text/plain), OpenMetrics 1.0 "
                       "ending with `# EOF`, or the Datadog series body (JSON).",
                  400: "A bad parameter; an unknown category or a bad window lists the valid ones."},
)
def metrics(query: MetricsQuery) -> Response:
    """Metrics export

    Figures by category over a window, as JSON (default), Prometheus text or OpenMetrics
    (`format=prometheus`; OpenMetrics when `Accept: application/openmetrics-text`), or a Datadog
    `POST /api/v1/series` body (`format=datadog`). A known category whose provider is not installed
    yet answers `{"available": false, "reason"}`. Rate limited per key by RATELIMIT_EXPORT.
    """
    monitoring = current_services()
    names = _categories(monitoring, query.category)
    window = _window(monitoring, query.window)
    sections = {name: _section(monitoring, name, window, query.include_internal, query.service) for name in names}
    if query.format == "prometheus":
        body, content_type = render_prometheus(sections, request.headers.get("Accept"))
        return Response(body, content_type=content_type)
    if query.format == "datadog":
        return jsonify(
            render_datadog(sections, window.end, socket.gethostname(), (f"zone:{monitoring.settings.zone}",))
        )
    return jsonify(render_json(window.end, window, sections))  # the answer's one moment: its window's end
