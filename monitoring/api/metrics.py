"""/api/monitoring/metrics: the metrics export (JSON, Prometheus / OpenMetrics, Datadog)."""
from __future__ import annotations

import logging
import socket
from typing import Any

from flask import Response, jsonify, request

from monitoring.api.auth import require_key
from monitoring.api.blueprint import BY_ADDRESS, api_key_or_address, centinela_blueprint
from monitoring.api.errors import ApiError
from monitoring.api.params import flag_arg
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
from monitoring.metrics.scope import MAX_SERVICE_CHARS, ScopedProvider, parse_service
from monitoring.metrics.windows import DEFAULT_WINDOW, EXAMPLES, parse_window
from monitoring.security.keys import METRICS
from monitoring.services import Services
from monitoring.store.database import is_store_unavailable

log = logging.getLogger(__name__)

# Per key, not per address: one scraper's budget is not another team's (RATELIMIT_EXPORT); the
# default per-address limit applies on top, as on every endpoint.
bp = centinela_blueprint(
    "centinela_metrics", __name__, "/api/monitoring", budgets=[BY_ADDRESS, ("export", api_key_or_address)]
)

# Every category the export knows, in this order.
CATEGORIES = ("system", "performance", "business", "errors", "health", "uptime", "alerts")


def _window(monitoring: Services) -> TimeWindow:
    raw = request.args.get("window") or DEFAULT_WINDOW
    try:
        return parse_window(raw, monitoring.clock.now(), monitoring.settings.metrics_retention_days * DAY)
    except ValueError as exc:
        raise ApiError(400, f"{exc} (got {raw[:40]!r})", "invalid_parameter") from None


def _categories(monitoring: Services) -> list[str]:
    known = list(CATEGORIES) + sorted(set(monitoring.categories) - set(CATEGORIES))
    category = request.args.get("category")
    if category is None or category == "":
        return known
    if category not in known:
        raise ApiError(400, f"unknown category {category[:40]!r}; valid: {', '.join(known)}", "invalid_parameter")
    return [category]


def service_arg() -> str | None:
    """The ``service`` query parameter: None for every service, else one name (400 for a name no service has)."""
    raw = request.args.get("service")
    try:
        return parse_service(raw)
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None


SERVICE_PARAMETER: dict[str, Any] = {
    "name": "service", "in": "query",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SERVICE_CHARS},
    "description": "Only this service's requests and errors (SERVICE_NAME of an embedded app, service.name of an "
    "ingested one); every service combined when absent. A service the store does not know has empty figures.",
}


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


@bp.get("/metrics")
@require_key(METRICS)
def metrics():  # type: ignore[no-untyped-def]
    monitoring = current_services()
    output = request.args.get("format") or "json"
    if output not in FORMATS:
        raise ApiError(400, f"unknown format {output[:40]!r}; valid: {', '.join(FORMATS)}", "invalid_parameter")
    names = _categories(monitoring)
    window = _window(monitoring)
    include_internal = flag_arg("include_internal")
    service = service_arg()
    sections = {name: _section(monitoring, name, window, include_internal, service) for name in names}
    if output == "prometheus":
        body, content_type = render_prometheus(sections, request.headers.get("Accept"))
        return Response(body, content_type=content_type)
    if output == "datadog":
        return jsonify(
            render_datadog(sections, window.end, socket.gethostname(), (f"zone:{monitoring.settings.zone}",))
        )
    return jsonify(render_json(window.end, window, sections))  # the answer's one moment: its window's end


def _number(description: str) -> dict[str, Any]:
    return {"type": ["number", "null"], "description": description}


_UNAVAILABLE = {
    "type": "object",
    "required": ["available", "reason"],
    "properties": {"available": {"const": False}, "reason": {"type": "string"}},
}

_PERFORMANCE = {
    "type": "object",
    "description": "Request figures over the window, from the store (every worker answers the same). "
    "The newest METRICS_FLUSH_INTERVAL seconds are not flushed yet.",
    "properties": {
        "api.response_time.p50": _number("Median response time, ms (within 1 %)."),
        "api.response_time.p95": _number("95th percentile response time, ms (within 1 %)."),
        "api.response_time.p99": _number("99th percentile response time, ms (within 1 %)."),
        "api.response_time.mean": _number("Mean response time, ms."),
        "requests.count": {"type": "integer"},
        "requests.per_second": {"type": "number"},
        "requests.per_minute": {"type": "number"},
        "errors.count": {"type": "integer", "description": "5xx responses (unhandled exceptions count as 500)."},
        "errors.rate": {"type": "number", "description": "5xx responses per minute."},
        "errors.share": {"type": "number", "description": "5xx responses over all responses, 0-1."},
        "status": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "Responses per status class: 1xx ... 5xx."},
        "scope": {
            "type": "object",
            "properties": {
                "internal": {"enum": ["excluded", "included"]},
                "internalRequests": {"type": "integer",
                                     "description": "Requests to the monitoring endpoints in the window."},
                "note": {"type": ["string", "null"]},
                "coveredFrom": {"type": "string", "format": "date-time",
                                "description": "The window's start widened to the rollups read: to its minute, or "
                                "to its hour beyond 48 h. Rates divide by the covered seconds."},
                "coveredSeconds": {"type": "number"},
                "percentileRelativeError": {"type": "number"},
            },
        },
        "service": {"type": ["string", "null"],
                    "description": "The service of these figures (the service parameter); null: every service."},
        "services": {
            "type": "array",
            "description": "The same figures per service, busiest first.",
            "items": {
                "type": "object",
                "required": ["service", "requests.count"],
                "properties": {
                    "service": {"type": "string"},
                    "requests.count": {"type": "integer"},
                    "requests.per_second": {"type": "number"},
                    "errors.count": {"type": "integer"},
                    "errors.share": {"type": "number"},
                    "api.response_time.p50": _number("ms"),
                    "api.response_time.p95": _number("ms"),
                    "api.response_time.p99": _number("ms"),
                    "status": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
        },
        "routes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "method": {"type": "string"},
                    "route": {"type": "string", "description": "URL rule template, or <unmatched>."},
                    "internal": {"type": "boolean"},
                    "count": {"type": "integer"},
                    "errors": {"type": "integer"},
                    "p50": _number("ms"),
                    "p95": _number("ms"),
                    "p99": _number("ms"),
                    "mean": _number("ms"),
                    "max": _number("ms"),
                    "status": {"type": "object", "additionalProperties": {"type": "integer"}},
                },
            },
        },
    },
}

_ERRORS = {
    "type": "object",
    "description": "Unhandled exceptions over the window (error tracking and ingested errors).",
    "properties": {
        "errors.count": {"type": "integer"},
        "errors.rate": {"type": "number", "description": "Errors per minute."},
        "errors.share": _number("Errors per request, 0-1; null when no requests were counted."),
        "errors.total": {"type": "integer", "description": "Since the store began, in the service scope."},
        "requests.count": {"type": ["integer", "null"]},
        "service": {"type": ["string", "null"],
                    "description": "The service of these figures (the service parameter); null: every service."},
        "services": {
            "type": "array",
            "description": "Errors in the window per service, most first.",
            "items": {"type": "object", "required": ["service", "errors.count"],
                      "properties": {"service": {"type": "string"}, "errors.count": {"type": "integer"}}},
        },
        "groups": {"type": "array", "items": {"type": "object"}},
    },
}

_SYSTEM = {
    "type": "object",
    "description": "Resources from each process's latest sample (every SYSTEM_SAMPLE_INTERVAL seconds; samples "
    "are kept 48 h) and the scheduler: who leads and when each global job last ran.",
    "properties": {
        "system.memory.usage": _number("Memory in use, % of the cgroup limit when one applies, else of the host."),
        "system.memory.usage.avg": _number("Average over the window, %."),
        "system.memory.usage.max": _number("Highest in the window, %."),
        "system.cpu.usage": _number("Host CPU, % of all CPUs."),
        "process.cpu.usage": _number("All live workers together, % of one CPU."),
        "process.memory.rss": {"type": ["integer", "null"], "description": "All live workers' RSS, bytes."},
        "process.open_fds": {"type": ["integer", "null"]},
        "process.threads": {"type": ["integer", "null"]},
        "store.size": {"type": ["integer", "null"], "description": "Disk used by the store, bytes."},
        "hosts": {"type": "array", "items": {"type": "object"}},
        "workers": {"type": "array", "items": {"type": "object"}},
        "samples": {"type": "object"},
        "scheduler": {"type": "object"},
    },
}

OPENAPI_PATHS = {
    "/api/monitoring/metrics": {
        "get": {
            "summary": "Metrics export",
            "description": "Figures by category over a window, as JSON (default), Prometheus text or OpenMetrics "
            "(`format=prometheus`; OpenMetrics when `Accept: application/openmetrics-text`), or a Datadog "
            "`POST /api/v1/series` body (`format=datadog`). A known category whose provider is not installed "
            "yet answers `{\"available\": false, \"reason\"}`. Rate limited per key by RATELIMIT_EXPORT.",
            "tags": ["metrics"],
            "security": [{"ApiKey": []}, {"AdminKey": []}, {"ApiKeyQuery": []}],
            "parameters": [
                {"name": "category", "in": "query", "schema": {"type": "string", "enum": list(CATEGORIES)},
                 "description": "One category; all of them when absent."},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": list(FORMATS), "default": "json"}},
                {"name": "window", "in": "query",
                 "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,5}[mhd]$", "default": DEFAULT_WINDOW},
                 "description": "How far back the figures reach: a whole number of m, h or d, from 1m to "
                 f"METRICS_RETENTION_DAYS, e.g. {', '.join(EXAMPLES)}. Prometheus counters and buckets are running "
                 "totals and do not depend on it."},
                {"name": "include_internal", "in": "query", "schema": {"type": "boolean", "default": False},
                 "description": "Count requests to the monitoring endpoints themselves in the performance figures."},
                {**SERVICE_PARAMETER, "description": SERVICE_PARAMETER["description"] + " Narrows the performance "
                 "and errors categories (and the Prometheus request and error families); the others have no service."},
                {"name": "Accept", "in": "header", "schema": {"type": "string"},
                 "description": "With format=prometheus, `application/openmetrics-text` selects OpenMetrics 1.0."},
            ],
            "responses": {
                "200": {
                    "description": "Metrics by category: JSON, Prometheus text exposition 0.0.4 (text/plain), "
                    "OpenMetrics 1.0 ending with `# EOF`, or the Datadog series body (JSON).",
                    "content": {
                        "application/json": {
                            # Either the figures (format=json) or the Datadog series body: neither has
                            # the other's required keys, so exactly one alternative matches.
                            "schema": {"oneOf": [
                                {
                                    "type": "object",
                                    "required": ["timestamp", "window"],
                                    "properties": {
                                        "timestamp": {"type": "string", "format": "date-time"},
                                        "window": {
                                            "type": "object",
                                            "properties": {
                                                "label": {"type": "string"},
                                                "from": {"type": "string", "format": "date-time"},
                                                "to": {"type": "string", "format": "date-time"},
                                                "seconds": {"type": "number"},
                                            },
                                        },
                                        "performance": {"oneOf": [_PERFORMANCE, _UNAVAILABLE]},
                                        "errors": {"oneOf": [_ERRORS, _UNAVAILABLE]},
                                        "system": {"oneOf": [_SYSTEM, _UNAVAILABLE]},
                                    },
                                    "additionalProperties": {"type": "object"},
                                },
                                {"type": "object", "required": ["series"], "properties": {
                                    "series": {
                                        "type": "array",
                                        "description": "format=datadog: the body for Datadog's POST /api/v1/series.",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "metric": {"type": "string"},
                                                "points": {"type": "array", "items": {"type": "array"}},
                                                "type": {"enum": ["gauge", "count", "rate"]},
                                                "interval": {"type": "integer"},
                                                "host": {"type": "string"},
                                                "tags": {"type": "array", "items": {"type": "string"}},
                                            },
                                        },
                                    },
                                }},
                            ]}
                        },
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    }
}
