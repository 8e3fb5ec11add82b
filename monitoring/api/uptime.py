"""/api/monitoring/uptime: availability, SLA and error budget, incidents, MTBF / MTTR, zones.

Public, like the system description's example (it reveals no secret: the causes are the same
generic texts /api/health/check shows), under the default per-address rate limit.
"""
from __future__ import annotations

from flask import jsonify, request, url_for

from monitoring.api.auth import require_key_unless_public
from monitoring.api.blueprint import centinela_blueprint
from monitoring.api.errors import ApiError
from monitoring.api.params import int_arg
from monitoring.extension import current_services
from monitoring.uptime.periods import (
    DEFAULT_WINDOW,
    ROLLING_WINDOWS,
    VALID_FORMS,
    parse_period,
)
from monitoring.uptime.report import INCIDENT_HISTORY_PATH, render_uptime
from monitoring.uptime.service import UptimeService

bp = centinela_blueprint("centinela_uptime", __name__, "/api/monitoring")

MAX_PAGE = 200
DEFAULT_PAGE = 50


def _service() -> UptimeService:
    require_key_unless_public()
    return current_services().uptime


@bp.get("/uptime")
def uptime():  # type: ignore[no-untyped-def]
    service = _service()
    now = service.clock.now()
    try:
        period = parse_period(request.args.get("window") or None, request.args.get("month") or None, now)
    except ValueError as exc:
        raise ApiError(400, str(exc), "invalid_parameter") from None
    return jsonify(render_uptime(service.report(period, now)))


@bp.get("/uptime/incidents")
def incident_history():  # type: ignore[no-untyped-def]
    service = _service()
    limit = int_arg("limit", DEFAULT_PAGE, 1, MAX_PAGE)
    before = int_arg("before", None, 1, 2**63 - 1)
    assert limit is not None
    page = service.incidents.page(before=before, limit=limit)
    now = service.clock.now()
    next_before = page[-1].id if len(page) == limit else None
    return jsonify(
        {
            "incidents": [incident.to_json(now) for incident in page],
            "next": {"before": next_before,
                     "href": url_for("centinela_uptime.incident_history", before=next_before, limit=limit)}
            if next_before
            else None,
        }
    )


# --- OpenAPI ---------------------------------------------------------------------------------------

_TIME = {"type": ["string", "null"], "format": "date-time"}
_DURATION = {
    "type": "object",
    "required": ["seconds", "formatted", "definition"],
    "properties": {
        "seconds": {"type": ["number", "null"], "description": "Null without incidents in the window."},
        "formatted": {"type": ["string", "null"], "examples": ["5d 14h 23m 45s"]},
        "definition": {"type": "string"},
    },
}
_INCIDENT = {
    "type": "object",
    "required": ["id", "status", "start", "end", "durationSeconds", "duration", "services", "cause"],
    "properties": {
        "id": {"type": "integer"},
        "status": {"enum": ["open", "resolved"]},
        "start": {"type": "string", "format": "date-time",
                  "description": "The first health round that found the service unhealthy."},
        "end": {**_TIME, "description": "The first round that found it up again; null while open."},
        "durationSeconds": {"type": "number", "description": "Up to now while open."},
        "duration": {"type": "string", "examples": ["0d 0h 12m 30s"]},
        "services": {"type": "array", "items": {"type": "string"},
                     "description": "Every dependency seen unhealthy during the incident."},
        "cause": {"type": "string", "examples": ["critical dependency down: stripe (HTTP 500)"]},
    },
}
_OCCURRENCE = {
    "type": "object",
    "properties": {
        "window": {"type": "integer"},
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
        "services": {"type": ["array", "null"], "items": {"type": "string"},
                     "description": "Null: the whole service."},
        "reason": {"type": "string"},
    },
}
_ZONE = {
    "type": "object",
    "required": ["zone", "status", "instancesUp", "lastSeen", "instances"],
    "properties": {
        "zone": {"type": "string"},
        "status": {"enum": ["up", "down"], "description": "Up while one of its instances heartbeats (within LEASE_TTL)."},
        "instancesUp": {"type": "integer"},
        "lastSeen": {"type": "string", "format": "date-time"},
        "instances": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "status": {"enum": ["up", "down"],
                               "description": "down: its heartbeat is older than LEASE_TTL and it did not stop "
                               "cleanly (an instance that stopped cleanly is not listed)."},
                    "startedAt": {"type": "string", "format": "date-time"},
                    "lastSeen": {"type": "string", "format": "date-time"},
                },
            },
        },
    },
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COVERAGE = {
    "type": "object",
    "required": ["known", "enough", "minimum", "summary"],
    "description": "What the figure rests on: below UPTIME_MIN_COVERAGE no SLA verdict is given.",
    "properties": {
        "known": {**_NUMBER_OR_NULL, "description": "% of the window outside maintenance that rounds vouch for."},
        "enough": {"type": "boolean", "description": "known >= minimum: the figure can be judged against the SLA."},
        "minimum": {"type": "number", "description": "UPTIME_MIN_COVERAGE, %."},
        "summary": {"type": "string", "examples": ["measured for 2 min of 30 d"]},
    },
}
_UPTIME_DOCUMENT = {
    "type": "object",
    "required": ["status", "uptime", "sla", "zones", "incidents", "mtbf", "mttr", "coverage", "maintenance", "window"],
    "properties": {
        "status": {"enum": ["healthy", "degraded", "unhealthy", "unknown"],
                   "description": "The health status now, as /api/health/check reports it."},
        "uptime": {
            "type": "object",
            "required": ["state", "formatted", "percentage", "since", "coverage"],
            "properties": {
                "state": {"enum": ["up", "down", "unknown"],
                          "description": "down: an incident is open; unknown: no round vouches for now."},
                "formatted": {"type": "string", "description": "How long the current up period has lasted ('0s' when "
                              "not up)."},
                "seconds": {"type": "number"},
                "since": {**_TIME, "description": "When the current up period began; null when not up."},
                "percentage": {**_NUMBER_OR_NULL, "description": "Up share of the known time outside maintenance, %."},
                "upSeconds": {"type": "number"},
                "degradedSeconds": {"type": "number", "description": "Part of upSeconds."},
                "downSeconds": {"type": "number"},
                "coverage": _COVERAGE,
                "definition": {"type": "string"},
            },
        },
        "sla": {
            "type": "object",
            "required": ["target", "coverage", "compliance", "errorBudget", "burnRates"],
            "properties": {
                "target": {"type": "number", "description": "SLA_TARGET, %."},
                "coverage": _COVERAGE,
                "compliance": {
                    "type": "object",
                    "properties": {
                        "overall": {"type": ["boolean", "null"]},
                        "uptime": {"type": ["boolean", "null"],
                                   "description": "Null (not enough data) below UPTIME_MIN_COVERAGE of the window."},
                        "errorRate": {"type": ["boolean", "null"], "description": "Null without requests."},
                    },
                },
                "errorRate": {"type": "object"},
                "errorBudget": {
                    "type": "object",
                    "properties": {
                        "allowedSeconds": {"type": "number"},
                        "allowedMinutes": {"type": "number", "description": "43.2 for 99.9 % over 30 days."},
                        "consumedSeconds": {"type": "number"},
                        "consumedMinutes": {"type": "number"},
                        "remainingSeconds": {"type": "number"},
                        "remainingMinutes": {"type": "number"},
                        "consumedPercentage": _NUMBER_OR_NULL,
                        "remainingPercentage": {**_NUMBER_OR_NULL, "description": "Below 0 when overspent."},
                        "exhausted": {"type": "boolean"},
                        "definition": {"type": "string"},
                    },
                },
                "burnRates": {
                    "type": "object",
                    "properties": {
                        "windows": {"type": "object", "additionalProperties": _NUMBER_OR_NULL,
                                    "description": "Burn rate over the trailing 5m, 30m, 1h, 2h, 6h, 1d and 3d."},
                        "coverage": {"type": "object", "additionalProperties": _NUMBER_OR_NULL,
                                     "description": "Known time in % of each of those windows."},
                        "alerts": {
                            "type": "array",
                            "description": "Multiwindow burn-rate alerts: 14.4x (1h and 5m), 6x (6h and 30m), "
                            "3x (1d and 2h), 1x (3d and 6h).",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "severity": {"enum": ["page", "ticket"]},
                                    "longWindow": {"type": "string"},
                                    "shortWindow": {"type": "string"},
                                    "threshold": {"type": "number"},
                                    "budgetSpent": {"type": "string"},
                                    "firing": {"type": "boolean"},
                                },
                            },
                        },
                        "definition": {"type": "string"},
                    },
                },
            },
        },
        "zones": {"type": "array", "items": _ZONE},
        "incidents": {
            "type": "object",
            "required": ["count", "open", "recent", "history"],
            "properties": {
                "count": {"type": "integer", "description": "Incidents with down time in the window."},
                "open": {"oneOf": [_INCIDENT, {"type": "null"}]},
                "recent": {"type": "array", "items": _INCIDENT, "description": "Up to 10, newest first."},
                "history": {"type": "string", "description": "The paged history."},
            },
        },
        "mtbf": _DURATION,
        "mttr": _DURATION,
        "coverage": {
            "type": "object",
            "required": ["known", "unknown"],
            "properties": {
                "known": {**_NUMBER_OR_NULL, "description": "% of the window outside maintenance that rounds vouch for."},
                "unknown": {**_NUMBER_OR_NULL, "description": "% no round vouches for (the monitor was not running)."},
                "knownSeconds": {"type": "number"},
                "unknownSeconds": {"type": "number"},
                "maintenanceSeconds": {"type": "number"},
                "graceSeconds": {"type": "number"},
                "minimum": {"type": "number", "description": "UPTIME_MIN_COVERAGE, %."},
                "enough": {"type": "boolean"},
                "summary": {"type": "string", "examples": ["measured for 2 min of 30 d"]},
                "gaps": {"type": "array", "items": {"type": "object"}, "description": "The latest 20 unknown stretches."},
                "definition": {"type": "string"},
            },
        },
        "maintenance": {
            "type": "object",
            "properties": {
                "active": {"type": "array", "items": _OCCURRENCE},
                "windows": {"type": "array", "items": _OCCURRENCE},
            },
        },
        "window": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "examples": ["30d", "2026-02"]},
                "from": {"type": "string", "format": "date-time"},
                "to": {"type": "string", "format": "date-time"},
                "seconds": {"type": "number"},
                "measuredTo": {"type": "string", "format": "date-time",
                               "description": "The end, or now for a month not over yet."},
                "complete": {"type": "boolean"},
            },
        },
    },
}

OPENAPI_PATHS = {
    "/api/monitoring/uptime": {
        "get": {
            "summary": "Uptime, SLA, error budget, incidents and zones",
            "description": "Availability by time from the stored health rounds over a trailing window or a calendar "
            "month (UTC): maintenance windows are left out, time no round vouches for is unknown. Public.",
            "tags": ["uptime"],
            "security": [],
            "parameters": [
                {"name": "window", "in": "query",
                 "schema": {"type": "string", "enum": list(ROLLING_WINDOWS), "default": DEFAULT_WINDOW}},
                {"name": "month", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
                 "description": "A calendar month in UTC, e.g. 2026-02; not in the future; not with window."},
            ],
            "responses": {
                "200": {"description": "The uptime report.",
                        "content": {"application/json": {"schema": _UPTIME_DOCUMENT}}},
                "400": {"description": f"A bad window or month; the message lists the valid forms: {VALID_FORMS}.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    },
    "/api/monitoring/uptime/incidents": {
        "get": {
            "summary": "Incident history",
            "description": "Every incident kept (INCIDENT_RETENTION_DAYS), newest first; page on with `before=` the "
            "`next.before` of the previous page. Public.",
            "tags": ["uptime"],
            "security": [],
            "parameters": [
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1},
                 "description": "Only incidents with a smaller id."},
                {"name": "limit", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE}},
            ],
            "responses": {
                "200": {
                    "description": "A page of incidents.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["incidents", "next"],
                                "properties": {
                                    "incidents": {"type": "array", "items": _INCIDENT},
                                    "next": {
                                        "type": ["object", "null"],
                                        "properties": {"before": {"type": "integer"}, "href": {"type": "string"}},
                                    },
                                },
                            }
                        }
                    },
                },
                "400": {"$ref": "#/components/responses/BadRequest"},
                "429": {"$ref": "#/components/responses/RateLimited"},
            },
        }
    },
}
